"""Helpers shared by the executor's integration tests: intents, report draining, DB counts."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

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

SYMBOL = "BTC/USD:USD"
#: Wall-clock ticks make_intent has handed out (see there).
_ISSUED: set[datetime] = set()


def clear_of_hour_turn(margin_s: float = 90.0) -> None:
    """Wait out the last ``margin_s`` seconds of a UTC hour.

    Tests on the wall clock that count orders per hour, book the day's PnL or derive tick ids from
    "this hour" would see two hours (or two days) if one turned mid-test; starting just after the
    turn costs at most ``margin_s`` now and then.
    """
    now = datetime.now(UTC)
    left = 3600.0 - (now.minute * 60 + now.second + now.microsecond / 1e6)
    if left < margin_s:
        time.sleep(left + 1.0)


def make_intent(
    n: int,
    target: float,
    *,
    created_at: datetime | None = None,
    model: str = "m1",
    symbol: str = SYMBOL,
    base: datetime | None = None,
) -> OrderIntent:
    """Intent ``n``, created now: for the tick ``base + n`` minutes, or without ``base`` for a tick
    that just happened on the wall clock (``now - 1 s + n`` ms).

    The executor judges an intent's age by its TICK (not ``created_at``), so tests on the wall
    clock need ticks that just closed: in the past (for n < 1000) and seconds old. Ticks built
    without ``base`` are unique in this process (a rare clash is moved on by a millisecond), so
    two intents never share an id by accident.
    """
    if base is not None:
        tick = base + timedelta(minutes=n)
    else:
        now = datetime.now(UTC)
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
        created_at=created_at or datetime.now(UTC),
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


def paper_executor(settings: Settings, limits: RiskLimits, prices: Any = None) -> Any:
    """An executor on the paper venue in the test's own namespace (its topic prefix); ``prices``
    is the venue's price feed, by default a fixed 20,000 USD."""
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
    return Executor(s, engine, venue, SystemClock(), ns)


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
