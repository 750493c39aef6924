"""Declarative base, naming convention and the column types every table shares.

The naming convention matters: the hand-written migrations name every constraint and index
explicitly, and the schema check (`compare_metadata`) only stays empty if the models derive the
very same names. Portable types (JSON/JSONB, BIGINT identity keys) live here so that the laptop
training path on SQLite and the services on PostgreSQL use one set of models.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Integer, MetaData, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, mapped_column
from sqlalchemy.orm.properties import MappedColumn

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: JSONB on PostgreSQL (indexable, compact), plain JSON elsewhere (SQLite on a laptop).
JSONDoc = JSON().with_variant(JSONB(), "postgresql")

#: SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")

#: Namespace of the live system; replay runs write under their own namespace.
LIVE_NAMESPACE = "live"


class Base(DeclarativeBase):
    """Root of every model; one MetaData so Alembic sees the whole product schema."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {  # noqa: RUF012 - SQLAlchemy reads this class attribute as-is
        datetime: DateTime(timezone=True),
        str: Text(),
        dict[str, Any]: JSONDoc,
    }


def namespace_column(*, primary_key: bool = False) -> MappedColumn[Any]:
    """Namespace column: keeps a replay's rows apart from the live system's in the same tables."""
    return mapped_column(
        Text, primary_key=primary_key, nullable=False, default=LIVE_NAMESPACE, server_default=LIVE_NAMESPACE
    )


def created_column() -> MappedColumn[Any]:
    """Insertion timestamp set by the database clock, so it is right even for raw SQL inserts."""
    return mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


def updated_column() -> MappedColumn[Any]:
    """Last-change timestamp: database default on insert, refreshed by the ORM on update."""
    return mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now(), onupdate=func.now()
    )
