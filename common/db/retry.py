"""Ride out a database that is briefly unreachable instead of exiting.

A service (re)started while Postgres is frozen or failing over passes its start-up readiness gate
(the probe answered a moment ago) and then fails its first real query after the connect timeout.
Exiting there turns a 30-second outage into Kubernetes' crash-loop back-off (up to 5 minutes);
retrying the *read* in-process, reporting alive meanwhile, does not. Only connection-level errors
are retried (``OperationalError``/``InterfaceError``: timeouts, refused or dropped connections),
SQLAlchemy's and psycopg's alike (the meta consumer's hot path speaks psycopg directly, ADR 0021);
a wrong query or a constraint violation still raises at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import psycopg
from sqlalchemy.exc import InterfaceError, OperationalError
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_delay, wait_exponential

from common.health import HEALTH
from common.logging import get_logger

log = get_logger(__name__)

T = TypeVar("T")

#: What "the database is unreachable" looks like through SQLAlchemy and through plain psycopg.
CONNECTION_ERRORS: tuple[type[Exception], ...] = (
    OperationalError,
    InterfaceError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
)


def with_db_retry(fn: Callable[[], T], *, what: str, max_wait_s: float = 300.0) -> T:
    """``fn()``, retried with capped exponential back-off on connection errors for ``max_wait_s``.

    ``fn`` must be safe to repeat (a read, or a write in its own transaction that is idempotent).
    """

    def _waiting(state: RetryCallState) -> None:
        HEALTH.beat()  # alive (waiting on a dependency), so liveness must not restart us
        exc = state.outcome.exception() if state.outcome is not None else None
        log.warning(
            "database_unreachable_retrying",
            what=what,
            attempt=state.attempt_number,
            error=type(exc).__name__ if exc else None,
        )

    for attempt in Retrying(
        retry=retry_if_exception_type(CONNECTION_ERRORS),
        wait=wait_exponential(multiplier=0.5, max=5.0),
        stop=stop_after_delay(max_wait_s),
        before_sleep=_waiting,
        reraise=True,
    ):
        with attempt:
            return fn()
    raise AssertionError("unreachable")  # pragma: no cover - Retrying either returns or reraises
