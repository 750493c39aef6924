"""Test data for the bridge and GUI tests: real BTC candles plus the rows a run would write.

Used by the bridge's integration tests and the desktop client's screenshot test (not by the
product: the main job's demo runs the real pipeline). Candles are the bundled real Bitstamp
history; the trading rows come from a plain moving-average crossover replayed on those candles
(so fills sit at real prices), clearly labelled as demo data. It writes under the given
namespace and never selects a model outside the ``models`` rows it creates itself.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pandas as pd
from sqlalchemy import Engine, delete, insert
from sqlalchemy.dialects.postgresql import insert as pg_insert

from common.dataset import load_bundled_candles
from common.db.models import (
    Candle,
    Decision,
    Evaluation,
    Fill,
    Intent,
    Model,
    Order,
    PnlDaily,
    Position,
    Recommendation,
    RiskState,
    ServiceHeartbeat,
    TrainingRun,
)
from common.db.session import session_scope
from common.ids import make_intent_id, make_tick_id

SYMBOL = "BTC/USD:USD"
STRATEGIES = ("volatility_system", "supertrend", "fsupertrend", "ott", "bband_rsi")
#: Strategy -> (fast, slow) SMA lengths in hours, so the five disagree now and then.
_LENGTHS = {
    "volatility_system": (12, 48),
    "supertrend": (24, 72),
    "fsupertrend": (8, 36),
    "ott": (16, 64),
    "bband_rsi": (6, 24),
}
TRADE_SIZE_BTC = 0.5
FEE_RATE = 0.0005


@dataclass(frozen=True)
class DemoSummary:
    candles: int
    fills: int
    decisions: int
    first_candle: datetime
    last_candle: datetime
    selected_model_id: str


def _candles(weeks: int) -> pd.DataFrame:
    frame = load_bundled_candles()
    end = frame.index[-1]
    return frame[frame.index > end - pd.Timedelta(weeks=weeks)]


def seed_demo(
    engine: Engine,
    namespace: str = "demo",
    *,
    weeks: int = 4,
    model_prefix: str = "demo",
    like_replay: bool = False,
) -> DemoSummary:
    """Insert the demo rows (candles idempotently; namespaced rows replaced).

    Ticks, fills and daily P&L always sit in the candles' (2022) data time. ``like_replay`` makes
    the rest look like what ``make demo`` leaves behind, which is what the desktop client must
    cope with: decisions, recommendations and intents stamped with the wall clock they were
    written at (so only tick ids and bar times tell the run's clock), and heartbeats named
    ``<namespace><service>`` next to those of another, older run.
    """
    wall = datetime.now(UTC)

    def written(data_time: datetime) -> datetime:
        return wall if like_replay else data_time

    frame = _candles(weeks)
    close = frame["close"]
    candle_rows = [
        {
            "symbol": SYMBOL,
            "timeframe": "1h",
            "open_time": ts.to_pydatetime(),
            "open": r.open,
            "high": r.high,
            "low": r.low,
            "close": r.close,
            "volume": r.volume,
            "source": "bitstamp-bundled",
        }
        for ts, r in frame.iterrows()
    ]
    signals = {
        name: (close.rolling(fast).mean() > close.rolling(slow).mean()).astype(int) * 2 - 1
        for name, (fast, slow) in _LENGTHS.items()
    }
    vote = sum(signals.values())
    trade_from = frame.index[-1] - pd.Timedelta(weeks=3)
    with session_scope(engine) as s:
        s.execute(pg_insert(Candle).values(candle_rows).on_conflict_do_nothing())
        for table in (Fill, Order, Intent, Decision, Recommendation, PnlDaily, Position, RiskState):
            s.execute(delete(table).where(table.namespace == namespace))
        selected = _seed_models(s, model_prefix)
        recs, decisions, intents, orders, fills = [], [], [], [], []
        position, entry, realized, fees = 0.0, None, 0.0, 0.0
        daily: dict[date, dict[str, float]] = {}
        for ts in frame.index[72:]:
            t = ts.to_pydatetime() + timedelta(hours=1)  # the tick when this bar closed
            tick_id = make_tick_id(SYMBOL, t)
            price = float(close[ts])
            if t >= frame.index[-1].to_pydatetime() - timedelta(hours=47):
                for name in STRATEGIES:
                    sig, prev = int(signals[name][ts]), int(signals[name].shift(1)[ts])
                    event = "NONE" if sig == prev else ("ENTER_LONG" if sig > 0 else "ENTER_SHORT")
                    recs.append(
                        {
                            "namespace": namespace,
                            "tick_id": tick_id,
                            "strategy": name,
                            "strategy_version": "1.0.0",
                            "symbol": SYMBOL,
                            "timeframe": "1h",
                            "bar_close_time": t,
                            "target": "LONG" if sig > 0 else "SHORT",
                            "event": event,
                            "confidence": 0.55 + 0.08 * abs(int(vote[ts])),
                            "horizon_bars": 12,
                            "indicators": {"sma_fast": float(close.rolling(_LENGTHS[name][0]).mean()[ts])},
                            "received_at": written(t + timedelta(seconds=1)),
                        }
                    )
            if ts < trade_from:
                continue
            target = TRADE_SIZE_BTC if vote[ts] >= 3 else -TRADE_SIZE_BTC if vote[ts] <= -3 else position
            action = "HOLD" if target == position else ("REVERSE" if position else "INCREASE")
            degraded = t.hour % 11 == 0
            decisions.append(
                {
                    "namespace": namespace,
                    "tick_id": tick_id,
                    "model_id": selected,
                    "observation": {
                        "votes": {n: int(signals[n][ts]) for n in STRATEGIES},
                        "position": position,
                        "close": price,
                    },
                    "action": action,
                    "current_exposure": position / TRADE_SIZE_BTC,
                    "target_exposure": target / TRADE_SIZE_BTC,
                    "degraded": degraded,
                    "late_strategies": ["ott"] if degraded else [],
                    "decided_at": written(t + timedelta(seconds=2)),
                }
            )
            day = t.date()
            if target != position:
                intent_id = make_intent_id(tick_id, selected)
                qty = abs(target - position)
                side = "buy" if target > position else "sell"
                fee = qty * price * FEE_RATE
                intents.append(
                    {
                        "namespace": namespace,
                        "intent_id": intent_id,
                        "tick_id": tick_id,
                        "model_id": selected,
                        "action": action,
                        "target_exposure": target / TRADE_SIZE_BTC,
                        "status": "FILLED",
                        "reason": None,
                        "received_at": written(t + timedelta(seconds=2)),
                        "handled_at": written(t + timedelta(seconds=3)),
                    }
                )
                coid = f"{intent_id}#0"
                orders.append(
                    {
                        "namespace": namespace,
                        "client_order_id": coid,
                        "intent_id": intent_id,
                        "exchange": "paper",
                        "exchange_order_id": hashlib.sha256(coid.encode()).hexdigest()[:12],
                        "symbol": SYMBOL,
                        "side": side,
                        "quantity": qty,
                        "price": price,
                        "status": "closed",
                        "created_at": t + timedelta(seconds=3),
                    }
                )
                fills.append(
                    {
                        "namespace": namespace,
                        "fill_id": f"{coid}/1",
                        "client_order_id": coid,
                        "quantity": qty,
                        "price": price,
                        "fee": fee,
                        "liquidity": "taker",
                        "filled_at": t + timedelta(seconds=3),
                    }
                )
                if position and entry is not None:
                    realized += position * (price - entry)
                position, entry, fees = target, price, fees + fee
                daily.setdefault(day, {"fees": 0.0})["fees"] += fee
            unrealized = position * (price - entry) if entry is not None else 0.0
            daily.setdefault(day, {"fees": 0.0}).update(realized=realized, unrealized=unrealized)
        for rows, table in (
            (recs, Recommendation),
            (decisions, Decision),
            (intents, Intent),
            (orders, Order),
            (fills, Fill),
        ):
            if rows:
                s.execute(insert(table), rows)
        s.add(
            Position(
                namespace=namespace,
                symbol=SYMBOL,
                quantity=position,
                avg_entry_price=entry,
                realized_pnl=realized,
            )
        )
        equity0 = 50_000.0
        for day, v in sorted(daily.items()):
            s.add(
                PnlDaily(
                    namespace=namespace,
                    day=day,
                    realized=v["realized"],
                    unrealized=v["unrealized"],
                    fees=v["fees"],
                    funding=0.0,
                    equity=equity0 + v["realized"] + v["unrealized"],
                )
            )
        s.add(RiskState(namespace=namespace, kill_switch=False, trading_paused=False, updated_by="demo"))
        if like_replay:
            _seed_heartbeats(s, namespace)
            _seed_heartbeats(s, "demo.r20220101t000000.")  # an older run's services
        else:
            _seed_heartbeats(s)
    return DemoSummary(
        len(candle_rows),
        len(fills),
        len(decisions),
        frame.index[0].to_pydatetime(),
        frame.index[-1].to_pydatetime(),
        selected,
    )


def _seed_models(s: object, prefix: str) -> str:
    """Four trained policies with test-window metrics; the second best is the selected one."""
    from sqlalchemy.orm import Session

    assert isinstance(s, Session)
    run_id = f"{prefix}-run-1"
    s.merge(
        TrainingRun(
            run_id=run_id,
            status="finished",
            config={"demo": True},
            host="ci",
            seed=7,
            finished_at=datetime(2022, 7, 1, tzinfo=UTC),
        )
    )
    s.execute(delete(Evaluation).where(Evaluation.run_id == run_id))
    specs = [
        ("ppo", 1.42, 0.31, -0.12, 0.56),
        ("sac", 1.05, 0.22, -0.15, 0.53),
        ("a2c", 0.61, 0.09, -0.21, 0.50),
        ("dqn", -0.20, -0.04, -0.28, 0.47),
    ]
    selected = f"{prefix}-sac-v3"
    for algo, sharpe, ret, dd, win in specs:
        model_id = f"{prefix}-{algo}-v3"
        artifact = f"{model_id} weights".encode()
        existing = s.get(Model, model_id)
        if existing is None:
            s.add(
                Model(
                    model_id=model_id,
                    algo=algo,
                    feature_spec={"strategies": list(STRATEGIES)},
                    strategy_set=list(STRATEGIES),
                    params={"gamma": 0.99},
                    artifact=artifact,
                    artifact_sha256=hashlib.sha256(artifact).hexdigest(),
                    selected=False,
                )
            )
        for window, scale in (("validation", 1.1), ("test", 1.0)):
            s.add(
                Evaluation(
                    run_id=run_id,
                    model_id=model_id,
                    name=algo,
                    window=window,
                    metrics={
                        "sharpe": sharpe * scale,
                        "total_return": ret * scale,
                        "max_drawdown": dd,
                        "win_rate": win,
                        "trades": 40,
                    },
                )
            )
    s.add(
        Evaluation(
            run_id=run_id,
            model_id=None,
            name="buy_and_hold",
            window="test",
            metrics={"sharpe": 0.35, "total_return": 0.05, "max_drawdown": -0.33},
        )
    )
    s.flush()
    from sqlalchemy import select, update

    if s.scalar(select(Model.model_id).where(Model.selected.is_(True))) is None:
        s.execute(
            update(Model)
            .where(Model.model_id == selected)
            .values(selected=True, selected_at=datetime(2022, 7, 2, tzinfo=UTC), selected_by="demo")
        )
    return s.scalar(select(Model.model_id).where(Model.selected.is_(True))) or selected


def _seed_heartbeats(s: object, prefix: str = "") -> None:
    from sqlalchemy import func
    from sqlalchemy.orm import Session

    assert isinstance(s, Session)
    beats = [("tick_emitter", "pod-0", 0.4), ("meta_consumer", "pod-0", 1.2), ("executor", "pod-0", 0.1)]
    beats += [(f"strategy:{n}", "pod-0", 0.8) for n in STRATEGIES]
    for service, instance, lag in beats:
        stmt = pg_insert(ServiceHeartbeat).values(
            service=prefix + service, instance=instance, lag=lag, info={"version": "0.1.0"}
        )
        s.execute(
            stmt.on_conflict_do_update(
                index_elements=["service", "instance"], set_={"last_seen": func.now(), "lag": lag}
            )
        )
