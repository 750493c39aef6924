"""Alembic migrations against the real project PostgreSQL: complete, reversible, equal to the models."""

from __future__ import annotations

import hashlib
import math
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, Engine, Integer, MetaData, inspect, text
from sqlalchemy.exc import IntegrityError

from common.db import migrate
from common.db.models import Candle, Intent, Model, Recommendation, metadata
from common.db.session import make_engine, session_scope

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def engine(empty_database_url: str):
    eng = make_engine(empty_database_url)
    yield eng
    eng.dispose()


def _tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def _schema_diff(engine: Engine) -> list:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
        return compare_metadata(ctx, metadata)


def _model(model_id: str, selected: bool) -> Model:
    blob = f"weights of {model_id}".encode()
    return Model(
        model_id=model_id,
        algo="ppo",
        feature_spec={"fields": ["position", "volatility"]},
        strategy_set=["ema_cross", "rsi"],
        artifact=blob,
        artifact_sha256=hashlib.sha256(blob).hexdigest(),
        selected=selected,
    )


def test_upgrade_head_creates_every_table(empty_database_url: str, engine: Engine) -> None:
    assert migrate.current(empty_database_url) is None
    migrate.upgrade(empty_database_url)
    assert _tables(engine) == set(metadata.tables) | {"alembic_version"}
    assert migrate.current(empty_database_url) == migrate.head()


def test_database_after_upgrade_equals_models(empty_database_url: str, engine: Engine) -> None:
    """The `alembic check` equivalent: hand-written migrations and models must not drift apart."""
    migrate.upgrade(empty_database_url)
    assert _schema_diff(engine) == []


def test_training_results_tables_in_the_same_database_are_not_drift(
    empty_database_url: str, engine: Engine, tmp_path
) -> None:
    """The training engine may keep its results_* tables in the live database; autogenerate
    (with the filter migrations/env.py uses) must not propose to drop them, and does without it."""
    from training.results import ResultsDB

    migrate.upgrade(empty_database_url)
    ResultsDB(empty_database_url, tmp_path / "artifacts")
    assert {"results_runs", "results_evaluations"} <= _tables(engine)
    with engine.connect() as conn:
        unfiltered = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
        filtered = compare_metadata(
            MigrationContext.configure(
                conn, opts={"compare_type": True, "include_object": migrate.include_object}
            ),
            metadata,
        )
    removed = {d[1].name for d in unfiltered if d[0] == "remove_table"}
    assert removed and all(name.startswith("results_") for name in removed)
    assert filtered == []


def test_schema_comparison_detects_drift(empty_database_url: str, engine: Engine) -> None:
    """Guards the check above against being vacuous: a model change without a migration shows up."""
    migrate.upgrade(empty_database_url)
    drifted = MetaData(naming_convention=metadata.naming_convention)
    for table in metadata.sorted_tables:
        table.to_metadata(drifted)
    drifted.tables["candles"].append_column(Column("trades", Integer, nullable=True))
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, drifted)
    assert [d[0] for d in diff] == ["add_column"]


def test_downgrade_base_then_upgrade_again(empty_database_url: str, engine: Engine) -> None:
    migrate.upgrade(empty_database_url)
    migrate.downgrade(empty_database_url, "base")
    assert _tables(engine) <= {"alembic_version"}
    assert migrate.current(empty_database_url) is None
    with engine.connect() as conn:
        leftovers = (
            conn.execute(
                text(
                    "SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = 'public' AND c.relkind IN ('S', 'i') "
                    "AND relname NOT LIKE 'alembic_version%'"
                )
            )
            .scalars()
            .all()
        )
    assert leftovers == []  # no orphaned sequences or indexes

    migrate.upgrade(empty_database_url)
    assert _tables(engine) == set(metadata.tables) | {"alembic_version"}
    assert _schema_diff(engine) == []


def test_concurrent_upgrades_are_serialized(empty_database_url: str, engine: Engine) -> None:
    """Several pods migrating at start-up at once must all succeed, not trip over each other."""
    code = "import sys; from common.db.migrate import upgrade; upgrade(sys.argv[1])"
    procs = [
        subprocess.Popen([sys.executable, "-c", code, empty_database_url], cwd=REPO, stderr=subprocess.PIPE)
        for _ in range(3)
    ]
    # Threads inside one process are serialized by migrate's own lock.
    with ThreadPoolExecutor(max_workers=2) as pool:
        for future in [pool.submit(migrate.upgrade, empty_database_url) for _ in range(2)]:
            future.result()
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
    assert migrate.current(empty_database_url) == migrate.head()
    assert _schema_diff(engine) == []


def test_at_most_one_selected_model(empty_database_url: str, engine: Engine) -> None:
    migrate.upgrade(empty_database_url)
    with session_scope(engine) as s:
        s.add_all([_model("m1", selected=True), _model("m2", selected=False), _model("m3", selected=False)])

    with pytest.raises(IntegrityError, match="uq_models_selected"), session_scope(engine) as s:
        s.get(Model, "m2").selected = True

    # Switching the selection inside one transaction (unselect first) is the supported way.
    with session_scope(engine) as s:
        s.get(Model, "m1").selected = False
        s.flush()
        s.get(Model, "m2").selected = True
    with session_scope(engine) as s:
        selected = s.execute(text("SELECT model_id FROM models WHERE selected")).scalars().all()
        stored = s.get(Model, "m3")
        assert stored is not None and stored.artifact == b"weights of m3"
    assert selected == ["m2"]


def test_timescale_revision_applies_only_with_the_extension(empty_database_url: str, engine: Engine) -> None:
    """Without the extension (Debian Postgres here) 0002 is a no-op; with it, candles is a hypertable."""
    with engine.connect() as conn:
        available = conn.execute(
            text("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")
        ).scalar()

    migrate.upgrade(empty_database_url, "0001")
    migrate.upgrade(empty_database_url, "0002", options={"candle_retention_days": "30"})
    assert migrate.current(empty_database_url) == "0002"
    with engine.connect() as conn:
        installed = conn.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")).scalar()
        if available and installed:
            hyper = conn.execute(
                text("SELECT 1 FROM timescaledb_information.hypertables WHERE hypertable_name = 'candles'")
            ).scalar()
            assert hyper == 1
        else:
            assert installed is None
    migrate.downgrade(empty_database_url, "0001")
    assert migrate.current(empty_database_url) == "0001"
    assert "candles" in _tables(engine)


def test_namespaces_keep_live_and_replay_apart(empty_database_url: str, engine: Engine) -> None:
    """A replay re-derives the live run's deterministic ids; only the namespace tells them apart."""
    migrate.upgrade(empty_database_url)
    fields = {
        "intent_id": "i-1",
        "tick_id": "t-1",
        "model_id": "m1",
        "action": "HOLD",
        "target_exposure": 0.0,
        "status": "accepted",
    }
    with session_scope(engine) as s:
        s.add(Intent(**fields))  # default namespace: live
        s.add(Intent(namespace="replay-abc", **fields))
    with pytest.raises(IntegrityError), session_scope(engine) as s:
        s.add(Intent(**fields))  # the executor's dedup: same intent twice in one namespace
    with session_scope(engine) as s:
        assert s.get(Intent, ("live", "i-1")) is not None


def test_constraints_and_nan_safe_json(empty_database_url: str, engine: Engine) -> None:
    migrate.upgrade(empty_database_url)
    now = datetime(2022, 8, 20, 12, tzinfo=UTC)
    with session_scope(engine) as s:
        s.add(
            Recommendation(
                tick_id="t-1",
                strategy="rsi",
                strategy_version="1",
                symbol="BTC/USD:USD",
                timeframe="1h",
                bar_close_time=now,
                target="FLAT",
                event="NONE",
                confidence=0.5,
                horizon_bars=4,
                indicators={"rsi": math.nan, "ema": 1.5},  # warm-up NaN must not break the insert
            )
        )
    with session_scope(engine) as s:
        rec = s.get(Recommendation, ("live", "t-1", "rsi"))
        assert rec is not None and rec.indicators == {"rsi": "nan", "ema": 1.5}
        assert rec.bar_close_time == now

    bad = Candle(
        symbol="BTC/USD",
        timeframe="1h",
        open_time=now,
        open=10.0,
        high=9.0,
        low=11.0,
        close=10.0,
        volume=1.0,
        source="test",
    )
    with pytest.raises(IntegrityError, match="ck_candles_ohlc_consistent"), session_scope(engine) as s:
        s.add(bad)


_OLD_REC = (
    "INSERT INTO recommendations (tick_id, strategy, strategy_version, symbol, timeframe, bar_close_time, "
    "target, event, confidence, horizon_bars, indicators) VALUES (:t, :s, '1.0.0', 'BTC/USD:USD', '1h', "
    "'2023-03-01T00:00:00Z', 'FLAT', 'NONE', 0.5, 4, '{}')"
)


def _rec_columns(engine: Engine) -> dict[str, dict]:
    return {c["name"]: c for c in inspect(engine).get_columns("recommendations")}


def test_0006_recommendation_reason_and_attention_round_trip(empty_database_url: str, engine: Engine) -> None:
    """0006 adds two nullable columns: rows stored before read NULL, downgrade drops them and keeps rows."""
    migrate.upgrade(empty_database_url, "0005")
    assert not {"reason", "attention"} & set(_rec_columns(engine))
    with engine.begin() as conn:
        conn.execute(text(_OLD_REC), {"t": "t-old", "s": "ott"})

    migrate.upgrade(empty_database_url, "0006")
    cols = _rec_columns(engine)
    assert cols["reason"]["nullable"] and cols["attention"]["nullable"]
    assert (str(cols["reason"]["type"]), str(cols["attention"]["type"])) == ("TEXT", "BOOLEAN")
    with engine.begin() as conn:
        conn.execute(text(_OLD_REC), {"t": "t-new", "s": "news_attention"})
        conn.execute(
            text("UPDATE recommendations SET reason = 'stale:x', attention = true WHERE tick_id = 't-new'")
        )
        got = dict(conn.execute(text("SELECT tick_id, (reason, attention)::text FROM recommendations")).all())
    assert got == {"t-old": "(,)", "t-new": "(stale:x,t)"}

    migrate.downgrade(empty_database_url, "0005")
    assert not {"reason", "attention"} & set(_rec_columns(engine))
    with engine.connect() as conn:
        kept = conn.execute(text("SELECT tick_id FROM recommendations ORDER BY tick_id")).scalars().all()
    assert kept == ["t-new", "t-old"]

    migrate.upgrade(empty_database_url)
    assert _schema_diff(engine) == []
    with session_scope(engine) as s:
        old = s.get(Recommendation, ("live", "t-old", "ott"))
        assert old is not None and (old.reason, old.attention) == (None, None)
