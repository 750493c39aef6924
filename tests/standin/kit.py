"""Helpers shared by the executor's integration tests: intents, report draining, DB counts.

Tests that count orders per hour, book the day's P&L or age intents run the executor on a
:class:`executor.clock.ManualClock` (``manual_clock()``) and build their intents against it
(``make_intent(..., clock=clock)``): what they see never depends on the hour the wall clock shows
while they run, and a turn of the hour or the day is a step the test takes on purpose.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from confluent_kafka import Consumer
from pydantic import SecretStr
from sqlalchemy import Engine, func, select

from common import serde
from common.db.models import Fill, Intent, Order
from common.events import ExecutionReport, IntentAction, OrderIntent
from common.ids import make_tick_id
from common.kafka.configuration import consumer_config
from common.kafka.producer import EventProducer
from common.kafka.topics import EXECUTIONS, INTENTS
from config import RiskLimits, Settings

if TYPE_CHECKING:
    from executor.clock import Clock, ManualClock

SYMBOL = "BTC/USD:USD"
#: Where ``manual_clock()`` starts: a Monday 10:00 UTC, well clear of an hour's or a day's turn
#: (tests step over those on purpose, with ``advance``/``set``).
MANUAL_START = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
#: Ticks make_intent has handed out without ``base`` (see there).
_ISSUED: set[datetime] = set()


def manual_clock(start: datetime = MANUAL_START) -> ManualClock:
    """A :class:`executor.clock.ManualClock` at ``start`` (imported here: the kit loads no executor
    module at import time)."""
    from executor.clock import ManualClock

    return ManualClock(start)


def make_intent(
    n: int,
    target: float,
    *,
    created_at: datetime | None = None,
    model: str = "m1",
    symbol: str = SYMBOL,
    base: datetime | None = None,
    clock: Clock | None = None,
) -> OrderIntent:
    """Intent ``n``, created now: for the tick ``base + n`` minutes, or without ``base`` for a tick
    that just happened on ``clock`` (``now - 1 s + n`` ms; the wall clock when none is given).

    The executor judges an intent's age by its TICK (not ``created_at``), so tests need ticks that
    just closed on the executor's clock: in the past (for n < 1000) and seconds old. Ticks built
    without ``base`` are unique in this process (a rare clash is moved on by a millisecond), so
    two intents never share an id by accident. ``created_at`` defaults to ``clock``'s now too.
    """
    now = clock.now() if clock is not None else datetime.now(UTC)
    if base is not None:
        tick = base + timedelta(minutes=n)
    else:
        tick = now.replace(microsecond=now.microsecond // 1000 * 1000) + timedelta(milliseconds=n - 1000)
        while tick in _ISSUED:
            tick += timedelta(milliseconds=1)
        _ISSUED.add(tick)
    return OrderIntent.create(
        tick_id=make_tick_id(symbol, tick),
        model_id=model,
        symbol=symbol,
        action=IntentAction.INCREASE,
        current_exposure=0.0,
        target_exposure=target,
        created_at=created_at or now,
    )


def publish(settings: Settings, intents: list[OrderIntent]) -> None:
    producer = EventProducer(settings, "test")
    for intent in intents:
        producer.send(settings.topic(INTENTS), intent, key=intent.intent_id)
    producer.flush()


def drain_reports(settings: Settings, count: int, timeout: float = 30.0) -> list[ExecutionReport]:
    """Read at least ``count`` reports from the beginning of the executions topic."""
    conf: dict[str, Any] = consumer_config(settings, f"reader-{uuid.uuid4().hex[:8]}", from_beginning=True)
    consumer = Consumer(conf)
    consumer.subscribe([settings.topic(EXECUTIONS)])
    out: list[ExecutionReport] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=500, timeout=0.5):
                if msg.error() is None:
                    out.append(serde.decode(msg.value() or b"", ExecutionReport))
            if len(out) >= count:
                # a short grace period catches extra (duplicate) reports
                for msg in consumer.consume(num_messages=500, timeout=0.5):
                    if msg.error() is None:
                        out.append(serde.decode(msg.value() or b"", ExecutionReport))
                break
    finally:
        consumer.close()
    return out


def count_rows(engine: Engine, model: Any, namespace: str) -> int:
    with engine.connect() as conn:
        return int(
            conn.scalar(select(func.count()).select_from(model).where(model.namespace == namespace)) or 0
        )


def fills_position(engine: Engine, namespace: str) -> float:
    """Signed sum of the fills booked in ``namespace`` (independent of the positions table)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(Fill.quantity, Order.side)
            .join(
                Order, (Order.namespace == Fill.namespace) & (Order.client_order_id == Fill.client_order_id)
            )
            .where(Fill.namespace == namespace)
        ).all()
    return round(sum(q if side == "buy" else -q for q, side in rows), 8)


def intent_statuses(engine: Engine, namespace: str) -> dict[str, str]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(Intent.intent_id, Intent.status).where(Intent.namespace == namespace)
        ).all()
    return dict(rows)  # type: ignore[arg-type]


def paper_executor(
    settings: Settings, limits: RiskLimits, prices: Any = None, clock: Clock | None = None
) -> Any:
    """An executor on the paper venue in the test's own namespace (its topic prefix); ``prices``
    is the venue's price feed, by default a fixed 20,000 USD; ``clock`` the executor's clock, by
    default the wall clock (tests that count hours or days pass a ``manual_clock()``)."""
    from common.db.session import make_engine
    from executor.clock import FixedPriceFeed, SystemClock
    from executor.exchanges.paper import PaperExchange
    from executor.service import Executor

    s = settings.model_copy(update={"risk": limits})
    engine = make_engine(s.database_url.get_secret_value())
    ns = s.kafka.topic_prefix
    venue = PaperExchange(
        engine, ns, prices or FixedPriceFeed(20_000.0), symbol=SYMBOL, taker_fee_rate=0.0005, slippage_bps=1.0
    )
    return Executor(s, engine, venue, clock or SystemClock(), ns)


def kraken_settings(
    settings: Settings, base_url: str, api_key: str, api_secret: str, limits: RiskLimits
) -> Settings:
    """The test's settings pointed at a Kraken Futures stand-in (real CCXT client path)."""
    exchange = settings.exchange.model_copy(
        update={
            "mode": "kraken",
            "api_key": SecretStr(api_key),
            "api_secret": SecretStr(api_secret),
            "base_url": base_url,
        }
    )
    return settings.model_copy(update={"exchange": exchange, "risk": limits})
