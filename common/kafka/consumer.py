"""The consume loop every service uses: decode, handle, flush outputs, then commit.

Order of operations is the whole point. Offsets are committed only after the handler's work and
every message it produced are acknowledged, so a crash at any moment re-delivers (never loses) the
input; outputs carry deterministic ids so downstream ignores the re-delivery. Input that can never
be processed (undecodable bytes, a :class:`PoisonMessage`) goes to the dead-letter topic with its
original bytes and the reason, and the loop keeps going.

A message whose writer schema this build does not know (a newer service version wrote it, mid
rolling deploy) is not bad input: the loop resolves the fingerprint from the schema store and, if
the store lacks it too, by default WAITS: it seeks back, backs off, retries, and never commits past
it; meanwhile it reports not ready (:func:`unknown_schema_waits`, metric
``btcmeta_unknown_schema_waiting``). See docs/decisions/0014-unknown-schema-fingerprints.md.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, cast

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from prometheus_client import Counter, Gauge
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_delay, wait_exponential

from common import serde
from common.health import HEALTH
from common.heartbeat import Heartbeat
from common.kafka.configuration import consumer_config
from common.kafka.dead_letter import DeadLetterSink
from common.kafka.producer import EventProducer
from common.logging import get_logger
from common.metrics import CONSUMER_LAG, HANDLE_SECONDS, HEARTBEAT, MESSAGES_CONSUMED
from common.schema_store import SchemaStore
from common.shutdown import GracefulShutdown
from config import Settings

log = get_logger(__name__)

Handler = Callable[[Any, Message], None]

UNKNOWN_SCHEMA = Counter(
    "btcmeta_unknown_schema_total",
    "Reads of a writer schema fingerprint neither the build nor the schema store resolved (each retry)",
    ["service", "topic"],
)
UNKNOWN_SCHEMA_WAITING = Gauge(
    "btcmeta_unknown_schema_waiting",
    "1 while a consume loop waits (without committing) for an unknown writer schema",
    ["service"],
)

COMMITS_LOST = Counter(
    "btcmeta_commits_lost_total",
    "Offset commits refused because the group moved on (the input is re-delivered, handled idempotently)",
    ["service"],
)
#: How long one commit may take before the client is considered wedged (seconds); well under
#: max.poll.interval.ms so the group does not evict us while we wait.
COMMIT_TIMEOUT_S = 45.0
#: A static member fenced twice within this many seconds is a real second consumer: stop.
FENCED_REPLACE_EVERY_S = 60.0
#: Clients replaced because a commit never returned: kept referenced (closing one blocks).
_PARKED: list[tuple[Any, ThreadPoolExecutor]] = []


def _leave_quietly(client: Consumer) -> None:
    with contextlib.suppress(Exception):  # best effort; the member expires anyway
        client.unsubscribe()


class _CommitWedged(Exception):
    """A synchronous commit did not return within COMMIT_TIMEOUT_S."""


#: How long a commit is retried while the group coordinator is loading / moving (seconds).
COMMIT_RETRY_S = 60.0
#: Commit errors worth retrying: the coordinator is busy, moving or unreachable for now.
_COMMIT_RETRY_CODES = frozenset(
    {
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.NOT_COORDINATOR,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError._TIMED_OUT,
        KafkaError._TRANSPORT,
        KafkaError._WAIT_COORD,
    }
)
#: Commit errors meaning this member no longer owns the partitions: the commit is lost for good.
_COMMIT_LOST_CODES = frozenset(
    {
        KafkaError.UNKNOWN_MEMBER_ID,
        KafkaError.ILLEGAL_GENERATION,
        KafkaError.REBALANCE_IN_PROGRESS,
        KafkaError._ASSIGNMENT_LOST,
    }
)


def _commit_error_kind(exc: BaseException, *, static_member: bool = False) -> str:
    """'retry', 'lost' (group moved on), 'fenced' (static id taken over), 'nothing' or 'fatal'.

    ``static_member``: the client has a ``group.instance.id``. A consumer's only fatal error in
    librdkafka is its static member being fenced; when that fatal error was raised before the
    commit ran, the commit reports just ``_FATAL`` ("Local: Fatal error"), which is the same fence
    (seen in the chaos suite after a 30 s broker freeze: the executor crashed on it).
    """
    if not isinstance(exc, KafkaException) or not exc.args:
        return "fatal"
    err = exc.args[0]
    if not isinstance(err, KafkaError):
        return "fatal"
    code = err.code()
    if code == KafkaError.FENCED_INSTANCE_ID or (static_member and code == KafkaError._FATAL):
        # Fatal for this client handle; after a broker stall librdkafka rejoins with the same static
        # id and fences its own previous member. A fresh handle is the way back (see the loop).
        return "fenced"
    if err.fatal():
        return "fatal"
    if code == KafkaError._NO_OFFSET:
        return "nothing"
    if code in _COMMIT_LOST_CODES:
        return "lost"
    if code in _COMMIT_RETRY_CODES or err.retriable():
        return "retry"
    return "fatal"


# Loops of this process currently waiting on an unknown schema: id(loop) -> "service: why".
_WAITS: dict[int, str] = {}
_WAITS_LOCK = threading.Lock()


def unknown_schema_waits() -> list[str]:
    """Why this process' consume loops are waiting on an unknown schema; empty when none is.

    The readiness check reads this: a service that is waiting must not be ready.
    """
    with _WAITS_LOCK:
        return sorted(_WAITS.values())


def schema_probe() -> None:
    """Readiness probe for ``common.health.HEALTH.watch("schemas", schema_probe)``: raises while
    any consume loop of this process waits on an unknown writer schema (it makes no progress)."""
    waits = unknown_schema_waits()
    if waits:
        raise RuntimeError("unknown_schema_waiting: " + "; ".join(waits))


class PoisonMessage(Exception):
    """Raised by a handler for input that will never succeed (bad content, not a transient failure)."""


class OnError(StrEnum):
    #: Unexpected handler errors dead-letter the message and the loop goes on (strategies, meta).
    DEAD_LETTER = "dead_letter"
    #: Unexpected handler errors stop the loop without committing the message (the executor:
    #: when in doubt, do not trade, and do not skip an order either).
    STOP = "stop"


class OnUnknownSchema(StrEnum):
    """What to do with a message whose writer schema neither the build nor the store knows."""

    #: Seek back, back off, retry; never commit past it; not ready meanwhile (the default: the
    #: message is fine, this reader is just older than its writer, and the deploy will catch up).
    WAIT = "wait"
    #: Dead-letter it and go on: only for consumers whose input is analytics, never trading.
    DEAD_LETTER = "dead_letter"


class _SchemaWait(Exception):
    """Internal: the message at hand needs a schema nobody can give us yet."""

    def __init__(self, msg: Message, error: serde.UnknownSchema) -> None:
        super().__init__(str(error))
        self.msg = msg
        self.error = error


#: Metadata request timeout and first / longest wait between checks for subscribed topics to exist.
TOPIC_METADATA_TIMEOUT_S = 5.0
TOPIC_WAIT_BACKOFF_S = (0.25, 5.0)


@dataclass
class LoopStats:
    handled: int = 0
    dead_lettered: int = 0


def nul_field(event: Any, path: str = "") -> str | None:
    """Where a decoded event holds a NUL character in text (field path), else None.

    Every consumer stores what it reads in Postgres, whose text and JSON types cannot hold NUL:
    such a message would fail the handler's (or after-batch) database write on every re-delivery,
    a crash loop under ``OnError.STOP``. No field of ours legitimately holds one, so it is refused
    here, before any handler runs, as bad input (dead-lettered). Walks text, nested records,
    sequences of text or records, and mapping keys/values; sequences of numbers or times (bar
    windows) are skipped after one look at their first item.
    """
    if isinstance(event, str):
        return (path or "text") if "\x00" in event else None
    if dataclasses.is_dataclass(event) and not isinstance(event, type):
        for f in dataclasses.fields(event):
            found = nul_field(getattr(event, f.name, None), f"{path}.{f.name}" if path else f.name)
            if found:
                return found
        return None
    if isinstance(event, tuple | list):
        if event and (isinstance(event[0], str) or dataclasses.is_dataclass(event[0])):
            for i, item in enumerate(event):
                found = nul_field(item, f"{path}[{i}]")
                if found:
                    return found
        return None
    if isinstance(event, Mapping):
        for key, item in event.items():
            found = nul_field(key, f"{path} key") or nul_field(item, f"{path}[{key!r}]")
            if found:
                return found
    return None


class ConsumerLoop:
    def __init__(
        self,
        settings: Settings,
        *,
        service: str,
        group_id: str,
        topics: list[str],
        handler: Handler,
        producer: EventProducer,
        expected: type | None = None,
        on_error: OnError = OnError.DEAD_LETTER,
        batch_size: int = 100,
        shutdown: GracefulShutdown | None = None,
        from_beginning: bool = True,
        after_batch: Callable[[], None] | None = None,
        extra_config: dict[str, Any] | None = None,
        poll_timeout: float = 0.05,
        heartbeat: bool = True,
        decoder: Callable[[bytes], Any] | None = None,
        on_unknown_schema: OnUnknownSchema = OnUnknownSchema.WAIT,
        schema_store: SchemaStore | None = None,
        schema_backoff: tuple[float, float] = (0.5, 30.0),
    ) -> None:
        # decoder: bytes -> event, raising serde.SerdeError for bad input (dead-lettered); default
        # is the generic serde.decode with ``expected``. Strategies pass the array bar decoder.
        # extra_config: e.g. group.instance.id (static membership) so a restarted singleton gets
        # its partitions back at once instead of waiting out the old session.
        # schema_store: where unknown fingerprints are looked up (default: the settings' database;
        # no connection is made until one is met). schema_backoff: first and longest wait (s).
        conf = consumer_config(settings, group_id, from_beginning=from_beginning) | (extra_config or {})
        self._conf = conf
        self._last_fenced = -FENCED_REPLACE_EVERY_S
        self._consumer = Consumer(conf)
        # Commits run on this worker so a wedged client (see _commit_offsets) cannot hang the loop.
        self._committer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kafka-commit")
        self._poll_timeout = poll_timeout
        self._topics = topics
        self._handler = handler
        self._producer = producer
        self._dlq = DeadLetterSink(settings, producer, service)
        self._expected = expected
        self._decode = decoder or self._decode_generic
        self._on_error = on_error
        self._batch_size = batch_size
        self._service = service
        self.shutdown = shutdown or GracefulShutdown()
        self._after_batch = after_batch
        self.stats = LoopStats()
        self._last_lag_check = 0.0
        self._heartbeat = Heartbeat(settings, service) if heartbeat else None
        self._last_msg_ts: float | None = None
        self._on_unknown_schema = on_unknown_schema
        self._schema_store = schema_store or SchemaStore.from_settings(settings)
        self._schema_backoff = schema_backoff
        self._schema_attempts = 0
        #: Why the loop is waiting on an unknown writer schema (None: it is not). Readiness reads it.
        self.waiting_for_schema: str | None = None
        #: Subscribed topics that do not exist yet, while :meth:`run` waits for them (None: it is not).
        self.waiting_for_topics: str | None = None
        self._topics_probe_watched = False

    @property
    def ready(self) -> bool:
        """False while the loop waits on an unknown writer schema (it makes no progress then)."""
        return self.waiting_for_schema is None

    def run(self, *, max_messages: int | None = None, idle_timeout: float | None = None) -> LoopStats:
        """Consume until shutdown, ``max_messages`` handled, or nothing arrived for ``idle_timeout`` s."""
        self._await_topics()
        if self.shutdown.requested:
            self._close()
            return self.stats
        self._consumer.subscribe(self._topics)
        log.info("consumer_started", topics=self._topics)
        last_activity = time.monotonic()
        try:
            while not self.shutdown.requested:
                if max_messages is not None and self.stats.handled + self.stats.dead_lettered >= max_messages:
                    break
                want = self._batch_size
                if max_messages is not None:
                    want = min(want, max_messages - self.stats.handled - self.stats.dead_lettered)
                batch = self._next_batch(want)
                HEARTBEAT.labels(self._service).set_to_current_time()
                HEALTH.beat()  # liveness: /healthz/live (common/health.py)
                self._beat()
                if not batch:
                    if idle_timeout is not None and time.monotonic() - last_activity > idle_timeout:
                        break
                    continue
                last_activity = time.monotonic()
                self._process_batch(batch)
                self._report_lag()
        finally:
            self._close()
        return self.stats

    def _missing_topics(self) -> list[str]:
        """Subscribed topics the broker does not list (yet); regex subscriptions are not checked."""
        wanted = [t for t in self._topics if not t.startswith("^")]
        if not wanted:
            return []
        missing = []
        for name in wanted:  # one request per topic: the broker may hold thousands of namespaces
            found = self._consumer.list_topics(name, timeout=TOPIC_METADATA_TIMEOUT_S).topics.get(name)
            if found is None or found.error is not None or not found.partitions:
                missing.append(name)
        return missing

    def _await_topics(self) -> None:
        """Wait, alive and not ready, until every subscribed topic exists; then subscribe.

        Why: librdkafka reports a subscribed topic that does not exist as the non-retriable
        ``UNKNOWN_TOPIC_OR_PART``, which the loop must treat as fatal once running (a topic deleted
        under a live consumer). At start-up it only means the topics job (``ops topics``, the replay
        or the emitter creating its namespace) has not run yet: a strategy pod started first used
        to exit and crash-loop with Kubernetes' growing back-off. It now waits, says which topics it
        waits for (log, ``/healthz/ready``), and starts the moment they exist.
        """
        delay = TOPIC_WAIT_BACKOFF_S[0]
        while not self.shutdown.requested:
            try:
                missing = self._missing_topics()
            except KafkaException as exc:  # the broker is not answering metadata: same wait
                missing = [f"(metadata unavailable: {exc})"]
            if not missing:
                if self.waiting_for_topics is not None:
                    log.info("consumer_topics_available", topics=self._topics)
                self.waiting_for_topics = None
                return
            why = ", ".join(missing)
            if why != self.waiting_for_topics:  # say it when it starts or changes, not every retry
                log.warning("consumer_waiting_for_topics", missing=missing, retry_in_s=delay)
            self.waiting_for_topics = why
            if not self._topics_probe_watched:
                self._topics_probe_watched = True
                HEALTH.watch("topics", self._topics_probe, every_s=1.0)
            deadline = time.monotonic() + delay
            while not self.shutdown.requested and time.monotonic() < deadline:
                HEALTH.beat()
                HEARTBEAT.labels(self._service).set_to_current_time()
                time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
            delay = min(TOPIC_WAIT_BACKOFF_S[1], delay * 2)

    def _topics_probe(self) -> None:
        """Readiness: red while :meth:`_await_topics` waits."""
        if self.waiting_for_topics is not None:
            raise RuntimeError(f"{self._service}: waiting for topics to exist: {self.waiting_for_topics}")

    def _next_batch(self, want: int) -> list[Message]:
        """Whatever is already fetched (up to ``want``), else wait for the first message only.

        librdkafka's ``consume(n, timeout)`` returns when ``n`` messages are there or the timeout
        passed, so asking for a batch with a timeout waited out the whole timeout whenever fewer
        than ``n`` messages came (every live tick). Here the wait ends at the first message; what
        arrived with it is taken without waiting, so batches still form under load.
        """
        batch = self._consumer.consume(num_messages=want, timeout=0)
        if batch:
            return batch
        batch = self._consumer.consume(num_messages=1, timeout=self._poll_timeout)
        if batch and want > 1:
            batch += self._consumer.consume(num_messages=want - 1, timeout=0)
        return batch

    def _process_batch(self, batch: list[Message]) -> None:
        done: list[Message] = []
        try:
            for i, msg in enumerate(batch):
                if self._is_transport_event(msg):
                    continue
                try:
                    self._process_one(msg)
                except _SchemaWait as wait:
                    # Nothing from here on is committed; fetch it all again after the wait.
                    self._rewind(batch[i:])
                    self._wait_for_schema(wait)
                    break
                done.append(msg)
        finally:
            # Commit what is fully done even when a later message stops the loop.
            if done:
                self._producer.flush()
                if self._after_batch is not None:
                    self._after_batch()
                self._commit(done)

    def dead_letter(self, msg: Message, reason: str, error_type: str) -> None:
        """Dead-letter a message the handler accepted but the after-batch step could not process
        (a handler that answers per batch); it is counted as dead-lettered instead of handled."""
        self._dlq.send(msg, reason, error_type)
        self.stats.dead_lettered += 1
        self.stats.handled -= 1

    def _is_transport_event(self, msg: Message) -> bool:
        err = msg.error()
        if err is None:
            return False
        if err.code() == KafkaError._PARTITION_EOF:
            return True
        if err.fatal() or not err.retriable():
            raise KafkaException(err)
        log.warning("consumer_transient_error", error=str(err))
        return True

    def _process_one(self, msg: Message) -> None:
        topic = msg.topic() or "?"
        started = time.perf_counter()
        try:
            event = self._decode_resolving(msg.value() or b"")
        except serde.UnknownSchema as exc:
            claimed = self._claimed_schema(msg)
            if claimed is None:
                # Not a message of ours at all (no producer of this system leaves out the header):
                # random bytes that happen to start with the magic must not block the loop.
                why = f"{exc}; no 'schema' header naming a type this service reads: not one of our messages"
                self._dlq.send(msg, why, "SerdeError")
                self.stats.dead_lettered += 1
                return
            UNKNOWN_SCHEMA.labels(self._service, topic).inc()
            if self._on_unknown_schema is OnUnknownSchema.WAIT:
                raise _SchemaWait(msg, exc) from exc
            self._dlq.send(msg, str(exc), "UnknownSchema")
            self.stats.dead_lettered += 1
            return
        except serde.SerdeError as exc:
            self._dlq.send(msg, str(exc), "SerdeError")
            self.stats.dead_lettered += 1
            return
        if self.waiting_for_schema is not None:
            self._schema_resolved(msg)  # decoded: whatever the handler says, the wait is over
        where = nul_field(event)
        if where is not None:
            self._dlq.send(msg, f"invalid value: NUL character in {where}", "SerdeError")
            self.stats.dead_lettered += 1
            return
        try:
            self._handler(event, msg)
        except PoisonMessage as exc:
            self._dlq.send(msg, str(exc), "PoisonMessage")
            self.stats.dead_lettered += 1
            return
        except Exception as exc:
            if self._on_error is OnError.STOP:
                log.error("handler_failed_stopping", topic=topic, offset=msg.offset(), error=repr(exc))
                raise
            reason = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}"
            self._dlq.send(msg, reason, type(exc).__name__)
            self.stats.dead_lettered += 1
            return
        ts_type, ts_ms = msg.timestamp()
        if ts_type and ts_ms > 0:
            self._last_msg_ts = ts_ms / 1000.0
        MESSAGES_CONSUMED.labels(self._service, topic).inc()
        HANDLE_SECONDS.labels(self._service, topic).observe(time.perf_counter() - started)
        self.stats.handled += 1

    def _decode_generic(self, data: bytes) -> Any:
        return serde.decode(data, self._expected)

    def _claimed_schema(self, msg: Message) -> str | None:
        """The record name the producer's ``schema`` header claims, if it is one this loop reads.

        Every producer of this system sets the header (``EventProducer``); it is what tells a
        newer contract version of a message we read (wait for it) from garbage (dead-letter it).
        """
        raw_headers = cast(list[tuple[str, Any]], msg.headers() or [])
        for key, value in raw_headers:
            if key != "schema" or value is None:
                continue
            name = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
            if name not in serde.load_schema_set().current:
                return None
            if self._expected is not None and name != getattr(self._expected, "SCHEMA_NAME", None):
                return None
            return name
        return None

    def _decode_resolving(self, data: bytes) -> Any:
        """Decode; on a fingerprint this build does not ship, learn it from the store and retry once."""
        try:
            return self._decode(data)
        except serde.UnknownSchema as exc:
            if serde.learned_schemas().get(exc.fingerprint) is not None:
                raise  # learned already, still unreadable: a newer reader must read it
            try:
                learned = self._schema_store.resolve(exc.fingerprint)
            except serde.SerdeError as bad:
                # A store row that does not hash to its key or names a type we do not read: the
                # message itself may be fine; a human must look, so wait (and say why) instead.
                why = f"{exc}; schema store entry refused: {bad}"
                raise serde.UnknownSchema(why, exc.fingerprint) from bad
            except Exception as down:
                raise serde.UnknownSchema(
                    f"{exc}; schema store unreachable: {type(down).__name__}: {down}", exc.fingerprint
                ) from down
            if learned is None:
                raise serde.UnknownSchema(f"{exc}; not in the schema store either", exc.fingerprint) from exc
        return self._decode(data)

    def _rewind(self, rest: list[Message]) -> None:
        """Seek each partition back to its first message not handled, so none is skipped."""
        first: dict[tuple[str, int], int] = {}
        for msg in rest:
            if msg.error() is not None:
                continue
            tp = (msg.topic() or "", msg.partition() or 0)
            first[tp] = min(first.get(tp, msg.offset() or 0), msg.offset() or 0)
        for (topic, partition), offset in first.items():
            self._consumer.seek(TopicPartition(topic, partition, offset))

    def _wait_for_schema(self, wait: _SchemaWait) -> None:
        """Back off (exponentially, capped) without committing, reporting not ready meanwhile."""
        base, cap = self._schema_backoff
        delay = min(cap, base * (2 ** min(self._schema_attempts, 20)))
        self._schema_attempts += 1
        why = f"{self._service}: {wait.error}"
        self.waiting_for_schema = str(wait.error)
        with _WAITS_LOCK:
            _WAITS[id(self)] = why
        UNKNOWN_SCHEMA_WAITING.labels(self._service).set(1)
        log.warning(
            "unknown_schema_waiting",
            topic=wait.msg.topic(),
            partition=wait.msg.partition(),
            offset=wait.msg.offset(),
            fingerprint=wait.error.fingerprint.hex(),
            attempt=self._schema_attempts,
            retry_in_s=delay,
            reason=str(wait.error),
        )
        deadline = time.monotonic() + delay
        while not self.shutdown.requested and time.monotonic() < deadline:
            # Alive (a restart would not help: the schema must come from the store or a deploy),
            # just not ready (unknown_schema_waits / schema_probe).
            HEALTH.beat()
            HEARTBEAT.labels(self._service).set_to_current_time()
            self._beat()
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))

    def _schema_resolved(self, msg: Message) -> None:
        log.info(
            "unknown_schema_resolved",
            topic=msg.topic(),
            offset=msg.offset(),
            attempts=self._schema_attempts,
        )
        self._clear_schema_wait()

    def _clear_schema_wait(self) -> None:
        self.waiting_for_schema = None
        self._schema_attempts = 0
        with _WAITS_LOCK:
            _WAITS.pop(id(self), None)
        UNKNOWN_SCHEMA_WAITING.labels(self._service).set(0)

    def _commit(self, done: list[Message]) -> None:
        latest: dict[tuple[str, int], int] = {}
        for msg in done:
            tp = (msg.topic() or "", msg.partition() or 0)
            latest[tp] = max(latest.get(tp, -1), msg.offset() or 0)
        offsets = [TopicPartition(t, p, off + 1) for (t, p), off in latest.items()]
        self._commit_offsets(offsets)

    def _commit_offsets(self, offsets: list[TopicPartition]) -> None:
        """Commit synchronously, riding out a broker that is busy or just came back.

        After a broker outage the group coordinator answers "load in progress" / "not coordinator"
        for a while: those are retried (backing off, beating liveness) for up to
        ``COMMIT_RETRY_S``. When the group has moved on meanwhile (this member was evicted: unknown
        member, illegal generation, rebalance in progress) the commit cannot succeed any more; the
        partitions go to whoever joins next, which re-reads from the last committed offset. That
        re-delivery is the at-least-once case every handler already absorbs (deterministic output
        ids, idempotent book), so it is logged and counted, not fatal. Anything else still raises.
        """

        def _retry(exc: BaseException) -> bool:
            return _commit_error_kind(exc) == "retry" and not self.shutdown.requested

        def _beat(state: RetryCallState) -> None:
            HEALTH.beat()
            exc = state.outcome.exception() if state.outcome is not None else None
            log.warning("commit_retry", attempt=state.attempt_number, error=str(exc))

        try:
            for attempt in Retrying(
                retry=retry_if_exception(_retry),
                wait=wait_exponential(multiplier=0.2, max=5.0),
                stop=stop_after_delay(COMMIT_RETRY_S),
                before_sleep=_beat,
                reraise=True,
            ):
                with attempt:
                    self._commit_once(offsets)
        except _CommitWedged:
            self._replace_wedged_client(offsets, why="commit_timeout")
        except KafkaException as exc:
            kind = _commit_error_kind(exc, static_member="group.instance.id" in self._conf)
            if kind == "nothing":
                return
            if kind == "fenced":
                now = time.monotonic()
                if now - self._last_fenced < FENCED_REPLACE_EVERY_S:
                    # Fenced again at once: another live process holds this static id. Two
                    # consumers must not take turns; stop and let the operator see why.
                    log.error(
                        "consumer_fenced_twice",
                        error=str(exc),
                        note="another consumer uses the same group.instance.id",
                    )
                    raise
                self._last_fenced = now
                self._replace_wedged_client(offsets, why="fenced")
                return
            if kind != "lost":
                raise
            COMMITS_LOST.labels(self._service).inc()
            log.warning(
                "commit_lost_to_rebalance",
                error=str(exc),
                offsets={f"{tp.topic}[{tp.partition}]": tp.offset for tp in offsets},
                note="partitions re-read from the last committed offset; handlers are idempotent",
            )

    def _commit_once(self, offsets: list[TopicPartition]) -> None:
        """One synchronous commit, waited on for at most ``COMMIT_TIMEOUT_S``.

        librdkafka's synchronous commit has no timeout: when the client's connection to the group
        coordinator never comes back after a broker stall (seen in the chaos suite: requests sit
        in the coordinator's out-queue for good while every other client of the broker recovered)
        it waits forever. Waiting on a worker thread bounds that.
        """
        future = self._committer.submit(self._consumer.commit, offsets=offsets, asynchronous=False)
        deadline = time.monotonic() + COMMIT_TIMEOUT_S
        while True:
            try:
                future.result(timeout=1.0)
                return
            except FutureTimeout:
                HEALTH.beat()  # waiting on the broker, not hung in our own code
                if time.monotonic() > deadline:
                    raise _CommitWedged from None

    def _replace_wedged_client(self, offsets: list[TopicPartition], *, why: str) -> None:
        """Drop a client whose commit never returns (or whose static membership was fenced, which
        leaves the handle unusable) and join the group again with a fresh one.

        The stuck client cannot be closed (close waits on the same coordinator), so it is parked,
        never used again; its membership expires and the fresh client is assigned the partitions,
        reading from the last committed offset. What this loop handled since then is re-delivered
        and absorbed by the idempotent handlers, as after a crash.
        """
        COMMITS_LOST.labels(self._service).inc()
        log.error(
            "kafka_client_replaced",
            why=why,
            timeout_s=COMMIT_TIMEOUT_S,
            offsets={f"{tp.topic}[{tp.partition}]": tp.offset for tp in offsets},
        )
        old = self._consumer
        _PARKED.append((old, self._committer))
        # Leave the group on the way out (in the background: on a wedged client it may block too),
        # so the fresh client is not kept waiting for the old member's session to expire.
        threading.Thread(target=_leave_quietly, args=(old,), name="kafka-leave", daemon=True).start()
        self._committer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kafka-commit")
        self._consumer = Consumer(self._conf)
        self._consumer.subscribe(self._topics)

    def _beat(self) -> None:
        """Liveness row for the bridge: seconds behind = age of the last message while a backlog exists."""
        if self._heartbeat is None or not self._heartbeat.due():
            return
        backlog = 0
        for tp in self._consumer.assignment():
            _low, high = self._consumer.get_watermark_offsets(tp, timeout=1.0, cached=True)
            pos = self._consumer.position([tp])[0].offset
            if pos >= 0 and high >= 0:
                backlog += max(0, high - pos)
        behind = (
            0.0 if backlog == 0 or self._last_msg_ts is None else max(0.0, time.time() - self._last_msg_ts)
        )
        self._heartbeat.beat(
            behind,
            {
                "backlog_messages": backlog,
                "handled": self.stats.handled,
                "dead_lettered": self.stats.dead_lettered,
                "topics": self._topics,
                "waiting_for_schema": self.waiting_for_schema,
            },
        )

    def _report_lag(self) -> None:
        now = time.monotonic()
        if now - self._last_lag_check < 5.0:
            return
        self._last_lag_check = now
        for tp in self._consumer.assignment():
            _low, high = self._consumer.get_watermark_offsets(tp, timeout=1.0, cached=True)
            pos = self._consumer.position([tp])[0].offset
            if pos >= 0 and high >= 0:
                CONSUMER_LAG.labels(self._service, tp.topic).set(max(0, high - pos))

    def _close(self) -> None:
        self._clear_schema_wait()
        try:
            self._producer.flush()
        finally:
            self._consumer.close()
            self._committer.shutdown(wait=False)
            log.info("consumer_stopped", handled=self.stats.handled, dead_lettered=self.stats.dead_lettered)
