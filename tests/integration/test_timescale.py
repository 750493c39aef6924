"""TimescaleDB for real: the local cluster preloads 2.23.1 (infra/dev.sh, built by infra/timescale.sh),
and migrations 0002/0005 turn candles and exogenous observations into compressed hypertables with
retention. Compressed chunks must read back exactly what was stored, through the same code the
services use, and the policy jobs must do what they promise.

The plain-PostgreSQL path stays tested too: a throwaway second cluster WITHOUT the preload (the
extension files are installed on this machine, so this is the "packaged but not preloaded" case)
must still reach the head revision, with ordinary tables.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import psycopg
import pytest
from sqlalchemy import Connection, Engine, text

from common.dataset import load_bundled_candles
from common.db import migrate
from common.db.session import make_engine
from producers.candles import RawCandle
from producers.store import insert_candles, load_arrays

pytestmark = pytest.mark.integration

SYMBOL, TF, SOURCE = "BTC/USD", "1h", "bitstamp-csv"
TS_VERSION = "2.23.1"


def _candles(days: int) -> list[RawCandle]:
    """The last `days` days of the bundled real BTC hourly candles."""
    frame = load_bundled_candles()
    frame = frame[frame.index >= frame.index[-1] - timedelta(days=days)]
    times = frame.index.as_unit("ms").asi8
    return [RawCandle(int(t), *map(float, row)) for t, row in zip(times, frame.to_numpy(), strict=True)]


def _whole_range(engine: Engine) -> tuple[np.ndarray, np.ndarray]:
    """What the tick emitter reads (producers.store.load_arrays), over all of time."""
    return load_arrays(engine, SYMBOL, TF, datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


def _chunks(conn: Connection, table: str) -> list[tuple[str, bool]]:
    return [
        (f"{schema}.{name}", bool(compressed))
        for schema, name, compressed in conn.execute(
            text(
                "SELECT chunk_schema, chunk_name, is_compressed FROM timescaledb_information.chunks "
                "WHERE hypertable_name = :t ORDER BY range_start"
            ),
            {"t": table},
        )
    ]


def _jobs(conn: Connection, proc: str, table: str) -> list[tuple[int, dict]]:
    rows = conn.execute(
        text(
            "SELECT job_id, config FROM timescaledb_information.jobs "
            "WHERE proc_name = :p AND hypertable_name = :t"
        ),
        {"p": proc, "t": table},
    ).all()
    return [(int(r[0]), dict(r[1])) for r in rows]


def _job(conn: Connection, proc: str, table: str) -> tuple[int, dict]:
    [job] = _jobs(conn, proc, table)
    return job


@pytest.fixture
def fresh_engine(empty_database_url: str) -> Iterator[tuple[str, Engine]]:
    engine = make_engine(empty_database_url)
    yield empty_database_url, engine
    engine.dispose()


# ------------------------------------------------------------------------------------------------
# The project's test database (migrated to head by the session fixture)


def test_the_extension_is_preloaded_and_installed(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            assert "timescaledb" in conn.execute(text("SHOW shared_preload_libraries")).scalar_one()
            version = conn.execute(text("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'"))
            assert version.scalar_one() == TS_VERSION
            # The community edition (the Timescale License part built from tsl/): compression, policies.
            assert conn.execute(text("SHOW timescaledb.license")).scalar_one() == "timescale"
            assert conn.execute(text("SHOW timescaledb.telemetry_level")).scalar_one() == "off"
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("table", "time_column", "segment_by", "order_by", "compress_after", "chunk"),
    [
        ("candles", "open_time", ["symbol", "timeframe"], ["open_time"], "7 days", timedelta(days=7)),
        (
            "exogenous_observations",
            "about_ts",
            ["series"],
            ["about_ts", "item_key"],
            "90 days",
            timedelta(days=30),
        ),
    ],
)
def test_tables_are_compressed_hypertables_with_policies(
    database_url: str,
    table: str,
    time_column: str,
    segment_by: list[str],
    order_by: list[str],
    compress_after: str,
    chunk: timedelta,
) -> None:
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            hyper = conn.execute(
                text(
                    "SELECT compression_enabled FROM timescaledb_information.hypertables "
                    "WHERE hypertable_name = :t"
                ),
                {"t": table},
            ).one()
            assert hyper[0] is True
            dim = conn.execute(
                text(
                    "SELECT column_name, time_interval FROM timescaledb_information.dimensions "
                    "WHERE hypertable_name = :t"
                ),
                {"t": table},
            ).all()
            assert dim == [(time_column, chunk)]
            settings = conn.execute(
                text(
                    "SELECT attname, segmentby_column_index, orderby_column_index "
                    "FROM timescaledb_information.compression_settings WHERE hypertable_name = :t"
                ),
                {"t": table},
            ).all()
            assert [a for a, s, _ in sorted(settings, key=lambda r: r[1] or 0) if s] == segment_by
            assert [a for a, _, o in sorted(settings, key=lambda r: r[2] or 0) if o] == order_by
            _, compression = _job(conn, "policy_compression", table)
            assert compression["compress_after"] == compress_after
            retention = [c for _j, c in _jobs(conn, "policy_retention", table)]
            if table == "candles":
                assert [c["drop_after"] for c in retention] == ["400 days"]  # 0002's default
            else:
                assert retention == []  # research reads the whole history: 0005 keeps it all
            # No index beyond what the models declare (a default time index would be schema drift).
            indexes = conn.execute(
                text("SELECT indexname FROM pg_indexes WHERE tablename = :t"), {"t": table}
            )
            assert not [i for (i,) in indexes if i.endswith(f"_{time_column}_idx")]
    finally:
        engine.dispose()


# ------------------------------------------------------------------------------------------------
# Data through compression, on a database of its own


def test_compressed_candle_chunks_read_back_identically(fresh_engine: tuple[str, Engine]) -> None:
    url, engine = fresh_engine
    migrate.upgrade(url)
    candles = _candles(days=60)
    inserted, conflicts = insert_candles(engine, SYMBOL, TF, candles, SOURCE)
    assert (inserted, conflicts) == (len(candles), [])
    times, values = _whole_range(engine)
    with engine.connect() as conn:
        rows_before = conn.execute(text("SELECT * FROM candles ORDER BY open_time")).all()

    with engine.begin() as conn:
        chunks = _chunks(conn, "candles")
        assert len(chunks) >= 8 and not any(c for _, c in chunks)
        for name, _ in chunks:
            conn.execute(text("SELECT compress_chunk(CAST(:c AS regclass))"), {"c": name})
    with engine.connect() as conn:
        assert all(c for _, c in _chunks(conn, "candles"))
        # The rows now live in the compressed store only: the chunks' own heaps are empty.
        for name, _ in chunks:
            assert conn.execute(text(f"SELECT count(*) FROM ONLY {name}")).scalar_one() == 0
        rows_after = conn.execute(text("SELECT * FROM candles ORDER BY open_time")).all()
    assert rows_after == rows_before
    times_after, values_after = _whole_range(engine)
    np.testing.assert_array_equal(times_after, times)
    np.testing.assert_array_equal(values_after, values)
    assert times[0] == candles[0].open_time_ms and len(times) == len(candles)

    # The sync keeps writing into compressed history: a re-run inserts nothing, and a different
    # version of a stored candle is still caught by the primary key and refused as a conflict.
    assert insert_candles(engine, SYMBOL, TF, candles, SOURCE) == (0, [])
    changed = candles[100]
    altered = RawCandle(
        changed.open_time_ms, changed.open, changed.high, changed.low, changed.close + 1.0, changed.volume
    )
    inserted, conflicts = insert_candles(engine, SYMBOL, TF, [altered], SOURCE)
    assert inserted == 0 and [c.candle for c in conflicts] == [altered]
    np.testing.assert_array_equal(_whole_range(engine)[1], values)


def test_policy_jobs_compress_and_drop_old_chunks(fresh_engine: tuple[str, Engine]) -> None:
    """Run the two policies the migration set up, as the scheduler would (CALL run_job).

    The retention window is chosen so that it cuts through the imported month: chunks wholly
    before the cut go, everything after it stays.
    """
    url, engine = fresh_engine
    candles = _candles(days=35)
    cut = candles[len(candles) // 2].open_time
    retention_days = (datetime.now(UTC) - cut).days
    migrate.upgrade(url, options={"candle_retention_days": str(retention_days)})
    insert_candles(engine, SYMBOL, TF, candles, SOURCE)

    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT")
        compression_job, _ = _job(conn, "policy_compression", "candles")
        retention_job, config = _job(conn, "policy_retention", "candles")
        assert config["drop_after"] == f"{retention_days} days"
        conn.execute(text("CALL run_job(:j)"), {"j": compression_job})
        chunks = _chunks(conn, "candles")
        assert chunks and all(c for _, c in chunks)  # every chunk is years older than 7 days

        conn.execute(text("CALL run_job(:j)"), {"j": retention_job})
        left = conn.execute(text("SELECT open_time FROM candles ORDER BY open_time")).scalars().all()
    cutoff = datetime.now(UTC) - timedelta(days=retention_days)
    assert 0 < len(left) < len(candles)
    assert left[0] >= cutoff - timedelta(days=7, minutes=5)  # at most the chunk holding the cut survives
    assert left == [c.open_time for c in candles if c.open_time >= left[0]]  # nothing after it is lost


def test_compressed_exogenous_observations_read_back_identically(fresh_engine: tuple[str, Engine]) -> None:
    url, engine = fresh_engine
    migrate.upgrade(url)
    start = datetime(2020, 1, 1, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO exogenous_series (name, category, frequency, units, publication_rule, source, "
                "description) VALUES ('fear_greed', 'sentiment', '1d', '{\"value\": \"index\"}', 'D 00:00', "
                "'test', 'daily index'), ('headlines', 'news', 'event', '{}', 'ts + 1h', 'test', 'items')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO exogenous_observations "
                "(series, about_ts, item_key, published_at, value, fields, source) "
                "SELECT 'fear_greed', :start + make_interval(days => d), '', "
                ":start + make_interval(days => d + 1), (d * 37) % 101, NULL, 'test' "
                "FROM generate_series(0, 199) d "
                "UNION ALL SELECT 'headlines', :start + make_interval(hours => h), 'item-' || h, "
                ":start + make_interval(hours => h + 1), NULL, "
                "jsonb_build_object('title', 'headline ' || h, 'polarity', (h % 7) / 7.0), 'test' "
                "FROM generate_series(0, 199) h"
            ),
            {"start": start},
        )
    order = "ORDER BY series, about_ts, item_key"
    with engine.connect() as conn:
        before = conn.execute(text(f"SELECT * FROM exogenous_observations {order}")).all()
    with engine.begin() as conn:
        chunks = _chunks(conn, "exogenous_observations")
        assert len(chunks) >= 6
        conn.execute(text("SELECT compress_chunk(c) FROM show_chunks('exogenous_observations') c"))
    with engine.connect() as conn:
        assert all(c for _, c in _chunks(conn, "exogenous_observations"))
        after = conn.execute(text(f"SELECT * FROM exogenous_observations {order}")).all()
        # A point-in-time read (what was published by T) works on the compressed rows too.
        known = conn.execute(
            text(
                "SELECT count(*) FROM exogenous_observations "
                "WHERE series = 'fear_greed' AND published_at <= :t"
            ),
            {"t": start + timedelta(days=50)},
        ).scalar_one()
    assert after == before and len(before) == 400
    assert known == 50


# ------------------------------------------------------------------------------------------------
# The plain-PostgreSQL path: a throwaway cluster without the preload


def _pg_bindir() -> Path:
    """Same rule as infra/dev.sh: pg_config's bindir when it has initdb, else the newest Debian one."""
    found = shutil.which("pg_config")
    if found:
        out = subprocess.run([found, "--bindir"], capture_output=True, text=True, check=True).stdout
        bindir = Path(out.strip())
        if (bindir / "initdb").exists():
            return bindir
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name)
    )
    if not candidates:
        raise RuntimeError("no PostgreSQL server binaries (initdb) on this machine")
    return candidates[-1].parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def plain_cluster() -> Iterator[str]:
    """A second local cluster, no shared_preload_libraries, scram auth; yields its admin URL.

    The server refuses to run as root, so as root it runs as the `postgres` system user, like the
    project's cluster (infra/dev.sh).
    """
    bindir = _pg_bindir()
    root = os.geteuid() == 0
    owner = os.environ.get("BTCMETA_PG_OS_USER", "postgres")
    as_owner = ["runuser", "-u", owner, "--"] if root else []
    base = Path(tempfile.mkdtemp(prefix="btcmeta-plain-pg-"))
    client = Path(tempfile.mkdtemp(prefix="btcmeta-plain-pg-client-"))
    password = secrets.token_urlsafe(24)
    pwfile = base / "password"
    pwfile.write_text(password)
    pwfile.chmod(0o600)
    if root:
        shutil.chown(base, owner)
        shutil.chown(pwfile, owner)
    port = _free_port()
    passfile = client / "pgpass"
    passfile.write_text(f"127.0.0.1:{port}:*:btcmeta:{password}\n")
    passfile.chmod(0o600)
    data = base / "data"
    subprocess.run(
        [
            *as_owner,
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            "btcmeta",
            "--auth=scram-sha-256",
            f"--pwfile={pwfile}",
            "-E",
            "UTF8",
            "--no-locale",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c shared_preload_libraries=''"
    subprocess.run(
        [
            *as_owner,
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(base / "postgres.log"),
            "-w",
            "-t",
            "60",
            "-o",
            options,
            "start",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    try:
        yield f"postgresql+psycopg://btcmeta@127.0.0.1:{port}/postgres?passfile={passfile}"
    finally:
        subprocess.run(
            [*as_owner, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
            check=False,
            capture_output=True,
        )
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(client, ignore_errors=True)


def test_without_the_preload_migrations_reach_head_with_plain_tables(
    plain_cluster: str, caplog: pytest.LogCaptureFixture
) -> None:
    admin = plain_cluster.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as conn:
        assert conn.execute("SHOW shared_preload_libraries").fetchone() == ("",)
        conn.execute("CREATE DATABASE plain")
    url = plain_cluster.replace("/postgres?", "/plain?")
    with caplog.at_level(logging.INFO, logger="alembic.runtime.migration"):
        migrate.upgrade(url)
    assert migrate.current(url) == migrate.head()
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            extension = conn.execute(text("SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'"))
            assert extension.scalar() == 0
            kinds: dict[str, str] = dict(
                conn.execute(
                    text(
                        "SELECT relname, relkind FROM pg_class WHERE relnamespace = 'public'::regnamespace "
                        "AND relname IN ('candles', 'exogenous_observations')"
                    )
                ).all()
            )
            assert kinds == {"candles": "r", "exogenous_observations": "r"}
            has_children = conn.execute(
                text("SELECT count(*) FROM pg_inherits WHERE inhparent = 'candles'::regclass")
            ).scalar()
            assert has_children == 0
        # Each TimescaleDB revision (0002, 0005) said why it did nothing.
        assert caplog.text.count("timescale: skipped") >= 2
        # And the plain schema goes down and up again like any other.
        migrate.downgrade(url, "base")
        migrate.upgrade(url)
        assert migrate.current(url) == migrate.head()
    finally:
        engine.dispose()
