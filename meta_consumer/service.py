"""The running meta consumer: ingest (consume loop thread) and decide (main thread) over Postgres.

Why two threads: the shared consume loop only calls back when a message arrives, but a tick must
also be decided when its deadline passes while nothing arrives. The loop thread stores every
TickPlan and Recommendation (committing offsets only after the row is in Postgres); the main
thread waits for "ready" ticks, decides them in tick order and emits their intents.

Exactly-once per tick, outbox style: the decision rows (unique per namespace and tick) of the ready
ticks are committed in one transaction, then the intents rebuilt from them are produced and flushed
before the next tick is decided. Live, one tick is ready at a time; under a backlog up to
``decide_batch`` ticks share the transaction and the flush. A crash between commit and flush leaves
at most the last commit's intents unsent; start-up re-sends all of them, byte-identical (same ids,
same created_at; each row records its place in its commit), and the executor refuses the copies
it already had.

The per-message and per-tick SQL runs over plain psycopg, one held connection per thread (a
connection carries one transaction at a time), not through the SQLAlchemy engine (ADR 0021:
its Core, pool and pre-ping cost more than the statements). The engine stays for the start-up
reads and the rare paths (loading a model, adopting a row an earlier incarnation wrote).
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

from confluent_kafka import Message
from prometheus_client import Counter, Gauge, Histogram

from common.db.direct import PgConnection
from common.db.models import LIVE_NAMESPACE, Decision
from common.db.retry import with_db_retry
from common.db.session import make_engine
from common.events import OrderIntent, Recommendation, TickPlan, utc
from common.kafka.consumer import ConsumerLoop, OnError, PoisonMessage
from common.kafka.producer import EventProducer
from common.kafka.topics import INTENTS, RECOMMENDATIONS, TICKS
from common.logging import get_logger
from common.registry import load_registry
from common.shutdown import GracefulShutdown
from config import MetaSettings, Settings
from meta_consumer import store
from meta_consumer.bars import BarReader
from meta_consumer.decide import Carry, Choice, Mark, Outcome, TickInput, decide_tick
from meta_consumer.join import Arrival, Joiner, PendingTick, Ready, tick_time_of
from meta_consumer.models import ModelManager

log = get_logger(__name__)
SERVICE = "meta-consumer"

DECISIONS = Counter("btcmeta_meta_decisions_total", "Ticks decided", ["model_kind", "action"])
DEGRADED = Counter("btcmeta_meta_degraded_total", "Ticks decided without every input (deadline)")
LATE = Counter("btcmeta_meta_late_recommendations_total", "Recommendations after their tick was decided")
LATENCY = Histogram(
    "btcmeta_meta_tick_to_decision_seconds",
    "TickPlan arrival to intent flushed",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
RETRAIN = Gauge("btcmeta_meta_retrain_needed", "1 while the model's strategy set differs from the registry")
FUNDING_AGE = Gauge(
    "btcmeta_meta_funding_age_hours",
    "Hours between the tick and the newest funding rate published by then, while a combiner that "
    "reads funding decides (8 h settlements: over 24 means the funding poll stopped)",
)
#: A funding rate older than this at a tick is logged as stale (three missed 8 h settlements).
FUNDING_STALE_H = 24.0

#: Server-side limit per statement: a query stuck behind a lock fails instead of wedging a thread.
STATEMENT_TIMEOUT_MS = 60_000
#: How long a hot statement rides out a dropped connection or an unreachable database (reopening
#: the connection, capped back-off) before it raises and the process exits as before. Well inside
#: Kafka's max.poll.interval (5 min), so the consume thread's group membership survives the wait.
HOT_RETRY_S = 30.0
#: Undecided bars held in memory, in decide batches (see :meth:`MetaConsumer.step`).
BAR_READ_AHEAD = 4


class _AlreadyDecided(Exception):
    """A batch met a tick decided by an earlier incarnation: roll back, decide one by one."""


class MetaConsumer:
    def __init__(
        self,
        settings: Settings,
        meta: MetaSettings,
        *,
        live: tuple[str, ...] | None = None,
        shutdown: GracefulShutdown | None = None,
    ) -> None:
        self.settings = settings
        self.meta = meta
        self.namespace = settings.kafka.topic_prefix or LIVE_NAMESPACE
        url = settings.database_url.get_secret_value()
        self.engine = make_engine(url, statement_timeout_ms=STATEMENT_TIMEOUT_MS)
        # The hot path's connections, one per thread (opened on first use, reopened after a failure).
        self.ingest_db = PgConnection(url, statement_timeout_ms=STATEMENT_TIMEOUT_MS)
        self.decide_db = PgConnection(url, statement_timeout_ms=STATEMENT_TIMEOUT_MS)
        self._funding_warned = -3600.0  # monotonic time of the last stale-funding warning
        if live is None:
            live = tuple(s.name for s in load_registry(settings.registry_path, import_classes=False).enabled)
        self.live = live
        self.models = ModelManager(
            self.engine, meta, live, step=settings.exposure_step, max_exposure=settings.max_exposure
        )
        self.producer = EventProducer(settings, SERVICE)
        self.shutdown = shutdown or GracefulShutdown()
        self.joiner = Joiner()
        self.carry = Carry()
        self.marks: dict[str, Mark] = {}
        self.bars: BarReader | None = None
        self._cond = threading.Condition()
        self._loop_error: BaseException | None = None
        # Messages of the consume batch in hand (ingest thread only), stored by store_batch().
        self._batch_recs: list[Recommendation] = []
        self._batch_plans: list[TickPlan] = []

    # ------------------------------------------------------------------ start-up
    def recover(self) -> None:
        """Continue from the newest decision; re-arm the undecided ticks; re-send the newest intent."""
        # The first query of a process (re)started during a Postgres outage: retried, not fatal.
        last = with_db_retry(lambda: store.last_decision(self.engine, self.namespace), what="meta recover")
        if last is not None:
            self.carry = Carry.from_dict(last.observation.get("state"))
            self.joiner.last_decided = self.carry.tick_time
            batch = int((last.observation.get("commit") or {}).get("of", 1))
            self._send_many(
                [self._intent_from_row(r) for r in store.last_decisions(self.engine, self.namespace, batch)]
            )
        now = time.time()
        rows = store.pending_ticks(self.engine, self.namespace, self.settings.symbol, self.carry.tick_time)
        for row in rows:
            tick = PendingTick(
                row.tick_id,
                row.tick_time,
                frozenset(row.due_strategies),
                self.meta.decision_timeframe in row.due_timeframes,
                deadline=now + self.meta.deadline_s,
                arrived_at=now,
            )
            self.joiner.add_plan(tick, store.answered(self.engine, self.namespace, row.tick_id))
        mark = self.carry.mark
        same_topic = last is not None and last.observation.get("bars_topic") == self._bars_topic()
        self.bars = BarReader(
            self.settings,
            self.meta.decision_timeframe,
            self._group(),
            mark.offset if mark is not None and same_topic else None,
        )
        log.info(
            "meta_consumer_recovered",
            namespace=self.namespace,
            decided=self.carry.seq,
            pending=len(self.joiner.pending),
            last_tick=last.tick_id if last else None,
        )

    def _group(self) -> str:
        return self.settings.topic(self.meta.group_id)

    def _bars_topic(self) -> str:
        return self.settings.topic(f"market.bars.{self.meta.decision_timeframe}")

    # ------------------------------------------------------------------ ingest (consume loop thread)
    def handle(self, event: object, _msg: Message | None) -> None:
        """Collect one message of the consume batch; :meth:`store_batch` writes them all at once."""
        if isinstance(event, Recommendation):
            if event.symbol == self.settings.symbol:
                self._batch_recs.append(event)
        elif isinstance(event, TickPlan):
            if event.symbol == self.settings.symbol:
                self._batch_plans.append(event)
        else:
            raise PoisonMessage(f"unexpected {type(event).__name__} on the meta consumer's topics")

    def store_batch(self) -> None:
        """The loop's after-batch step: one transaction for the batch, then the join learns of it.

        Runs before the loop commits the batch's offsets, so a crash before the transaction
        commits re-delivers the whole batch (nothing lost), and the joiner only ever counts answers
        that are in Postgres, from where the decider reads them (nothing decided on unstored input).
        """
        recs, plans = self._batch_recs, self._batch_plans
        self._batch_recs, self._batch_plans = [], []
        if not recs and not plans:
            return
        saved = with_db_retry(
            lambda: store.save_batch(self.ingest_db, self.namespace, recs, plans),
            what="meta store batch",
            max_wait_s=HOT_RETRY_S,
        )
        now = time.time()
        late: list[Recommendation] = []
        fresh = set(saved.fresh)
        with self._cond:
            for rec in recs:
                arrival = self.joiner.add_recommendation(rec.tick_id, rec.strategy)
                key = (rec.tick_id, rec.strategy)
                if arrival is Arrival.LATE and key in fresh:  # not fresh: a re-delivery, not late
                    fresh.discard(key)
                    late.append(rec)
            for plan in plans:
                tick = PendingTick(
                    plan.tick_id,
                    plan.tick_time,
                    plan.expected_strategies,
                    self.meta.decision_timeframe in plan.due_timeframes,
                    deadline=now + self.meta.deadline_s,
                    arrived_at=now,
                )
                self.joiner.add_plan(tick, saved.answered.get(plan.tick_id, set()))
            self._cond.notify()
        for rec in late:
            LATE.inc()
            log.warning(
                "late_recommendation",
                tick_id=rec.tick_id,
                strategy=rec.strategy,
                detail="stored, never applied: its tick was already decided",
            )

    # ------------------------------------------------------------------ decide (main thread)
    def step(self, max_wait: float = 0.02) -> int:
        """Wait briefly for input, then decide every ready tick; returns how many were decided."""
        with self._cond:
            deadline = self.joiner.next_deadline()
            wait = max_wait if deadline is None else max(0.0, min(max_wait, deadline - time.time()))
            self._cond.wait(wait)
        assert self.bars is not None, "recover() first"
        # Read bars at most a few batches ahead of the decisions: each undecided mark holds a
        # 721-close window (~6 KB), and in a long replay the bar topic runs thousands of ticks
        # ahead of a meta consumer that lags the strategies (the whole dataset's replay reached
        # ~390 MB resident). Bars are in tick order, so the marks held are always the next ones
        # needed; the rest waits in Kafka.
        room = BAR_READ_AHEAD * self.meta.decide_batch - len(self.marks)
        for mark in self.bars.poll(max_messages=min(2 * self.meta.decide_batch, room)) if room > 0 else ():
            self.marks[mark.tick_id] = mark
            with self._cond:
                self.joiner.add_bar(mark.tick_id)
        with self._cond:
            ready = self.joiner.ready(time.time())
        size = self.meta.decide_batch
        for first in range(0, len(ready), size):
            self._decide_batch(ready[first : first + size])
        return len(ready)

    def _decide_batch(self, items: list[Ready]) -> None:
        """Decide consecutive ready ticks in one transaction, then send their intents in one flush.

        All or nothing: if any of them was already decided (a second replica, or a restart that
        re-delivered), the transaction is rolled back and they are decided one by one, adopting
        the existing rows. A dropped connection re-runs the whole transaction on a new one: it
        either never committed, or it did and the re-run finds its rows (decided one by one).
        """
        try:
            choice, created, outs, carry = with_db_retry(
                lambda: self._decide_batch_in(items), what="meta decide", max_wait_s=HOT_RETRY_S
            )
        except _AlreadyDecided:
            for item in items:
                self._decide(item)
            return
        self.carry = carry
        self._send_many(
            [
                self._intent(item.tick.tick_id, choice.model_id, out, created)
                for item, out in zip(items, outs, strict=True)
            ]
        )
        last = items[-1].tick
        with self._cond:
            self.joiner.mark_decided(last.tick_id, last.tick_time)
        self.marks = {t: m for t, m in self.marks.items() if tick_time_of(t) > last.tick_time}
        now = time.time()
        for item, out in zip(items, outs, strict=True):
            LATENCY.observe(max(0.0, now - item.tick.arrived_at))
            self._account(item, out, choice.model_id, drift=False)
        self.check_drift(outs[-1].current_exposure)

    def _decide_batch_in(self, items: list[Ready]) -> tuple[Choice, datetime, list[Outcome], Carry]:
        """The decision transaction of :meth:`_decide_batch`; raises _AlreadyDecided (rolled back)."""
        with self.decide_db.transaction() as cur:
            choice = self.models.current(cur)  # a new selection takes effect at the next batch
            RETRAIN.set(int(choice.retrain_needed))
            recs = store.recs_for_ticks(cur, self.namespace, [i.tick.tick_id for i in items])
            created = utc(datetime.now(UTC))
            carry, outs, rows = self.carry, [], []
            for index, item in enumerate(items):
                tick = item.tick
                inputs = TickInput(
                    tick.tick_id,
                    tick.tick_time,
                    tick.due,
                    recs[tick.tick_id],
                    self.marks.get(tick.tick_id) if tick.needs_bar else None,
                    tick.needs_bar,
                    self._funding(cur, choice, tick.tick_time),
                    self._funding_charge(cur, choice, tick.tick_time),
                )
                out = decide_tick(
                    inputs,
                    carry,
                    choice,
                    self.live,
                    step=self.settings.exposure_step,
                    max_exposure=self.settings.max_exposure,
                )
                rows.append(
                    self._row(
                        tick.tick_id,
                        choice,
                        inputs,
                        out,
                        created,
                        commit={"index": index, "of": len(items)},
                    )
                )
                outs.append(out)
                carry = out.carry
            if store.insert_decisions(cur, rows) != len(rows):
                raise _AlreadyDecided
        return choice, created, outs, carry

    def _decide(self, item: Ready) -> None:
        """One tick on its own: the path that adopts a row an earlier incarnation committed."""
        inserted, choice, out, created = with_db_retry(
            lambda: self._decide_in(item), what="meta decide", max_wait_s=HOT_RETRY_S
        )
        tick = item.tick
        if inserted:
            self.carry = out.carry
            intent = self._intent(tick.tick_id, choice.model_id, out, created)
        else:  # decided by an earlier incarnation: adopt that row, re-send its intent (a duplicate)
            row = store.decision_for(self.engine, self.namespace, tick.tick_id)
            assert row is not None
            self.carry = Carry.from_dict(row.observation.get("state"))
            intent = self._intent_from_row(row)
            log.warning("tick_already_decided", tick_id=tick.tick_id, model_id=row.model_id)
        self._send(intent)
        with self._cond:
            self.joiner.mark_decided(tick.tick_id, tick.tick_time)
        self.marks = {t: m for t, m in self.marks.items() if tick_time_of(t) > tick.tick_time}
        LATENCY.observe(max(0.0, time.time() - tick.arrived_at))
        if inserted:  # after the intent is out: logging and the drift check are not on its path
            self._account(item, out, choice.model_id)

    def _decide_in(self, item: Ready) -> tuple[bool, Choice, Outcome, datetime]:
        tick = item.tick
        with self.decide_db.transaction() as cur:
            choice = self.models.current(cur)
            RETRAIN.set(int(choice.retrain_needed))
            inputs = TickInput(
                tick.tick_id,
                tick.tick_time,
                tick.due,
                store.recs_for_tick(cur, self.namespace, tick.tick_id),
                self.marks.get(tick.tick_id) if tick.needs_bar else None,
                tick.needs_bar,
                self._funding(cur, choice, tick.tick_time),
                self._funding_charge(cur, choice, tick.tick_time),
            )
            out = decide_tick(
                inputs,
                self.carry,
                choice,
                self.live,
                step=self.settings.exposure_step,
                max_exposure=self.settings.max_exposure,
            )
            created = utc(datetime.now(UTC))
            values = self._row(tick.tick_id, choice, inputs, out, created)
            return store.insert_decision(cur, values), choice, out, created

    def _funding(self, cur: store.Db, choice: Choice, at: datetime) -> float | None:
        """The last funding rate published by the tick, read only for a combiner that uses it.

        The decision reads it exactly as the research does, however old (parity with the backtest).
        How old it is goes to a gauge and, past :data:`FUNDING_STALE_H`, to a warning once an
        hour: live, the series is fed by ``producers exogenous poll`` (``binance_funding``), and a
        poll that stopped must be seen before a combiner trades on a days-old rate.
        """
        if choice.combiner is None or not choice.combiner.reads_funding:
            return None
        published = store.funding_published_at(cur, at)
        age_h = float("inf") if published is None else (at - published).total_seconds() / 3600.0
        FUNDING_AGE.set(age_h)
        if age_h > FUNDING_STALE_H and time.monotonic() - self._funding_warned > 3600.0:
            self._funding_warned = time.monotonic()
            log.warning(
                "funding_rate_stale",
                tick_time=at.isoformat(),
                published_at=None if published is None else published.isoformat(),
                age_hours=round(age_h, 1),
                model_id=choice.model_id,
                hint="run `python -m producers exogenous poll --source binance_funding` on a schedule",
            )
        return store.funding_last(cur, at)

    @staticmethod
    def _funding_charge(cur: store.Db, choice: Choice, at: datetime) -> float:
        """The funding charged over the tick's bar, read only for a ``dsr`` combiner (its reward)."""
        if choice.combiner is None or choice.combiner.kind != "dsr":
            return 0.0
        from config import DEFAULT_FUNDING_RATE_HOURLY

        return store.funding_charge(cur, at, DEFAULT_FUNDING_RATE_HOURLY)

    def _row(
        self,
        tick_id: str,
        choice: Choice,
        inputs: TickInput,
        out: Outcome,
        created: datetime,
        commit: dict[str, int] | None = None,
    ) -> dict[str, object]:
        observation: dict[str, object] = {
            "features": out.features,
            "reason": out.reason,
            "retrain_needed": choice.retrain_needed,
            "state": out.carry.to_dict(),
            "present": sorted(inputs.recs),
            "bars_topic": self._bars_topic(),
        }
        if choice.combiner is not None and choice.combiner.reads_funding:  # what it read, for audits
            observation["funding_last"] = inputs.funding_last
        if choice.combiner is not None and choice.combiner.kind == "dsr":
            observation["funding_charge"] = inputs.funding_charge
        if commit is not None:  # place in its commit: a restart re-sends the whole last commit
            observation["commit"] = commit
        return {
            "namespace": self.namespace,
            "tick_id": tick_id,
            "model_id": choice.model_id,
            "observation": observation,
            "action": out.action.value,
            "current_exposure": out.current_exposure,
            "target_exposure": out.target_exposure,
            "degraded": out.degraded,
            "late_strategies": out.late,
            "decided_at": created,
        }

    def _intent(self, tick_id: str, model_id: str, out: Outcome, created: datetime) -> OrderIntent:
        return OrderIntent.create(
            tick_id,
            model_id,
            self.settings.symbol,
            out.action,
            out.current_exposure,
            out.target_exposure,
            created,
            degraded=out.degraded,
            reason=out.reason,
        )

    def _intent_from_row(self, row: Decision) -> OrderIntent:
        return OrderIntent.create(
            row.tick_id,
            row.model_id,
            self.settings.symbol,
            row.action,
            row.current_exposure,
            row.target_exposure,
            utc(row.decided_at),
            degraded=row.degraded,
            reason=row.observation.get("reason", ""),
        )

    def _send(self, intent: OrderIntent) -> None:
        self._send_many([intent])

    def _send_many(self, intents: list[OrderIntent]) -> None:
        """Produce in order and flush: returns once the broker has every one of them."""
        for intent in intents:
            self.producer.send(self.settings.topic(INTENTS), intent, key=intent.intent_id)
        self.producer.flush()

    def _account(self, item: Ready, out: Outcome, model_id: str, *, drift: bool = True) -> None:
        kind = "fallback" if model_id.startswith("fallback:") else "model"
        DECISIONS.labels(kind, out.action.value).inc()
        if out.degraded:
            DEGRADED.inc()
        log.info(
            "tick_decided",
            tick_id=item.tick.tick_id,
            model_id=model_id,
            action=out.action.value,
            current=out.current_exposure,
            target=out.target_exposure,
            degraded=out.degraded,
            late=out.late,
            timed_out=item.timed_out,
            reason=out.reason,
        )
        if drift:
            self.check_drift(out.current_exposure)

    def check_drift(self, model_exposure: float) -> float | None:
        """The executor's exposure when it drifted from the model's beyond the tolerance, else None.

        Compared with the exposure *before* this tick's intent: the executor lags by one intent.
        """
        qty = with_db_retry(
            lambda: store.position_quantity(self.decide_db, self.namespace, self.settings.symbol),
            what="meta drift check",
            max_wait_s=HOT_RETRY_S,
        )
        if qty is None:
            return None
        executed = qty / self.settings.risk.max_position_btc
        if abs(executed - model_exposure) <= self.meta.drift_tolerance:
            return None
        log.warning(
            "model_portfolio_drift",
            model_exposure=model_exposure,
            executor_exposure=executed,
            tolerance=self.meta.drift_tolerance,
        )
        return executed

    # ------------------------------------------------------------------ run
    def close_db(self) -> None:
        """Close the hot path's connections and the engine's pool (what :meth:`run` ends with)."""
        self.ingest_db.close()
        self.decide_db.close()
        self.engine.dispose()

    def _consume(self, loop: ConsumerLoop) -> None:
        try:
            loop.run()
        except BaseException as exc:
            self._loop_error = exc
            log.error("consume_loop_failed", error=repr(exc))
        finally:
            self.shutdown.request()
            with self._cond:
                self._cond.notify()

    def build_loop(self) -> ConsumerLoop:
        extra = {"group.instance.id": self.meta.group_instance_id} if self.meta.group_instance_id else {}
        loop = ConsumerLoop(
            self.settings,
            service=SERVICE,
            group_id=self._group(),
            topics=[self.settings.topic(TICKS), self.settings.topic(RECOMMENDATIONS)],
            handler=self.handle,
            producer=EventProducer(self.settings, SERVICE),
            on_error=OnError.STOP,
            batch_size=self.meta.batch_size,
            shutdown=self.shutdown,
            extra_config=extra,
            after_batch=self.store_batch,
        )
        return loop

    def run(self) -> None:
        """Until SIGTERM/SIGINT or a consume-loop failure (re-raised so the process exits non-zero)."""
        self.shutdown.install()
        self.recover()
        loop = self.build_loop()
        thread = threading.Thread(target=self._consume, args=(loop,), name="consume", daemon=True)
        thread.start()
        log.info("meta_consumer_started", namespace=self.namespace, group=self._group(), strategies=self.live)
        try:
            while not self.shutdown.requested:
                self.step()
        finally:
            self.shutdown.request()
            thread.join(timeout=60)
            if self.bars is not None:
                self.bars.close()
            self.producer.close()
            self.close_db()
            log.info("meta_consumer_stopped", decided=self.carry.seq)
        if self._loop_error is not None:
            raise RuntimeError("consume loop failed") from self._loop_error
