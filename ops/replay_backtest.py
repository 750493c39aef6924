"""``python -m ops replay-backtest``: a backtest through the real Kafka pipeline, checked
against the vectorized backtest of the same model on the same window.

1. The tick emitter replays the window into a fresh namespace (``bt.<run>.``); the strategy
   consumers, the meta consumer (a pinned model, ``BTCMETA_META__MODEL_ID``: an MLP policy or a
   combiner artefact, ADR 0020; or the majority-vote fallback) and the executor (paper venue,
   replayed clock) run as separate processes (``ops.pipeline``). It waits for the last tick's execution.
2. The decisions, fills, funding and equity curve are read back from the namespace's rows.
3. The vectorized side (``ops.replay_compare``) recomputes decisions with the training
   engine (a combiner: the research candidate's exposure path, with the consumer's cold-start
   rule) and the fills/PnL with an independent simulation in the executor's units, and compares.

Outputs in ``--out``: decisions.csv, fills.csv, funding.csv, equity.csv (pipeline), the same
with a ``vectorized_`` prefix, comparison.json and comparison.md.

Risk limits: the vectorized side models position sizing and order splitting, not the daily loss
cap (a circuit breaker on realized history, not part of a policy's backtest), so by default the
run lifts the cap (``--live-risk-limits`` keeps the configured one; a tick it changes is then
reported as the first difference).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import typer
from sqlalchemy import Engine, func, select

from common.combiner import Combiner, CombinerError, is_combiner_artifact, load_combiner
from common.db.ml import add_model
from common.db.models import Decision, Fill, FundingPayment, Model, Order, PnlDaily, Position
from common.db.session import make_engine, session_scope
from common.exogenous.store import read_series
from common.ids import parse_tick_id
from common.observation import FeatureSpec
from common.order_ids import client_order_id
from common.pnl import unrealized_pnl_scalar
from common.policy import Policy, load_policy
from common.registry import Registry, load_registry
from config import Settings
from meta_consumer.decide import BAR_CLOSES
from ops.replay_compare import (
    Comparison,
    ExecutionModel,
    Prices,
    closes_seen,
    combiner_fractions,
    compare,
    decision_bars,
    equity_curve,
    hourly_funding_charge,
    simulate_execution,
    vectorized_decisions,
)
from producers.store import load_arrays
from training.market import Market
from training.signals import compute_signals, exogenous_needed, restarted_at

NO_LOSS_CAP = "1e15"
FALLBACK_ID = "fallback:majority_vote"
_FAR = datetime(2200, 1, 1, tzinfo=UTC)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Vectorized:
    decisions: pd.DataFrame
    observations: np.ndarray
    spec: FeatureSpec
    sim: dict[str, pd.DataFrame]
    prices: Prices
    #: Ticks a combiner decided flat for want of closes (ADR 0020 cold start); 0 otherwise.
    cold_start_ticks: int = 0


def execution_model(settings: Settings) -> ExecutionModel:
    return ExecutionModel(
        max_position_btc=settings.risk.max_position_btc,
        max_order_btc=settings.risk.max_order_btc,
        taker_fee=settings.exchange.taker_fee,
        slippage_bps=settings.exchange.slippage_bps,
        funding_rate_hourly=settings.executor.funding_rate_hourly,
        max_exposure=settings.max_exposure,
    )


def stored_candles(engine: Engine, symbol: str) -> pd.DataFrame:
    """Every stored 1h candle: what the tick emitter replays and the paper venue prices from."""
    times, values = load_arrays(engine, symbol, "1h", _EPOCH, _FAR)
    index = pd.DatetimeIndex(pd.to_datetime(times, unit="ms", utc=True), name="date")
    return pd.DataFrame(values, index=index, columns=["open", "high", "low", "close", "volume"])


def enabled_registry(settings: Settings) -> Registry:
    return load_registry(settings.registry_path, max_lookback_hours=settings.max_lookback_hours)


def load_model_policy(engine: Engine, model_id: str, settings: Settings) -> Policy | Combiner:
    """The pinned model as the meta consumer will load it: an MLP policy or a combiner artefact.

    A combiner is checked as ``meta_consumer.models`` checks it (fingerprint, sha256, grid, the
    closes it needs against the :data:`BAR_CLOSES` it can hold, its strategies against the
    registry's enabled ones); a refusal there would make the pipeline decide with the fallback,
    so it is refused here, before anything starts, with the same reason.
    """
    with session_scope(engine) as s:
        row = s.get(Model, model_id)
        if row is None:
            raise typer.BadParameter(f"no model {model_id!r} in the models table", param_hint="--model")
        if not is_combiner_artifact(row.artifact):
            return load_policy(row, step=settings.exposure_step, max_exposure=settings.max_exposure)
        try:
            comb = load_combiner(
                row, step=settings.exposure_step, max_exposure=settings.max_exposure, max_closes=BAR_CLOSES
            )
        except CombinerError as exc:
            raise typer.BadParameter(f"combiner refused: {exc}", param_hint="--model") from None
    live = {spec.name for spec in enabled_registry(settings).enabled}
    if set(comb.strategies) != live:
        raise typer.BadParameter(
            f"combiner {model_id!r} votes over {sorted(comb.strategies)}, the registry enables "
            f"{sorted(live)}: the meta consumer would refuse it (export it for the registry's set, "
            "or point BTCMETA_REGISTRY_PATH at a registry of its strategies)",
            param_hint="--model",
        )
    return comb


def stored_funding_known(engine: Engine, index: pd.DatetimeIndex) -> np.ndarray:
    """The funding rate last published by each bar's close, from the stored exogenous rows.

    What a linear combiner reads live (``meta_consumer.store.funding_last``, the same table), put
    through the research's own splice and point-in-time rule (``funding.from_frames``,
    ``protocol.funding_known``): NaN where nothing was published yet (read as 0 by both sides).
    """
    from training.research.funding import SERIES, from_frames
    from training.research.protocol import funding_known

    frames = {name: read_series(engine, name) for name in SERIES}
    bitmex, binance = frames["funding_bitmex_8h"], frames["funding_binance_8h"]
    if not len(bitmex) and not len(binance):
        return funding_known(index, None)
    events = from_frames(binance) if not len(bitmex) else from_frames(bitmex, binance)
    return funding_known(index, events)


def stored_funding_charge(engine: Engine, index: pd.DatetimeIndex) -> np.ndarray:
    """The funding charged over the hour closing at each bar's close, from the stored rows (dsr).

    What ``meta_consumer.store.funding_charge`` reads live (the same table), through the research's
    splice and per-bar rule (``funding.from_frames``, ``funding.bar_funding`` on the hourly grid).
    """
    from config import DEFAULT_FUNDING_RATE_HOURLY
    from training.research.funding import SERIES, from_frames

    frames = {name: read_series(engine, name) for name in SERIES}
    bitmex, binance = frames["funding_bitmex_8h"], frames["funding_binance_8h"]
    events = None
    if len(bitmex) or len(binance):
        events = from_frames(binance) if not len(bitmex) else from_frames(bitmex, binance)
    return hourly_funding_charge(index, events, DEFAULT_FUNDING_RATE_HOURLY)


def decision_window_bars(registry: Registry, timeframe: str) -> int:
    """Bars of the decision timeframe's BarClosed: the longest window of its strategies (0: none)."""
    return max((s.bars for s in registry.enabled if s.timeframe == timeframe), default=0)


def vectorized(
    settings: Settings, engine: Engine, start: datetime, end: datetime, policy: Policy | Combiner | None
) -> Vectorized:
    """The training engine's decisions and the simulated execution of the ticks in ``[start, end]``."""
    candles = stored_candles(engine, settings.symbol)
    if candles.empty:
        raise RuntimeError(
            f"no {settings.symbol} candles stored in the database: import them first "
            "(python -m producers import-csv, or pass --csv)"
        )
    history = candles[candles.index < pd.Timestamp(end)]  # bars closing at or before the last tick
    registry = enabled_registry(settings)
    # The exogenous series as the emitter read them (the stored rows; each strategy cuts them by
    # publication time), and the answers as a meta consumer starting at ``start`` holds them.
    exogenous = {name: read_series(engine, name) for name in exogenous_needed(registry)}
    signals = compute_signals(history, registry, exogenous)
    first = int(pd.DatetimeIndex(history.index).searchsorted(pd.Timestamp(start) - pd.Timedelta(hours=1)))
    signals = restarted_at(signals, first)
    combiner = policy if isinstance(policy, Combiner) else None
    if combiner is not None:  # the live decision's observation: the default spec of its strategies
        spec = FeatureSpec(strategies=combiner.strategies)
        market = Market.build(history, signals.restricted(combiner.strategies), spec)
    else:
        spec = policy.spec if isinstance(policy, Policy) else FeatureSpec(strategies=signals.strategies)
        market = Market.build(history, signals, spec)
    bars = decision_bars(market, start, end)
    if len(bars) == 0:
        raise RuntimeError(
            f"no stored {settings.symbol} bar closes in {start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M}: "
            f"stored candles span {candles.index[0]:%Y-%m-%d %H:%M} .. {candles.index[-1]:%Y-%m-%d %H:%M}"
        )
    fractions, cold = None, np.zeros(0, dtype=bool)
    if combiner is not None:
        if settings.meta.decision_timeframe != "1h":
            raise RuntimeError("replay-backtest compares combiners on the 1h decision timeframe only")
        seen = closes_seen(history.index, bars, decision_window_bars(registry, "1h"))
        fund = stored_funding_known(engine, history.index) if combiner.reads_funding else None
        charge = stored_funding_charge(engine, history.index) if combiner.kind == "dsr" else None
        fractions, cold = combiner_fractions(history, signals, combiner, bars, seen, fund, charge)
    decisions, obs = vectorized_decisions(
        market,
        bars,
        policy if isinstance(policy, Policy) else None,
        step=settings.exposure_step,
        max_exposure=settings.max_exposure,
        fractions=fractions,
    )
    prices = Prices(
        candles.index.asi8,
        candles["open"].to_numpy(),
        candles["close"].to_numpy(),
        settings.exchange.fill_price,
    )
    sim = simulate_execution(decisions, prices, execution_model(settings))
    return Vectorized(decisions, obs, spec, sim, prices, int(cold.sum()))


def read_replay(
    engine: Engine, namespace: str, symbol: str, prices: Prices, legs: int
) -> tuple[dict[str, pd.DataFrame], dict[str, float]]:
    """What the pipeline did, from the namespace's rows: decisions, fills, funding, equity, book."""
    with session_scope(engine) as s:
        drows = s.execute(
            select(
                Decision.tick_id,
                Decision.model_id,
                Decision.action,
                Decision.current_exposure,
                Decision.target_exposure,
                Decision.degraded,
                Decision.observation,
            )
            .where(Decision.namespace == namespace)
            .order_by(Decision.id)
        ).all()
        frows = s.execute(
            select(
                Fill.filled_at,
                Order.intent_id,
                Order.client_order_id,
                Order.side,
                Fill.quantity,
                Fill.price,
                Fill.fee,
            )
            .join(
                Order, (Order.namespace == Fill.namespace) & (Order.client_order_id == Fill.client_order_id)
            )
            .where(Fill.namespace == namespace)
        ).all()
        funding = s.execute(
            select(FundingPayment.funding_time, FundingPayment.position_quantity, FundingPayment.amount)
            .where(FundingPayment.namespace == namespace)
            .order_by(FundingPayment.funding_time)
        ).all()
        pos = s.get(Position, (namespace, symbol))
        fees, funded = s.execute(
            select(
                func.coalesce(func.sum(PnlDaily.fees), 0.0), func.coalesce(func.sum(PnlDaily.funding), 0.0)
            ).where(PnlDaily.namespace == namespace)
        ).one()
        book_pos = (
            (pos.quantity, pos.avg_entry_price, pos.realized_pnl) if pos is not None else (0.0, None, 0.0)
        )
    decisions = pd.DataFrame(
        [
            (
                parse_tick_id(r.tick_id)[1],
                r.model_id,
                r.action,
                r.current_exposure,
                r.target_exposure,
                r.degraded,
                (r.observation or {}).get("features"),
            )
            for r in drows
        ],
        columns=[
            "tick_time",
            "model_id",
            "action",
            "current_exposure",
            "target_exposure",
            "degraded",
            "features",
        ],
    )
    decisions["tick_time"] = pd.to_datetime(decisions["tick_time"], utc=True)
    fill_rows = []
    for r in frows:
        leg = next(
            (i for i in range(legs) if client_order_id(namespace, r.intent_id, i) == r.client_order_id), -1
        )
        fill_rows.append((r.filled_at, leg, r.side, r.quantity, r.price, r.fee))
    fills = pd.DataFrame(fill_rows, columns=["tick_time", "leg", "side", "quantity", "price", "fee"])
    fills["tick_time"] = pd.to_datetime(fills["tick_time"], utc=True)
    fills = fills.sort_values(["tick_time", "leg"]).reset_index(drop=True)
    fund = pd.DataFrame(
        [(r.funding_time, r.position_quantity) for r in funding], columns=["funding_time", "position"]
    )
    fund["funding_time"] = pd.to_datetime(fund["funding_time"], utc=True)
    fund["price"] = np.where(
        fund["position"].to_numpy() != 0.0,
        prices.at(pd.DatetimeIndex(fund["funding_time"]).asi8) if len(fund) else np.empty(0),
        0.0,
    )
    fund["amount"] = [r.amount for r in funding]
    ticks = pd.DatetimeIndex(decisions["tick_time"])
    equity = equity_curve(ticks, fills, fund, prices)
    qty, avg, realized = book_pos
    mark = float(prices.at(ticks.asi8[-1:])[0]) if len(ticks) else 0.0
    unrealized = unrealized_pnl_scalar(qty, avg, mark)  # the executor book's own valuation
    book = {
        "position": float(qty),
        "pnl": float(realized + unrealized - fees + funded),
        "fees": float(fees),
        "funding": float(funded),
    }
    return {"decisions": decisions, "fills": fills, "funding": fund, "equity": equity}, book


def write_outputs(
    out: Path, replay: dict[str, pd.DataFrame], vec: Vectorized, cmp: Comparison, meta: dict[str, Any]
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    replay["decisions"].drop(columns=["features"]).to_csv(out / "decisions.csv", index=False)
    replay["fills"].to_csv(out / "fills.csv", index=False)
    replay["funding"].to_csv(out / "funding.csv", index=False)
    replay["equity"].to_csv(out / "equity.csv", index=False)
    vec.decisions.to_csv(out / "vectorized_decisions.csv", index=False)
    vec.sim["fills"].to_csv(out / "vectorized_fills.csv", index=False)
    vec.sim["funding"].to_csv(out / "vectorized_funding.csv", index=False)
    vec.sim["equity"].to_csv(out / "vectorized_equity.csv", index=False)
    (out / "comparison.json").write_text(json.dumps({**meta, **cmp.to_dict()}, indent=2, default=str) + "\n")
    head = "\n".join(f"- {k}: {v}" for k, v in meta.items())
    (out / "comparison.md").write_text(
        cmp.to_markdown("Topic replay vs vectorized backtest") + "\n" + head + "\n"
    )


def compare_run(
    settings: Settings, namespace: str, start: datetime, end: datetime, policy: Policy | Combiner | None
) -> tuple[dict[str, pd.DataFrame], Vectorized, Comparison]:
    engine = make_engine(settings.database_url.get_secret_value())
    vec = vectorized(settings, engine, start, end, policy)
    legs = int(np.ceil(2 * settings.risk.max_position_btc / settings.risk.max_order_btc)) + 4
    replay, book = read_replay(engine, namespace, settings.symbol, vec.prices, legs)
    decided_by = policy.model_id if policy is not None else FALLBACK_ID
    cmp = compare(replay, vec.decisions, vec.observations, vec.spec, vec.sim, book, decided_by)
    return replay, vec, cmp


def insert_model(
    engine: Engine, model_id: str, artifact: bytes, spec: FeatureSpec, algo: str = "mlp"
) -> None:
    """Store a policy artifact in ``models`` without selecting it (a replay pins it by id)."""
    with session_scope(engine) as s:
        add_model(
            s,
            model_id=model_id,
            algo=algo,
            artifact=artifact,
            feature_spec=json.loads(spec.to_json()),
            strategy_set=list(spec.strategies),
        )


def run_replay_backtest(
    start: datetime,
    end: datetime,
    out: Path,
    *,
    model_id: str | None = None,
    csv: Path | None = None,
    live_risk_limits: bool = False,
    timeout_s: float = 3600.0,
    prefix: str | None = None,
    say: Any = print,
) -> Comparison:
    """The whole command: pipeline run, read back, vectorized run, comparison, outputs."""
    from ops.pipeline import PipelineSpec, import_candles, run_pipeline, settings_for

    prefix = prefix or f"bt.{datetime.now(UTC):r%Y%m%dt%H%M%S%f}."
    settings = settings_for(prefix)
    engine = make_engine(settings.database_url.get_secret_value())
    if csv is not None:
        say(f"importing {csv} into the candles table")
        import_candles(csv)
    policy = load_model_policy(engine, model_id, settings) if model_id else None
    env = {"BTCMETA_META__MODEL_ID": model_id or "", "BTCMETA_META__MODEL_POLL_S": "3600"}
    if not live_risk_limits:
        env["BTCMETA_RISK__DAILY_LOSS_CAP_USD"] = NO_LOSS_CAP
    spec = PipelineSpec(
        prefix,
        start,
        end,
        out / "logs",
        kind="backtest",
        env=env,
        timeout_s=timeout_s,
        params={"model": model_id or FALLBACK_ID, "out": str(out)},
    )
    say(
        f"replaying {start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M} UTC into {prefix} "
        f"({model_id or 'majority-vote fallback'})"
    )
    result = run_pipeline(spec, say=say)
    if result.ticks == 0:
        raise RuntimeError(
            f"the pipeline decided no tick in {start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M}: "
            f"see the service logs in {out / 'logs'} (are candles imported, migrations applied?)"
        )
    say(f"pipeline: {result.ticks:,} ticks in {result.seconds:.0f}s ({result.ticks_per_s:.1f} ticks/s)")
    replay, vec, cmp = compare_run(settings, prefix, start, end, policy)
    meta = {
        "namespace": prefix,
        "window": f"{start.isoformat()} .. {end.isoformat()}",
        "model": model_id or FALLBACK_ID,
        "model_kind": (
            f"combiner:{policy.kind} {policy.fingerprint}"
            if isinstance(policy, Combiner)
            else ("mlp" if policy is not None else "fallback")
        ),
        "cold_start_ticks": vec.cold_start_ticks,
        "pipeline_seconds": round(result.seconds, 1),
        "ticks_per_s": round(result.ticks_per_s, 2),
        "stage_done_s": result.stage_done_s,
        "cpu_s": {k: round(v, 2) for k, v in result.cpu_s.items()},
        "machine_busy_s": None if result.machine_busy_s is None else round(result.machine_busy_s, 1),
        "daily_loss_cap": "configured" if live_risk_limits else "lifted",
    }
    write_outputs(out, replay, vec, cmp, meta)
    return cmp


def _when(value: str) -> datetime:
    ts = pd.Timestamp(value)
    return (ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")).to_pydatetime()


def replay_backtest_cmd(
    *,
    out: Path,
    start: str | None,
    end: str | None,
    days: int,
    data: Path | None,
    model: str | None,
    fallback: bool,
    live_risk_limits: bool,
    timeout: float,
) -> None:
    """Backtest by topic replay through every service, compared tick by tick with the vectorized one.

    The body of ``python -m ops replay-backtest``: the options (flags, help, defaults, checks) are
    declared once, in ops/cli.py, which parses them and passes every one here by keyword (so that
    registering the command imports none of this module's pandas/SQLAlchemy)."""
    from common.dataset import BUNDLED_CSV, load_bundled_candles, read_ohlcv_csv
    from common.logging import configure_logging

    if (model is None) == (not fallback):
        raise typer.BadParameter("give exactly one of --model ID or --fallback")
    configure_logging("ops.replay-backtest", json=False)
    csv = data or BUNDLED_CSV
    if end is None:
        last = (
            load_bundled_candles().index[-1]
            if data is None
            else read_ohlcv_csv(csv, on_bad_row=lambda _line, _why: None).index.max()  # as imported
        )
        t1 = pd.Timestamp(last).to_pydatetime() + timedelta(hours=1)
    else:
        t1 = _when(end)
    t0 = _when(start) if start else t1 - timedelta(days=days) + timedelta(hours=1)
    cmp = run_replay_backtest(
        t0,
        t1,
        out,
        model_id=model,
        csv=csv,
        live_risk_limits=live_risk_limits,
        timeout_s=timeout,
        say=lambda m: typer.echo(f"[replay-backtest] {m}"),
    )
    typer.echo((out / "comparison.md").read_text())
    if not cmp.identical:
        raise typer.Exit(code=1)
