"""Chaos: the whole pipeline trading the Kraken Futures stand-in on a bad day, under SIGKILLs and
frozen infrastructure.

Every service runs as its own process, exactly as deployed (``python -m <service>``): the tick
emitter replaying >= 1,000 hourly ticks, the five strategy consumers, the meta consumer, the
executor (``BTCMETA_EXCHANGE__MODE=kraken``: the real CCXT client against
``tests/standin/kraken_futures.py``, with delayed and partial fills, a lagging fill history and
random 429/5xx/lost answers) and the bridge. While it runs, at progress points drawn from a seeded
RNG, each kind of service is SIGKILLed and restarted (as Kubernetes would), the executor once
deliberately while the venue holds back the answer to an order it already executed (so the
restart must adopt it), and Postgres and then Kafka are frozen with SIGSTOP for 30 s each.

What must hold afterwards:

* every tick published is decided exactly once: one decision row per tick, and on the intents
  topic one distinct intent id per tick (a re-sent intent is the same id: at-least-once transport);
* nothing lost: every decision's intent has exactly one row in the executor's book, none refused
  because venue and book disagreed, and every intent got a report;
* nothing duplicated: no client order id was executed twice on the venue;
* positions = sum of fills: book position == sum of the book's fills == venue position == sum of
  the venue's fills, and per client order id the book's fills add up to the venue's;
* an adoption/recovery actually happened (the executor's own log lines say so);
* every service's ``/healthz/ready`` went red during the outage of a dependency it watches and
  green again afterwards, with no restart: no process died that the test did not kill.

Runs against the broker and database of ``infra/dev.sh`` (``BTCMETA_STATE_DIR``,
``BTCMETA_KAFKA_PORT``, ``BTCMETA_PG_PORT`` select another instance), which it freezes: run it
alone (``pytest -m chaos``), never next to tests sharing those servers.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from sqlalchemy import Engine, func, select

from common import serde
from common.db.models import Decision, Fill, Intent, Order
from common.db.session import make_engine, session_scope
from common.events import ExecutionReport, IntentAction, OrderIntent, TickPlan
from common.ids import make_tick_id
from common.kafka.configuration import admin_config, consumer_config
from common.kafka.producer import EventProducer
from common.kafka.topics import (
    EXECUTIONS,
    INTENTS,
    TICKS,
    delete_topics_with_prefix,
    ensure_topics,
    topic_specs,
)
from common.registry import load_registry
from config import Settings, load_settings
from executor import book
from ops.pipeline import service_env
from tests.conftest import REPO
from tests.standin.kit import SYMBOL, fills_position
from tests.standin.kraken_futures import BadDay, KrakenFuturesStandIn

pytestmark = [pytest.mark.chaos, pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]

SEED = 20261205
#: 1,050 hourly ticks (inclusive ends), clear of the strategies' longest lookback in the bundled data.
START = datetime(2022, 5, 22, 2, tzinfo=UTC)
END = START + timedelta(hours=1049)
OUTAGE_S = 30.0
#: Ticks per second the replay publishes: about what the Kraken-path executor handles here, so
#: the emitter runs (and can be killed) while the rest of the pipeline works.
REPLAY_SPEED = 12.0
#: SIGKILLs per kind of service, at random progress points (plus one targeted executor kill).
KILLS = {"strategy": 3, "meta_consumer": 2, "executor": 3, "tick_emitter": 2, "bridge": 2}
STATE_DIR = Path(os.environ.get("BTCMETA_STATE_DIR") or REPO / ".local")
API_KEY = base64.b64encode(os.urandom(24)).decode()
API_SECRET = base64.b64encode(os.urandom(64)).decode()
VIEWER = f"chaos:{uuid.uuid4().hex}"
#: Which services watch which dependency (``common.health.start`` in each entry point).
WATCHES = {
    "strategy": {"kafka"},
    "meta_consumer": {"kafka", "postgres"},
    "executor": {"kafka", "postgres"},
    "tick_emitter": {"kafka", "postgres"},
    "bridge": {"kafka", "postgres"},
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------ processes


@dataclass
class Service:
    name: str
    kind: str
    argv: list[str]
    metrics_port: int
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = None
    kills: int = 0
    #: Exits the test did not cause (a crash; the supervisor restarts it like Kubernetes would).
    crashes: list[int] = field(default_factory=list)
    restarted_at: float = 0.0
    finished: bool = False  # a job (the replay) that exited 0

    def start(self) -> None:
        self.log = self.log_path.open("ab")
        env = self.env | {"BTCMETA_METRICS_PORT": str(self.metrics_port)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", *self.argv], cwd=REPO, env=env, stdout=self.log, stderr=subprocess.STDOUT
        )
        self.restarted_at = time.monotonic()

    def kill(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:  # exited meanwhile (the replay finishing): nothing to kill
            self.check()
            return
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.kills += 1
        self.start()

    def check(self) -> None:
        """Restart a process that died on its own (recorded: the test asserts there were none)."""
        assert self.proc is not None
        code = self.proc.poll()
        if code is None or self.finished:
            return
        if code == 0 and self.kind == "tick_emitter":
            self.finished = True
            return
        self.crashes.append(code)
        self.start()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.log is not None:
            self.log.close()

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")


def _pids_of_postgres() -> list[int]:
    """The postmaster (from its pid file) and every child of it: freezing only the postmaster
    would leave the backends serving established connections."""
    master = int((STATE_DIR / "pg" / "data" / "postmaster.pid").read_text().split()[0])
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        if int(text[text.rindex(")") + 2 :].split()[1]) == master:
            children.append(int(stat.parent.name))
    return [master, *children]


def _pids_of_kafka() -> list[int]:
    return [int((STATE_DIR / "kafka" / "kafka.pid").read_text().strip())]


def _freeze(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


# ------------------------------------------------------------------ readiness watcher


class HealthWatch:
    """Polls every service's /healthz/ready and /healthz/live every second, in a thread."""

    def __init__(self, services: list[Service]) -> None:
        self.services = services
        self.samples: list[tuple[float, str, bool, bool]] = []  # (t, service, live, ready)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _ok(port: int, path: str) -> bool | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=1.0) as r:
                return bool(r.status == 200)
        except urllib.error.HTTPError as exc:
            return False if exc.code == 503 else None
        except OSError:
            return None  # not listening (starting, or just killed): no evidence either way

    def _sample(self, svc: Service) -> None:
        live = self._ok(svc.metrics_port, "/healthz/live")
        ready = self._ok(svc.metrics_port, "/healthz/ready")
        if live is not None and ready is not None:
            self.samples.append((time.monotonic(), svc.name, live, ready))

    def _run(self) -> None:
        # All services at once: probed one after the other, 18 busy processes on 2 cores took up to
        # a minute per round, and all_ready() (which needs a fresh sample of each) waited that long.
        with ThreadPoolExecutor(max_workers=len(self.services), thread_name_prefix="healthwatch") as pool:
            while not self._stop.wait(1.0):
                list(pool.map(self._sample, self.services))

    def __enter__(self) -> HealthWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def all_ready(self, services: list[Service], timeout: float, during: Callable[[], None]) -> None:
        """Wait until every running service's latest sample, taken after now, says ready;
        ``during`` runs every 0.5 s meanwhile (the schedule's progress-driven kills go on)."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            latest = {n: ready for t, n, _live, ready in self.samples if t > t0}
            if all(latest.get(s.name) for s in services if not s.finished):
                return
            time.sleep(0.5)
            during()
        latest = {n: ready for t, n, _live, ready in self.samples if t > t0}
        pytest.fail(f"services not ready after {timeout:.0f}s: {latest}")

    def between(self, name: str, t0: float, t1: float) -> list[tuple[bool, bool]]:
        return [(live, ready) for t, n, live, ready in self.samples if n == name and t0 <= t <= t1]


# ------------------------------------------------------------------ reading back


def _read_topic(settings: Settings, topic: str, decode: Callable[[bytes], Any]) -> list[Any]:
    """Everything on ``topic`` from the beginning (every partition) until its end."""
    conf = consumer_config(settings, f"chaos-reader-{uuid.uuid4().hex[:8]}") | {"enable.partition.eof": True}
    consumer = Consumer(conf)
    consumer.subscribe([topic])
    out: list[Any] = []
    parts = len(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
    eof: set[int] = set()
    deadline = time.monotonic() + 60
    try:
        while len(eof) < parts and time.monotonic() < deadline:
            for msg in consumer.consume(500, timeout=0.5):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        eof.add(msg.partition() or 0)
                    continue
                eof.discard(msg.partition() or 0)
                out.append(decode(msg.value() or b""))
    finally:
        consumer.close()
    return out


class Watermark:
    """How many messages a single-partition topic holds (its high watermark)."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self._consumer = Consumer(consumer_config(settings, f"chaos-watermark-{uuid.uuid4().hex[:8]}"))
        self._tp = TopicPartition(topic, 0)
        self._last = 0

    def published(self) -> int:
        with contextlib.suppress(KafkaException):  # busy or frozen broker: the last count will do
            self._last = int(self._consumer.get_watermark_offsets(self._tp, timeout=5)[1])
        return self._last


def _tick_ids(settings: Settings) -> set[str]:
    plans = _read_topic(settings, settings.topic(TICKS), lambda b: serde.decode(b, TickPlan))
    return {p.tick_id for p in plans}


def _count(engine: Engine, model: Any, ns: str) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(model).where(model.namespace == ns)) or 0)


# ------------------------------------------------------------------ the test


#: The seven price strategies (the five hourly ones, a 4h and a 1d one). With all fourteen
#: registered strategies the majority vote is flat on every tick of this window: the executor
#: placed no order at all and the venue-side checks (adoption, positions = fills) held vacuously.
STRATEGIES = (
    "volatility_system",
    "supertrend",
    "fsupertrend",
    "ott",
    "bband_rsi",
    "vwap_reversion",
    "ma_trend",
)


@pytest.fixture
def chaos_settings(pipeline_env: str, kafka_bootstrap: str, tmp_path: Path) -> Iterator[Settings]:
    prefix = f"chaos.{uuid.uuid4().hex[:8]}."
    registry = json.loads((REPO / "strategies_registry.json").read_text())
    for entry in registry["strategies"]:
        entry["enabled"] = entry["name"] in STRATEGIES
    registry_path = tmp_path / "strategies_registry.json"
    registry_path.write_text(json.dumps(registry))
    settings = load_settings(
        min_timeframe="1h",
        database_url=pipeline_env,
        kafka={"bootstrap_servers": kafka_bootstrap, "topic_prefix": prefix},
        registry_path=str(registry_path),
    )
    admin = AdminClient(admin_config(settings))
    # Only the 1h topics: the 4h and 1d strategies start before the replay creates theirs, as a
    # strategy pod may start before `ops topics` ran (they must wait for them, not exit).
    ensure_topics(admin, topic_specs(settings, ["1h"]))
    yield settings
    delete_topics_with_prefix(admin, prefix)


def test_pipeline_survives_kills_and_outages(chaos_settings: Settings, tmp_path: Path) -> None:
    settings = chaos_settings
    prefix = settings.kafka.topic_prefix
    rng = random.Random(SEED)
    engine = make_engine(
        settings.database_url.get_secret_value(), connect_timeout_s=3, statement_timeout_ms=10_000
    )
    names = [s.name for s in load_registry(settings.registry_path, import_classes=False).enabled]
    assert sorted(names) == sorted(STRATEGIES)
    bad_day = BadDay(
        fill_delay_requests=2,
        partial_fraction=0.5,
        history_lag_requests=1,
        fault_rate=0.02,
        fault_kinds=("429", "rate_limit", "unavailable", "500", "lost", "lost_before"),
        seed=SEED,
    )
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    with KrakenFuturesStandIn(API_KEY, delay_s=4.0, bad_day=bad_day) as venue:
        env = (
            os.environ
            | {"PYTHONPATH": str(REPO)}
            | service_env(prefix)
            | {
                "BTCMETA_DATABASE_URL": settings.database_url.get_secret_value(),
                "BTCMETA_REGISTRY_PATH": settings.registry_path,
                "BTCMETA_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
                "BTCMETA_EXCHANGE__MODE": "kraken",
                "BTCMETA_EXCHANGE__API_KEY": API_KEY,
                "BTCMETA_EXCHANGE__API_SECRET": API_SECRET,
                "BTCMETA_EXCHANGE__BASE_URL": venue.base_url,
                "BTCMETA_EXECUTOR__CCXT_RATE_LIMIT_MS": "5",  # the stand-in has no 600 ms rate limit
                "BTCMETA_RISK__MAX_POSITION_BTC": "1.0",
                "BTCMETA_RISK__MAX_ORDER_BTC": "0.5",
                "BTCMETA_RISK__MAX_ORDERS_PER_HOUR": "100000",
                "BTCMETA_RISK__DAILY_LOSS_CAP_USD": "10000000",
                "BTCMETA_BRIDGE__VIEWER_TOKENS": json.dumps([VIEWER]),
                "BTCMETA_LOG_LEVEL": "INFO",
                "BTCMETA_LOG_JSON": "true",
            }
        )
        bridge_port = _free_port()
        groups = [a for n in names for a in ("--group", f"{prefix}strategy.{n}")]
        replay_args = [
            "tick_emitter",
            "replay",
            "--start",
            START.isoformat(),
            "--end",
            END.isoformat(),
            "--prefix",
            prefix,
            "--max-ahead",
            "24",
            "--speed",
            str(REPLAY_SPEED),
            *groups,
        ]

        def svc(name: str, kind: str, argv: list[str]) -> Service:
            return Service(name, kind, argv, _free_port(), env, log_dir / f"{name}.log")

        services = [svc(f"strategy.{n}", "strategy", ["strategy_consumers", "run", n]) for n in names]
        services += [
            svc("meta_consumer", "meta_consumer", ["meta_consumer", "run"]),
            svc("executor", "executor", ["executor", "run"]),
            svc("bridge", "bridge", ["bridge", "run", "--port", str(bridge_port)]),
            svc("tick_emitter", "tick_emitter", replay_args),
        ]
        by_name = {s.name: s for s in services}
        planned = int((END - START).total_seconds() // 3600) + 1  # for the schedule; the topic decides

        # The schedule, by progress (ticks decided): SIGKILLs at random points, kept clear of the
        # two outages. The tick emitter is killed by TickPlans published since its (re)start
        # instead: a restarted replay publishes every tick again from the first, and the rest of
        # the pipeline must ignore the repeats.
        events: list[tuple[float, str, str]] = [
            (0.30, "outage", "postgres"),
            (0.60, "outage", "kafka"),
            (rng.uniform(0.42, 0.5), "adopt", "executor"),
        ]
        emitter_kills = [rng.randint(100, 700) for _ in range(KILLS["tick_emitter"])]  # TickPlans in
        for kind, n in KILLS.items():
            if kind == "tick_emitter":
                continue
            lo, hi = 0.05, 0.9
            for _ in range(n):
                at = rng.uniform(lo, hi)
                while any(abs(at - o) < 0.06 for o, what, _ in events if what != "kill"):
                    at = rng.uniform(lo, hi)
                target = rng.choice([s.name for s in services if s.kind == kind])
                events.append((at, "kill", target))
        events.sort()

        outages: dict[str, tuple[float, float]] = {}
        started = time.monotonic()
        try:
            for s in services:
                s.start()
            with HealthWatch(services) as watch:
                decided, expected = 0, -1
                plans = Watermark(settings, settings.topic(TICKS))
                emitter_base = [plans.published()]

                def kill_emitter_when_due() -> None:
                    """The emitter's kills count TickPlans, not decisions: checked between all other
                    steps too (a readiness wait or a frozen Postgres would let the replay finish)."""
                    emitter = by_name["tick_emitter"]
                    due = emitter_kills and not emitter.finished
                    if due and plans.published() - emitter_base[0] >= emitter_kills[0]:
                        emitter_kills.pop(0)
                        emitter.kill()
                        emitter_base[0] = plans.published()

                deadline = started + 600
                while events or emitter_kills or decided != expected:
                    assert time.monotonic() < deadline, f"{decided}/{expected} decided, left: {events}"
                    for s in services:
                        s.check()
                    decided = _count(engine, Decision, prefix)
                    if by_name["tick_emitter"].finished and expected < 0:
                        expected = len(_tick_ids(settings))
                    emitter = by_name["tick_emitter"]
                    if emitter_kills and emitter.finished:
                        pytest.fail(f"the replay finished before its {len(emitter_kills)} SIGKILL(s)")
                    kill_emitter_when_due()
                    while events and decided >= events[0][0] * planned:
                        _at, what, target = events.pop(0)
                        if what == "kill":
                            if not by_name[target].finished:
                                by_name[target].kill()
                        elif what == "adopt":
                            _kill_while_venue_answers_late(venue, by_name["executor"], kill_emitter_when_due)
                        else:
                            # Everyone up first (a kill just before would only test start-up).
                            watch.all_ready(services, timeout=120, during=kill_emitter_when_due)
                            # (a frozen broker cannot take TickPlans: nothing to count then)
                            during = kill_emitter_when_due if target == "postgres" else (lambda: None)
                            outages[target] = _outage(target, services, during=during)
                    time.sleep(0.5)
                intents_deadline = time.monotonic() + 300
                while _count(engine, Intent, prefix) < expected:
                    assert time.monotonic() < intents_deadline, "the executor did not catch up"
                    for s in services:
                        s.check()
                    time.sleep(0.5)
                # Owed fills (delayed, partial, lagging history) arrive; one more intent makes the
                # executor reconcile (and repair) once more, so book and venue can be compared.
                venue.set_bad_day(
                    fault_rate=0.0, fill_delay_requests=0, partial_fraction=1.0, history_lag_requests=0
                )
                venue.release_fills()
                with session_scope(engine) as db:
                    last = db.scalars(
                        select(Decision)
                        .where(Decision.namespace == prefix)
                        .order_by(Decision.tick_id.desc())
                        .limit(1)
                    ).one()
                final = OrderIntent.create(
                    tick_id=make_tick_id(SYMBOL, END + timedelta(hours=1)),
                    model_id="chaos-final",
                    symbol=SYMBOL,
                    action=IntentAction.HOLD,
                    current_exposure=last.target_exposure,
                    target_exposure=last.target_exposure,
                    created_at=END + timedelta(hours=1),
                )
                producer = EventProducer(settings, "chaos-test")
                producer.send(settings.topic(INTENTS), final, key=final.intent_id)
                producer.flush()
                while _count(engine, Intent, prefix) < expected + 1:
                    assert time.monotonic() < intents_deadline, "the executor did not handle the final intent"
                    time.sleep(0.5)
                recovered_by = time.monotonic()
                time.sleep(3.0)  # a last round of health samples, all green
        finally:
            for s in services:
                s.stop()
        elapsed = time.monotonic() - started
        snap = venue.snapshot()
        venue_fills = list(venue.state.fills)

    logs = {s.name: s.text() for s in services}

    # --- services resumed by themselves: nothing died that the test did not kill
    crashed = {s.name: s.crashes for s in services if s.crashes}
    assert not crashed, {n: logs[n][-3000:] for n in crashed}

    # --- every tick decided exactly once
    ticks = _tick_ids(settings)
    assert len(ticks) == expected >= 1_000
    with session_scope(engine) as db:
        decisions = db.execute(select(Decision.tick_id).where(Decision.namespace == prefix)).scalars().all()
    assert len(decisions) == len(set(decisions)) == expected and set(decisions) == ticks
    intents = _read_topic(settings, settings.topic(INTENTS), lambda b: serde.decode(b, OrderIntent))
    ids_per_tick: dict[str, set[str]] = defaultdict(set)
    for i in intents:
        ids_per_tick[i.tick_id].add(i.intent_id)
    assert set(ids_per_tick) == ticks | {final.tick_id}
    twice = {t: v for t, v in ids_per_tick.items() if len(v) != 1}
    assert not twice, list(twice.items())[:3]
    distinct = {i.intent_id for i in intents}
    resent = len(intents) - len(distinct)

    # --- nothing lost: one book row per intent, none refused for an unexplained venue
    with session_scope(engine) as db:
        rows = db.execute(
            select(Intent.intent_id, Intent.status, Intent.reason).where(Intent.namespace == prefix)
        ).all()
    assert {r[0] for r in rows} == distinct and len(rows) == len(distinct)
    unexplained = [r for r in rows if (r[2] or "").startswith("reconcile")]
    assert not unexplained, unexplained[:3]
    reports = _read_topic(settings, settings.topic(EXECUTIONS), lambda b: serde.decode(b, ExecutionReport))
    assert {r.intent_id for r in reports} == distinct
    traded = Counter(r[1] for r in rows)
    assert traded["FILLED"] + traded["PARTIALLY_FILLED"] > 0, traded
    # The venue-side checks below mean something only if the pipeline traded (the seven price
    # strategies' majority vote changes ~20 times over this window; 0 orders was the 14-strategy run).
    assert snap["sendorder_executions"] >= 10, (
        f"the scenario barely traded: {snap['sendorder_executions']} orders"
    )

    # --- nothing placed twice on the venue; positions = sum of fills, book and venue alike
    assert snap["executions_by_cid"] and max(snap["executions_by_cid"].values()) == 1
    assert snap["pending_fills"] == 0 and snap["open_orders"] == 0
    with session_scope(engine) as db:
        held = book.load_holding(db, prefix, SYMBOL).quantity
        ours = dict(
            db.execute(
                select(Order.client_order_id, func.coalesce(func.sum(Fill.quantity), 0.0))
                .join(
                    Fill,
                    (Fill.namespace == Order.namespace) & (Fill.client_order_id == Order.client_order_id),
                    isouter=True,
                )
                .where(Order.namespace == prefix)
                .group_by(Order.client_order_id)
            ).all()
        )
    theirs: dict[str, float] = defaultdict(float)
    for f in venue_fills:
        theirs[f["cliOrdId"]] += float(f["size"])
    assert {c: round(q, 8) for c, q in ours.items() if q} == {c: round(q, 8) for c, q in theirs.items()}
    assert held == pytest.approx(fills_position(engine, prefix), abs=1e-9)
    assert held == pytest.approx(snap["position"], abs=1e-9)
    assert snap["position"] == pytest.approx(snap["fills_position"], abs=1e-9)

    # --- a recovery was actually exercised (the executor's own words), and the meta consumer resumed
    ex_log = logs["executor"]
    recovery = {
        e: ex_log.count(f'"{e}"') for e in ("adopting_orders", "order_already_on_venue", "reconcile_repaired")
    }
    assert sum(recovery.values()) >= 1, recovery
    assert logs["meta_consumer"].count('"meta_consumer_recovered"') >= 1 + by_name["meta_consumer"].kills

    # --- readiness: red during each outage for every service watching that dependency, green after
    assert set(outages) == {"postgres", "kafka"}
    for dep, (t0, t1) in outages.items():
        for s in services:
            if dep not in WATCHES[s.kind]:
                continue
            samples = watch.between(s.name, t0, t1)
            if s.kind == "tick_emitter" and not samples:
                continue  # the replay had already published every tick: it was not running
            assert any(not ready for _live, ready in samples), (dep, s.name, samples[-5:])
    for s in services:
        if s.kind == "tick_emitter":
            continue
        tail = watch.between(s.name, recovered_by, recovered_by + 10)
        assert tail and all(live and ready for live, ready in tail), (s.name, tail[-3:])

    kills = Counter(s.kind for s in services for _ in range(s.kills))
    print(
        f"\nchaos: {expected} ticks, {len(distinct)} intents ({resent} re-sent on the topic), "
        f"kills {dict(kills)} (+1 targeted executor kill), outages "
        f"{ {d: round(t1 - t0, 1) for d, (t0, t1) in outages.items()} } s, "
        f"lost 0, duplicated 0, recovery {recovery}, statuses {dict(traded)}, "
        f"venue {snap['sendorder_executions']} orders / {snap['fills']} fills, "
        f"faults {snap['faults_served']}, "
        f"position {held:g} BTC, {elapsed:.0f}s"
    )


def _kill_while_venue_answers_late(
    venue: KrakenFuturesStandIn, executor: Service, during: Callable[[], None]
) -> None:
    """SIGKILL the executor after the venue executed its order but before the answer arrived: the
    restarted executor must find that order and adopt it, not place it again. Waits for the next
    order (``during`` runs every 0.5 s meanwhile)."""
    before = venue.state.sendorder_executions
    venue.fail_next("sendorder", "timeout")  # executed at once, answered delay_s later
    deadline = time.monotonic() + 120
    last = time.monotonic()
    while venue.state.sendorder_executions == before and time.monotonic() < deadline:
        time.sleep(0.05)
        if time.monotonic() - last >= 0.5:
            during()
            last = time.monotonic()
    assert venue.state.sendorder_executions != before, "no order reached the venue in 120 s"
    time.sleep(0.5)
    executor.kill()


def _outage(dependency: str, services: list[Service], during: Callable[[], None]) -> tuple[float, float]:
    """Freeze Postgres or Kafka with SIGSTOP for OUTAGE_S, then SIGCONT; returns the window.
    ``during`` runs every 0.5 s meanwhile."""
    pids = _pids_of_postgres() if dependency == "postgres" else _pids_of_kafka()
    t0 = time.monotonic()
    _freeze(pids, signal.SIGSTOP)
    try:
        while time.monotonic() - t0 < OUTAGE_S:
            time.sleep(0.5)
            for s in services:
                if s.proc is not None and s.proc.poll() not in (None, 0):
                    s.check()  # a crash during the outage is recorded (and fails the test later)
            during()
    finally:
        _freeze(pids, signal.SIGCONT)
    return t0, time.monotonic()
