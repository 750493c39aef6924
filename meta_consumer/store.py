"""Postgres side of the join: the durable state every restart rebuilds from.

Recommendations and TickPlans are written on arrival (``ON CONFLICT DO NOTHING``: a re-delivered
message is a no-op) before their offsets are committed. A decision row, unique per
(namespace, tick_id), is the commit point of a tick: it also carries the state the next tick
continues from, and the intent is rebuilt from it, so nothing else needs to be stored.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from common.db.models import Decision, Model, Position, Recommendation, Tick
from common.events import Recommendation as RecommendationEvent
from common.events import SignalEvent, Target, TickPlan

RecValue = tuple[Target, SignalEvent, float]


Bind = Engine | Connection


@contextmanager
def _tx(bind: Bind) -> Iterator[Connection]:
    """A transaction of its own on an engine, or the caller's (a connection inside one)."""
    if isinstance(bind, Connection):
        yield bind
    else:
        with bind.begin() as conn:
            yield conn


@dataclass(frozen=True)
class Saved:
    """What one ingest batch found: which answers were new, and what each new plan's tick has."""

    fresh: frozenset[tuple[str, str]]
    answered: dict[str, set[str]]


def _rec_row(namespace: str, rec: RecommendationEvent) -> dict[str, Any]:
    """The row of one answer, v3's ``reason`` and ``attention`` included.

    The wire's empty reason (what v1/v2 messages decode to) is stored as NULL, so "no reason" has
    one spelling in the table and the old and new writers read back alike.
    """
    return dict(
        namespace=namespace,
        tick_id=rec.tick_id,
        strategy=rec.strategy,
        strategy_version=rec.strategy_version,
        symbol=rec.symbol,
        timeframe=rec.timeframe,
        bar_close_time=rec.bar_close_time,
        target=rec.target.value,
        event=rec.event.value,
        confidence=rec.confidence,
        horizon_bars=rec.horizon_bars,
        indicators=dict(rec.indicators),
        reason=rec.reason or None,
        attention=rec.attention,
    )


def _tick_row(namespace: str, plan: TickPlan) -> dict[str, Any]:
    return dict(
        namespace=namespace,
        tick_id=plan.tick_id,
        symbol=plan.symbol,
        tick_time=plan.tick_time,
        due_timeframes=list(plan.due_timeframes),
        due_strategies=[d.name for d in plan.due_strategies],
    )


# Built once: a fixed statement is compiled once and cached; executemany sends one multi-row
# INSERT per batch (SQLAlchemy's insertmanyvalues), RETURNING only the rows actually inserted.
_INSERT_RECS = (
    insert(Recommendation).on_conflict_do_nothing().returning(Recommendation.tick_id, Recommendation.strategy)
)
_INSERT_TICKS = insert(Tick).on_conflict_do_nothing()


def save_batch(
    engine: Engine, namespace: str, recs: Sequence[RecommendationEvent], plans: Sequence[TickPlan]
) -> Saved:
    """Store one consume batch's answers and plans in one transaction (``ON CONFLICT DO NOTHING``).

    Returns the (tick_id, strategy) pairs that were not stored before (the others are
    re-deliveries after a restart) and, for every plan, the strategies stored for its tick,
    including this batch's. The caller commits the batch's offsets only after this returns.
    """
    fresh: frozenset[tuple[str, str]] = frozenset()
    answered: dict[str, set[str]] = {}
    with engine.begin() as conn:
        if recs:
            rows = conn.execute(_INSERT_RECS, [_rec_row(namespace, r) for r in recs])
            fresh = frozenset((r[0], r[1]) for r in rows)
        if plans:
            conn.execute(_INSERT_TICKS, [_tick_row(namespace, p) for p in plans])
            ids = sorted({p.tick_id for p in plans})
            answered = {t: set() for t in ids}
            stored = select(Recommendation.tick_id, Recommendation.strategy).where(
                Recommendation.namespace == namespace, Recommendation.tick_id.in_(ids)
            )
            for tick_id, strategy in conn.execute(stored):
                answered[tick_id].add(strategy)
    return Saved(fresh, answered)


def save_recommendation(engine: Engine, namespace: str, rec: RecommendationEvent) -> bool:
    """Store one answer; False when it was already stored (a re-delivery after a restart)."""
    return bool(save_batch(engine, namespace, [rec], []).fresh)


def save_tick(engine: Engine, namespace: str, plan: TickPlan) -> None:
    """Same row the tick emitter records (it may already be there; replays do not record ticks)."""
    save_batch(engine, namespace, [], [plan])


def answered(engine: Engine, namespace: str, tick_id: str) -> set[str]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(Recommendation.strategy).where(
                Recommendation.namespace == namespace, Recommendation.tick_id == tick_id
            )
        )
        return {r[0] for r in rows}


def recs_for_tick(bind: Bind, namespace: str, tick_id: str) -> dict[str, RecValue]:
    with _tx(bind) as conn:
        rows = conn.execute(
            select(
                Recommendation.strategy,
                Recommendation.target,
                Recommendation.event,
                Recommendation.confidence,
            ).where(Recommendation.namespace == namespace, Recommendation.tick_id == tick_id)
        )
        return {r[0]: (Target(r[1]), SignalEvent(r[2]), float(r[3])) for r in rows}


def recs_for_ticks(bind: Bind, namespace: str, tick_ids: Sequence[str]) -> dict[str, dict[str, RecValue]]:
    """:func:`recs_for_tick` for several ticks in one query (a batch decided under a backlog)."""
    out: dict[str, dict[str, RecValue]] = {t: {} for t in tick_ids}
    with _tx(bind) as conn:
        rows = conn.execute(
            select(
                Recommendation.tick_id,
                Recommendation.strategy,
                Recommendation.target,
                Recommendation.event,
                Recommendation.confidence,
            ).where(Recommendation.namespace == namespace, Recommendation.tick_id.in_(list(tick_ids)))
        )
        for r in rows:
            out[r[0]][r[1]] = (Target(r[2]), SignalEvent(r[3]), float(r[4]))
    return out


def last_decisions(engine: Engine, namespace: str, count: int) -> list[Decision]:
    """The newest ``count`` decisions, oldest first (the last commit's batch, re-sent on start)."""
    with Session(engine) as session:
        rows = list(
            session.scalars(
                select(Decision)
                .where(Decision.namespace == namespace)
                .order_by(Decision.id.desc())
                .limit(count)
            )
        )
    return rows[::-1]


def last_decision(engine: Engine, namespace: str) -> Decision | None:
    """The newest decision; ids grow in decision order because one decider inserts them in tick order."""
    with Session(engine) as session:
        return session.scalars(
            select(Decision).where(Decision.namespace == namespace).order_by(Decision.id.desc()).limit(1)
        ).one_or_none()


def pending_ticks(engine: Engine, namespace: str, symbol: str, after: datetime | None) -> list[Tick]:
    """Ticks stored but not decided yet (what a restart must still decide), oldest first."""
    decided = select(Decision.tick_id).where(Decision.namespace == namespace)
    query = (
        select(Tick)
        .where(Tick.namespace == namespace, Tick.symbol == symbol, Tick.tick_id.not_in(decided))
        .order_by(Tick.tick_time)
    )
    if after is not None:
        query = query.where(Tick.tick_time > after)
    with Session(engine) as session:
        return list(session.scalars(query))


def insert_decision(bind: Bind, values: dict[str, Any]) -> bool:
    """Insert one decision; False when the tick was already decided (the row stays as it was)."""
    with _tx(bind) as conn:
        result = conn.execute(
            insert(Decision)
            .values(**values)
            .on_conflict_do_nothing(constraint="uq_decisions_namespace_tick_id")
            .returning(Decision.id)
        )
        return result.first() is not None


_INSERT_DECISIONS = (
    insert(Decision)
    .on_conflict_do_nothing(constraint="uq_decisions_namespace_tick_id")
    .returning(Decision.tick_id)
)


def insert_decisions(conn: Connection, rows: Sequence[dict[str, Any]]) -> int:
    """Insert a batch of decisions in the caller's transaction; how many were new (the rest existed)."""
    return len(conn.execute(_INSERT_DECISIONS, list(rows)).all())


def decision_for(engine: Engine, namespace: str, tick_id: str) -> Decision | None:
    with Session(engine) as session:
        return session.scalars(
            select(Decision).where(Decision.namespace == namespace, Decision.tick_id == tick_id)
        ).one_or_none()


def selected_model_key(bind: Bind) -> tuple[str, str] | None:
    """(model_id, artifact_sha256) of the selected model: a cheap query run between ticks."""
    with _tx(bind) as conn:
        row = conn.execute(select(Model.model_id, Model.artifact_sha256).where(Model.selected)).first()
        return None if row is None else (row[0], row[1])


def model_key(bind: Bind, model_id: str) -> tuple[str, str] | None:
    """(model_id, artifact_sha256) of one model whether selected or not (a pinned replay model)."""
    with _tx(bind) as conn:
        row = conn.execute(
            select(Model.model_id, Model.artifact_sha256).where(Model.model_id == model_id)
        ).first()
        return None if row is None else (row[0], row[1])


def load_model(engine: Engine, model_id: str) -> Model | None:
    with Session(engine) as session:
        return session.scalars(select(Model).where(Model.model_id == model_id)).one_or_none()


def position_quantity(engine: Engine, namespace: str, symbol: str) -> float | None:
    """The executor's position in BTC, or None when it has not recorded one."""
    with engine.connect() as conn:
        return conn.execute(
            select(Position.quantity).where(Position.namespace == namespace, Position.symbol == symbol)
        ).scalar_one_or_none()
