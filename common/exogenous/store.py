"""Exogenous observations in the database: idempotent writes and point-in-time frames back.

Writes follow the candle store's rule: a stored observation is never overwritten. A row whose key
(series, about_ts, item_key) is already stored with the same values is "unchanged" (so a re-run
adds nothing); with other values it is refused as ``conflicts_with_stored`` and logged, because
history that changes under a strategy makes its past signals irreproducible.

Reads return the loader's frame layout (``about_ts``, ``published_at``, value columns) so that a
strategy sees the same thing from the files (backtests) and from the database (live).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.dialects import postgresql, sqlite

from common.db.session import json_dumps
from common.exogenous.catalog import ColumnKind, Series, get_series
from common.exogenous.files import ABOUT, PUBLISHED
from common.exogenous.models import ExogenousObservation, ExogenousSeries
from common.logging import get_logger

log = get_logger(__name__)

CONFLICTS_WITH_STORED = "conflicts_with_stored"
_BATCH = 5_000


@dataclass
class StoreReport:
    """What one write did: rows offered, newly stored, already stored alike, and conflicts."""

    offered: int = 0
    inserted: int = 0
    unchanged: int = 0
    conflicts: list[tuple[datetime, str]] = field(default_factory=list)


def value_column(series: Series) -> str | None:
    """The column kept in ``observations.value``: the only column of a one-number series, else None."""
    if len(series.columns) == 1 and series.columns[0].kind is ColumnKind.NUMBER:
        return series.columns[0].name
    return None


def item_keys(series: Series, frame: pd.DataFrame) -> list[str]:
    """Per row, what tells it apart from other rows at the same ``about_ts`` ("" for non-event series).

    For news items a digest of all their fields: two items at one minute differ in title or url,
    and the same item imported twice gets the same key (so it is stored once).
    """
    if not series.is_event:
        return [""] * len(frame)
    cols = [frame[c].tolist() for c in series.value_columns]
    keys = []
    for values in zip(*cols, strict=True):
        doc = json.dumps([_jsonable(v) for v in values], ensure_ascii=False, separators=(",", ":"))
        keys.append(hashlib.sha256(doc.encode()).hexdigest()[:24])
    return keys


def _jsonable(value: Any) -> Any:
    if isinstance(value, float | np.floating):
        return None if math.isnan(value) else float(value)
    return value


def _insert(engine: Engine, table: Any) -> Any:
    return postgresql.insert(table) if engine.dialect.name == "postgresql" else sqlite.insert(table)


def sync_catalog(engine: Engine, series: Iterable[Series]) -> None:
    """Write (or refresh) the catalog rows of ``series``: units and rules as the code says them."""
    rows = [
        {
            "name": s.name,
            "category": s.category.value,
            "frequency": s.frequency.value,
            "units": s.units,
            "value_column": value_column(s),
            "publication_rule": s.publication.text,
            "source": s.source,
            "description": s.description,
            "point_in_time": s.point_in_time,
        }
        for s in series
    ]
    if not rows:
        return
    stmt = _insert(engine, ExogenousSeries)
    stmt = stmt.on_conflict_do_update(
        index_elements=["name"],
        set_={k: stmt.excluded[k] for k in rows[0] if k != "name"},
    )
    with engine.begin() as conn:
        conn.execute(stmt, rows)


def store_frame(engine: Engine, series: Series, frame: pd.DataFrame, source: str) -> StoreReport:
    """Store a loader frame's rows that are not stored yet; report the unchanged and the conflicting.

    The series' catalog row is written first (observations reference it).
    """
    sync_catalog(engine, [series])
    report = StoreReport(offered=len(frame))
    if frame.empty:
        return report
    rows = _rows(series, frame, source)
    stored = _stored(engine, series.name, frame[ABOUT].min(), frame[ABOUT].max())
    new: list[dict[str, Any]] = []
    for row in rows:
        existing = stored.get((row["about_ts"], row["item_key"]))
        if existing is None:
            new.append(row)
        elif existing == (row["published_at"], row["value"], row["fields"]):
            report.unchanged += 1
        else:
            report.conflicts.append((row["about_ts"], row["item_key"]))
            log.warning(
                "exogenous_row_rejected",
                series=series.name,
                origin=source,
                ts=row["about_ts"].isoformat(),
                item_key=row["item_key"],
                reason=CONFLICTS_WITH_STORED,
                detail="stored with other values",
            )
    report.inserted = _insert_new(engine, new)
    log.info(
        "exogenous_series_stored",
        series=series.name,
        origin=source,
        offered=report.offered,
        inserted=report.inserted,
        unchanged=report.unchanged,
        conflicts=len(report.conflicts),
    )
    return report


_STAGE = """
CREATE TEMP TABLE IF NOT EXISTS exogenous_stage (
    series text, about_ts timestamptz, item_key text, published_at timestamptz, value double precision,
    fields jsonb, source text
) ON COMMIT DELETE ROWS
"""
_MERGE = (
    "INSERT INTO exogenous_observations (series, about_ts, item_key, published_at, value, fields, source) "
    "SELECT series, about_ts, item_key, published_at, value, fields, source FROM exogenous_stage "
    "ORDER BY about_ts ON CONFLICT DO NOTHING"
)


def _insert_new(engine: Engine, rows: list[dict[str, Any]]) -> int:
    """Insert rows not stored yet (ON CONFLICT DO NOTHING: a concurrent import cannot double them).

    PostgreSQL: staged with COPY and merged by one statement (a whole history in one round trip,
    like the candle store); SQLite (laptops): batched inserts.
    """
    if not rows:
        return 0
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.exec_driver_sql(_STAGE)
            raw = conn.connection.driver_connection
            assert raw is not None  # a checked-out pooled connection always has its DBAPI connection
            with raw.cursor().copy("COPY exogenous_stage FROM STDIN") as copy:
                for r in rows:
                    doc = None if r["fields"] is None else json_dumps(r["fields"])
                    copy.write_row(
                        (
                            r["series"],
                            r["about_ts"],
                            r["item_key"],
                            r["published_at"],
                            r["value"],
                            doc,
                            r["source"],
                        )
                    )
            return int(conn.exec_driver_sql(_MERGE).rowcount or 0)
    stmt = (
        _insert(engine, ExogenousObservation)
        .on_conflict_do_nothing()
        .returning(ExogenousObservation.about_ts)
    )
    inserted = 0
    with engine.begin() as conn:
        for start in range(0, len(rows), _BATCH):
            inserted += len(conn.execute(stmt, rows[start : start + _BATCH]).all())
    return inserted


def _rows(series: Series, frame: pd.DataFrame, source: str) -> list[dict[str, Any]]:
    single = value_column(series)
    keys = item_keys(series, frame)
    about = frame[ABOUT].array.to_pydatetime()
    published = frame[PUBLISHED].array.to_pydatetime()
    if single is not None:
        values: list[Any] = [_jsonable(v) for v in frame[single].tolist()]
        fields: list[Any] = [None] * len(frame)
    else:
        values = [None] * len(frame)
        cols = series.value_columns
        fields = [
            dict(zip(cols, (_jsonable(v) for v in vs), strict=True))
            for vs in zip(*(frame[c].tolist() for c in cols), strict=True)
        ]
    return [
        {
            "series": series.name,
            "about_ts": a,
            "item_key": k,
            "published_at": p,
            "value": v,
            "fields": f,
            "source": source,
        }
        for a, k, p, v, f in zip(about, keys, published, values, fields, strict=True)
    ]


def _stored(
    engine: Engine, name: str, start: pd.Timestamp, end: pd.Timestamp
) -> dict[tuple[datetime, str], tuple[datetime, float | None, dict[str, Any] | None]]:
    """Stored rows of ``name`` with about_ts in [start, end], keyed like ``store_frame`` compares them.

    Aware datetimes compare and hash by instant, so the session's time zone does not matter.
    """
    obs = ExogenousObservation
    query = select(obs.about_ts, obs.item_key, obs.published_at, obs.value, obs.fields).where(
        obs.series == name, obs.about_ts >= start.to_pydatetime(), obs.about_ts <= end.to_pydatetime()
    )
    with engine.connect() as conn:
        return {(_aware(a), k): (_aware(p), v, f) for a, k, p, v, f in conn.execute(query)}


def _aware(when: datetime) -> datetime:
    """SQLite hands back naive datetimes; the writers stored UTC."""
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


def count_rows(engine: Engine, name: str) -> int:
    """How many observations of ``name`` are stored."""
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count())
                .select_from(ExogenousObservation)
                .where(ExogenousObservation.series == name)
            ).scalar_one()
        )


def read_series(
    engine: Engine, name: str, *, published_until: datetime | None = None, about_from: datetime | None = None
) -> pd.DataFrame:
    """Stored observations of ``name`` in the loader's frame layout (sorted by publication).

    ``published_until`` cuts at a tick (only what was known then); ``about_from`` trims old rows.
    """
    series = get_series(name)
    obs = ExogenousObservation
    query = select(obs.about_ts, obs.published_at, obs.value, obs.fields).where(obs.series == name)
    if published_until is not None:
        query = query.where(obs.published_at <= published_until)
    if about_from is not None:
        query = query.where(obs.about_ts >= about_from)
    query = query.order_by(obs.published_at, obs.about_ts, obs.item_key)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return _frame(series, rows)


def read_published(
    bind: Engine | Connection, name: str, published_from: datetime, published_until: datetime
) -> pd.DataFrame:
    """Observations of ``name`` published in ``[published_from, published_until]``, loader layout.

    What the tick emitter sends with a bar: ``published_until`` is the tick, so nothing published
    after it can ever leave; ``published_from`` is the earliest publication any due strategy can
    still use (``Strategy.cut_exogenous``: inclusive, like the cut it serves). One indexed range
    scan on (series, published_at). ``bind`` may be an open connection, so that the reads of
    one tick share one checkout.
    """
    series = get_series(name)
    obs = ExogenousObservation
    query = (
        select(obs.about_ts, obs.published_at, obs.value, obs.fields)
        .where(obs.series == name, obs.published_at >= published_from, obs.published_at <= published_until)
        .order_by(obs.published_at, obs.about_ts, obs.item_key)
    )
    if isinstance(bind, Connection):
        return _frame(series, bind.execute(query).all())
    with bind.connect() as conn:
        rows = conn.execute(query).all()
    return _frame(series, rows)


def _frame(series: Series, rows: Sequence[Any]) -> pd.DataFrame:
    data: dict[str, Any] = {ABOUT: _utc([r[0] for r in rows]), PUBLISHED: _utc([r[1] for r in rows])}
    single = value_column(series)
    for c in series.columns:
        if c.name == single:
            raw: list[Any] = [r[2] for r in rows]
        else:
            raw = [(r[3] or {}).get(c.name) for r in rows]
        if c.kind is ColumnKind.NUMBER:
            data[c.name] = np.array([math.nan if v is None else float(v) for v in raw], dtype=np.float64)
        else:
            data[c.name] = np.array(["" if v is None else str(v) for v in raw], dtype=object)
    return pd.DataFrame(data)


def _utc(values: list[datetime]) -> pd.DatetimeIndex:
    """Database times as UTC (SQLite hands back naive values, which the writers stored as UTC)."""
    index = pd.DatetimeIndex(values).as_unit("ns")
    return index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
