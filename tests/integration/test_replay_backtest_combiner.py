"""A combiner artefact through ``ops replay-backtest``: topic replay == its vectorized backtest.

ADR 0020 ships non-RL combiners (``btcmeta.combiner.v1``) to the meta consumer; issue 16 item 6
asks that a topic replay with one equal its vectorized backtest. Here a volatility-managed vote is
exported and registered as the research command does, pinned by id, and replayed through every
service (tick emitter, strategy processes, meta consumer, executor) on real data; the vectorized
side is the research candidate's exposure path with the configured fill price. The registry is
cut to two strategies (the fewest that still make a vote, ties included) to keep the run short.

The consumer's cold start (fewer than ``window + 1`` closes: flat) cannot happen inside a real
window here: every BarClosed carries the strategies' 720 h lookback, and at the start of the stored
history, where windows are shorter, the strategies are still warming up and flat, so the check
would be vacuous. It is proven where it can bite, on the real emitter window and the real decision
(tests/unit/test_replay_compare_combiner.py), and counted here (none).

An artefact edited after export, or one over another strategy set than the registry's, is refused
before anything starts, with the meta consumer's own reason.

A fitted ``ridge`` combiner (ADR 0025) goes the same way: fitted on the bundled data before the
window, it reads 721 closes (one strategy's lookback is raised to 744 h so the BarClosed carries
them) and the funding rate last published by each tick from the stored exogenous rows.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import typer
from confluent_kafka.admin import AdminClient
from sqlalchemy import Engine, update

from common.db.models import Model
from common.db.session import make_engine, session_scope
from common.kafka.configuration import admin_config
from ops.pipeline import settings_for
from ops.replay_backtest import run_replay_backtest
from ops.runs import delete_run, list_runs
from tests.conftest import REPO
from training.research.export import Exported, FitData, export

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

STRATEGIES = ("supertrend", "fsupertrend")
KEY = 'volmanaged:{"target_vol":0.3,"window":72}'
# 300 hourly ticks where the vote of the two moves and the sizing crosses five grid levels.
START = datetime(2022, 3, 15, 9, tzinfo=UTC)
END = START + timedelta(hours=299)


def _cut_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lookback: int | None = None) -> Path:
    doc = json.loads((REPO / "strategies_registry.json").read_text())
    doc["strategies"] = [s for s in doc["strategies"] if s["name"] in STRATEGIES]
    if lookback is not None:  # the BarClosed window: the longest lookback of the 1h strategies
        doc["strategies"][0]["lookback_hours"] = lookback
    doc.pop("$schema", None)
    path = tmp_path / "registry.json"
    path.write_text(json.dumps(doc))
    monkeypatch.setenv("BTCMETA_REGISTRY_PATH", str(path))
    return path


@pytest.fixture
def two_strategies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The real registry cut to :data:`STRATEGIES`: read by this process and every service started."""
    yield _cut_registry(tmp_path, monkeypatch)


@pytest.fixture
def two_strategies_744h(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """As :func:`two_strategies`, one lookback 744 h: BarClosed windows hold the 721 closes needed."""
    yield _cut_registry(tmp_path, monkeypatch, 744)


def _fit_data(registry_path: Path, tail: int | None = None) -> FitData:
    """The bundled candles before the window (the last ``tail`` of them), the cut registry's answers
    over them and the funding series (the funding read live matters)."""
    from common.dataset import load_bundled_candles
    from common.registry import load_registry
    from config import load_settings
    from training.research.funding import load_funding
    from training.signals import compute_signals, training_exogenous

    candles = load_bundled_candles()
    candles = candles[candles.index < pd.Timestamp(START) - pd.Timedelta(hours=1)]  # before the window
    if tail is not None:
        candles = candles.iloc[-tail:]
    registry = load_registry(registry_path)
    sig = compute_signals(candles, registry, training_exogenous(registry))
    return FitData(candles, sig, load_funding(Path(load_settings().exogenous.data_dir)))


def _replay_identical_to_vectorized(
    engine: Engine,
    exported: Exported,
    kind: str,
    tag: str,
    tmp_path: Path,
    *,
    levels: int,
    why: str,
    fills: bool,
) -> None:
    """``ops replay-backtest`` of the pinned combiner over the 300 ticks: every decision identical to
    its vectorized side, no cold tick, the vectorized exposure over ``levels`` grid levels or more
    (``fills``: and more than 10 fills compared); the run deleted and ``engine`` disposed after."""
    prefix = f"bt.{tag}{uuid.uuid4().hex[:8]}."
    out = tmp_path / "out"
    try:
        cmp = run_replay_backtest(START, END, out, model_id=exported.model_id, prefix=prefix, timeout_s=600)
        assert cmp.identical, (out / "comparison.md").read_text()
        result = json.loads((out / "comparison.json").read_text())
        assert result["ticks"] == 300
        assert result["model_kind"] == f"combiner:{kind} {exported.fingerprint}"
        assert result["checks"]["decided by the model"] == {"compared": 300, "differences": 0}
        # 720 (744) closes per BarClosed; volmanaged's window needs 73, the others 721
        assert result["cold_start_ticks"] == 0
        decisions = pd.read_csv(out / "decisions.csv")
        assert set(decisions["model_id"]) == {exported.model_id}
        vec = pd.read_csv(out / "vectorized_decisions.csv")
        assert vec["target_exposure"].nunique() >= levels, why
        if fills:
            assert cmp.checks["fills"]["compared"] > 10, "a window without trades would prove little"
    finally:
        delete_run(engine, AdminClient(admin_config(settings_for(prefix))), prefix)
        engine.dispose()


def test_linear_combiner_replay_identical_to_vectorized(
    pipeline_env: str, two_strategies_744h: Path, tmp_path: Path
) -> None:
    data = _fit_data(two_strategies_744h)
    engine = make_engine(pipeline_env)
    exported = export('ridge:{"lam":0.01}', STRATEGIES, engine=engine, data=data)
    assert json.loads(exported.artifact)["params"]["beta"][len(STRATEGIES) + 5] != 0.0  # funding_last
    why = "a window where the linear score moves the book"
    _replay_identical_to_vectorized(engine, exported, "ridge", "l", tmp_path, levels=3, why=why, fills=True)


def test_dsr_combiner_replay_identical_to_vectorized(
    pipeline_env: str, two_strategies_744h: Path, tmp_path: Path
) -> None:
    """An online combiner (ADR 0026) through the whole pipeline: its state carried tick to tick by
    the meta consumer == the research step seeded from the artefact's state at the first tick."""
    data = _fit_data(two_strategies_744h, 3000)
    engine = make_engine(pipeline_env)
    exported = export('dsr:{"rho":0.01,"seed":1}', STRATEGIES, engine=engine, data=data)
    why = "a window where the learner moves the book"
    _replay_identical_to_vectorized(engine, exported, "dsr", "o", tmp_path, levels=3, why=why, fills=False)


def test_rl_combiner_replay_identical_to_vectorized(
    pipeline_env: str, two_strategies_744h: Path, tmp_path: Path
) -> None:
    """The RL policy (ADR 0027) through the whole pipeline: two PPO seeds fitted on the bars before
    the window; the meta consumer's FeatureSpec v2 from the BarClosed closes and its carried state
    == the same step seeded from the artefact's state over the research context."""
    data = _fit_data(two_strategies_744h, 4000)
    engine = make_engine(pipeline_env)
    key = 'rl:{"horizon":168.0,"seeds":2,"steps":8192}'
    exported = export(key, STRATEGIES, engine=engine, data=data)
    why = "a window where the policy moves the book"
    _replay_identical_to_vectorized(engine, exported, "rl", "r", tmp_path, levels=2, why=why, fills=False)


def test_combiner_replay_identical_to_vectorized(
    pipeline_env: str, two_strategies: Path, tmp_path: Path
) -> None:
    engine = make_engine(pipeline_env)
    exported = export(KEY, STRATEGIES, engine=engine)
    why = "a window where the sizing moves"
    _replay_identical_to_vectorized(
        engine, exported, "volmanaged", "c", tmp_path, levels=3, why=why, fills=True
    )


def test_tampered_or_foreign_combiner_refused_before_anything_runs(
    pipeline_env: str, two_strategies: Path, tmp_path: Path
) -> None:
    engine = make_engine(pipeline_env)
    tampered = export(KEY, STRATEGIES, engine=engine, model_id=f"test-tampered-{uuid.uuid4().hex[:6]}")
    doc = json.loads(tampered.artifact)
    doc["params"]["target_vol"] = 3.0  # the sha256 column follows, the fingerprint cannot
    bad = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    with session_scope(engine) as s:
        s.execute(
            update(Model)
            .where(Model.model_id == tampered.model_id)
            .values(artifact=bad, artifact_sha256=hashlib.sha256(bad).hexdigest())
        )
    prefix = f"bt.x{uuid.uuid4().hex[:8]}."
    with pytest.raises(typer.BadParameter, match=r"combiner refused: .*fingerprint .* does not match"):
        run_replay_backtest(START, END, tmp_path, model_id=tampered.model_id, prefix=prefix)
    # a combiner over one of the two strategies: the meta consumer would refuse it (and decide
    # with the fallback), so the harness refuses it up front
    single = export(KEY, STRATEGIES[:1], engine=engine)
    with pytest.raises(typer.BadParameter, match="the registry enables"):
        run_replay_backtest(START, END, tmp_path, model_id=single.model_id, prefix=prefix)
    admin = AdminClient(admin_config(settings_for(prefix)))
    assert prefix not in {r.prefix for r in list_runs(engine, admin)}
    engine.dispose()
