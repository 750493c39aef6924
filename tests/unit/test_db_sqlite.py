"""The laptop path: the same models (and migrations) on SQLite, no server needed."""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select
from sqlalchemy.exc import IntegrityError

from common.db import migrate
from common.db.ml import ModelConflict, add_model
from common.db.models import Base, Evaluation, Model, TrainingRun, metadata
from common.db.session import json_dumps, make_engine, normalize_url, session_scope


@pytest.fixture
def engine(tmp_path: Path):
    eng = make_engine(f"sqlite:///{tmp_path / 'laptop.db'}")
    Base.metadata.create_all(eng)
    yield eng
    eng.dispose()


def _model(model_id: str, selected: bool = False) -> Model:
    blob = bytes(range(256)) * 4  # arbitrary binary, NUL bytes included
    return Model(
        model_id=model_id,
        algo="sac",
        feature_spec={"fields": ["position"], "window": 3},
        strategy_set=["ema_cross"],
        params={"gamma": 0.99},
        artifact=blob,
        artifact_sha256=hashlib.sha256(blob).hexdigest(),
        selected=selected,
    )


def test_create_all_and_model_round_trip(engine) -> None:
    assert set(inspect(engine).get_table_names()) == set(metadata.tables)
    with session_scope(engine) as s:
        s.add(_model("ppo-1", selected=True))
    with session_scope(engine) as s:
        row = s.scalars(select(Model).where(Model.selected)).one()
        assert row.model_id == "ppo-1"
        assert row.artifact == bytes(range(256)) * 4
        assert hashlib.sha256(row.artifact).hexdigest() == row.artifact_sha256
        assert row.feature_spec == {"fields": ["position"], "window": 3}
        assert row.strategy_set == ["ema_cross"]
        assert row.params == {"gamma": 0.99}
        assert isinstance(row.created_at, datetime)


def test_one_selected_model_on_sqlite_too(engine) -> None:
    with session_scope(engine) as s:
        s.add_all([_model("a", selected=True), _model("b")])
    with pytest.raises(IntegrityError), session_scope(engine) as s:
        s.add(_model("c", selected=True))
    with session_scope(engine) as s:
        assert s.scalar(select(Model.model_id).where(Model.selected)) == "a"


def test_add_model_keeps_an_id_on_one_artifact(engine) -> None:
    spec = {"fields": ["position"], "window": 3}
    kwargs = {"algo": "mlp", "feature_spec": spec, "strategy_set": ["ott"]}
    with session_scope(engine) as s:
        assert add_model(s, model_id="m1", artifact=b"\x00one", **kwargs) is True
    with session_scope(engine) as s:
        assert add_model(s, model_id="m1", artifact=b"\x00one", **kwargs) is False  # idempotent
        with pytest.raises(ModelConflict, match="m1 exists with another artifact"):
            add_model(s, model_id="m1", artifact=b"\x00two", **kwargs)
    with session_scope(engine) as s:
        row = s.get(Model, "m1")
        assert row is not None and row.artifact == b"\x00one" and not row.selected
        assert row.artifact_sha256 == hashlib.sha256(b"\x00one").hexdigest()


def test_session_scope_rolls_back_and_foreign_keys_are_enforced(engine) -> None:
    with pytest.raises(IntegrityError), session_scope(engine) as s:
        s.add(Evaluation(run_id="no-such-run", name="buy_and_hold", window="test", metrics={}))
    with session_scope(engine) as s:
        s.add(TrainingRun(run_id="r1", status="running", seed=2**32 - 1))
    with session_scope(engine) as s:
        s.add(Evaluation(run_id="r1", name="buy_and_hold", window="test", metrics={"sharpe": 0.4}))
    with pytest.raises(RuntimeError), session_scope(engine) as s:
        s.add(TrainingRun(run_id="r2", status="running"))
        raise RuntimeError("boom")
    with session_scope(engine) as s:
        assert s.get(TrainingRun, "r2") is None
        assert s.get(TrainingRun, "r1").seed == 2**32 - 1


def test_migrations_run_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'migrated.db'}"
    migrate.upgrade(url)
    assert migrate.current(url) == migrate.head()
    eng = make_engine(url)
    try:
        assert set(inspect(eng).get_table_names()) == set(metadata.tables) | {"alembic_version"}
        with eng.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(ctx, metadata) == []
        migrate.downgrade(url)
        assert set(inspect(eng).get_table_names()) <= {"alembic_version"}
    finally:
        eng.dispose()


def test_json_dumps_is_nan_safe() -> None:
    doc = json_dumps({"a": math.nan, "b": [math.inf, -math.inf, 1.0], "t": datetime(2020, 1, 1, tzinfo=UTC)})
    assert doc == '{"a": "nan", "b": ["inf", "-inf", 1.0], "t": "2020-01-01 00:00:00+00:00"}'


def test_json_dumps_fast_path_gives_the_sanitized_text() -> None:
    import json

    import numpy as np

    from common.db.direct import _finite

    finite = {"x": [1.5, np.float64(2.25), (3, "s")], "y": {"z": -0.0}, "t": datetime(2021, 5, 1, tzinfo=UTC)}
    assert json_dumps(finite) == json.dumps(_finite(finite), default=str, allow_nan=False)
    # one NaN deep inside a nested document takes the sanitizing path, numpy scalars included
    deep = {"x": [1.0, {"y": (2.0, np.float64("nan"))}]}
    assert json_dumps(deep) == '{"x": [1.0, {"y": [2.0, "nan"]}]}'


def test_normalize_url_uses_psycopg3() -> None:
    assert normalize_url("postgresql://u@h:1/db") == "postgresql+psycopg://u@h:1/db"
    assert normalize_url("postgres://u:p@h/db") == "postgresql+psycopg://u:p@h/db"
    assert normalize_url("sqlite:///x.db") == "sqlite:///x.db"
