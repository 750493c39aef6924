"""A strategy process loads no SQLAlchemy (issue 17: "a strategy process < 150 MB").

SQLAlchemy, the models and the PostgreSQL dialect were ~24 MB of every strategy process's
resident memory, loaded only for the consume loop's heartbeat and the producer's schema
registration; both now speak plain SQL through psycopg on PostgreSQL (``common.db.direct``).
The probe runs in a fresh interpreter (this test process has imported everything long ago):
the service entry module, every registered strategy class, and one heartbeat and one schema
lookup against a PostgreSQL URL nobody listens on (they fail, as best-effort background work
does during an outage, but must still not reach for SQLAlchemy). Memory itself is measured by
bench/bench_replay_e2e.py, never asserted here.

The SQLite fallback (a laptop without PostgreSQL) still goes through SQLAlchemy: checked below
on a real SQLite file.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import SecretStr

from common.db.direct import libpq_url, local_passfile, passfile_for

REPO = Path(__file__).resolve().parents[2]

#: What a strategy process must not load: the database toolkit and every heavy library no
#: strategy uses (issue 17's list: ORM, migrations, exchange client, web stack, plotting, ML).
NOT_IN_A_STRATEGY = (
    "sqlalchemy",
    "alembic",
    "common.db.models",
    "common.db.session",
    "ccxt",
    "fastapi",
    "uvicorn",
    "starlette",
    "matplotlib",
    "torch",
    "sklearn",
    "gymnasium",
    "ta",
    "feedparser",
    "ops",
    "training",
)

#: The process as it runs: entry module, service, every registered class, one heartbeat, one lookup.
PROBE = """
import json, sys
import strategy_consumers.__main__, strategy_consumers.cli, strategy_consumers.service
from config import Settings
from common.registry import load_registry
from common.heartbeat import Heartbeat
from common.schema_store import SchemaStore

settings = Settings(database_url="postgresql+psycopg://nobody@127.0.0.1:1/none").resolved()
registry = load_registry(settings.registry_path, max_lookback_hours=settings.max_lookback_hours)
for name in registry.names:
    registry.get(name).load_class()
Heartbeat(settings, "probe").beat(0.0, {"probe": True})  # logs heartbeat_failed, never raises
try:
    SchemaStore.from_settings(settings).lookup(bytes(8))
except Exception as exc:
    assert type(exc).__module__.startswith("psycopg"), exc
print(json.dumps(sorted(sys.modules)))
"""


def test_a_strategy_process_loads_no_sqlalchemy_nor_other_heavy_library() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout.splitlines()[-1]))
    # The probe did reach the code paths in question: strategies, pandas, and psycopg (used).
    reached = {"strategy_consumers.runner", "strategy_consumers.strategies.supertrend", "pandas", "psycopg"}
    assert reached <= loaded
    heavy = sorted(m for m in loaded if m.split(".")[0] in NOT_IN_A_STRATEGY or m in NOT_IN_A_STRATEGY)
    assert heavy == []


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql+psycopg://u@h:5432/db?sslmode=require", "postgresql://u@h:5432/db?sslmode=require"),
        ("postgresql://u:p%40ss@h/db", "postgresql://u:p%40ss@h/db"),
        ("postgres://u@h/db", "postgresql://u@h/db"),
        ("sqlite:///out/x.db", None),
    ],
)
def test_libpq_url_drops_the_driver_and_refuses_other_databases(url: str, expected: str | None) -> None:
    assert libpq_url(url) == expected


def test_passfile_only_for_a_postgres_url_without_any_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.delenv("PGPASSFILE", raising=False)
    assert passfile_for("postgresql+psycopg://u@h/db") == str(local_passfile())
    assert passfile_for("postgresql+psycopg://u:secret@h/db") is None
    assert passfile_for("postgresql://u@h/db?passfile=/x") is None
    assert passfile_for("sqlite:///x.db") is None
    monkeypatch.setenv("PGPASSWORD", "x")
    assert passfile_for("postgresql://u@h/db") is None


def _sqlite_settings(tmp_path: Path) -> Any:
    from common.db.models import Base
    from common.db.session import make_engine

    url = f"sqlite:///{tmp_path / 'laptop.db'}"
    engine = make_engine(url)
    Base.metadata.create_all(engine)
    engine.dispose()
    return SimpleNamespace(database_url=SecretStr(url), kafka=SimpleNamespace(topic_prefix="t-")), url


def test_heartbeat_on_sqlite_upserts_one_row_per_instance(tmp_path: Path) -> None:
    from sqlalchemy import select

    from common.db.models import ServiceHeartbeat
    from common.db.session import make_engine, session_scope
    from common.heartbeat import Heartbeat

    settings, url = _sqlite_settings(tmp_path)
    beat = Heartbeat(settings, "svc")
    beat.beat(1.5, {"n": 1})
    beat.beat(0.25, {"n": 2, "x": float("nan")})
    with session_scope(make_engine(url)) as s:
        rows = s.scalars(select(ServiceHeartbeat)).all()
    assert [(r.service, r.lag, r.info) for r in rows] == [("t-svc", 0.25, {"n": 2, "x": "nan"})]
    assert rows[0].last_seen.replace(tzinfo=UTC) <= datetime.now(UTC)


def test_schema_store_on_sqlite_registers_once_and_finds_it(tmp_path: Path) -> None:
    from common import serde
    from common.schema_store import SchemaStore

    _, url = _sqlite_settings(tmp_path)
    store = SchemaStore(url)
    shipped = list(serde.shipped_schemas())
    distinct = {sv.fingerprint for sv in shipped}  # a current schema is also in its history
    assert store.register(shipped, "test") == len(distinct)
    assert store.register(shipped, "test") == 0
    found = store.lookup(shipped[0].fingerprint)
    assert found is not None and json.loads(found) == shipped[0].raw
    assert store.lookup(bytes(8)) is None
    store.close()
