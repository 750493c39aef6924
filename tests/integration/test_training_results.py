"""Training results against the real PostgreSQL: concurrent writers, ``select`` into the live
``models`` table (seen by the meta consumer's ModelManager), ``retrain-check``, and the CCXT
download through the local Kraken Futures stand-in."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from common.db.models import Evaluation, Model, TrainingRun
from common.db.session import make_engine
from common.observation import FeatureSpec
from common.policy import load_policy
from common.registry import load_registry
from config import MetaSettings
from meta_consumer import store
from meta_consumer.models import ModelManager
from tests.standin.kraken_futures import KrakenFuturesStandIn
from tests.unit.training.test_results import artifact, check_writers, run_writers
from training.cli import app
from training.results import ResultsDB

pytestmark = pytest.mark.integration
runner = CliRunner()
REPO = Path(__file__).resolve().parents[2]
LIVE = tuple(s.name for s in load_registry(REPO / "strategies_registry.json", import_classes=False).enabled)


@pytest.fixture
def live_url(empty_database_url: str) -> str:
    """A live database of its own (migrated), so selections never leak into other tests."""
    from common.db.migrate import upgrade

    upgrade(empty_database_url, "head")
    return empty_database_url


def _record(
    db: ResultsDB, spec: FeatureSpec, names: tuple[str, ...] = ("ppo", "a2c")
) -> tuple[str, dict[str, int]]:
    run = db.start_run(config={"test": True}, seed=1, data_fingerprint="fp", commit="c0ffee")
    ids = {}
    for k, name in enumerate(names):
        path, sha = db.save_model(run, name, artifact(spec, k, name))
        for window in ("validation", "test"):
            ids[f"{name}.{window}"] = db.record_evaluation(
                run,
                name,
                kind="model",
                algo=name,
                window=window,
                metrics={"sharpe": 1.0 + k},
                model_path=path,
                model_sha256=sha,
            )
    for window in ("validation", "test"):
        db.record_evaluation(run, "buy_and_hold", window=window, metrics={"sharpe": 0.5})
    db.finish_run(run)
    return run, ids


def _invoke(*args: str) -> tuple[int, str]:
    res = runner.invoke(app, list(args))
    return res.exit_code, " ".join(res.output.replace("│", " ").split())


def test_two_processes_write_one_postgres_db(empty_database_url: str, tmp_path: Path) -> None:
    run_writers(empty_database_url, tmp_path / "art", tmp_path)
    check_writers(ResultsDB(empty_database_url, tmp_path / "art"))


def test_select_uploads_and_the_meta_consumer_hot_reloads(live_url: str, tmp_path: Path) -> None:
    # The team's shared database holds both: the results_* tables live beside the Alembic schema.
    db = ResultsDB(live_url, tmp_path / "art")
    spec = FeatureSpec(strategies=LIVE, vol_scale=0.01)
    run, ids = _record(db, spec)
    engine = make_engine(live_url)
    manager = ModelManager(engine, MetaSettings(), LIVE, step=0.25, max_exposure=1.0)
    assert manager.current().policy is None  # nothing selected: the fallback decides

    code, out = _invoke(
        "select", f"{run[:10]}:ppo", "--results-db", live_url, "--database-url", live_url, "--by", "alice"
    )
    assert code == 0, out
    choice = manager.current()
    assert choice.model_id == f"{run}:ppo" and choice.policy is not None and not choice.retrain_needed
    row = store.load_model(engine, f"{run}:ppo")
    assert row is not None and row.selected and row.selected_by == "alice" and row.selected_at is not None
    assert row.artifact == Path(db.evaluation(ids["ppo.test"]).model_path or "").read_bytes()
    assert row.strategy_set == list(LIVE) and row.params["run_id"] == run
    policy = load_policy(row)
    obs = np.random.default_rng(0).normal(size=(4, spec.dim))
    np.testing.assert_array_equal(policy.act(obs), choice.policy.act(obs))

    code, out = _invoke(
        "select", str(ids["a2c.validation"]), "--results-db", live_url, "--database-url", live_url
    )
    assert code == 0 and f"replaces {run}:ppo" in out, out
    assert manager.current().model_id == f"{run}:a2c"
    with Session(engine) as s:
        assert s.scalars(select(Model.model_id).where(Model.selected)).all() == [f"{run}:a2c"]
        assert s.get(TrainingRun, run) is not None  # provenance for the bridge's leaderboard
        names = sorted((e.name, e.window, e.model_id) for e in s.scalars(select(Evaluation)))
    assert ("a2c", "test", f"{run}:a2c") in names and ("buy_and_hold", "test", None) in names
    assert ("ppo", "test", f"{run}:ppo") in names

    code, out = _invoke("leaderboard", "--results-db", live_url)
    assert code == 0 and any("a2c" in ln and "selected" in ln for ln in out.split("* ")), out

    code, out = _invoke("select", f"{run}:ppo", "--results-db", live_url, "--database-url", live_url)
    assert code == 0, out  # back to an already uploaded model: no duplicate row
    assert manager.current().model_id == f"{run}:ppo"
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(Model)) == 2


def test_select_refuses_an_altered_or_missing_model_file(live_url: str, tmp_path: Path) -> None:
    db = ResultsDB(f"sqlite:///{tmp_path / 'r.db'}", tmp_path / "art")
    run, ids = _record(db, FeatureSpec(strategies=LIVE))
    engine = make_engine(live_url)
    ppo = Path(db.evaluation(ids["ppo.test"]).model_path or "")
    data = bytearray(ppo.read_bytes())
    data[-10] ^= 0xFF
    ppo.write_bytes(bytes(data))
    code, out = _invoke("select", f"{run}:ppo", "--results-db", db.url, "--database-url", live_url)
    assert code == 2 and "Usage" in out and "was altered since training" in out and "refusing" in out, out
    Path(db.evaluation(ids["a2c.test"]).model_path or "").unlink()
    code, out = _invoke("select", f"{run}:a2c", "--results-db", db.url, "--database-url", live_url)
    assert code == 2 and "is missing" in out, out
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(Model)) == 0
    assert store.selected_model_key(engine) is None


def test_retrain_check(live_url: str, tmp_path: Path) -> None:
    db = ResultsDB(f"sqlite:///{tmp_path / 'r.db'}", tmp_path / "art")
    reg = tmp_path / "registry.json"
    reg.write_text((REPO / "strategies_registry.json").read_text())
    check = ("retrain-check", "--database-url", live_url, "--registry", str(reg))

    code, out = _invoke(*check)
    assert code == 1 and "RETRAIN NEEDED" in out and "no model is selected" in out, out

    run, _ = _record(db, FeatureSpec(strategies=LIVE), names=("ppo",))
    assert _invoke("select", f"{run}:ppo", "--results-db", db.url, "--database-url", live_url)[0] == 0
    code, out = _invoke(*check)
    assert code == 0 and "up to date" in out, out

    doc = json.loads(reg.read_text())
    doc["strategies"][-1]["enabled"] = False  # a strategy leaves the live set
    reg.write_text(json.dumps(doc))
    gone = doc["strategies"][-1]["name"]
    code, out = _invoke(*check)
    assert code == 1 and f"the registry no longer runs {gone}" in out, out

    reg.write_text((REPO / "strategies_registry.json").read_text())
    run2, _ = _record(db, FeatureSpec(strategies=LIVE[:-1]), names=("sac",))  # trained before one was added
    assert _invoke("select", f"{run2}:sac", "--results-db", db.url, "--database-url", live_url)[0] == 0
    code, out = _invoke(*check)
    assert code == 1 and f"the model does not know {LIVE[-1]}" in out, out


@pytest.fixture(scope="module")
def real_candles() -> pd.DataFrame:
    from common.dataset import load_bundled_candles

    return load_bundled_candles()


@pytest.fixture
def venue(real_candles: pd.DataFrame) -> Iterator[KrakenFuturesStandIn]:
    with KrakenFuturesStandIn(secrets.token_hex(8)) as v:
        part = real_candles.iloc[-2_500:]
        v.state.candles = [
            [int(t.value // 1_000_000), *map(float, row)]
            for t, row in zip(
                part.index, part[["open", "high", "low", "close", "volume"]].to_numpy(), strict=True
            )
        ]
        yield v


def test_download_through_ccxt_from_the_standin(
    venue: KrakenFuturesStandIn, real_candles: pd.DataFrame, tmp_path: Path
) -> None:
    part = real_candles.iloc[-2_500:]
    out = tmp_path / "kraken.csv"
    code, text = _invoke(
        "download",
        "--exchange",
        "krakenfutures",
        "--base-url",
        venue.base_url,
        "--out",
        str(out),
        "--since",
        part.index[0].isoformat(),
        "--until",
        (part.index[-1] + pd.Timedelta(hours=1)).isoformat(),
    )
    assert code == 0, text
    assert venue.state.calls.count("charts") >= 3  # paged: CCXT asks 1000 hours at a time
    got = pd.read_csv(out, parse_dates=["date"]).set_index("date")
    assert list(got.columns) == ["open", "high", "low", "close", "volume"] and len(got) == len(part)
    assert got.index.equals(part.index)
    np.testing.assert_allclose(got.to_numpy(), part[["open", "high", "low", "close", "volume"]].to_numpy())
    assert f"{len(part)} bars" in text


def test_download_steps_over_a_hole_in_the_venue_history(
    venue: KrakenFuturesStandIn, real_candles: pd.DataFrame, tmp_path: Path
) -> None:
    """1,200 hours missing in the middle: a whole page comes back empty, and the bars after the
    hole are still downloaded (the hole stays a gap; nothing is invented)."""
    part = real_candles.iloc[-2_500:]
    venue.state.candles = venue.state.candles[:500] + venue.state.candles[1_700:]
    out = tmp_path / "holed.csv"
    code, text = _invoke(
        "download",
        "--exchange",
        "krakenfutures",
        "--base-url",
        venue.base_url,
        "--out",
        str(out),
        "--since",
        part.index[0].isoformat(),
        "--until",
        (part.index[-1] + pd.Timedelta(hours=1)).isoformat(),
    )
    assert code == 0, text
    got = pd.read_csv(out, parse_dates=["date"]).set_index("date")
    expected = part.index[:500].append(part.index[1_700:])
    assert got.index.equals(expected)


def test_racing_selections_leave_exactly_one_selected(live_url: str, tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from training.results_live import SelectError, select_model

    db = ResultsDB(f"sqlite:///{tmp_path / 'r.db'}", tmp_path / "art")
    names = ("ppo", "a2c", "sac", "td3")
    run, _ = _record(db, FeatureSpec(strategies=LIVE), names=names)
    engine = make_engine(live_url, pool_size=8)

    def pick(name: str) -> str:
        try:
            return select_model(db, f"{run}:{name}", engine, selected_by=name).model_id
        except SelectError as exc:
            assert "at the same moment" in str(exc)
            return ""

    for _ in range(3):
        with ThreadPoolExecutor(len(names)) as pool:
            winners = [w for w in pool.map(pick, names) if w]
        assert winners  # somebody always wins
        with Session(engine) as s:
            selected = s.scalars(select(Model).where(Model.selected)).all()
        assert len(selected) == 1 and selected[0].model_id in winners
        assert selected[0].selected_by == selected[0].model_id.rsplit(":", 1)[1]
