"""Postgres side of the join: the durable state every restart rebuilds from.

Recommendations and TickPlans are written on arrival (``ON CONFLICT DO NOTHING``: a re-delivered
message is a no-op) before their offsets are committed. A decision row, unique per
(namespace, tick_id), is the commit point of a tick: it also carries the state the next tick
continues from, and the intent is rebuilt from it, so nothing else needs to be stored.

The statements the service runs per message and per tick (storing a batch, the decision
transaction, the models poll, the drift check) are plain SQL through psycopg (ADR 0021): through
SQLAlchemy's Core, its pool and ``pool_pre_ping`` a tick's database work took about 1.5 times as
long (``bench/bench_meta_store.py``). They take a :data:`Db`: the service's held
:class:`~common.db.direct.PgConnection` (one transaction of their own), a psycopg cursor (the
caller's transaction) or, for the cold callers, a SQLAlchemy engine on PostgreSQL (its pooled
psycopg connection, same SQL). The start-up reads stay ORM queries on the engine.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb
from sqlalchemy import Engine, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from common.db.direct import PgConnection, json_dumps
from common.db.models import Base, Decision, Model, Tick
from common.db.session import engine_cursor
from common.events import Recommendation as RecommendationEvent
from common.events import SignalEvent, Target, TickPlan, utc

RecValue = tuple[Target, SignalEvent, float]

Cursor = psycopg.Cursor[Any]

#: Where a hot statement runs: the service's held connection, a cursor in the caller's
#: transaction, or an engine (PostgreSQL only: the SQL is written for it).
Db = PgConnection | Cursor | Engine

#: Rows per multi-row INSERT: PostgreSQL takes at most 65,535 parameters per statement
#: (14 per recommendation row; a consume batch may hold up to 10,000 messages).
_PAGE = 1000


@contextmanager
def _cursor(db: Db, *, transaction: bool = True) -> Iterator[Cursor]:
    """A psycopg cursor for ``db``: in a transaction of its own, or the caller's (a cursor).

    ``transaction=False`` for a single read on the held connection: one round trip, no BEGIN/COMMIT.
    """
    if isinstance(db, psycopg.Cursor):
        yield db
    elif isinstance(db, PgConnection):
        with db.transaction() if transaction else db.cursor() as cur:
            yield cur
    else:
        with engine_cursor(db) as cur:  # PostgreSQL only: raises ValueError otherwise
            yield cur


def _json(value: Any) -> Jsonb:
    """A JSONB parameter serialized as the engine serializes JSON columns (NaN-safe)."""
    return Jsonb(value, dumps=json_dumps)


def _placeholders(count: int) -> sql.Composable:
    return sql.SQL(", ").join([sql.Placeholder()] * count)


@functools.lru_cache(maxsize=64)
def _with_in(template: str, count: int) -> str:
    """``template`` with its ``{}`` filled by ``count`` placeholders, for ``IN ({})``.

    One text per count (cached; psycopg prepares a text after a few uses). Not ``= ANY(%s)`` with
    one list parameter: that measured 0.15-0.3 ms slower per query, on both sides of the wire.
    """
    return sql.SQL(template).format(_placeholders(count)).as_string(None)


@functools.lru_cache(maxsize=64)
def _insert_sql(table: str, columns: tuple[str, ...], rows: int, tail: str) -> str:
    """``INSERT INTO table (columns) VALUES (..), .. tail`` for ``rows`` rows (cached per shape)."""
    row = sql.SQL("({})").format(_placeholders(len(columns)))
    return (
        sql.SQL("INSERT INTO {} ({}) VALUES {} {}")
        .format(
            sql.Identifier(table),
            sql.SQL(", ").join(map(sql.Identifier, columns)),
            sql.SQL(", ").join([row] * rows),
            sql.SQL(tail),
        )
        .as_string(None)
    )


def _insert_many(
    cur: Cursor, table: str, columns: tuple[str, ...], rows: Sequence[dict[str, Any]], tail: str
) -> list[tuple[Any, ...]]:
    """``rows`` (dicts with every column) as one multi-row INSERT per page, in order, the way
    SQLAlchemy's insertmanyvalues sent them; the RETURNING rows of all pages."""
    out: list[tuple[Any, ...]] = []
    for first in range(0, len(rows), _PAGE):
        page = rows[first : first + _PAGE]
        if len(page) == 1:  # the live case: a short text psycopg parses once and keeps
            params = [_json(page[0][c]) if c in _JSON_COLUMNS else page[0][c] for c in columns]
            cur.execute(_insert_sql(table, columns, 1, tail), params)
        else:
            arrays = [
                [_json(r[c]) for r in page] if c in _JSON_COLUMNS else [r[c] for r in page] for c in columns
            ]
            cur.execute(_unnest_sql(table, columns, tail), arrays)
        if cur.description is not None:
            out.extend(cur.fetchall())
    return out


@functools.lru_cache(maxsize=64)
def _unnest_sql(table: str, columns: tuple[str, ...], tail: str) -> str:
    """``INSERT INTO table (columns) SELECT .. FROM unnest(one array per column) .. tail``, rows in order.

    One short text for any number of rows, so psycopg parses it once and keeps it. A multi-row
    ``VALUES`` text has one placeholder per value: psycopg splits such a text (too long for its
    cache) into thousands of small objects on every call, and in a long replay that churn
    between the service's long-lived objects fragmented the allocator (resident memory grew
    with the replay's length while the Python heap stayed flat).
    """
    cols = Base.metadata.tables[table].c  # the arrays' types are the models' column types
    pg = postgresql.dialect()
    arrays = sql.SQL(", ").join(
        sql.SQL("{}::{}[]").format(sql.Placeholder(), sql.SQL(cols[c].type.compile(dialect=pg)))
        for c in columns
    )
    names = sql.SQL(", ").join(map(sql.Identifier, columns))
    return (
        sql.SQL("INSERT INTO {} ({}) SELECT {} FROM unnest({}) WITH ORDINALITY AS u({}, n) ORDER BY n {}")
        .format(sql.Identifier(table), names, names, arrays, names, sql.SQL(tail))
        .as_string(None)
    )


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


_REC_COLUMNS = (
    "namespace",
    "tick_id",
    "strategy",
    "strategy_version",
    "symbol",
    "timeframe",
    "bar_close_time",
    "target",
    "event",
    "confidence",
    "horizon_bars",
    "indicators",
    "reason",
    "attention",
)
_TICK_COLUMNS = ("namespace", "tick_id", "symbol", "tick_time", "due_timeframes", "due_strategies")
_JSON_COLUMNS = frozenset(
    {"indicators", "due_timeframes", "due_strategies", "observation", "late_strategies"}
)


def save_batch(
    db: Db, namespace: str, recs: Sequence[RecommendationEvent], plans: Sequence[TickPlan]
) -> Saved:
    """Store one consume batch's answers and plans in one transaction (``ON CONFLICT DO NOTHING``).

    Returns the (tick_id, strategy) pairs that were not stored before (the others are
    re-deliveries after a restart) and, for every plan, the strategies stored for its tick,
    including this batch's. The caller commits the batch's offsets only after this returns.
    """
    fresh: frozenset[tuple[str, str]] = frozenset()
    answered: dict[str, set[str]] = {}
    # Answers alone (the quiet live case: each arrives in a batch of its own) are one INSERT, a
    # transaction by itself: no BEGIN and COMMIT round trips around it on the held connection.
    single = not plans and len(recs) <= _PAGE
    with _cursor(db, transaction=not single) as cur:
        if recs:
            inserted = _insert_many(
                cur,
                "recommendations",
                _REC_COLUMNS,
                [_rec_row(namespace, r) for r in recs],
                "ON CONFLICT DO NOTHING RETURNING tick_id, strategy",
            )
            fresh = frozenset((r[0], r[1]) for r in inserted)
        if plans:
            _insert_many(
                cur,
                "ticks",
                _TICK_COLUMNS,
                [_tick_row(namespace, p) for p in plans],
                "ON CONFLICT DO NOTHING",
            )
            ids = sorted({p.tick_id for p in plans})
            answered = {t: set() for t in ids}
            cur.execute(
                _with_in(
                    "SELECT tick_id, strategy FROM recommendations WHERE namespace = %s AND tick_id IN ({})",
                    len(ids),
                ),
                (namespace, *ids),
            )
            for tick_id, strategy in cur.fetchall():
                answered[tick_id].add(strategy)
    return Saved(fresh, answered)


def save_recommendation(db: Db, namespace: str, rec: RecommendationEvent) -> bool:
    """Store one answer; False when it was already stored (a re-delivery after a restart)."""
    return bool(save_batch(db, namespace, [rec], []).fresh)


def save_tick(db: Db, namespace: str, plan: TickPlan) -> None:
    """Same row the tick emitter records (it may already be there; replays do not record ticks)."""
    save_batch(db, namespace, [], [plan])


def answered(db: Db, namespace: str, tick_id: str) -> set[str]:
    """The strategies stored for one tick."""
    with _cursor(db, transaction=False) as cur:
        cur.execute(
            "SELECT strategy FROM recommendations WHERE namespace = %s AND tick_id = %s", (namespace, tick_id)
        )
        return {r[0] for r in cur.fetchall()}


def recs_for_tick(db: Db, namespace: str, tick_id: str) -> dict[str, RecValue]:
    return recs_for_ticks(db, namespace, [tick_id])[tick_id]


def recs_for_ticks(db: Db, namespace: str, tick_ids: Sequence[str]) -> dict[str, dict[str, RecValue]]:
    """:func:`recs_for_tick` for several ticks in one query (a batch decided under a backlog)."""
    out: dict[str, dict[str, RecValue]] = {t: {} for t in tick_ids}
    with _cursor(db, transaction=False) as cur:
        cur.execute(
            _with_in(
                "SELECT tick_id, strategy, target, event, confidence FROM recommendations"
                " WHERE namespace = %s AND tick_id IN ({})",
                len(tick_ids),
            ),
            (namespace, *tick_ids),
        )
        for r in cur.fetchall():
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


_DECISION_COLUMNS = (
    "namespace",
    "tick_id",
    "model_id",
    "observation",
    "action",
    "current_exposure",
    "target_exposure",
    "degraded",
    "late_strategies",
    "decided_at",
)


def insert_decisions(db: Db, rows: Sequence[dict[str, Any]]) -> int:
    """Insert decisions (in the caller's transaction when ``db`` is a cursor), ids in row order;
    how many were new (the others' ticks were already decided, and their rows stay as they were)."""
    with _cursor(db) as cur:
        return len(
            _insert_many(
                cur,
                "decisions",
                _DECISION_COLUMNS,
                rows,
                "ON CONFLICT ON CONSTRAINT uq_decisions_namespace_tick_id DO NOTHING RETURNING id",
            )
        )


def insert_decision(db: Db, values: dict[str, Any]) -> bool:
    """Insert one decision; False when the tick was already decided (the row stays as it was)."""
    return insert_decisions(db, [values]) == 1


def decision_for(engine: Engine, namespace: str, tick_id: str) -> Decision | None:
    with Session(engine) as session:
        return session.scalars(
            select(Decision).where(Decision.namespace == namespace, Decision.tick_id == tick_id)
        ).one_or_none()


def selected_model_key(db: Db) -> tuple[str, str] | None:
    """(model_id, artifact_sha256) of the selected model: a cheap query run between ticks."""
    with _cursor(db, transaction=False) as cur:
        cur.execute("SELECT model_id, artifact_sha256 FROM models WHERE selected")
        row = cur.fetchone()
        return None if row is None else (row[0], row[1])


def model_key(db: Db, model_id: str) -> tuple[str, str] | None:
    """(model_id, artifact_sha256) of one model whether selected or not (a pinned replay model)."""
    with _cursor(db, transaction=False) as cur:
        cur.execute("SELECT model_id, artifact_sha256 FROM models WHERE model_id = %s", (model_id,))
        row = cur.fetchone()
        return None if row is None else (row[0], row[1])


def load_model(engine: Engine, model_id: str) -> Model | None:
    with Session(engine) as session:
        return session.scalars(select(Model).where(Model.model_id == model_id)).one_or_none()


def position_quantity(db: Db, namespace: str, symbol: str) -> float | None:
    """The executor's position in BTC, or None when it has not recorded one."""
    with _cursor(db, transaction=False) as cur:
        cur.execute(
            "SELECT quantity FROM positions WHERE namespace = %s AND symbol = %s", (namespace, symbol)
        )
        row = cur.fetchone()
        return None if row is None else float(row[0])


#: The funding series a linear combiner's ``funding_last`` reads, spliced as the research's
#: ``training.research.funding.from_frames``: Binance's rate (the one-number ``value``) once it has
#: published one, BitMEX's (``fields.funding_rate``) before. With the catalog's publication rule
#: (published at settlement) that is the research's "last rate published by the close" exactly.
_FUNDING_SQL = """
SELECT coalesce(
  (SELECT value FROM exogenous_observations
    WHERE series = 'funding_binance_8h' AND published_at <= %(at)s
      AND value IS NOT NULL AND value <> 'NaN'::double precision
    ORDER BY published_at DESC, about_ts DESC LIMIT 1),
  (SELECT (fields->>'funding_rate')::double precision FROM exogenous_observations
    WHERE series = 'funding_bitmex_8h' AND published_at <= %(at)s
      AND fields->>'funding_rate' IS NOT NULL
    ORDER BY published_at DESC, about_ts DESC LIMIT 1))
"""


def funding_last(db: Db, at: datetime) -> float | None:
    """The last funding rate published at or before ``at`` (a tick's time), None if none yet.

    Point in time on ``published_at``: a rate the world learnt after the tick is never read, even
    if it is about an earlier settlement. Two backward scans of the (series, published_at) index.
    """
    with _cursor(db, transaction=False) as cur:
        cur.execute(_FUNDING_SQL, {"at": at})
        row = cur.fetchone()
        return None if row is None or row[0] is None else float(row[0])


#: Settlements of the spliced funding series (as ``_FUNDING_SQL`` and the research's
#: ``funding.from_frames``: BitMEX before Binance's first settlement, Binance after) with
#: ``about_ts`` in ``(lo, hi]``, published by ``at``.
_SETTLEMENTS_SQL = """
SELECT DISTINCT about_ts FROM exogenous_observations
 WHERE about_ts > %(lo)s AND about_ts <= %(hi)s AND published_at <= %(at)s AND (
   (series = 'funding_binance_8h' AND value IS NOT NULL AND value <> 'NaN'::double precision)
   OR (series = 'funding_bitmex_8h' AND fields->>'funding_rate' IS NOT NULL
       AND about_ts < coalesce((SELECT min(about_ts) FROM exogenous_observations
                                 WHERE series = 'funding_binance_8h'), 'infinity'::timestamptz)))
 ORDER BY about_ts
"""


def funding_charge(db: Db, at: datetime, default_hourly: float, hours: float = 1.0) -> float:
    """The funding charged to a long held over the 1h bar closing at ``at`` (a dsr reward, ADR 0026).

    The research's ``funding.bar_funding`` rule, read point in time: each settlement ``s`` of the
    spliced series in ``(at - 1 h, at]`` charges the latest rate published at or before ``s``
    (:func:`funding_last` at ``s``), summed in settlement order from 0. Before any rate was published
    the bar pays the configured constant ``default_hourly`` per hour, as the research's bars outside
    the series' coverage. (The research also counts as covered the 7 bars before the very first
    settlement, 2016-05-14, and charges the constant after its last one + 8 h, which it knows
    from the whole file: the only bars where this point-in-time read can differ.)
    """
    with _cursor(db, transaction=False) as cur:
        if funding_last(cur, at) is None:
            return default_hourly * hours
        cur.execute(_SETTLEMENTS_SQL, {"at": at, "hi": at, "lo": at - timedelta(hours=hours)})
        total = 0.0
        for (s,) in cur.fetchall():
            rate = funding_last(cur, s)
            if rate is not None:
                total = total + rate
        return total


_FUNDING_PUBLISHED_SQL = """
SELECT max(published_at) FROM exogenous_observations
 WHERE series IN ('funding_binance_8h', 'funding_bitmex_8h') AND published_at <= %(at)s
"""


def funding_published_at(db: Db, at: datetime) -> datetime | None:
    """When the newest funding rate visible at ``at`` was published (None: none yet).

    Not an input of any decision (those read :func:`funding_last` exactly as the research does); the
    service compares it with the tick to say, loudly, that the series stopped being fed.
    """
    with _cursor(db, transaction=False) as cur:
        cur.execute(_FUNDING_PUBLISHED_SQL, {"at": at})
        row = cur.fetchone()
        return None if row is None or row[0] is None else utc(row[0])
