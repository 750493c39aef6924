"""What a benchmark needs running, checked (and set up) before it measures anything.

Why: ``make bench`` on a fresh clone failed deep inside a run with ``relation "replay_runs" does
not exist`` (nothing had migrated the shared database), and a bench started by hand has no
Makefile to do it. Every bench that reaches Postgres or Kafka calls :func:`require` first: it
checks the dev services answer (and says how to start them when they do not), and, when the bench
uses the shared database or the configured topics, runs the project's own set-up commands,
``python -m ops migrate`` / ``python -m ops topics`` (idempotent, as ``make migrate topics``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
START_HINT = "start the dev services first: `make infra-up` (infra/dev.sh start)"


def _fail(message: str) -> None:
    raise SystemExit(f"[bench] {message}")


def _ops(*args: str) -> None:
    """Run ``python -m ops ARGS`` from the repository; stop with its output when it fails."""
    done = subprocess.run(
        [sys.executable, "-m", "ops", *args], cwd=REPO, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        _fail(f"`python -m ops {' '.join(args)}` failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    print(done.stdout.strip(), flush=True)


def require(
    *, postgres: bool = True, kafka: bool = False, migrate: bool = False, topics: bool = False
) -> None:
    """Stop with a clear message unless the services the bench uses answer; set up what it reads.

    ``migrate``: the shared database (``BTCMETA_DATABASE_URL``) is brought to the head revision
    (``ops migrate``); ``topics``: the configured topics exist (``ops topics``). Benches that create
    throw-away databases and topic prefixes of their own only need the reachability checks.
    """
    from config import load_settings

    settings = load_settings()
    if postgres:
        from sqlalchemy import text
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import OperationalError

        from common.db.session import make_engine

        url = settings.database_url.get_secret_value()
        try:
            with make_engine(url).connect() as conn:
                conn.execute(text("select 1"))
        except OperationalError as exc:
            where = make_url(url).render_as_string(hide_password=True)
            _fail(f"Postgres at {where} does not answer ({str(exc).splitlines()[0]}): {START_HINT}")
    if kafka:
        from common.kafka.topics import wait_for_broker

        try:
            wait_for_broker(settings, timeout=15.0)
        except RuntimeError as exc:
            _fail(f"{exc}: {START_HINT}")
    if migrate:
        _ops("migrate")
    if topics:
        _ops("topics")


@contextmanager
def throwaway_database(name: str | None = None) -> Iterator[str]:
    """A database of the bench's own on the local Postgres (``bench_<random>`` unless ``name``),
    migrated to head; its SQLAlchemy URL is yielded, and it is dropped (``WITH (FORCE)``) on exit."""
    import psycopg

    from common.db.migrate import upgrade
    from common.db.session import with_local_passfile

    port = int(os.environ.get("BTCMETA_PG_PORT", "55432"))
    admin = with_local_passfile(f"postgresql://btcmeta@127.0.0.1:{port}/postgres")
    name = name or f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        url = with_local_passfile(f"postgresql+psycopg://btcmeta@127.0.0.1:{port}/{name}")
        upgrade(url, "head")
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
