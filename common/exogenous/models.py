"""Tables for exogenous series: the catalog as stored, and one row per observation.

An observation keeps both of its times: ``about_ts`` (what the value describes, the time axis the
tables are partitioned on) and ``published_at`` (when it became known; every point-in-time read
filters on it). ``item_key`` tells apart the several news items that share a timestamp; it is ""
for ordinary series. A single-number series keeps its value in ``value``; a series with several
columns (or text) keeps all of them in ``fields`` (JSON; NaN stored as null), so one table holds
every shape without a column per metric.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Double, ForeignKey, Index, Text, true
from sqlalchemy.orm import Mapped, mapped_column

from common.db.base import Base, JSONDoc, created_column, updated_column


class ExogenousSeries(Base):
    """One catalog entry as the database knows it (written by every import, read by people and SQL)."""

    __tablename__ = "exogenous_series"

    name: Mapped[str] = mapped_column(primary_key=True)
    category: Mapped[str]
    frequency: Mapped[str]
    #: Column name -> unit, in catalog order.
    units: Mapped[dict[str, Any]] = mapped_column(JSONDoc)
    #: The column stored in ``observations.value`` (single-number series), else null.
    value_column: Mapped[str | None]
    publication_rule: Mapped[str]
    source: Mapped[str]
    description: Mapped[str]
    point_in_time: Mapped[bool] = mapped_column(default=True, server_default=true())
    updated_at: Mapped[datetime] = updated_column()


class ExogenousObservation(Base):
    """One value (or one news item) of a series, with when it is about and when it was known."""

    __tablename__ = "exogenous_observations"
    __table_args__ = (Index("ix_exogenous_observations_series_published_at", "series", "published_at"),)

    series: Mapped[str] = mapped_column(
        Text, ForeignKey("exogenous_series.name", ondelete="CASCADE"), primary_key=True
    )
    about_ts: Mapped[datetime] = mapped_column(primary_key=True)
    item_key: Mapped[str] = mapped_column(primary_key=True, default="", server_default="")
    published_at: Mapped[datetime]
    value: Mapped[float | None] = mapped_column(Double)
    fields: Mapped[dict[str, Any] | None] = mapped_column(JSONDoc)
    source: Mapped[str]
    ingested_at: Mapped[datetime] = created_column()
