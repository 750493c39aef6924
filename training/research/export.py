"""Research configuration -> live combiner artefact (``common.combiner``), optionally a ``models`` row.

``python -m training export-combiner 'volmanaged:{"target_vol":0.5,"window":168}'`` takes a
configuration by its trial-log key (what REPORT.md and ``trials.jsonl`` name it), writes the
artefact and, with ``--register``, stores it in the live ``models`` table **unselected**: selecting
stays the operator's act (``UPDATE models SET selected``, or the gates' outcome), as for trained
models. Families that are online rules with no fitted state export exactly the research path
(``volmanaged``). The fitted linear families (``ridge``, ``logistic``, ``metalabel``,
``imitation``; ADR 0025) are fitted once (:func:`candidates.fit_linear`, ``learners``) on the training
range (:func:`train_bars`: every research bar the CLI loads from the signals' warm-up on, or those
up to ``--train-until``) and the training statistics go into the artefact, so live applies
exactly what the research path applies after the same fit (``imitation``: the oracle's costs are
the configured ones, as in ``research``). The online learners ``hedge`` and ``dsr`` (ADR 0026) run
the research loop over the loaded bars from the first (as the research path does), up to
``--train-until``, and store their parameters and the learner state after the last training bar;
live continues from that state. ``rl`` (ADR 0027) fits each seed's PPO actor on the training range
(:func:`train_bars`, with torch: training only) exactly as the research's ``rl_exposure`` fits it,
walks each seed's greedy path from the first loaded bar to the last training bar, and stores the
actors, the kept FeatureSpec v2 columns and their training statistics, and the state after the last
training bar (cumulative P&L and vote history of the trailing records, each seed's held target).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from common.combiner import (
    DSR_ETA,
    LINEAR_KINDS,
    ONLINE_KINDS,
    RL_KIND,
    Linear,
    export_combiner,
    load_combiner,
)
from common.combiner_rl import RL_ROWS, RlState, rl_params, rl_rows, zscores
from common.signals import SignalArrays
from training.research.candidates import GRID, Config

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from training.research.funding import FundingEvents

EXPORTABLE = ("volmanaged", *LINEAR_KINDS, *ONLINE_KINDS, RL_KIND)
#: Why the other research families do not ship (yet); the message of the refusal.
NOT_EXPORTABLE: dict[str, str] = {}
#: Fewer training rows than this cannot give the statistics a linear fit stores.
MIN_TRAIN_BARS = 500


@dataclass(frozen=True)
class FitData:
    """The research inputs a fitted family is fitted on (what ``python -m training research`` loads).

    ``signals``: every registry strategy's answers (restricted to the artefact's strategies here);
    ``events``: the funding series (None: no ``funding_last`` anywhere, read as 0, as research);
    ``train_until``: the last training bar's open time (None: every bar).
    """

    candles: pd.DataFrame
    signals: SignalArrays
    events: FundingEvents | None = None
    train_until: pd.Timestamp | None = None


def train_bars(signals: SignalArrays, train_until: pd.Timestamp | None = None) -> np.ndarray:
    """The training range: bars from the warm-up (as the research CPCV starts) to ``train_until``.

    A training bar ``b`` contributes row ``b - 1`` labelled with bar ``b``'s return, so everything a
    fit reads is known at the close of the last training bar.
    """
    bars = np.arange(max(1, signals.warmup), len(signals))
    if train_until is not None:
        opens = pd.DatetimeIndex(signals.index)
        bars = bars[opens[bars] <= train_until]
    return bars


class ExportError(ValueError):
    """The configuration cannot become a live combiner (unknown key, family not exportable)."""


@dataclass(frozen=True)
class Exported:
    model_id: str
    artifact: bytes
    sha256: str
    fingerprint: str
    registered: bool


def parse_key(key: str) -> Config:
    """``family:{json params}`` (``Config.key``) back to the configuration."""
    family, sep, params = key.partition(":")
    try:
        doc = json.loads(params) if sep else None
    except json.JSONDecodeError as exc:
        raise ExportError(f"{key!r}: params are not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise ExportError(
            f'{key!r}: expected FAMILY:{{json params}}, e.g. volmanaged:{{"target_vol":0.5,"window":168}}'
        )
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in doc.values()):
        raise ExportError(f"{key!r}: every parameter must be a number")
    return Config(family, doc)  # numbers as written: the key round-trips to the trial log's


def combiner_artifact(
    config: Config,
    strategies: Sequence[str],
    provenance: Mapping[str, Any],
    data: FitData | None = None,
) -> bytes:
    """The artefact that decides live what ``candidates.exposure(config, ...)`` scored."""
    if config.family not in EXPORTABLE:
        why = NOT_EXPORTABLE.get(config.family, "an unknown family")
        raise ExportError(
            f"{config.family!r} is not exportable: {why} (exportable: {', '.join(EXPORTABLE)}); "
            "see ADR 0020 / 0025 / 0026 / 0027"
        )
    if config.family == RL_KIND:
        kind, params, provenance = _fit_rl(config, strategies, provenance, data)
    elif config.family in ONLINE_KINDS:
        kind, params, provenance = _run_online(config, strategies, provenance, data)
    elif config.family in LINEAR_KINDS:
        kind, params, provenance = _fit_linear(config, strategies, provenance, data)
    else:
        kind, params = "volmanaged", _volmanaged_params(config)
    try:
        return export_combiner(
            kind, strategies, params, grid=GRID, provenance={"config": config.key, **provenance}
        )
    except ValueError as exc:
        raise ExportError(str(exc)) from None


def _volmanaged_params(config: Config) -> dict[str, float]:
    p = dict(config.params)
    if not {"target_vol", "window"} <= set(p) or set(p) - {"target_vol", "window", "cap"}:
        raise ExportError(
            f"{config.key}: volmanaged takes target_vol, window (and cap), got {sorted(config.params)}"
        )
    return {
        "target_vol": float(p["target_vol"]),
        "window": float(p["window"]),
        "cap": float(p.get("cap", 1.0)),
    }


def _fit_linear(
    config: Config, strategies: Sequence[str], provenance: Mapping[str, Any], data: FitData | None
) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """Fit ``ridge`` / ``logistic`` on the training range: (kind, artefact params, provenance)."""
    from config import DEFAULT_FUNDING_RATE_HOURLY
    from training.ledger import CostModel
    from training.research.candidates import build_context, fit_linear
    from training.research.funding import bar_funding
    from training.research.learners import imitation_model, metalabel_model
    from training.research.protocol import _baseline_exposures, funding_known

    want = {"horizon", "threshold", "lam"} if config.family == "metalabel" else {"lam"}
    if set(config.params) != want:
        raise ExportError(
            f"{config.key}: {config.family} takes {', '.join(sorted(want))}, got {sorted(config.params)}"
        )
    if data is None:
        raise ExportError(f"{config.key}: {config.family} is fitted: it needs the research data")
    try:
        sig = data.signals.restricted(tuple(strategies))
    except ValueError as exc:
        raise ExportError(str(exc)) from None
    bars = train_bars(sig, data.train_until)
    if bars.size < MIN_TRAIN_BARS:
        raise ExportError(
            f"{config.key}: {bars.size} training bars (after the warm-up, up to --train-until); "
            f"at least {MIN_TRAIN_BARS} needed"
        )
    candles = data.candles.loc[sig.index]
    majority = _baseline_exposures(sig)["majority_vote"]  # the research's vote (metalabel's side)
    # the costs the research's oracle optimizes against (imitation): per-bar funding, fee + slippage
    per_bar = bar_funding(sig.index, data.events, DEFAULT_FUNDING_RATE_HOURLY).per_bar
    cost_rate = CostModel.configured().cost_rate
    fund = funding_known(sig.index, data.events)
    ctx = build_context(candles, sig, majority, fund, per_bar, cost_rate)
    lam = float(config.params["lam"])
    extra: dict[str, float] = {}
    if config.family == "imitation":
        assert ctx.funding is not None
        legs, rows = imitation_model(
            ctx.features, ctx.ret, ctx.funding, cost_rate, bars, lam, ctx.feature_names
        )
        if rows.size == 0:
            raise ExportError(f"{config.key}: no training row for the oracle")
        params = {"lam": lam, **_imitation_params(ctx.features[rows], ctx.feature_names, legs)}
        provenance = {**provenance, "cost_rate": cost_rate}
    elif config.family == "metalabel":
        horizon, threshold = int(config.params["horizon"]), float(config.params["threshold"])
        fitted = metalabel_model(ctx.features, ctx.majority, ctx.ret, bars, horizon, lam, ctx.feature_names)
        if fitted is None:
            raise ExportError(f"{config.key}: no training row where the vote is not flat")
        to_store = fitted.to_params()
        del to_store["center"], to_store["scale"]  # not used: the score is a probability
        extra = {"horizon": float(horizon), "threshold": threshold}
        params = {"lam": lam, **extra, **to_store}
    else:
        params = {"lam": lam, **fit_linear(ctx, config.family, lam, bars).to_params()}
    opens = pd.DatetimeIndex(sig.index)
    train = {
        "first_bar": opens[bars[0]].isoformat(),
        "last_bar": opens[bars[-1]].isoformat(),
        "bars": int(bars.size),
        "funding": data.events.source if data.events is not None else "none",
    }
    return config.family, params, {**provenance, "train": train}


def _up_to_train_until(
    data: FitData, strategies: Sequence[str]
) -> tuple[pd.DatetimeIndex, int, SignalArrays]:
    """The loaded bars' open times, the index of the last bar opened at or before
    ``--train-until`` (the last loaded bar without it), and the strategies' signals up to it: the
    online and rl exports read nothing after it, so later bars cannot change their bytes."""
    try:
        sig = data.signals.restricted(tuple(strategies))
    except ValueError as exc:
        raise ExportError(str(exc)) from None
    opens = pd.DatetimeIndex(sig.index)
    last = (
        len(sig) - 1
        if data.train_until is None
        else int(np.searchsorted(opens, data.train_until, "right")) - 1
    )
    return opens, last, _head(sig, last + 1)


def _run_online(
    config: Config, strategies: Sequence[str], provenance: Mapping[str, Any], data: FitData | None
) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """Run ``hedge`` / ``dsr`` over the training bars: (kind, params + final state, provenance).

    The research path runs these learners from the first loaded bar (not from the warm-up: before
    it the strategies are flat and the learner still learns from the returns), so the training range
    here is bars ``0 .. last``, ``last`` the last bar opened at or before ``--train-until``.
    """
    from config import DEFAULT_FUNDING_RATE_HOURLY
    from training.ledger import CostModel
    from training.research import learners
    from training.research.candidates import build_context, hedge_experts, hedge_run
    from training.research.funding import bar_funding
    from training.research.protocol import _baseline_exposures, funding_known

    want = {"eta", "decay"} if config.family == "hedge" else {"rho", "seed"}
    if set(config.params) != want:
        raise ExportError(
            f"{config.key}: {config.family} takes {', '.join(sorted(want))}, got {sorted(config.params)}"
        )
    if data is None:
        raise ExportError(f"{config.key}: {config.family} learns online: it needs the research data")
    opens, last, sig_t = _up_to_train_until(data, strategies)
    if last + 1 < MIN_TRAIN_BARS:
        raise ExportError(
            f"{config.key}: {last + 1} bars up to --train-until; at least {MIN_TRAIN_BARS} needed"
        )
    candles = data.candles.loc[sig_t.index]
    per_bar = bar_funding(sig_t.index, data.events, DEFAULT_FUNDING_RATE_HOURLY).per_bar
    cost_rate = CostModel.configured().cost_rate
    ctx = build_context(
        candles, sig_t, _baseline_exposures(sig_t)["majority_vote"],
        funding_known(sig_t.index, data.events), per_bar, cost_rate,
    )  # fmt: skip
    p = config.params
    params: dict[str, Any]
    if config.family == "hedge":
        eta, decay = float(p["eta"]), float(p["decay"])
        _, hst = hedge_run(hedge_experts(ctx.targets), ctx.ret, eta, decay)
        params = {"eta": eta, "decay": decay, **hst.to_params()}
    else:
        assert ctx.funding is not None
        rho, seed = float(p["rho"]), int(p["seed"])
        _, st = learners.dsr_run(ctx.features, ctx.ret, ctx.funding, cost_rate, rho=rho, seed=seed)
        params = {
            "rho": rho, "seed": float(seed), "eta": DSR_ETA, "cost_rate": cost_rate,
            "features": list(ctx.feature_names), **st.to_params(),
        }  # fmt: skip
        provenance = {**provenance, "cost_rate": cost_rate}
    train = {
        "first_bar": opens[0].isoformat(),
        "last_bar": opens[last].isoformat(),
        "bars": int(last + 1),
        "funding": data.events.source if data.events is not None else "none",
    }
    return config.family, params, {**provenance, "train": train}


def _fit_rl(
    config: Config, strategies: Sequence[str], provenance: Mapping[str, Any], data: FitData | None
) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """Fit the ``rl`` configuration's seeds on the training range: (kind, params, provenance).

    The context is the research's (``protocol.prepare``: majority vote, published and per-bar
    funding, configured cost rate and fill price) over the loaded bars up to ``--train-until`` only,
    so later bars cannot change the bytes; the training bars are :func:`train_bars`. Each seed is
    ``rl.fit_actor`` (what ``rl_exposure`` runs); its held target at the last bar is the end of its
    greedy path walked from the first bar, as the research walks it.
    """
    from config import DEFAULT_FUNDING_RATE_HOURLY, FillPrice
    from training.baselines import baseline_exposure
    from training.ledger import CostModel
    from training.research import rl
    from training.research.candidates import build_context, open_gaps
    from training.research.funding import bar_funding
    from training.research.protocol import funding_known
    from training.split import Window

    p = dict(config.params)
    one, many = {"horizon", "seed"}, {"horizon", "seeds"}
    if set(p) - {"steps"} not in (one, many):
        raise ExportError(f"{config.key}: rl takes horizon and seed or seeds (and steps), got {sorted(p)}")
    if data is None:
        raise ExportError(f"{config.key}: rl is fitted: it needs the research data")
    opens, last, sig_t = _up_to_train_until(data, strategies)
    bars = train_bars(sig_t)
    if bars.size < MIN_TRAIN_BARS or last + 1 < RL_ROWS:
        raise ExportError(
            f"{config.key}: {bars.size} training bars, {last + 1} bars up to --train-until; at least "
            f"{MIN_TRAIN_BARS} training bars and {RL_ROWS} bars needed"
        )
    candles = data.candles.loc[sig_t.index]
    costs = CostModel.configured()
    per_bar = bar_funding(sig_t.index, data.events, DEFAULT_FUNDING_RATE_HOURLY).per_bar
    # the vote at every bar up to the last (the research's series ends in a 0 at its own last bar,
    # which here is not the last bar of the data the research runs on)
    majority = baseline_exposure("majority_vote", sig_t, Window(0, len(sig_t) + 1), max_exposure=1.0)
    ctx = build_context(
        candles, sig_t, majority, funding_known(sig_t.index, data.events), per_bar, costs.cost_rate
    )
    gap = open_gaps(candles) if costs.fill_price == FillPrice.NEXT_OPEN else None
    inp = rl.fit_inputs(ctx, per_bar, gap, costs.cost_rate)
    horizon, steps = float(p["horizon"]), int(p.get("steps", rl.DEFAULT_STEPS))
    seeds = list(range(int(p["seeds"]))) if "seeds" in p else [int(p["seed"])]
    mu, sd, keep = rl.standardization(inp.x, bars)
    z = zscores(inp.x, keep, mu, sd)
    actors, held = [], []
    for seed in seeds:
        layers = rl.fit_actor(inp, bars, horizon=horizon, seed=seed, steps=steps)
        actors.append(layers)
        held.append(int(np.flatnonzero(rl.greedy_path(layers, z)[-1] == rl.TARGETS)[0]))
    fund = ctx.features[:, ctx.feature_names.index("funding_last")]
    _, cum = rl_rows(ctx.close, ctx.ret, ctx.targets, ctx.majority, fund)
    w = RL_ROWS - 1  # the state after the last bar: cumulative P&L at last - 719, votes of the last 720
    state = RlState(cum[last - w + 1], ctx.targets[last - w + 1 :], tuple(held))
    params = rl_params(
        horizon=horizon, steps=steps, seeds=seeds, names=inp.names, keep=keep, mu=mu, sd=sd,
        actors=actors, state=state,
    )  # fmt: skip
    train = {
        "first_bar": opens[bars[0]].isoformat(),
        "last_bar": opens[last].isoformat(),
        "bars": int(bars.size),
        "funding": data.events.source if data.events is not None else "none",
        "fill_price": costs.fill_price.value,
    }
    return RL_KIND, params, {**provenance, "cost_rate": costs.cost_rate, "train": train}


def _head(sig: SignalArrays, n: int) -> SignalArrays:
    """The first ``n`` bars of the signals (an online learner reads nothing after its last bar)."""
    from dataclasses import replace

    cols = {f: getattr(sig, f)[:n] for f in ("target", "event", "confidence", "age", "present")}
    return replace(sig, index=sig.index[:n], **cols)


def _imitation_params(
    train_rows: np.ndarray, names: tuple[str, ...], legs: tuple[Linear | float, Linear | float]
) -> dict[str, Any]:
    """The two legs as artefact params: shared row statistics, each leg fitted (beta) or constant."""
    mu = train_rows.mean(axis=0)
    sd = train_rows.std(axis=0)
    out: dict[str, Any] = {"features": list(names), "mu": mu, "sd": np.where(sd > 0, sd, 1.0)}
    for side, leg in zip(("long", "short"), legs, strict=True):
        if isinstance(leg, Linear):
            out[f"beta_{side}"], out[f"const_{side}"] = leg.beta, -1.0
        else:  # all training labels equal: that probability, whatever the row
            out[f"beta_{side}"], out[f"const_{side}"] = np.zeros(len(names) + 1), float(leg)
    return out


def register(engine: Engine, model_id: str, artifact: bytes, config: Config) -> bool:
    """Insert the artefact as an unselected ``models`` row; False if the same artefact is there.

    A row with this id and another artefact is refused (an id names one artefact forever).
    """
    from common.db.ml import ModelConflict, add_model
    from common.db.session import session_scope
    from common.observation import FeatureSpec

    comb = load_combiner(_Row(model_id, artifact))  # what the meta consumer will check
    # the row's params describe the model; rl's actor weights (hundreds of KB) stay in the artefact
    described = {k: v for k, v in comb.params.items() if k != "actors"}
    try:
        with session_scope(engine) as s:
            return add_model(
                s,
                model_id=model_id,
                algo=f"combiner:{comb.kind}",
                artifact=artifact,
                feature_spec=json.loads(FeatureSpec(strategies=comb.strategies).to_json()),
                strategy_set=list(comb.strategies),
                params={"config": config.key, "fingerprint": comb.fingerprint, **described},
            )
    except ModelConflict as exc:
        raise ExportError(f"{exc}; choose another --model-id") from None


def export(
    key: str,
    strategies: Sequence[str],
    *,
    model_id: str | None = None,
    engine: Engine | None = None,
    provenance: Mapping[str, Any] | None = None,
    data: FitData | None = None,
) -> Exported:
    """Artefact for ``key`` over ``strategies``; registered (unselected) when ``engine`` is given.

    ``data``: the research inputs, needed by the fitted families (not volmanaged) only.
    """
    config = parse_key(key)
    art = combiner_artifact(config, strategies, provenance or {}, data)
    fp = json.loads(art)["fingerprint"]
    mid = model_id or f"combiner-{config.family}-{fp[:12]}"
    registered = register(engine, mid, art, config) if engine is not None else False
    return Exported(mid, art, _sha(art), fp, registered)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class _Row:
    model_id: str
    artifact: bytes
    artifact_sha256: str = ""
    feature_spec: dict[str, Any] = field(default_factory=dict)
