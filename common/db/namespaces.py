"""List and delete the rows of a namespace (a replay, a demo run, a test) in one place.

Every table that separates live from replayed data carries a ``namespace`` column, so deleting a
run is one DELETE per such table, children first (orders and fills reference intents). The live
namespace can never be deleted through here.
"""

from __future__ import annotations

from sqlalchemy import Engine, Table, delete, func, select, union

from common.db.base import LIVE_NAMESPACE
from common.db.models import metadata
from common.db.session import session_scope


def namespaced_tables() -> list[Table]:
    """Tables with a namespace column, dependants before what they depend on."""
    return [t for t in reversed(metadata.sorted_tables) if "namespace" in t.c]


def list_namespaces(engine: Engine) -> dict[str, int]:
    """Namespace -> number of rows across all namespaced tables."""
    tables = namespaced_tables()
    with session_scope(engine) as s:
        q = union(*[select(t.c.namespace.label("ns")) for t in tables]).subquery()
        names = list(s.scalars(select(q.c.ns)))
        counts: dict[str, int] = {}
        for name in names:
            counts[name] = sum(
                s.scalar(select(func.count()).select_from(t).where(t.c.namespace == name)) or 0
                for t in tables
            )
    return dict(sorted(counts.items()))


def delete_namespaces(engine: Engine, names: list[str]) -> int:
    """Delete every row of the given namespaces; returns rows deleted. Refuses the live namespace."""
    if LIVE_NAMESPACE in names or "" in names:
        raise ValueError("refusing to delete the live namespace")
    deleted = 0
    with session_scope(engine) as s:
        for table in namespaced_tables():
            result = s.execute(delete(table).where(table.c.namespace.in_(names)))
            deleted += getattr(result, "rowcount", 0) or 0
    return deleted
