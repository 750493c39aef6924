"""Topic names and partition counts, created idempotently.

Partition counts are part of the design, not a tuning knob: the intents topic has exactly one
partition so the executor sees intents in one total order; bars and ticks are single-partition to
keep time order; recommendations are keyed by tick_id and may spread.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from common.kafka.configuration import admin_config
from config import Settings

TICKS = "meta.ticks"
RECOMMENDATIONS = "signals.recommendations"
INTENTS = "orders.intents"
EXECUTIONS = "orders.executions"
DEAD_LETTERS = "dead.letters"


def bars_topic(timeframe: str) -> str:
    return f"market.bars.{timeframe}"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


class TopicMismatch(RuntimeError):
    """An existing topic has a partition count other than the design's (e.g. intents != 1)."""


def topic_specs(settings: Settings, timeframes: Iterable[str]) -> list[TopicSpec]:
    """Every topic a deployment needs, with the deployment's prefix applied."""
    specs = [
        TopicSpec(settings.topic(TICKS), 1),
        TopicSpec(settings.topic(RECOMMENDATIONS), 3),
        TopicSpec(settings.topic(INTENTS), 1),
        TopicSpec(settings.topic(EXECUTIONS), 1),
        TopicSpec(settings.topic(DEAD_LETTERS), 1),
    ]
    specs += [TopicSpec(settings.topic(bars_topic(tf)), 1) for tf in sorted(set(timeframes))]
    return specs


def ensure_topics(admin: AdminClient, specs: Iterable[TopicSpec], timeout: float = 30.0) -> list[str]:
    """Create missing topics; verify existing ones. Returns the names created (empty when all existed).

    Safe to run any number of times and from several processes at once: a concurrent creation shows
    up as TOPIC_ALREADY_EXISTS, which is success here.
    """
    specs = list(specs)
    existing = admin.list_topics(timeout=timeout).topics
    missing = [s for s in specs if s.name not in existing]
    created: list[str] = []
    if missing:
        futures = admin.create_topics(
            [
                NewTopic(s.name, num_partitions=s.partitions, replication_factor=-1, config=s.config)
                for s in missing
            ],
            operation_timeout=timeout,
            request_timeout=timeout,
        )
        for name, fut in futures.items():
            try:
                fut.result(timeout=timeout)  # a broker that stops answering must not hang the start
                created.append(name)
            except Exception as exc:
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise
        existing = _await_metadata(admin, [s.name for s in specs], timeout)
    for spec in specs:
        found = len(existing[spec.name].partitions)
        if found != spec.partitions:
            raise TopicMismatch(
                f"topic {spec.name} has {found} partitions, the design needs {spec.partitions}"
            )
    return created


def _await_metadata(admin: AdminClient, names: list[str], timeout: float) -> dict[str, Any]:
    """Creation is acknowledged before every broker's metadata cache shows the topic: poll until it does."""
    deadline = time.monotonic() + timeout
    while True:
        topics = admin.list_topics(timeout=timeout).topics
        if all(n in topics and topics[n].partitions for n in names) or time.monotonic() > deadline:
            return topics
        time.sleep(0.1)


def delete_topics_with_prefix(admin: AdminClient, prefix: str, timeout: float = 30.0) -> list[str]:
    """Remove a replay's or a test's namespace. Refuses the empty (live) prefix."""
    if not prefix:
        raise ValueError("refusing to delete topics with an empty prefix (that is the live namespace)")
    names = [t for t in admin.list_topics(timeout=timeout).topics if t.startswith(prefix)]
    if names:
        for fut in admin.delete_topics(names, operation_timeout=timeout, request_timeout=timeout).values():
            fut.result(timeout=timeout)
    return names


def wait_for_broker(settings: Settings, timeout: float = 60.0) -> AdminClient:
    """Return an admin client once the broker answers metadata requests (an open port is not enough)."""
    admin = AdminClient(admin_config(settings))
    deadline = time.monotonic() + timeout
    while True:
        try:
            admin.list_topics(timeout=5)
            return admin
        except Exception as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kafka at {settings.kafka.bootstrap_servers} not ready: {exc}") from exc
            time.sleep(0.5)
