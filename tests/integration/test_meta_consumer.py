"""The meta consumer on the real broker and database: join, deadline, late answers, hot reload.

The service runs in-process (a thread) here so the tests can read its state; the restart test in
``test_meta_consumer_restart.py`` runs it as a separate process and kills it.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from pydantic import SecretStr
from sqlalchemy import select, update

from common import serde
from common.db.migrate import upgrade
from common.db.models import Decision, Model, Position
from common.db.models import Recommendation as RecRow
from common.db.session import make_engine, session_scope
from common.events import BarClosed, DueStrategy, OrderIntent, Recommendation, SignalEvent, Target, TickPlan
from common.ids import make_intent_id, make_tick_id
from common.kafka.configuration import consumer_config
from common.kafka.producer import EventProducer
from common.kafka.topics import INTENTS, RECOMMENDATIONS, TICKS, bars_topic
from common.observation import FeatureSpec
from common.policy import export_policy
from config import MetaSettings, Settings
from meta_consumer.models import ModelManager
from meta_consumer.service import BAR_READ_AHEAD, MetaConsumer

pytestmark = pytest.mark.integration

SYMBOL = "BTC/USD:USD"
LIVE = ("volatility_system", "supertrend", "fsupertrend", "ott", "bband_rsi")
T0 = datetime(2022, 1, 1, tzinfo=UTC)
VOTE = "fallback:majority_vote"


# --------------------------------------------------------------------------- stream builders


def tick_time(i: int) -> datetime:
    return T0 + timedelta(hours=i)


def tick_id(i: int) -> str:
    return make_tick_id(SYMBOL, tick_time(i))


def plan(i: int, due: Sequence[str] = LIVE) -> TickPlan:
    t = tick_time(i)
    return TickPlan.create(
        SYMBOL,
        t,
        [DueStrategy(n, "1.0.0", "1h") for n in due],
        deadline=t + timedelta(seconds=30),
        published_at=t,
    )


def bar(i: int, n: int = 30) -> BarClosed:
    times = [tick_time(i) - timedelta(hours=n - k) for k in range(n)]
    closes = [20_000.0 + 50.0 * ((i + k) % 17) + 3.0 * (i + k) for k in range(n)]
    return BarClosed(
        tick_id=tick_id(i),
        symbol=SYMBOL,
        timeframe="1h",
        bar_open_time=times[-1],
        open_time=tuple(times),
        open=tuple(closes),
        high=tuple(c + 10 for c in closes),
        low=tuple(c - 10 for c in closes),
        close=tuple(closes),
        volume=(1.0,) * n,
    )


def rec(i: int, strategy: str, target: Target) -> Recommendation:
    t = tick_time(i)
    return Recommendation(
        tick_id=tick_id(i),
        strategy=strategy,
        strategy_version="1.0.0",
        symbol=SYMBOL,
        timeframe="1h",
        bar_close_time=t,
        target=target,
        event=SignalEvent.NONE,
        confidence=0.6,
        horizon_bars=4,
        produced_at=t,
        indicators={},
    )


class Bus:
    """Publishes like the tick emitter and the strategies do (same topics, keys and partitioning)."""

    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.p = EventProducer(settings, "test-publisher")

    def tick(self, i: int, due: Sequence[str] = LIVE, with_bar: bool = True) -> None:
        self.p.send(self.s.topic(TICKS), plan(i, due), key=tick_id(i))
        if with_bar:
            self.p.send(self.s.topic(bars_topic("1h")), bar(i), key=tick_id(i))
        self.p.flush()

    def recs(self, i: int, targets: dict[str, Target]) -> None:
        for name, target in targets.items():
            self.p.send(self.s.topic(RECOMMENDATIONS), rec(i, name, target), key=tick_id(i))
        self.p.flush()


# --------------------------------------------------------------------------- service and read-back


@contextmanager
def running(settings: Settings, meta: MetaSettings, live: tuple[str, ...] = LIVE) -> Iterator[MetaConsumer]:
    """The service in a thread (other test modules use it too); stopped and joined on exit."""
    svc = MetaConsumer(settings, meta, live=live)
    thread = threading.Thread(target=svc.run, daemon=True)
    thread.start()
    try:
        yield svc
    finally:
        svc.shutdown.request()
        thread.join(timeout=60)
        assert not thread.is_alive()


def namespace(settings: Settings) -> str:
    return settings.kafka.topic_prefix


def decisions(settings: Settings) -> list[Decision]:
    engine = make_engine(settings.database_url.get_secret_value())
    try:
        with session_scope(engine) as s:
            return list(
                s.scalars(
                    select(Decision).where(Decision.namespace == namespace(settings)).order_by(Decision.id)
                )
            )
    finally:
        engine.dispose()


def wait_decisions(settings: Settings, n: int, timeout: float = 30.0) -> list[Decision]:
    deadline = time.monotonic() + timeout
    while True:
        rows = decisions(settings)
        if len(rows) >= n or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def wait_recs(settings: Settings, tick: int, n: int, timeout: float = 30.0) -> None:
    """Until the meta consumer has stored ``n`` answers for ``tick`` (what a fixed sleep only hoped for)."""
    engine = make_engine(settings.database_url.get_secret_value())
    deadline = time.monotonic() + timeout
    try:
        while True:
            with session_scope(engine) as s:
                stored = len(
                    s.scalars(
                        select(RecRow.strategy).where(
                            RecRow.namespace == namespace(settings), RecRow.tick_id == tick_id(tick)
                        )
                    ).all()
                )
            if stored >= n:
                return
            assert time.monotonic() < deadline, f"{stored} of {n} answers for tick {tick} stored"
            time.sleep(0.05)
    finally:
        engine.dispose()


def read_intents(settings: Settings, at_least: int, timeout: float = 30.0) -> list[tuple[bytes, OrderIntent]]:
    """Every message on the intents topic (raw bytes and decoded), from the beginning."""
    c = Consumer(consumer_config(settings, f"reader-{time.monotonic_ns()}"))
    c.assign([TopicPartition(settings.topic(INTENTS), 0, 0)])
    out: list[tuple[bytes, OrderIntent]] = []
    deadline = time.monotonic() + timeout
    idle_until = None
    try:
        while time.monotonic() < deadline:
            msg = c.poll(0.2)
            if msg is None or msg.error():
                if len(out) >= at_least:
                    idle_until = idle_until or time.monotonic() + 1.0
                    if time.monotonic() > idle_until:
                        break
                continue
            value = msg.value() or b""
            out.append((value, serde.decode(value, OrderIntent)))
    finally:
        c.close()
    return out


@pytest.fixture
def own_db(settings: Settings, empty_database_url: str) -> Settings:
    """The models table is global (one selected model): tests that select models get a database each."""
    upgrade(empty_database_url)
    return settings.model_copy(update={"database_url": SecretStr(empty_database_url)})


def add_model(settings: Settings, model_id: str, strategies: Sequence[str], *, select_it: bool) -> None:
    spec = FeatureSpec(strategies=tuple(strategies))
    w = [[0.0] * 5 for _ in range(spec.dim)]
    w[0][2] = 1.0  # DECREASE scores the first strategy's target: a LONG there steps exposure down
    art = export_policy([(w, [0.0] * 5)], ["identity"], algo="test", spec=spec)
    engine = make_engine(settings.database_url.get_secret_value())
    with session_scope(engine) as s:
        if select_it:
            s.execute(update(Model).values(selected=False))
            s.flush()
        s.add(
            Model(
                model_id=model_id,
                algo="test",
                feature_spec=json.loads(spec.to_json()),
                strategy_set=list(strategies),
                params={},
                artifact=art,
                artifact_sha256=hashlib.sha256(art).hexdigest(),
                selected=select_it,
            )
        )
    engine.dispose()


def meta_settings(**kw: Any) -> MetaSettings:
    return MetaSettings(**{"deadline_s": 30.0, **kw})


# --------------------------------------------------------------------------- tests


def test_join_complete_degraded_late_and_early(settings: Settings) -> None:
    bus = Bus(settings)
    L, S, F = Target.LONG, Target.SHORT, Target.FLAT
    # The deadline only has to outlast a loaded machine's consume-and-store of three answers.
    with running(settings, meta_settings(deadline_s=4.0)):
        # Tick 1: every recommendation arrives (and is stored) before its TickPlan.
        bus.recs(1, {"volatility_system": L, "supertrend": L, "fsupertrend": L, "ott": S, "bband_rsi": F})
        wait_recs(settings, 1, 5)
        bus.tick(1)
        [d1] = wait_decisions(settings, 1)
        # Tick 2: two of five never answer before the deadline.
        bus.tick(2)
        bus.recs(2, {"volatility_system": S, "supertrend": S, "fsupertrend": L})
        rows = wait_decisions(settings, 2, timeout=10)
        # Their answers arrive late, voting SHORT; then tick 3 where only supertrend is due.
        bus.recs(2, {"ott": S, "bband_rsi": S})
        wait_recs(settings, 2, 5)
        bus.tick(3, due=["supertrend"])
        bus.recs(3, {"supertrend": S})
        rows = wait_decisions(settings, 3)
    d1, d2, d3 = rows
    assert [d.tick_id for d in rows] == [tick_id(1), tick_id(2), tick_id(3)]
    assert (d1.degraded, d1.late_strategies, d1.model_id) == (False, [], VOTE)
    assert (d1.action, d1.target_exposure) == ("INCREASE", 1.0)  # 3 long, 1 short, 1 flat
    assert d2.degraded and sorted(d2.late_strategies) == ["bband_rsi", "ott"]
    assert "deadline passed" in d2.observation["reason"]
    # The late SHORT answers for tick 2 are stored ...
    engine = make_engine(settings.database_url.get_secret_value())
    with session_scope(engine) as s:
        late = s.scalars(
            select(RecRow).where(RecRow.namespace == namespace(settings), RecRow.tick_id == tick_id(2))
        ).all()
    engine.dispose()
    assert sorted(r.strategy for r in late) == sorted(LIVE)
    # ... but never applied: at tick 3, ott still shows its tick-1 SHORT and bband_rsi its tick-1 FLAT,
    # both two ticks old, while the not-due fsupertrend contributes its tick-2 LONG, one tick old.
    f = d3.observation["features"]
    assert (f["ott.target"], f["bband_rsi.target"], f["fsupertrend.target"]) == (-1.0, 0.0, 1.0)
    max_age = FeatureSpec(strategies=LIVE).max_age_ticks
    assert f["ott.age"] == pytest.approx(2 / max_age) and f["fsupertrend.age"] == pytest.approx(1 / max_age)
    assert f["supertrend.age"] == 0.0 and not d3.degraded
    # Vote at tick 3: vol S(t2), super S(t3), fsuper L(t2), ott S(t1), bband F(t1) -> SHORT.
    assert (d2.action, d2.target_exposure) == ("REVERSE", -1.0)  # vol S, super S, ott S (tick 1) vs fsuper L
    assert (d3.current_exposure, d3.target_exposure, d3.action) == (-1.0, -1.0, "HOLD")
    intents = read_intents(settings, 3)
    assert [i.intent_id for _, i in intents] == [make_intent_id(tick_id(k), VOTE) for k in (1, 2, 3)]
    assert [i.degraded for _, i in intents] == [False, True, False]
    assert [i.target_exposure for _, i in intents] == [d.target_exposure for d in rows]


def test_model_hot_reload_and_strategy_set_mismatch(own_db: Settings) -> None:
    settings = own_db
    bus = Bus(settings)
    all_long = dict.fromkeys(LIVE, Target.LONG)
    with running(settings, meta_settings()) as svc:
        bus.tick(1)
        bus.recs(1, all_long)
        wait_decisions(settings, 1)
        # The executor reports half the max position while the model holds a full long: drift.
        engine = make_engine(settings.database_url.get_secret_value())
        with session_scope(engine) as s:
            s.add(
                Position(
                    namespace=namespace(settings),
                    symbol=SYMBOL,
                    quantity=0.5 * settings.risk.max_position_btc,
                )
            )
        engine.dispose()
        assert svc.check_drift(1.0) == 0.5 and svc.check_drift(0.5) is None
        add_model(settings, "m-good", LIVE, select_it=True)
        bus.tick(2)
        bus.recs(2, all_long)
        wait_decisions(settings, 2)
        add_model(settings, "m-subset", ("supertrend", "ott"), select_it=True)
        bus.tick(3)
        bus.recs(3, all_long)
        rows = wait_decisions(settings, 3)
    assert [d.tick_id for d in rows] == [tick_id(1), tick_id(2), tick_id(3)]  # no tick missed
    assert [d.model_id for d in rows] == [VOTE, "m-good", VOTE]
    # The fallback voted all-long to 1.0; the model (DECREASE on a LONG) steps down, the fallback never would.
    assert (rows[1].action, rows[1].current_exposure, rows[1].target_exposure) == ("DECREASE", 1.0, 0.75)
    assert rows[0].observation["retrain_needed"] is False
    assert rows[2].observation["retrain_needed"] is True
    assert "m-subset refused" in rows[2].observation["reason"]
    assert "retrain needed" in rows[2].observation["reason"]
    intents = read_intents(settings, 3)
    expected = [(1, VOTE), (2, "m-good"), (3, VOTE)]
    assert [i.intent_id for _, i in intents] == [make_intent_id(tick_id(k), m) for k, m in expected]
    # With allow_subset the same model runs on its own two strategies, still flagged.
    engine = make_engine(settings.database_url.get_secret_value())
    manager = ModelManager(engine, meta_settings(allow_subset=True), LIVE, step=0.25, max_exposure=1.0)
    choice = manager.current()
    engine.dispose()
    assert (choice.model_id, choice.retrain_needed) == ("m-subset", True)
    assert choice.spec.strategies == ("supertrend", "ott")
    assert "run on its own subset" in choice.reason


def test_crash_between_decision_commit_and_intent_send_is_repaired_on_start(settings: Settings) -> None:
    """The outbox window, hit on purpose with a batch: three decisions committed together, no intent
    leaves; the next start re-sends all three (in tick order) before deciding anything new."""
    bus = Bus(settings)
    all_long = dict.fromkeys(LIVE, Target.LONG)
    first = MetaConsumer(settings, meta_settings(), live=LIVE)
    first.recover()
    consume = threading.Thread(target=first._consume, args=(first.build_loop(),), daemon=True)
    consume.start()

    def crash(_intents: list[OrderIntent]) -> None:
        raise RuntimeError("process died before the intents were flushed")

    first._send_many = crash  # type: ignore[method-assign,assignment]
    for i in (1, 2, 3):
        bus.tick(i)
        bus.recs(i, all_long)
    # A backlog of three complete ticks (answers stored, bars read) before the decider runs.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with first._cond:  # the consume thread adds pending ticks under this lock
            if len(first.joiner.bars) == 3 and len(first.joiner.ready(time.time())) == 3:
                break
        for mark in first.bars.poll():  # type: ignore[union-attr]
            first.marks[mark.tick_id] = mark
            with first._cond:
                first.joiner.add_bar(mark.tick_id)
        time.sleep(0.05)
    with pytest.raises(RuntimeError, match="died"):
        first.step()
    first.shutdown.request()
    consume.join(timeout=30)
    first.bars.close()  # type: ignore[union-attr]
    first.engine.dispose()
    rows = decisions(settings)
    assert [d.tick_id for d in rows] == [tick_id(k) for k in (1, 2, 3)]
    assert [d.observation["commit"] for d in rows] == [{"index": k, "of": 3} for k in range(3)]
    assert [d.target_exposure for d in rows] == [1.0, 1.0, 1.0]
    assert read_intents(settings, 0, timeout=2) == []

    with running(settings, meta_settings()):  # start-up re-sends the last commit's three intents
        bus.tick(4)
        bus.recs(4, all_long)
        rows = wait_decisions(settings, 4)
    intents = read_intents(settings, 4)
    assert [i.intent_id for _, i in intents] == [make_intent_id(tick_id(k), VOTE) for k in (1, 2, 3, 4)]
    assert [(i.action.value, i.target_exposure, i.current_exposure) for _, i in intents] == [
        (d.action, d.target_exposure, d.current_exposure) for d in rows
    ]


def test_bars_are_read_only_a_few_batches_ahead_of_the_decisions(settings: Settings) -> None:
    """Bars published far ahead of their plans stay in Kafka beyond BAR_READ_AHEAD batches (each
    held mark is a 721-close window); deciding frees room and every tick still gets its bar."""
    bus = Bus(settings)
    L = Target.LONG
    n, batch = 30, 2
    cap = BAR_READ_AHEAD * batch
    with running(settings, meta_settings(deadline_s=20.0, decide_batch=batch)) as svc:
        for i in range(1, n + 1):  # the bar topic runs 30 ticks ahead: no plan has arrived yet
            bus.p.send(settings.topic(bars_topic("1h")), bar(i), key=tick_id(i))
        bus.p.flush()
        deadline = time.monotonic() + 20
        while len(svc.marks) < cap and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)  # many more polls: none may read past the cap
        assert sorted(svc.marks) == [tick_id(i) for i in range(1, cap + 1)]  # the oldest, in order
        for i in range(1, n + 1):
            bus.p.send(settings.topic(TICKS), plan(i), key=tick_id(i))
            bus.recs(i, dict.fromkeys(LIVE, L))
        bus.p.flush()
        rows = wait_decisions(settings, n, timeout=60)
        assert len(svc.marks) <= cap
    assert [d.tick_id for d in rows] == [tick_id(i) for i in range(1, n + 1)]
    assert not any(d.degraded for d in rows)  # every tick had its bar, read as room was made
