"""Prometheus metrics shared by every service: one definition per metric, labelled by service.

Defining them in one module keeps names consistent across services (dashboards and alerts are
written once) and avoids duplicate-registration errors when tests start several loops in a process.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

MESSAGES_CONSUMED = Counter(
    "btcmeta_messages_consumed_total", "Messages consumed and handled", ["service", "topic"]
)
MESSAGES_PRODUCED = Counter("btcmeta_messages_produced_total", "Messages delivered", ["service", "topic"])
PRODUCE_ERRORS = Counter(
    "btcmeta_produce_errors_total", "Messages that failed delivery", ["service", "topic"]
)
DEAD_LETTERS = Counter(
    "btcmeta_dead_letters_total", "Messages sent to the dead-letter topic", ["service", "error_type"]
)
HANDLE_SECONDS = Histogram(
    "btcmeta_handle_seconds",
    "Time to handle one message",
    ["service", "topic"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0),
)
STEPPER_RESYNCS = Counter(
    "btcmeta_strategy_stepper_resyncs_total",
    "Incremental strategy state rebuilt from the window (reason: seed, guard_mismatch, error)",
    ["service", "reason"],
)
STEPPER_GUARD_CHECKS = Counter(
    "btcmeta_strategy_stepper_guard_checks_total",
    "Stepped bars checked against the window recomputation",
    ["service"],
)
CONSUMER_LAG = Gauge("btcmeta_consumer_lag", "Messages behind the end of the partition", ["service", "topic"])
HEARTBEAT = Gauge("btcmeta_heartbeat_timestamp_seconds", "Last time the service's loop ran", ["service"])


def start_metrics_server(port: int) -> None:
    """Expose /metrics (and the /healthz/* probes of ``common.health``) on ``port``; 0 means disabled
    (tests, side-by-side local processes). Services call ``common.health.start`` instead, which
    also probes their dependencies."""
    from common.health import serve

    serve(port)  # 0.0.0.0: scraped by Prometheus and probed by the kubelet inside the cluster
