"""Poison intents are dead-lettered and the executor goes on; only allowed models trade the live book.

Real broker, real database, the executor's own run loop (``executor.runner.run``) in process: the
loop that used to stop on a poison intent, and stop again on it after every restart.
"""

from __future__ import annotations

import io
import math
import random
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from fastavro import schemaless_writer
from sqlalchemy import select

from common import serde
from common.db.models import Intent, Model, Order
from common.db.session import make_engine, session_scope
from common.events import DeadLetter, ExecutionStatus, IntentAction, OrderIntent
from common.kafka.configuration import consumer_config
from common.kafka.producer import EventProducer
from common.kafka.topics import DEAD_LETTERS, INTENTS
from config import ExecutorSettings, ModelCheck, RiskLimits, Settings, load_settings
from executor.clock import Clock
from executor.runner import SERVICE, run
from executor.service import Executor
from tests.standin.kit import (
    SYMBOL,
    count_rows,
    drain_reports,
    make_intent,
    manual_clock,
    paper_executor,
    publish,
)

pytestmark = pytest.mark.integration
LIMITS = RiskLimits(max_position_btc=1.0, max_order_btc=0.5, daily_loss_cap_usd=500.0, max_orders_per_hour=40)


def _executor(settings: Settings, clock: Clock) -> Executor:
    return paper_executor(settings, LIMITS, clock=clock)


def _dead_letters(settings: Settings, n: int, timeout: float = 30.0) -> list[DeadLetter]:
    consumer = Consumer(consumer_config(settings, f"dlq-{time.monotonic_ns()}"))
    consumer.subscribe([settings.topic(DEAD_LETTERS)])
    out: list[DeadLetter] = []
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        msg = consumer.poll(0.2)
        if msg is not None and msg.error() is None:
            out.append(serde.decode(msg.value() or b"", DeadLetter))
    consumer.close()
    return out


def _committed(settings: Settings) -> int:
    consumer = Consumer(consumer_config(settings, f"{settings.kafka.topic_prefix}{SERVICE}"))
    [tp] = consumer.committed([TopicPartition(settings.topic(INTENTS), 0)], timeout=10)
    consumer.close()
    return int(tp.offset)


def _poison(good: OrderIntent, clock: Clock) -> list[tuple[OrderIntent, str]]:
    """Intents that can never be handled, each with the reason it must be dead-lettered for."""
    other = make_intent(30, 0.5, clock=clock)
    return [
        # the example: the tick id does not parse (the old loop crashed placing the order)
        (replace(good, tick_id="not-a-tick", intent_id="not-a-tick|m1"), "invalid tick id"),
        # NUL in an id: Postgres refuses it at booking, after the venue filled (old: crash loop);
        # the shared loop refuses it before the handler (common.kafka.consumer.nul_field)
        (replace(other, model_id="m\x001", intent_id=f"{other.tick_id}|m\x001"), "NUL character"),
        # other control characters: refused by the executor's own check
        (replace(other, model_id="m\x1b1", intent_id=f"{other.tick_id}|m\x1b1"), "control characters"),
        # an id not derived from tick + model would dodge dedup: the same decision traded twice
        (replace(good, intent_id="fresh-id-for-an-old-decision"), "dedup key"),
        # FLAT with a non-zero target: which one was meant? when in doubt, do not trade
        (replace(good, action=IntentAction.FLAT, intent_id=good.intent_id), "fields disagree"),
        # a tick of another market than the intent's symbol
        (
            replace(
                good, tick_id="ETH/USD:USD|2026-12-05T00:00Z", intent_id="ETH/USD:USD|2026-12-05T00:00Z|m1"
            ),
            "tick id",
        ),
    ]


def test_poison_intents_are_dead_lettered_and_the_next_one_trades(settings: Settings) -> None:
    """Each poison intent: dead-lettered with its reason and committed; the good one after them fills,
    and a restarted executor gets nothing again (no crash loop). Failed before: the first one stopped
    the loop (ValueError) on every run, or traded."""
    clock = manual_clock()
    ex = _executor(settings, clock)
    good = make_intent(1, 0.5, clock=clock)
    poison = _poison(good, clock)
    publish(settings, [p for p, _ in poison] + [good])
    stats = run(ex.settings, ex, max_messages=len(poison) + 1, idle_timeout=20)
    assert (stats.handled, stats.dead_lettered) == (1, len(poison))
    [report] = drain_reports(settings, 1)
    assert report.intent_id == good.intent_id and report.status is ExecutionStatus.FILLED
    letters = _dead_letters(settings, len(poison))
    assert [dl.value for dl in letters] == [serde.encode(p) for p, _ in poison]
    assert all(dl.error_type in ("PoisonMessage", "SerdeError") and dl.service == SERVICE for dl in letters)
    for letter, (_, why) in zip(letters, poison, strict=True):
        assert why in letter.reason, letter.reason
    assert count_rows(ex.engine, Intent, ex.namespace) == 1
    assert count_rows(ex.engine, Order, ex.namespace) == 1
    assert _committed(settings) == len(poison) + 1
    # a restart finds nothing left to do: the poison is not re-delivered
    again = run(ex.settings, ex, max_messages=1, idle_timeout=4)
    assert (again.handled, again.dead_lettered) == (0, 0)


def test_random_bytes_and_schema_valid_nonsense_never_trade_or_stop(settings: Settings) -> None:
    """A burst of 60 bad messages (30 random byte strings, 30 valid-Avro nonsense intents) then one
    good intent, through the real loop: every bad one is dead-lettered, nothing else is booked."""
    clock = manual_clock()
    ex = _executor(settings, clock)
    rng = random.Random(18)
    sv = serde.load_schema_set().get(OrderIntent.SCHEMA_NAME)
    bad: list[bytes] = [rng.randbytes(rng.randrange(0, 200)) for _ in range(15)]
    bad += [serde.MAGIC + rng.randbytes(rng.randrange(8, 120)) for _ in range(15)]
    bad += [_encode_with(sv, _nonsense_intent(rng)) for _ in range(30)]
    producer = EventProducer(settings, "test")
    for data in bad:
        producer.send_raw(settings.topic(INTENTS), data, b"bad", {"producer": "fuzz"})
    producer.flush()
    good = make_intent(2, -0.5, clock=clock)
    publish(settings, [good])
    stats = run(ex.settings, ex, max_messages=len(bad) + 1, idle_timeout=30)
    assert (stats.handled, stats.dead_lettered) == (1, len(bad))
    [report] = drain_reports(settings, 1)
    assert report.intent_id == good.intent_id and report.status is ExecutionStatus.FILLED
    letters = _dead_letters(settings, len(bad))
    assert sorted(dl.value for dl in letters) == sorted(bad)
    assert {dl.error_type for dl in letters} <= {"SerdeError", "PoisonMessage"}
    assert count_rows(ex.engine, Order, ex.namespace) == 1


def _encode_with(sv: serde.SchemaVersion, record: dict[str, Any]) -> bytes:
    """Single-object encoding with no validation of the values (fastavro only checks Avro types)."""
    buf = io.BytesIO()
    buf.write(serde.MAGIC + sv.fingerprint)
    schemaless_writer(buf, sv.parsed, record)
    return buf.getvalue()


def _nonsense_intent(rng: random.Random) -> dict[str, Any]:
    """A valid OrderIntent Avro body with absurd values (seeded: the same 30 every run)."""
    texts = ["", "\x00", "|", "BTC/USD:USD|", "not-a-tick", "\u202e\U0001f4a5", rng.randbytes(6).hex()]
    now_ms = int(time.time() * 1000)
    numbers = [math.nan, math.inf, -math.inf, 1e308, -0.0, rng.uniform(-5, 5)]
    return {
        "intent_id": rng.choice(texts),
        "tick_id": rng.choice([*texts, "BTC/USD:USD|2026-12-05T00:00Z"]),
        "model_id": rng.choice([*texts, "operator"]),
        "symbol": rng.choice([*texts, SYMBOL]),
        "action": rng.choice([a.value for a in IntentAction]),
        "current_exposure": rng.choice(numbers),
        "target_exposure": rng.choice(numbers),
        "degraded": rng.random() < 0.5,
        "reason": rng.choice(texts),
        # mostly plausible times, so the nonsense reaches the executor's checks, not only the decoder
        "created_at": rng.choice([rng.randrange(-(2**63), 2**63), now_ms, now_ms - 3_600_000, 0]),
    }


def _selected_model(settings: Settings) -> tuple[str, bool]:
    """The registry's selected model id, selecting a throwaway one if none is (True: remove it after)."""
    engine = make_engine(settings.database_url.get_secret_value())
    with session_scope(engine) as s:
        selected = s.scalar(select(Model.model_id).where(Model.selected.is_(True)))
        if selected is not None:
            return selected, False
        model_id = f"gate-{settings.kafka.topic_prefix}"
        s.add(
            Model(
                model_id=model_id,
                algo="test",
                feature_spec={},
                strategy_set=[],
                params={},
                artifact=b"",
                artifact_sha256="0" * 64,
                selected=True,
                selected_at=datetime.now(UTC),
                selected_by="test",
            )
        )
    return model_id, True


def test_only_the_selected_model_fallbacks_and_operator_trade(settings: Settings) -> None:
    """Under the live namespace's rule (registry check): a model nobody selected (a stray replay, an
    old deployment) is dead-lettered; the selected one, a fallback, the operator and a configured
    extra trade. Failed before: the executor traded any model id."""
    options = ExecutorSettings(model_check=ModelCheck.REGISTRY, allowed_models="pinned-replay-model")
    selected, created = _selected_model(settings)
    clock = manual_clock()
    ex = _executor(settings, clock)
    intents = [
        make_intent(0, 0.5, model="stray-model", clock=clock),
        make_intent(1, 0.5, model=selected, clock=clock),
        make_intent(2, 0.25, model="fallback:majority_vote", clock=clock),
        make_intent(3, 0.0, model="operator", clock=clock),
        make_intent(4, 0.5, model="pinned-replay-model", clock=clock),
        make_intent(5, -1.0, model="stray-model-2", clock=clock),
    ]
    try:
        publish(settings, intents)
        strict = ex.settings.model_copy(update={"executor": options})  # settings.executor
        stats = run(strict, ex, max_messages=len(intents), idle_timeout=20)
    finally:
        if created:
            with session_scope(ex.engine) as s:
                s.delete(s.get(Model, selected))
    assert (stats.handled, stats.dead_lettered) == (4, 2)
    reports = drain_reports(settings, 4)
    assert [r.intent_id for r in reports] == [i.intent_id for i in intents[1:5]]
    assert all(r.status is ExecutionStatus.FILLED for r in reports)
    letters = _dead_letters(settings, 2)
    assert [dl.value for dl in letters] == [serde.encode(intents[0]), serde.encode(intents[5])]
    assert all(dl.reason.startswith("model_not_allowed") for dl in letters)
    assert ex.exchange.fetch_position() == 0.5


def test_default_model_check_is_strict_only_for_the_live_namespace() -> None:
    """Replays and tests pin models in namespaces of their own; the live book is the one with money."""
    from executor.runner import model_gate

    class _Ex:  # just what model_gate reads
        def __init__(self, namespace: str) -> None:
            self.namespace = namespace
            self.engine: Any = None
            self.settings = load_settings()

    assert model_gate(_Ex("live"), ExecutorSettings()) is not None  # type: ignore[arg-type]
    assert model_gate(_Ex("replay.r1."), ExecutorSettings()) is None  # type: ignore[arg-type]
    strict = ExecutorSettings(model_check=ModelCheck.REGISTRY)
    assert model_gate(_Ex("replay.r1."), strict) is not None  # type: ignore[arg-type]
