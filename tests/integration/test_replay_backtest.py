"""Backtest by topic replay == vectorized backtest, on a month of the real bundled data (three months
in the ``exhaustive`` suite, run alone: ``make test-exhaustive``).

Every service runs as its own process on the real broker and the test database (``ops.pipeline``),
once with the majority-vote fallback and once with a model (a seeded random MLP exported in the
live artifact format and pinned by id). The comparison must find every decision identical and the
fills, funding and PnL equal within floating-point tolerance; a deliberately perturbed vectorized
run must be reported at the tick that was changed. The fallback run also proves that a replay never
writes to the live topics or the live namespace's rows.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient
from sqlalchemy import func, select

from common.db.models import Model, Position
from common.db.namespaces import namespaced_tables
from common.db.session import make_engine, session_scope
from common.kafka.configuration import admin_config, consumer_config
from common.kafka.topics import topic_specs
from common.observation import FeatureSpec
from common.policy import export_policy
from common.registry import load_registry
from config import load_settings
from ops.pipeline import LiveNamespaceRefused, settings_for
from ops.replay_backtest import compare_run, insert_model, run_replay_backtest
from ops.replay_compare import compare
from ops.runs import delete_run, list_runs

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

# 30 days = 720 hourly ticks each (inclusive ends). With fourteen strategies the majority vote is
# flat most of the time: June 2022 is the month of the last 90 days with the most fills (20 of 24).
FALLBACK_WINDOW = (datetime(2022, 6, 1, 0, tzinfo=UTC), datetime(2022, 6, 30, 23, tzinfo=UTC))
MODEL_WINDOW = (datetime(2021, 1, 1, 0, tzinfo=UTC), datetime(2021, 1, 30, 23, tzinfo=UTC))
TICKS = 720
# The full-scale proofs (90 days = 2,160 ticks each), in the exhaustive suite.
FALLBACK_90D = (datetime(2022, 5, 22, 2, tzinfo=UTC), datetime(2022, 8, 20, 1, tzinfo=UTC))
MODEL_90D = (datetime(2021, 1, 1, 0, tzinfo=UTC), datetime(2021, 3, 31, 23, tzinfo=UTC))
LIVE_TOPICS = [t.name for t in topic_specs(load_settings(kafka={"topic_prefix": ""}), ["1h"])]


@dataclass
class Run:
    prefix: str
    out: Path
    start: datetime
    end: datetime
    comparison: object


def _live_offsets(bootstrap: str) -> dict[str, int]:
    settings = settings_for("x.")
    probe = Consumer(consumer_config(settings, f"probe-{uuid.uuid4().hex[:6]}"))
    names = set(probe.list_topics(timeout=10).topics)
    out = {
        t: probe.get_watermark_offsets(TopicPartition(t, p), timeout=10)[1]
        for t in LIVE_TOPICS
        if t in names
        for p in range(3 if t.endswith("recommendations") else 1)
    }
    probe.close()
    return out


def _live_rows(url: str) -> dict[str, int]:
    with session_scope(make_engine(url)) as s:
        return {
            t.name: int(s.scalar(select(func.count()).select_from(t).where(t.c.namespace == "live")) or 0)
            for t in namespaced_tables()
        }


@pytest.fixture(scope="module")
def fallback_run(
    pipeline_env: str, kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Run]:
    engine = make_engine(pipeline_env)
    with session_scope(engine) as s:  # a live book that must survive the replay untouched
        if s.get(Position, ("live", "BTC/USD:USD")) is None:
            s.add(Position(namespace="live", symbol="BTC/USD:USD", quantity=0.25, avg_entry_price=20_000.0))
    rows_before, offsets_before = _live_rows(pipeline_env), _live_offsets(kafka_bootstrap)
    prefix = f"bt.t{uuid.uuid4().hex[:8]}."
    out = tmp_path_factory.mktemp("fallback")
    cmp = run_replay_backtest(*FALLBACK_WINDOW, out, prefix=prefix, timeout_s=1500)
    run = Run(prefix, out, *FALLBACK_WINDOW, cmp)
    run.live = (rows_before, _live_rows(pipeline_env), offsets_before, _live_offsets(kafka_bootstrap))  # type: ignore[attr-defined]
    yield run
    delete_run(engine, AdminClient(admin_config(settings_for(prefix))), prefix)


def test_fallback_replay_identical_to_vectorized(fallback_run: Run) -> None:
    result = json.loads((fallback_run.out / "comparison.json").read_text())
    assert result["identical"], (fallback_run.out / "comparison.md").read_text()
    assert result["ticks"] == TICKS
    checks = result["checks"]
    assert checks["decisions (action, target exposure)"]["compared"] == TICKS
    assert checks["fills"]["compared"] >= 16, "a window without trades would prove little"
    assert checks["funding"]["compared"] > 30
    for name in ("decisions.csv", "fills.csv", "equity.csv", "comparison.md"):
        assert (fallback_run.out / name).stat().st_size > 0
    decisions = pd.read_csv(fallback_run.out / "decisions.csv")
    assert set(decisions["model_id"]) == {"fallback:majority_vote"}


def test_perturbed_vectorized_run_reports_the_first_differing_tick(
    fallback_run: Run, pipeline_env: str
) -> None:
    settings = settings_for(fallback_run.prefix)
    replay, vec, cmp = compare_run(settings, fallback_run.prefix, fallback_run.start, fallback_run.end, None)
    assert cmp.identical
    k = 300
    changed = vec.decisions.copy()
    changed.loc[k, "target_exposure"] = (
        -changed.loc[k, "target_exposure"] if changed.loc[k, "target_exposure"] else 0.5
    )
    later = changed.copy()
    later.loc[k + 200, "action"] = "NOT_AN_ACTION"
    bad = compare(replay, later, vec.observations, vec.spec, vec.sim, {})
    assert not bad.identical
    first = bad.first_difference()
    assert first is not None and first.what.startswith("decisions")
    tick = pd.Timestamp(vec.decisions.loc[k, "tick_time"])
    assert pd.Timestamp(first.tick_time) == tick
    assert first.replay["target_exposure"] == vec.decisions.loc[k, "target_exposure"]
    assert first.vectorized["target_exposure"] == changed.loc[k, "target_exposure"]
    assert len(first.replay["observation"]) == vec.spec.dim == len(first.vectorized["observation"])
    assert bad.checks["decisions (action, target exposure)"]["differences"] == 2
    # a fill price off by more than the tolerance is reported at its own tick
    sim = {**vec.sim, "fills": vec.sim["fills"].copy()}
    j = len(sim["fills"]) // 2
    sim["fills"].loc[j, "price"] *= 1 + 1e-7
    bad = compare(replay, vec.decisions, vec.observations, vec.spec, sim, {})
    assert bad.checks["fills"]["differences"] == 1
    fill_diff = next(d for d in bad.first if d.what == "fills")
    assert pd.Timestamp(fill_diff.tick_time) == pd.Timestamp(sim["fills"].loc[j, "tick_time"])
    assert "First difference: decisions" in compare(
        replay, later, vec.observations, vec.spec, vec.sim, {}
    ).to_markdown("x")


def test_replay_never_touches_live_topics_or_rows(fallback_run: Run, pipeline_env: str) -> None:
    rows_before, rows_after, offsets_before, offsets_after = fallback_run.live  # type: ignore[attr-defined]
    assert rows_after == rows_before
    assert rows_before["positions"] >= 1
    assert offsets_after == offsets_before
    with session_scope(make_engine(pipeline_env)) as s:
        live = s.get(Position, ("live", "BTC/USD:USD"))
        assert live is not None and live.quantity == 0.25
    admin = AdminClient(admin_config(settings_for(fallback_run.prefix)))
    engine = make_engine(pipeline_env)
    listed = {r.prefix: r for r in list_runs(engine, admin)}
    assert fallback_run.prefix in listed and listed[fallback_run.prefix].status == "done"
    assert "live" not in listed and "" not in listed
    for refused in ("live", "", "paper:live", "live."):
        with pytest.raises(LiveNamespaceRefused):
            delete_run(engine, admin, refused)


def _model_replay(pipeline_env: str, out: Path, window: tuple[datetime, datetime], ticks: int) -> None:
    registry = load_registry(os.environ.get("BTCMETA_REGISTRY_PATH", "strategies_registry.json"))
    spec = FeatureSpec(strategies=tuple(s.name for s in registry.enabled), vol_scale=0.008)
    rng = np.random.default_rng(20261124)
    layers = [
        (rng.normal(0, 0.6, (spec.dim, 16)), rng.normal(0, 0.1, 16)),
        (rng.normal(0, 0.8, (16, 5)), rng.normal(0, 0.1, 5)),
    ]
    artifact = export_policy(layers, ["tanh", "identity"], algo="random-mlp", spec=spec)
    model_id = f"test-random-mlp-{uuid.uuid4().hex[:6]}"
    engine = make_engine(pipeline_env)
    insert_model(engine, model_id, artifact, spec)
    prefix = f"bt.m{uuid.uuid4().hex[:8]}."
    try:
        cmp = run_replay_backtest(*window, out, model_id=model_id, prefix=prefix, timeout_s=1500)
        assert cmp.identical, (out / "comparison.md").read_text()
        decisions = pd.read_csv(out / "decisions.csv")
        assert len(decisions) == ticks and set(decisions["model_id"]) == {model_id}
        assert decisions["action"].nunique() >= 3, "the random policy should use several actions"
        assert cmp.checks["fills"]["compared"] > 20
        with session_scope(engine) as s:  # pinned, never selected: the live selection is untouched
            assert s.scalar(select(func.count()).select_from(Model).where(Model.selected)) == 0
    finally:
        delete_run(engine, AdminClient(admin_config(settings_for(prefix))), prefix)


def test_model_replay_identical_to_vectorized(pipeline_env: str, tmp_path: Path) -> None:
    _model_replay(pipeline_env, tmp_path, MODEL_WINDOW, TICKS)


@pytest.mark.exhaustive
def test_ninety_day_replays_identical_to_vectorized(pipeline_env: str, tmp_path: Path) -> None:
    """The full-scale proof: 2,160 ticks each of the majority vote and of a model."""
    prefix = f"bt.f{uuid.uuid4().hex[:8]}."
    try:
        cmp = run_replay_backtest(*FALLBACK_90D, tmp_path / "fallback", prefix=prefix, timeout_s=1700)
        assert cmp.identical, (tmp_path / "fallback" / "comparison.md").read_text()
        assert cmp.checks["decisions (action, target exposure)"]["compared"] == 2160
        assert cmp.checks["fills"]["compared"] > 20, "a window without trades would prove little"
    finally:
        delete_run(make_engine(pipeline_env), AdminClient(admin_config(settings_for(prefix))), prefix)
    _model_replay(pipeline_env, tmp_path / "model", MODEL_90D, 2160)


def test_window_lengths() -> None:
    for (start, end), ticks in (
        (FALLBACK_WINDOW, TICKS),
        (MODEL_WINDOW, TICKS),
        (FALLBACK_90D, 2160),
        (MODEL_90D, 2160),
    ):
        assert (end - start) // timedelta(hours=1) + 1 == ticks
