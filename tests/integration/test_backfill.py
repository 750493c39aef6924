"""A new strategy's consumer group backfills over a replay's retained bars; training reads the result.

The window's bars are replayed into a fresh namespace with no strategy running (as if the strategy
did not exist yet). ``ops.backfill`` then runs ``strategy_consumers run <name>`` as its own process
(a new consumer group, so it starts at the oldest retained bar) and stores every answer; the
stored answers must equal the strategy over the full history, and ``signals_from_namespace`` must
give the training engine the same arrays as ``training.signals.compute_signals``. Deleting the
run removes its rows and topics.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from confluent_kafka.admin import AdminClient

from common.dataset import load_bundled_candles
from common.db.session import make_engine
from common.kafka.configuration import admin_config
from common.registry import load_registry
from ops.backfill import backfill, retained_bars, signals_from_namespace
from ops.pipeline import settings_for
from ops.runs import delete_run, list_runs
from producers import store
from tick_emitter.core import BaseCandles
from tick_emitter.replay import replay
from training.signals import compute_signals

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
START = datetime(2022, 6, 1, 0, tzinfo=UTC)
END = START + timedelta(hours=149)  # 150 ticks


@pytest.fixture
def bars_only(pipeline_env: str) -> Iterator[str]:
    """A namespace holding only the replayed bars and ticks: no strategy has answered yet."""
    prefix = f"bf.t{uuid.uuid4().hex[:8]}."
    settings = settings_for(prefix)
    registry = load_registry(settings.registry_path, max_lookback_hours=settings.max_lookback_hours)
    lookback = timedelta(hours=max(s.lookback_hours for s in registry.enabled))
    engine = make_engine(pipeline_env)
    base = BaseCandles(*store.load_arrays(engine, settings.symbol, "1h", START - lookback, END), 60)
    stats = replay(settings, registry, base, START, END)
    assert stats.ticks == 150
    yield prefix
    delete_run(engine, AdminClient(admin_config(settings)), prefix)


def test_new_strategy_backfills_from_retained_bars(bars_only: str, pipeline_env: str, tmp_path: Path) -> None:
    prefix = bars_only
    engine = make_engine(pipeline_env)
    assert retained_bars(prefix, "1h") == 150
    result = backfill(prefix, "fsupertrend", tmp_path / "logs", timeout_s=600)
    assert (result.bars, result.stored) == (150, 150)
    again = backfill(prefix, "supertrend", tmp_path / "logs2", timeout_s=600)
    assert again.stored == 150

    arrays = signals_from_namespace(engine, prefix, ["fsupertrend", "supertrend"])
    history = load_bundled_candles()
    history = history[history.index < pd.Timestamp(END)]
    registry = load_registry()
    expected = compute_signals(history, registry)
    rows = expected.index.get_indexer(arrays.index)
    assert len(arrays) == 150 and (rows >= 0).all()
    assert arrays.index[0] == pd.Timestamp(START) - pd.Timedelta(hours=1)
    for j, name in enumerate(arrays.strategies):
        k = expected.strategies.index(name)
        assert np.array_equal(arrays.target[:, j], expected.target[rows, k]), name
        assert np.array_equal(arrays.event[:, j], expected.event[rows, k]), name
        np.testing.assert_allclose(arrays.confidence[:, j], expected.confidence[rows, k], rtol=0, atol=1e-12)
    assert len(set(arrays.target[:, 0])) == 3, "a window where the strategy never moves proves little"

    out = tmp_path / "signals.npz"
    arrays.save(out)
    assert type(arrays).load(out).strategies == ("fsupertrend", "supertrend")

    admin = AdminClient(admin_config(settings_for(prefix)))
    assert prefix in {r.prefix for r in list_runs(engine, admin)}
    rows_deleted, topics, _groups = delete_run(engine, admin, prefix)
    assert rows_deleted >= 300 and topics
    assert prefix not in {r.prefix for r in list_runs(engine, admin)}


def test_runs_cli_lists_and_refuses_live(bars_only: str, pipeline_env: str) -> None:
    from typer.testing import CliRunner

    from ops.cli import app

    runner = CliRunner()
    listed = runner.invoke(app, ["runs", "list"])
    assert listed.exit_code == 0, listed.output
    assert bars_only in listed.output and "\nlive " not in listed.output
    for live in ("live", "paper:live"):
        refused = runner.invoke(app, ["runs", "delete", live])
        assert refused.exit_code == 2 and "refusing" in refused.output
    deleted = runner.invoke(app, ["runs", "delete", bars_only])
    # the five message topics plus one bars topic per registered timeframe (1h, 4h, 1d)
    topics = 5 + len(load_registry().timeframes)
    assert deleted.exit_code == 0 and f"{topics} topics" in deleted.output, deleted.output
    assert bars_only not in runner.invoke(app, ["runs", "list"]).output
