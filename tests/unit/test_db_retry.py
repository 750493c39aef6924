"""The start-up read that must survive a database outage (tick emitter replay, chaos suite)."""

from __future__ import annotations

import socket

import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError, ProgrammingError

from common.db.retry import with_db_retry


def _refused_error() -> OperationalError:
    """A real connection failure: a port nobody listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    engine = create_engine(f"postgresql+psycopg://nobody@127.0.0.1:{port}/x?connect_timeout=1")
    try:
        with engine.connect():
            pass
    except OperationalError as exc:
        return exc
    raise AssertionError("connected to a closed port")


def test_connection_errors_are_retried_until_the_database_answers() -> None:
    err = _refused_error()
    calls = []

    def read() -> int:
        calls.append(1)
        if len(calls) < 3:
            raise err
        return 42

    assert with_db_retry(read, what="test") == 42
    assert len(calls) == 3


def _psycopg_refused_error() -> psycopg.OperationalError:
    """The same failure through plain psycopg (the meta consumer's hot path, ADR 0021)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    try:
        psycopg.connect(f"postgresql://nobody@127.0.0.1:{port}/x", connect_timeout=1)
    except psycopg.OperationalError as exc:
        return exc
    raise AssertionError("connected to a closed port")


def test_psycopg_connection_errors_are_retried_and_its_query_errors_are_not() -> None:
    err = _psycopg_refused_error()
    calls = []

    def read() -> int:
        calls.append(1)
        if len(calls) < 2:
            raise err
        return 5

    assert with_db_retry(read, what="test") == 5
    assert len(calls) == 2

    def bad() -> None:
        calls.append(1)
        raise psycopg.errors.UndefinedTable("relation does not exist")

    with pytest.raises(psycopg.errors.UndefinedTable):
        with_db_retry(bad, what="test")
    assert len(calls) == 3


def test_a_wrong_query_is_not_retried() -> None:
    calls = []

    def bad() -> None:
        calls.append(1)
        raise ProgrammingError("SELECT nonsense", {}, Exception("syntax error"))

    with pytest.raises(ProgrammingError):
        with_db_retry(bad, what="test")
    assert calls == [1]


def test_gives_up_after_the_limit_with_the_original_error() -> None:
    err = _refused_error()

    def down() -> None:
        raise err

    with pytest.raises(OperationalError):
        with_db_retry(down, what="test", max_wait_s=0.0)


def test_returns_a_real_query_result() -> None:
    engine = create_engine("sqlite://")

    def read() -> int:
        with engine.connect() as conn:
            return int(conn.scalar(text("SELECT 7")) or 0)

    assert with_db_retry(read, what="test") == 7
