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
        ('hedge:{"decay":0.0,"eta":5.0}', "learns online: it needs the research data"),
        ('dsr:{"rho":0.01,"seed":0}', "learns online: it needs the research data"),
        ('dsr:{"rho":0.01}', "dsr takes rho, seed"),
        ('rl:{"horizon":72.0,"seed":0.0}', "rl is fitted: it needs the research data"),
        ('rl:{"horizon":72.0}', "rl takes horizon and seed or seeds"),
        ('rl:{"horizon":72.0,"seed":0,"seeds":2}', "rl takes horizon and seed or seeds"),
        ('mystery:{"a":1}', "not exportable: an unknown family"),
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
    bad = CliRunner().invoke(app, ["export-combiner", 'mystery:{"a":1}', "--out", str(out)])
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


# --- the online learners (ADR 0026) --------------------------------------------------------------


@pytest.mark.parametrize(
    "key", ['hedge:{"decay":0.001388888888888889,"eta":5.0}', 'dsr:{"rho":0.01,"seed":1}']
)
def test_an_online_export_stores_the_research_state_after_the_last_training_bar(
    fit_data: FitData, key: str
) -> None:
    from common.combiner import DsrState, HedgeState
    from config import DEFAULT_FUNDING_RATE_HOURLY
    from training.ledger import CostModel
    from training.research import learners
    from training.research.candidates import hedge_experts, hedge_run
    from training.research.funding import bar_funding

    sig = fit_data.signals.restricted(PRICE)
    until = pd.Timestamp(sig.index[3000])
    cut = FitData(fit_data.candles, fit_data.signals, fit_data.events, until)
    out = export(key, PRICE, data=cut)
    assert out.artifact == export(key, PRICE, data=cut).artifact  # same data, same bytes
    comb = load_combiner(_Row(out.model_id, out.artifact, out.sha256), max_closes=LINEAR_CLOSES)
    train = json.loads(out.artifact)["provenance"]["train"]
    assert train == {
        "first_bar": sig.index[0].isoformat(), "last_bar": until.isoformat(), "bars": 3001,
        "funding": fit_data.events.source,  # type: ignore[union-attr]
    }  # fmt: skip
    # the state == the research loop over the whole loaded history, stopped after bar 3000
    fund = funding_known(sig.index, fit_data.events)
    per_bar = bar_funding(sig.index, fit_data.events, DEFAULT_FUNDING_RATE_HOURLY).per_bar
    cost = CostModel.configured().cost_rate
    ctx = build_context(fit_data.candles, sig, np.zeros(LAST), fund, per_bar, cost)
    cfg = parse_key(key)
    if cfg.family == "hedge":
        _, st = hedge_run(hedge_experts(ctx.targets[:3001]), ctx.ret[:3001], 5.0, float(cfg.params["decay"]))
        assert HedgeState.from_params(comb.initial_state()).to_params() == st.to_params()
    else:
        _, ds = learners.dsr_run(ctx.features[:3001], ctx.ret[:3001], per_bar[:3001], cost, rho=0.01, seed=1)
        assert DsrState.from_params(comb.initial_state()).to_params() == ds.to_params()
        assert comb.params["cost_rate"] == cost and comb.closes_needed == LINEAR_CLOSES
    # the bars after --train-until do not enter the state: changing them changes nothing
    moved = fit_data.candles.copy()
    moved.iloc[3001:, moved.columns.get_loc("close")] *= 1.2
    assert (
        export(key, PRICE, data=FitData(moved, fit_data.signals, fit_data.events, until)).artifact
        == out.artifact
    )
    full = export(key, PRICE, data=fit_data)
    assert full.fingerprint != out.fingerprint  # default: every loaded bar
    assert json.loads(full.artifact)["provenance"]["train"]["bars"] == LAST


def test_the_loader_refuses_a_bad_online_state(fit_data: FitData) -> None:
    from common.combiner import CombinerError, export_combiner

    out = export('dsr:{"rho":0.01,"seed":0}', PRICE, data=fit_data)
    doc = json.loads(out.artifact)
    good = dict(doc["params"])
    for change, why in [
        ({"w": good["w"][:-1]}, "w must be"),
        ({"s2": [*good["s2"], 1.0]}, "s2 must be"),
        ({"b": float("inf")}, "not JSON compliant"),  # canonical JSON: never a non-finite float
        ({"f1": 2.0}, "positions must be in"),
        ({"features": list(reversed(good["features"]))}, "are not this code's row"),
        ({"count": 1.5}, "count must be an integer"),
    ]:
        with pytest.raises((CombinerError, ValueError), match=why):
            export_combiner("dsr", PRICE, {**good, **change})
    hedge = json.loads(export('hedge:{"decay":0.0,"eta":5.0}', PRICE, data=fit_data).artifact)["params"]
    with pytest.raises(CombinerError, match="logw must be"):
        export_combiner("hedge", PRICE, {**hedge, "logw": hedge["logw"][1:]})
    with pytest.raises(CombinerError, match="experts are targets"):
        export_combiner("hedge", PRICE, {**hedge, "experts": [0.5] * len(hedge["experts"])})


def test_cli_exports_an_rl_combiner_as_the_function_does(fit_data: FitData, tmp_path: Path) -> None:
    """``export-combiner 'rl:{...}'`` (ADR 0027): the CLI loads the research data, fits the PPO seed
    with torch and writes the bytes ``export`` gives on the same data; the loader accepts them."""
    key = 'rl:{"horizon":72.0,"seed":1,"steps":8192}'
    until = pd.Timestamp(fit_data.signals.index[3500])
    out = tmp_path / "rl.json"
    args = ["export-combiner", key, "--out", str(out), "--strategies", ",".join(PRICE), "--last-bars"]
    res = CliRunner().invoke(app, [*args, str(LAST), "--train-until", until.isoformat()])
    assert res.exit_code == 0, res.output
    data = FitData(fit_data.candles, fit_data.signals, fit_data.events, until)
    want = export(key, PRICE, provenance={"strategies_from": "--strategies"}, data=data).artifact
    assert out.read_bytes() == want
    comb = load_combiner(_Row("rl", want))
    assert comb.kind == "rl" and comb.rl is not None and len(comb.rl.actors) == 1
    assert json.loads(want)["provenance"]["train"]["last_bar"] == until.isoformat()
