"""Liveness and readiness of a service, served next to its Prometheus metrics.

Why this exists: Kubernetes probes that only fetch ``/metrics`` stay green while a service is
wedged (a loop stuck on a dead database, a consumer that stopped polling), because the metrics
server runs in its own thread and answers whatever the main loop does. Here:

* **liveness** (``/healthz/live``): the service's main loop called :meth:`Health.beat` within
  ``live_within_s``. It is an in-process heartbeat, deliberately not the database row of
  ``common.heartbeat``: a database outage must not make Kubernetes restart every pod (that would
  not bring the database back, and restarts cost the recovery time the outage tests measure).
* **readiness** (``/healthz/ready``): live, AND every dependency the service watches (Postgres,
  Kafka) answered a probe within ``ready_within_s`` and its latest probe succeeded. Probes run in
  background threads with their own short timeouts; a probe that hangs (a frozen server keeps
  TCP connections open, so a query waits rather than fails) simply stops refreshing its
  timestamp, so readiness goes red on age alone and green again by itself once the dependency
  answers: no restart, no state to reset.

Both answer JSON with the age of each signal, 200 when good and 503 when not. Everything else
on the port is the Prometheus exposition, as before.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import Gauge, make_wsgi_app

from common.logging import get_logger

log = get_logger(__name__)

LIVE_PATH = "/healthz/live"
READY_PATH = "/healthz/ready"
DEPENDENCY_UP = Gauge(
    "btcmeta_dependency_up", "1 while the dependency's latest probe succeeded recently", ["dependency"]
)

Probe = Callable[[], None]
WsgiApp = Callable[..., Iterable[bytes]]


@dataclass
class _Dependency:
    last_ok: float | None = None
    last_error: str | None = None
    #: The latest probe failed (cleared by the next success).
    failing: bool = False
    probes: int = 0
    failures: int = 0


@dataclass
class Verdict:
    ok: bool
    detail: dict[str, Any] = field(default_factory=dict)


class Health:
    """One per process (see :data:`HEALTH`); thread-safe, since probes and HTTP run in threads."""

    def __init__(
        self,
        *,
        live_within_s: float = 60.0,
        ready_within_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.live_within_s = live_within_s
        self.ready_within_s = ready_within_s
        self._clock = clock
        self._lock = threading.Lock()
        self._last_beat: float | None = None
        self._deps: dict[str, _Dependency] = {}
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()

    # ------------------------------------------------------------------ signals
    def beat(self) -> None:
        """Called once per main-loop iteration: the loop is turning."""
        self._last_beat = self._clock()

    def expect(self, dependency: str) -> None:
        """Declare a dependency before its first answer, so readiness starts red, not green."""
        with self._lock:
            self._deps.setdefault(dependency, _Dependency())

    def mark_ok(self, dependency: str) -> None:
        with self._lock:
            dep = self._deps.setdefault(dependency, _Dependency())
            dep.last_ok = self._clock()
            dep.failing = False
            dep.probes += 1
        DEPENDENCY_UP.labels(dependency).set(1)

    def mark_failed(self, dependency: str, error: str) -> None:
        with self._lock:
            dep = self._deps.setdefault(dependency, _Dependency())
            first = not dep.failing
            dep.last_error, dep.failing = error[:300], True
            dep.probes += 1
            dep.failures += 1
        DEPENDENCY_UP.labels(dependency).set(0)
        if first:  # log the transition, not every failed probe of a long outage
            log.warning("dependency_down", dependency=dependency, error=error[:300])

    # ------------------------------------------------------------------ verdicts
    def live(self) -> Verdict:
        now = self._clock()
        age = None if self._last_beat is None else now - self._last_beat
        ok = age is not None and age <= self.live_within_s
        return Verdict(ok, {"loop_age_s": _round(age), "limit_s": self.live_within_s})

    def ready(self) -> Verdict:
        live = self.live()
        now = self._clock()
        deps: dict[str, Any] = {}
        ok = live.ok
        with self._lock:
            for name, dep in sorted(self._deps.items()):
                age = None if dep.last_ok is None else now - dep.last_ok
                good = age is not None and age <= self.ready_within_s and not dep.failing
                error = dep.last_error if dep.failing else None
                deps[name] = {"ok": good, "age_s": _round(age), "error": error}
                ok = ok and good
        for name, info in deps.items():
            DEPENDENCY_UP.labels(name).set(1 if info["ok"] else 0)
        return Verdict(
            ok, {"live": live.ok, **live.detail, "dependencies": deps, "limit_s": self.ready_within_s}
        )

    # ------------------------------------------------------------------ probes
    def watch(self, dependency: str, probe: Probe, *, every_s: float = 2.0) -> None:
        """Run ``probe`` every ``every_s`` in a daemon thread; it raises (or hangs) when down."""
        self.expect(dependency)

        def loop() -> None:
            while not self._stop.is_set():
                try:
                    probe()
                except Exception as exc:
                    self.mark_failed(dependency, f"{type(exc).__name__}: {exc}")
                else:
                    self.mark_ok(dependency)
                self._stop.wait(every_s)

        thread = threading.Thread(target=loop, name=f"health-{dependency}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self) -> None:
        """Stop the probe threads (tests; services just exit)."""
        self._stop.set()

    # ------------------------------------------------------------------ HTTP
    def wsgi_app(self, fallback: WsgiApp | None = None) -> WsgiApp:
        """``/healthz/live`` and ``/healthz/ready``; every other path goes to ``fallback`` (metrics)."""
        metrics = fallback or make_wsgi_app()

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            path = environ.get("PATH_INFO", "")
            if path in (LIVE_PATH, READY_PATH):
                verdict = self.live() if path == LIVE_PATH else self.ready()
                body = json.dumps({"status": "ok" if verdict.ok else "fail", **verdict.detail}).encode()
                status = "200 OK" if verdict.ok else "503 Service Unavailable"
                start_response(
                    status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
                )
                return [body]
            return metrics(environ, start_response)

        return app


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return None  # probes every few seconds would flood the JSON logs


#: The process's health: services run one per process, and the consume loop beats it.
HEALTH = Health()


def serve(port: int, health: Health | None = None, *, addr: str = "0.0.0.0") -> WSGIServer | None:  # noqa: S104
    """Serve metrics + health on ``port`` in a daemon thread; 0 means disabled (tests)."""
    if not port:
        return None
    app = (health or HEALTH).wsgi_app()
    server = make_server(addr, port, app, _ThreadingServer, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="metrics-health", daemon=True).start()
    return server


def postgres_probe(url: str, *, timeout_s: float = 3.0) -> Probe:
    """``SELECT 1`` on one pooled connection with connect and statement timeouts.

    A frozen server accepts the TCP connection but never answers, so the probe may block past its
    timeout; readiness then turns red on age (see the module docstring), which is the point.
    """
    from sqlalchemy import text

    from common.db.session import make_engine

    engine = make_engine(
        url,
        pool_size=1,
        max_overflow=0,
        connect_timeout_s=max(1, int(timeout_s)),
        statement_timeout_ms=int(timeout_s * 1000),
    )

    def probe() -> None:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    return probe


def kafka_probe(conf: dict[str, Any], *, timeout_s: float = 3.0) -> Probe:
    """A metadata round-trip to the brokers (an open port is not enough: the broker must answer)."""
    from confluent_kafka.admin import AdminClient

    # One client, replaced after a failed probe: after a broker stall (SIGSTOP in the chaos suite)
    # a librdkafka handle can keep a connection that never comes back, so the probe would stay red
    # for good although the broker answers everyone else. A fresh handle reconnects from scratch.
    admin = [AdminClient(conf)]

    def probe() -> None:
        try:
            admin[0].list_topics(timeout=timeout_s)
        except Exception:
            admin[0] = AdminClient(conf)
            raise

    return probe


def start(
    settings: Any, *, postgres: bool = True, kafka: bool = True, every_s: float = 2.0, wait: bool = True
) -> None:
    """What a service calls first at start instead of ``start_metrics_server``: the port serves
    metrics, ``/healthz/live`` and ``/healthz/ready``, the dependencies it names are probed and,
    with ``wait``, the call returns only once they answer (see :func:`wait_until_ready`)."""
    if not settings.metrics_port:
        return
    from common.kafka.configuration import admin_config

    if postgres:
        HEALTH.watch("postgres", postgres_probe(settings.database_url.get_secret_value()), every_s=every_s)
    if kafka:
        HEALTH.watch("kafka", kafka_probe(admin_config(settings)), every_s=every_s)
    serve(settings.metrics_port)
    log.info(
        "health_serving",
        port=settings.metrics_port,
        live=LIVE_PATH,
        ready=READY_PATH,
        dependencies=[d for d, on in (("postgres", postgres), ("kafka", kafka)) if on],
    )
    if wait:
        wait_until_ready()


def wait_until_ready(health: Health | None = None, *, poll_s: float = 0.5) -> None:
    """Block until every watched dependency answers, beating meanwhile (live, not ready).

    A service (re)started during an outage would otherwise fail its first query after the connect
    timeout and exit, and Kubernetes' crash-loop back-off (up to 5 minutes) would then delay its
    return well past the outage. Waiting here, alive and not ready, it starts the moment the
    dependency answers. SIGTERM still stops it (the default handler: nothing is in hand yet).
    """
    health = health or HEALTH
    said = False
    while True:
        health.beat()
        verdict = health.ready()
        if verdict.ok:
            if said:
                log.info("dependencies_ready")
            return
        if not said:
            log.warning("waiting_for_dependencies", dependencies=verdict.detail["dependencies"])
            said = True
        time.sleep(poll_s)
