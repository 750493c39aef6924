"""Session-scoped real infrastructure for integration tests: the project's Kafka and Postgres.

Nothing here is a mock: the fixtures start (idempotently) the same broker and database server the
developers use, then isolate each test with its own database and its own topic prefix.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from hypothesis import settings as hypothesis_settings

from common.db.session import with_local_passfile
from config import Settings, load_settings

# Property tests: no per-example time limit (a shared 2-core box stalls now and then, which is
# not a failure of the property). Under CI the examples are derived from each test, so a run is
# repeatable; locally they stay random and keep exploring.
hypothesis_settings.register_profile("btcmeta", deadline=None)
hypothesis_settings.register_profile("btcmeta-ci", deadline=None, derandomize=True)
hypothesis_settings.load_profile("btcmeta-ci" if os.environ.get("CI") else "btcmeta")

REPO = Path(__file__).resolve().parent.parent
PG_PORT = int(os.environ.get("BTCMETA_PG_PORT", "55432"))
KAFKA_PORT = int(os.environ.get("BTCMETA_KAFKA_PORT", "39092"))
# The local cluster authenticates with scram-sha-256; its generated password lives in the libpq
# passfile infra/dev.sh keeps under .local/ (a missing file is ignored: a trust cluster works too).
ADMIN_DSN = with_local_passfile(f"postgresql://btcmeta@127.0.0.1:{PG_PORT}/postgres")


def _url(db: str) -> str:
    return with_local_passfile(f"postgresql+psycopg://btcmeta@127.0.0.1:{PG_PORT}/{db}")


#: Fixtures that reach the real broker or database; every other infra fixture depends on ``infra``.
INFRA_FIXTURE = "infra"


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test whose fixture closure includes ``infra`` as ``integration``.

    Runs before ``-m`` deselects, so ``pytest -m "not integration"`` never starts a test that
    needs Kafka or Postgres, whether or not its module remembered ``pytestmark``.
    """
    for item in items:
        if INFRA_FIXTURE in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def infra() -> None:
    """Start Kafka and Postgres through the project's script (a no-op when they already run)."""
    subprocess.run([str(REPO / "infra" / "dev.sh"), "start"], check=True, capture_output=True, text=True)


@pytest.fixture(scope="session")
def pg_server(infra: None) -> str:
    return _url("postgres")


def _create_db() -> str:
    name = f"test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name


def _drop_db(name: str) -> None:
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def empty_database_url(pg_server: str) -> Iterator[str]:
    name = _create_db()
    yield _url(name)
    _drop_db(name)


@pytest.fixture(scope="session")
def database_url(pg_server: str) -> Iterator[str]:
    from common.db.migrate import upgrade

    name = _create_db()
    upgrade(_url(name), "head")
    yield _url(name)
    _drop_db(name)


@pytest.fixture(scope="session")
def kafka_bootstrap(infra: None) -> str:
    from common.kafka.topics import wait_for_broker

    bootstrap = f"127.0.0.1:{KAFKA_PORT}"
    wait_for_broker(load_settings(kafka={"bootstrap_servers": bootstrap}), timeout=90)
    return bootstrap


@pytest.fixture(scope="module")
def pipeline_env(database_url: str, kafka_bootstrap: str) -> Iterator[str]:
    """For tests that start the services as processes (which read settings from the environment):
    point them at the test database and broker, with the bundled candles and the shared exogenous
    series imported once."""
    from common.dataset import BUNDLED_CSV
    from ops.pipeline import import_candles, import_exogenous

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BTCMETA_DATABASE_URL", database_url)
        mp.setenv("BTCMETA_KAFKA__BOOTSTRAP_SERVERS", kafka_bootstrap)
        import_candles(BUNDLED_CSV)
        import_exogenous()
        yield database_url


@pytest.fixture
def settings(kafka_bootstrap: str, database_url: str) -> Iterator[Settings]:
    """Settings for one test: real broker and database, a topic prefix of its own, topics created."""
    from confluent_kafka.admin import AdminClient

    from common.kafka.configuration import admin_config
    from common.kafka.topics import delete_topics_with_prefix, ensure_topics, topic_specs

    prefix = f"test.{uuid.uuid4().hex[:8]}."
    s = load_settings(
        kafka={"bootstrap_servers": kafka_bootstrap, "topic_prefix": prefix},
        database_url=database_url,
        registry_path=str(REPO / "strategies_registry.json"),
    )
    admin = AdminClient(admin_config(s))
    # Every timeframe of the registry (1h, 4h, 1d), as `ops topics` creates them for live.
    from common.registry import load_registry

    timeframes = load_registry(s.registry_path, import_classes=False).timeframes
    ensure_topics(admin, topic_specs(s, timeframes))
    yield s
    delete_topics_with_prefix(admin, prefix)
