"""One valid, realistic sample of every message type, for tests across the project.

Kept in ``common`` (not under ``tests``) so service test suites and benchmarks import the same
builders; no test-only dependencies here. Every builder takes keyword overrides, applied with
``dataclasses.replace`` so the result is validated like any other event.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast

from common.events import (
    BarClosed,
    DeadLetter,
    DueStrategy,
    Event,
    ExecutionReport,
    ExecutionStatus,
    IntentAction,
    Order,
    OrderIntent,
    OrderSide,
    Recommendation,
    SignalEvent,
    Target,
    TickPlan,
)
from common.ids import make_intent_id, make_tick_id

SYMBOL = "BTC/USD:USD"
#: Last bar of the shared Bitstamp dataset; any fixed minute-aligned time would do.
TICK_TIME = datetime(2022, 8, 20, 0, 0, tzinfo=UTC)
TICK_ID = make_tick_id(SYMBOL, TICK_TIME)
MODEL_ID = "ppo-2022-08-v1"
INTENT_ID = make_intent_id(TICK_ID, MODEL_ID)
STRATEGY_NAMES = ("volatility_system", "supertrend", "fsupertrend", "ott", "bband_rsi")

_E = TypeVar("_E", bound=Event)


def _with(event: _E, overrides: dict[str, Any]) -> _E:
    return cast(_E, replace(cast(Any, event), **overrides)) if overrides else event


def sample_tick_plan(**overrides: Any) -> TickPlan:
    """A live tick at which all five 1h strategies are due."""
    plan = TickPlan.create(
        symbol=SYMBOL,
        tick_time=TICK_TIME,
        due_strategies=[DueStrategy(name, "1.0.0", "1h") for name in STRATEGY_NAMES],
        deadline=TICK_TIME + timedelta(seconds=45),
        published_at=TICK_TIME + timedelta(milliseconds=180),
    )
    return _with(plan, overrides)


def sample_bar_closed(bars: int = 48, **overrides: Any) -> BarClosed:
    """A deterministic 1h window of ``bars`` bars ending with the bar that opened an hour before the tick."""
    last_open = TICK_TIME - timedelta(hours=1)
    times = [last_open - timedelta(hours=bars - 1 - i) for i in range(bars)]
    closes = [21_000.0 + 400.0 * math.sin(i / 5.0) + 3.0 * i for i in range(bars)]
    opens = [closes[i - 1] if i else closes[0] - 10.0 for i in range(bars)]
    highs = [max(o, c) + 25.0 for o, c in zip(opens, closes, strict=True)]
    lows = [min(o, c) - 25.0 for o, c in zip(opens, closes, strict=True)]
    volumes = [120.0 + (i % 7) * 13.5 for i in range(bars)]
    bar = BarClosed(
        tick_id=TICK_ID,
        symbol=SYMBOL,
        timeframe="1h",
        bar_open_time=last_open,
        open_time=tuple(times),
        open=tuple(opens),
        high=tuple(highs),
        low=tuple(lows),
        close=tuple(closes),
        volume=tuple(volumes),
    )
    return _with(bar, overrides)


def sample_recommendation(**overrides: Any) -> Recommendation:
    """Supertrend entering long on the last closed bar."""
    rec = Recommendation(
        tick_id=TICK_ID,
        strategy="supertrend",
        strategy_version="1.0.0",
        symbol=SYMBOL,
        timeframe="1h",
        bar_close_time=TICK_TIME,
        target=Target.LONG,
        event=SignalEvent.ENTER_LONG,
        confidence=0.7,
        horizon_bars=12,
        indicators={"supertrend": 20_950.5, "atr": 180.25},
        produced_at=TICK_TIME + timedelta(milliseconds=950),
    )
    return _with(rec, overrides)


def sample_order_intent(**overrides: Any) -> OrderIntent:
    """The policy increasing a half-long position."""
    intent = OrderIntent.create(
        tick_id=TICK_ID,
        model_id=MODEL_ID,
        symbol=SYMBOL,
        action=IntentAction.INCREASE,
        current_exposure=0.5,
        target_exposure=0.75,
        created_at=TICK_TIME + timedelta(seconds=2),
        degraded=False,
        reason="4/5 strategies long",
    )
    return _with(intent, overrides)


def sample_execution_report(**overrides: Any) -> ExecutionReport:
    """A paper fill of the sample intent."""
    report = ExecutionReport(
        intent_id=INTENT_ID,
        tick_id=TICK_ID,
        status=ExecutionStatus.FILLED,
        reason="",
        orders=(
            Order(
                client_order_id=f"{INTENT_ID}#0",
                side=OrderSide.BUY,
                quantity=0.012,
                price=21_310.5,
                fee=0.1278,
                filled_at=TICK_TIME + timedelta(seconds=3),
            ),
        ),
        position_after=0.036,
        exchange="paper",
        reported_at=TICK_TIME + timedelta(seconds=3, milliseconds=20),
    )
    return _with(report, overrides)


def sample_dead_letter(**overrides: Any) -> DeadLetter:
    """A bar message a strategy consumer could not decode."""
    letter = DeadLetter(
        original_topic="market.bars.1h",
        partition=0,
        offset=4242,
        key=TICK_ID.encode(),
        value=b"\xc3\x01not-really-avro",
        headers={"traceparent": b"00-abc-def-01"},
        reason="unknown schema fingerprint 6e6f742d7265616c",
        error_type="SerdeError",
        service="strategy-supertrend",
        failed_at=TICK_TIME + timedelta(seconds=1),
    )
    return _with(letter, overrides)


def all_samples() -> list[Event]:
    """One sample of each top-level message type, in pipeline order."""
    return [
        sample_tick_plan(),
        sample_bar_closed(),
        sample_recommendation(),
        sample_order_intent(),
        sample_execution_report(),
        sample_dead_letter(),
    ]
