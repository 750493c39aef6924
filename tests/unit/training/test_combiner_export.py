"""``training export-combiner``: research configuration keys -> live combiner artefacts (ADR 0020)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from common.combiner import (
    LINEAR_CLOSES,
    is_combiner_artifact,
    linear_features,
    load_combiner,
    metalabel_path,
)
from common.dataset import load_bundled_candles
from config import load_settings
from training.cli import app
from training.research.candidates import build_context, default_grid, fit_predict
from training.research.export import ExportError, FitData, _Row, export, parse_key, train_bars
from training.research.funding import load_funding
from training.research.protocol import funding_known
from training.signals import compute_signals, training_exogenous

STRATS = ("supertrend", "ott", "bband_rsi")


def test_every_volmanaged_grid_key_round_trips_and_exports() -> None:
    keys = [c.key for c in default_grid() if c.family == "volmanaged"]
    assert len(keys) == 9
    for key in keys:
        assert parse_key(key).key == key
        out = export(key, STRATS)
        comb = load_combiner(_Row(out.model_id, out.artifact, out.sha256))
        cfg = parse_key(key)
        assert comb.window == cfg.params["window"] and comb.params["target_vol"] == cfg.params["target_vol"]
        assert json.loads(out.artifact)["provenance"]["config"] == key
        assert out.model_id == f"combiner-volmanaged-{out.fingerprint[:12]}" and not out.registered


@pytest.mark.parametrize(
    "key,why",
    [
        ('hedge:{"decay":0.0,"eta":5.0}', "not exportable: an online learner"),
        ('dsr:{"rho":0.01,"seed":0}', "not exportable: an online learner"),
        ('rl:{"horizon":72.0,"seed":0.0}', "not exportable: an RL policy ships as a btcmeta.mlp.v1"),
        ('imitation:{"lam":1.0}', "is fitted: it needs the research data"),
        ('metalabel:{"horizon":24,"lam":1.0}', "metalabel takes horizon, lam, threshold"),
        ('ridge:{"lam":1.0}', "is fitted: it needs the research data"),
        ('logistic:{"lam":1.0,"eta":2}', "logistic takes lam"),
        ('volmanaged:{"target_vol":0.5}', "takes target_vol, window"),
        ('volmanaged:{"target_vol":0.5,"window":168,"eta":1}', "takes target_vol, window"),
        ("volmanaged", "expected FAMILY"),
        ("volmanaged:{oops", "not JSON"),
        ('volmanaged:{"target_vol":"high","window":168}', "must be a number"),
    ],
)
def test_refused_configurations_say_why(key: str, why: str) -> None:
    with pytest.raises(ExportError, match=why):
        export(key, STRATS)


def test_cli_writes_the_artefact(tmp_path: Path) -> None:
    out = tmp_path / "c.json"
    key = 'volmanaged:{"target_vol":0.3,"window":72}'
    res = CliRunner().invoke(
        app, ["export-combiner", key, "--out", str(out), "--strategies", ",".join(STRATS)]
    )
    assert res.exit_code == 0, res.output
    data = out.read_bytes()
    assert is_combiner_artifact(data) and json.loads(data)["strategies"] == list(STRATS)
    assert data == export(key, STRATS, provenance={"strategies_from": "--strategies"}).artifact
    bad = CliRunner().invoke(app, ["export-combiner", 'hedge:{"decay":0.0,"eta":5.0}', "--out", str(out)])
    assert bad.exit_code == 2 and "not exportable" in bad.output
    assert CliRunner().invoke(app, ["export-combiner", key]).exit_code == 2  # neither --out nor --register


# --- the fitted linear families (ADR 0025) ------------------------------------------------------

PRICE = ("volatility_system", "supertrend", "fsupertrend", "ott", "bband_rsi", "ma_trend", "vwap_reversion")
LAST = 4000


@pytest.fixture(scope="module")
def fit_data() -> FitData:
    """What the CLI loads with ``--last-bars 4000`` (every registry strategy, the funding series)."""
    candles = load_bundled_candles().iloc[-LAST:]
    exo = Path(load_settings().exogenous.data_dir)
    return FitData(candles, compute_signals(candles, exogenous=training_exogenous()), load_funding(exo))


@pytest.mark.parametrize("family", ["ridge", "logistic"])
def test_a_linear_export_applies_what_the_research_fit_scores(fit_data: FitData, family: str) -> None:
    key = f'{family}:{{"lam":1.0}}'
    out = export(key, PRICE, data=fit_data)
    assert out.artifact == export(key, PRICE, data=fit_data).artifact  # same data, same bytes
    comb = load_combiner(_Row(out.model_id, out.artifact, out.sha256))
    assert comb.kind == family and comb.linear is not None and out.model_id.startswith(f"combiner-{family}-")
    sig = fit_data.signals.restricted(PRICE)
    bars = train_bars(sig)
    assert bars[0] == sig.warmup and bars[-1] == LAST - 1  # default: every bar after the warm-up
    train = json.loads(out.artifact)["provenance"]["train"]
    assert train["bars"] == bars.size and train["last_bar"] == sig.index[-1].isoformat()
    # the artefact's arithmetic on the research rows == the research candidate fitted on that range
    fund = funding_known(sig.index, fit_data.events)
    ctx = build_context(fit_data.candles, sig, np.zeros(LAST), fund)
    want = fit_predict(ctx, family, 1.0, bars)
    assert np.array_equal(comb.linear.exposure(ctx.features), want)
    assert len(set(want[LINEAR_CLOSES:].tolist())) >= 3
    # and the live decision of one tick reads the same row from its last 721 closes
    t = LAST - 2
    close = fit_data.candles["close"].to_numpy(np.float64)
    row = linear_features(close[t - 720 : t + 1], ctx.targets[t - 720 : t + 1], fund[t - 720 : t + 1])[-1]
    assert np.array_equal(row, ctx.features[t])


def test_train_until_bounds_the_fit_and_is_recorded(fit_data: FitData) -> None:
    sig = fit_data.signals
    until = pd.Timestamp(sig.index[3500])
    cut = FitData(fit_data.candles, sig, fit_data.events, until)
    a, b = export('ridge:{"lam":1.0}', PRICE, data=fit_data), export('ridge:{"lam":1.0}', PRICE, data=cut)
    assert a.fingerprint != b.fingerprint
    train = json.loads(b.artifact)["provenance"]["train"]
    assert train["last_bar"] == until.isoformat() and train["bars"] == 3500 - sig.warmup + 1
    # the bars after --train-until do not enter the fit: changing them changes nothing
    moved = fit_data.candles.copy()
    moved.iloc[3501:, moved.columns.get_loc("close")] *= 1.2
    again = export('ridge:{"lam":1.0}', PRICE, data=FitData(moved, sig, fit_data.events, until))
    assert again.artifact == b.artifact
    too_early = FitData(fit_data.candles, sig, fit_data.events, pd.Timestamp(sig.index[sig.warmup + 10]))
    with pytest.raises(ExportError, match="training bars"):
        export('ridge:{"lam":1.0}', PRICE, data=too_early)
    with pytest.raises(ExportError, match="no signals for"):
        export('ridge:{"lam":1.0}', ("not_a_strategy",), data=fit_data)


def test_cli_fits_and_writes_a_linear_artefact(tmp_path: Path, fit_data: FitData) -> None:
    out = tmp_path / "ridge.json"
    until = pd.Timestamp(fit_data.signals.index[3600])
    res = CliRunner().invoke(
        app,
        [
            "export-combiner", 'logistic:{"lam":1.0}', "--out", str(out), "--strategies", ",".join(PRICE),
            "--last-bars", str(LAST), "--train-until", until.strftime("%Y-%m-%dT%H:%M"),
        ],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    want = export(
        'logistic:{"lam":1.0}',
        PRICE,
        provenance={"strategies_from": "--strategies"},
        data=FitData(fit_data.candles, fit_data.signals, fit_data.events, until),
    )
    assert out.read_bytes() == want.artifact
    bad = CliRunner().invoke(
        app, ["export-combiner", 'ridge:{"lam":1.0}', "--out", str(out), "--train-until", "soon"]
    )
    assert bad.exit_code == 2 and "not a time" in bad.output


def test_a_metalabel_export_applies_what_the_research_fit_scores(fit_data: FitData) -> None:
    from training.research.candidates import exposure
    from training.research.protocol import _baseline_exposures

    key = 'metalabel:{"horizon":24,"lam":1.0,"threshold":0.5}'
    out = export(key, PRICE, data=fit_data)
    comb = load_combiner(_Row(out.model_id, out.artifact, out.sha256))
    assert comb.kind == "metalabel" and comb.params["threshold"] == 0.5 and comb.params["horizon"] == 24
    assert "center" not in comb.params  # a probability against a threshold: no centre or scale
    sig = fit_data.signals.restricted(PRICE)
    majority = _baseline_exposures(sig)["majority_vote"]
    ctx = build_context(fit_data.candles, sig, majority, funding_known(sig.index, fit_data.events))
    want = exposure(parse_key(key), ctx, train_bars(sig))
    assert comb.linear is not None
    got = metalabel_path(majority, comb.linear.raw_score(ctx.features), 0.5)
    assert np.array_equal(got, want)
    assert np.count_nonzero(want) > 100 and np.count_nonzero((want == 0) & (majority != 0)) > 100


def test_an_imitation_export_applies_what_the_research_fit_scores(fit_data: FitData) -> None:
    """The oracle's costs at export are the research's (configured fee/slippage, real funding)."""
    from config import DEFAULT_FUNDING_RATE_HOURLY
    from training.ledger import CostModel
    from training.research.candidates import exposure
    from training.research.funding import bar_funding

    key = 'imitation:{"lam":0.001}'
    out = export(key, PRICE, data=fit_data)
    comb = load_combiner(_Row(out.model_id, out.artifact, out.sha256))
    assert comb.kind == "imitation" and comb.legs is not None
    cost_rate = CostModel.configured().cost_rate
    assert json.loads(out.artifact)["provenance"]["cost_rate"] == cost_rate
    sig = fit_data.signals.restricted(PRICE)
    per_bar = bar_funding(sig.index, fit_data.events, DEFAULT_FUNDING_RATE_HOURLY).per_bar
    fund = funding_known(sig.index, fit_data.events)
    ctx = build_context(fit_data.candles, sig, np.zeros(LAST), fund, per_bar, cost_rate)
    want = exposure(parse_key(key), ctx, train_bars(sig))
    from common.combiner import imitation_path, snap

    assert np.array_equal(snap(imitation_path(ctx.features, comb.legs)), want)
    assert np.count_nonzero(want) > 100
