"""Pipeline runs (replays, backtests, demos, backfills): list them and delete them, never the live one.

A run is a namespace: topics named ``<prefix>*``, consumer groups named ``<prefix>*``, rows whose
``namespace`` is the prefix (the executor's book) or ``paper:<prefix>`` (the paper venue's), and its
``replay_runs`` row. ``delete`` removes all four. The live system has the empty topic prefix and the
``live`` namespace; both are refused here, so no argument can reach them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from confluent_kafka.admin import AdminClient
from sqlalchemy import Engine, delete, select

from common.db.base import LIVE_NAMESPACE
from common.db.models import ReplayRun
from common.db.namespaces import delete_namespaces, list_namespaces
from common.db.session import session_scope
from common.kafka.topics import delete_topics_with_prefix
from common.logging import get_logger
from ops.pipeline import LiveNamespaceRefused, check_prefix

log = get_logger(__name__)

PAPER = "paper:"


@dataclass(frozen=True)
class RunInfo:
    prefix: str
    status: str
    kind: str
    rows: int
    topics: int
    started_at: str


def prefix_of(run: str) -> str:
    """``replay.r1`` or ``replay.r1.`` (or a run id) -> the topic prefix ``replay.r1.``; live refused."""
    name = run.removeprefix(PAPER).strip()
    if not name or name.rstrip(".") in ("", LIVE_NAMESPACE):
        raise LiveNamespaceRefused(f"refusing to touch the live namespace ({run!r})")
    return check_prefix(name if name.endswith(".") else f"{name}.")


_TOPIC = re.compile(
    r"^(.+\.)(?:meta\.ticks|signals\.recommendations|orders\.intents|orders\.executions"
    r"|dead\.letters|market\.bars\.[0-9]+[mhdw])$"
)


def _topic_prefix(topic: str) -> str | None:
    """The namespace of a pipeline topic (``bt.r1.meta.ticks`` -> ``bt.r1.``); None for live or foreign."""
    found = _TOPIC.match(topic)
    return found.group(1) if found else None


def list_runs(engine: Engine, admin: AdminClient) -> list[RunInfo]:
    """Every namespace with rows, pipeline topics or a ``replay_runs`` row (live excluded), oldest first."""
    counts: dict[str, int] = {}
    for ns, n in list_namespaces(engine).items():
        base = ns.removeprefix(PAPER)
        if base != LIVE_NAMESPACE:
            counts[base] = counts.get(base, 0) + n
    topics = [t for t in admin.list_topics(timeout=10).topics if not t.startswith("__")]
    with session_scope(engine) as s:
        recorded = {
            r.namespace: (r.status, str(r.params.get("kind", "")), r.started_at.isoformat())
            for r in s.scalars(select(ReplayRun))
        }
    prefixes = set(counts) | set(recorded) | {p for p in map(_topic_prefix, topics) if p}
    out = []
    for p in prefixes:
        status, kind, started = recorded.get(p, ("unrecorded", "", ""))
        out.append(RunInfo(p, status, kind, counts.get(p, 0), sum(t.startswith(p) for t in topics), started))
    return sorted(out, key=lambda r: (r.started_at, r.prefix))


def delete_run(engine: Engine, admin: AdminClient, run: str) -> tuple[int, list[str], list[str]]:
    """Delete a run's rows, topics and consumer groups; returns (rows, topics, groups)."""
    prefix = prefix_of(run)
    rows = delete_namespaces(engine, [prefix, f"{PAPER}{prefix}"])
    with session_scope(engine) as s:
        result = s.execute(delete(ReplayRun).where(ReplayRun.namespace == prefix))
        rows += getattr(result, "rowcount", 0) or 0
    topics = delete_topics_with_prefix(admin, prefix)
    groups = [
        g.group_id
        for g in admin.list_consumer_groups(request_timeout=10).result().valid
        if g.group_id.startswith(prefix)
    ]
    deleted: list[str] = []
    if groups:
        for group, fut in admin.delete_consumer_groups(groups, request_timeout=10).items():
            try:
                fut.result()
                deleted.append(group)
            except Exception as exc:  # a group with a live member stays; its rows and topics are gone
                log.warning("consumer_group_kept", group=group, error=str(exc))
    return rows, topics, deleted
