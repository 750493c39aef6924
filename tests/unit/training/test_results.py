"""The results database on SQLite (the laptop default), the retrain pipeline and the results CLI."""

from __future__ import annotations

import hashlib
import itertools
import json
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from common.actions import ACTIONS
from common.observation import FeatureSpec
from common.policy import export_policy
from training.cli import app
from training.results import ResultsDB, ResultsError, data_fingerprint
from training.retrain import TrainContext, TrainedModel, run_pipeline
from training.signals import compute_signals

REPO = Path(__file__).resolve().parents[3]
runner = CliRunner()
STRATEGIES = ("volatility_system", "supertrend", "fsupertrend", "ott", "bband_rsi")

#: One writer process: waits for the start file, then records ``n`` runs with two evaluations each.
WORKER = """
import sys, time, pathlib
from training.results import ResultsDB
url, artifacts, start, n, tag = sys.argv[1:]
pathlib.Path(f"{start}.{tag}.ready").touch()
while not pathlib.Path(start).exists():
    time.sleep(0.002)
db = ResultsDB(url, artifacts)
for i in range(int(n)):
    run = db.start_run(config={"tag": tag, "i": i}, seed=i, commit="test")
    for window in ("validation", "test"):
        db.record_evaluation(run, "buy_and_hold", window=window, metrics={"sharpe": float(i), "trades": 1})
    db.finish_run(run)
"""


def artifact(spec: FeatureSpec, seed: int = 0, algo: str = "ppo") -> bytes:
    """A small random MLP in the live btcmeta.mlp.v1 format (what a trained agent exports)."""
    rng = np.random.default_rng(seed)
    sizes = [spec.dim, 8, len(ACTIONS)]
    layers = [(rng.normal(size=(i, o)), rng.normal(size=o)) for i, o in itertools.pairwise(sizes)]
    return export_policy(layers, ["tanh", "identity"], algo=algo, spec=spec)


def random_hook(ctx: TrainContext) -> Iterable[TrainedModel]:
    """Stands in for the ElegantRL agents: two 'trained' models per fold."""
    return [
        TrainedModel("ppo", artifact(ctx.market.spec, ctx.seed), params={"seed": ctx.seed}),
        TrainedModel("a2c", artifact(ctx.market.spec, ctx.seed + 100, "a2c")),
    ]


def run_writers(url: str, artifacts: Path, tmp: Path, *, processes: int = 2, runs: int = 15) -> None:
    """``processes`` writers released at the same instant against one database."""
    start = tmp / "start"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, url, str(artifacts), str(start), str(runs), f"w{k}"],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in range(processes)
    ]
    deadline = time.monotonic() + 120
    while not all(Path(f"{start}.w{k}.ready").exists() for k in range(processes)):  # all up and polling
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), "a writer did not start"
        time.sleep(0.01)
    start.touch()
    for p in procs:
        _, err = p.communicate(timeout=180)
        assert p.returncode == 0, err


def check_writers(db: ResultsDB, processes: int = 2, runs: int = 15) -> None:
    all_runs = db.runs(limit=1000)
    assert len(all_runs) == processes * runs
    assert len({r["run_id"] for r in all_runs}) == processes * runs
    assert {r["status"] for r in all_runs} == {"finished"}
    for k in range(processes):
        assert sorted(r["config"]["i"] for r in all_runs if r["config"]["tag"] == f"w{k}") == list(
            range(runs)
        )
    evs = db.evaluations()
    assert len(evs) == 2 * processes * runs and len({e.id for e in evs}) == len(evs)
    by_run = {r["run_id"]: r for r in all_runs}
    for e in evs:  # every evaluation belongs to its own writer's run
        assert e.metrics["sharpe"] == by_run[e.run_id]["config"]["i"]


@pytest.fixture
def db(tmp_path: Path) -> ResultsDB:
    return ResultsDB(f"sqlite:///{tmp_path / 'results.db'}", tmp_path / "art")


@pytest.fixture(scope="module")
def small_csv(real_candles: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "candles.csv"
    real_candles.iloc[-6_000:].reset_index().to_csv(path, index=False)
    return path


def test_record_and_read_back(db: ResultsDB) -> None:
    spec = FeatureSpec(strategies=STRATEGIES)
    run = db.start_run(config={"folds": 1}, seed=7, data_fingerprint="abc", commit="deadbeef")
    art = artifact(spec)
    path, sha = db.save_model(run, "ppo", art)
    assert path.read_bytes() == art and sha == hashlib.sha256(art).hexdigest() and path.is_absolute()
    idx = pd.date_range("2022-01-01", periods=4, freq="h", tz="UTC")
    from config import FillPrice
    from training.ledger import CostModel, simulate

    ledger = simulate(
        np.array([1.0, 1.0, 0.0]),
        np.array([100.0, 101.0, 99.0, 99.0]),
        np.ones(4),
        CostModel(fill_price=FillPrice.SIGNAL_CLOSE),  # closes only: the fill model is not under test
    )
    ev = db.record_evaluation(
        run,
        "ppo",
        kind="model",
        algo="ppo",
        window="test",
        metrics={"sharpe": 1.5},
        model_path=path,
        model_sha256=sha,
        ledger=ledger,
        index=idx,
    )
    db.record_evaluation(run, "buy_and_hold", window="test", metrics={"sharpe": float("nan"), "trades": 1})
    db.finish_run(run)
    row = db.run(run[:10])
    assert row["seed"] == 7 and row["git_commit"] == "deadbeef" and row["status"] == "finished"
    assert row["finished_at"] is not None and row["username"] and row["host"]
    got = db.evaluation(ev)
    assert got.model_sha256 == sha and got.kind == "model" and got.metrics == {"sharpe": 1.5}
    curve = db.load_curve(got.curve_path or "")
    np.testing.assert_array_equal(curve["equity"], ledger.equity)
    assert pd.to_datetime(curve["time"], utc=True).equals(idx)
    bh = db.evaluations(run_id=run, candidate="buy_and_hold")[0]
    assert bh.metrics["sharpe"] is None  # NaN is stored as null, not as invalid JSON
    with pytest.raises(ValueError, match="needs model_path"):
        db.record_evaluation(run, "sac", kind="model", window="test", metrics={})
    with pytest.raises(ResultsError, match="unknown run"):
        db.finish_run("nope")


def test_propose_uses_validation_mean_and_metric_direction(db: ResultsDB) -> None:
    run = db.start_run(commit="x")
    scores = {"a": ([1.0, 3.0], [0.3, 0.1]), "b": ([2.5, 2.4], [0.2, 0.2]), "c": ([0.0, 0.0], [0.05, 0.05])}
    for name, (sharpes, dds) in scores.items():
        for fold, (s, d) in enumerate(zip(sharpes, dds, strict=True)):
            db.record_evaluation(
                run, name, window="validation", fold=fold, metrics={"sharpe": s, "max_drawdown": d}
            )
        db.record_evaluation(run, name, window="test", metrics={"sharpe": 100.0 if name == "c" else 0.0})
    assert db.propose(run) == "b"  # mean 2.45 beats a's 2.0; test scores are never consulted
    assert {e.candidate for e in db.evaluations(run_id=run) if e.proposed} == {"b"}
    assert db.propose(run, metric="max_drawdown") == "c"  # lower is better
    assert {e.candidate for e in db.evaluations(run_id=run) if e.proposed} == {"c"}


def test_resolve_model_addressing(db: ResultsDB) -> None:
    spec = FeatureSpec(strategies=STRATEGIES)
    run = db.start_run(commit="x")
    ids = {}
    for fold in (0, 1):
        path, sha = db.save_model(run, "ppo", artifact(spec, fold), fold=fold)
        ids[fold] = db.record_evaluation(
            run, "ppo", kind="model", window="test", fold=fold, metrics={}, model_path=path, model_sha256=sha
        )
    db.record_evaluation(run, "buy_and_hold", window="test", metrics={})
    assert db.resolve_model(str(ids[0])).fold == 0
    assert db.resolve_model(f"{run}:ppo").id == ids[1]  # the newest fold's model
    assert db.resolve_model(f"{run[:8]}:ppo").id == ids[1]
    assert db.resolve_model("latest:ppo").id == ids[1]
    with pytest.raises(ResultsError, match="baseline, not a stored model"):
        db.resolve_model(f"{run}:buy_and_hold")
    with pytest.raises(ResultsError, match=r"no candidate 'sac'.*buy_and_hold, ppo"):
        db.resolve_model(f"{run}:sac")
    with pytest.raises(ResultsError, match="expected <evaluation id> or <run>:<candidate>"):
        db.resolve_model("ppo")
    with pytest.raises(ResultsError, match="no run"):
        db.resolve_model("ffffffff:ppo")
    with pytest.raises(ResultsError, match="no evaluation with id 999"):
        db.resolve_model("999")


def test_two_processes_write_one_sqlite_file_without_collisions(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"  # the file does not exist yet: both create the schema
    run_writers(url, tmp_path / "art", tmp_path)
    check_writers(ResultsDB(url, tmp_path / "art"))


def test_data_fingerprint_changes_with_any_value(real_candles: pd.DataFrame) -> None:
    part = real_candles.iloc[-100:].copy()
    fp = data_fingerprint(part)
    assert fp == data_fingerprint(part.copy())
    part.iloc[50, part.columns.get_loc("close")] += 0.01
    assert data_fingerprint(part) != fp


def test_pipeline_records_models_and_baselines_and_only_proposes(small_csv: Path, tmp_path: Path) -> None:
    from training.data import load_candles

    candles = load_candles(small_csv)
    sig = compute_signals(candles)
    db = ResultsDB(f"sqlite:///{tmp_path / 'r.db'}", tmp_path / "art")
    res = run_pipeline(db, candles, sig, hook=random_hook, hook_name="tests:random_hook", folds=2, seed=3)
    evs = db.evaluations(run_id=res.run_id)
    names = {
        "ppo",
        "a2c",
        "buy_and_hold",
        "flat",
        "majority_vote",
        "equal_weight",
        *(f"single:{s}" for s in sig.strategies),
    }
    assert set(res.candidates) == names and len(evs) == res.evaluations == len(names) * 2 * 2
    assert {(e.window, e.fold) for e in evs} == {(w, f) for w in ("validation", "test") for f in (0, 1)}
    for e in evs:
        assert Path(e.curve_path or "").is_file()
        if e.kind == "model":
            assert hashlib.sha256(Path(e.model_path or "").read_bytes()).hexdigest() == e.model_sha256
    ppo = [e for e in evs if e.candidate == "ppo"]
    assert {e.fold: e.params["seed"] for e in ppo} == {0: 3, 1: 4}  # seed + fold, recorded
    assert len({e.model_sha256 for e in ppo}) == 2  # one model per fold
    val = {}
    for e in evs:
        if e.window == "validation":
            val.setdefault(e.candidate, []).append(e.metrics["sharpe"])
    deployable = {"ppo", "a2c", "majority_vote", "flat"}  # what the live system can switch on
    assert res.proposed == min(deployable, key=lambda n: (-np.mean(val[n]), n))
    assert {e.candidate for e in evs if e.proposed} == {res.proposed}
    run = db.run(res.run_id)
    assert (
        run["status"] == "finished"
        and run["kind"] == "retrain"
        and run["config"]["hook"] == "tests:random_hook"
    )
    assert run["data_fingerprint"] == data_fingerprint(candles)


def test_failed_pipeline_marks_the_run_failed(small_csv: Path, tmp_path: Path) -> None:
    from training.data import load_candles

    candles = load_candles(small_csv)
    db = ResultsDB(f"sqlite:///{tmp_path / 'r.db'}", tmp_path / "art")

    def broken(ctx: TrainContext) -> list[object]:
        return [object()]

    with pytest.raises(TypeError, match=r"needs \.artifact"):
        run_pipeline(db, candles, compute_signals(candles), hook=broken)
    assert [r["status"] for r in db.runs()] == ["failed"]


def test_cli_retrain_leaderboard_report(
    small_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BTCMETA_TRAINING__RESULTS_DATABASE_URL", f"sqlite:///{tmp_path / 'r.db'}")
    monkeypatch.setenv("BTCMETA_TRAINING__ARTIFACTS_DIR", str(tmp_path / "art"))
    res = runner.invoke(
        app,
        [
            "retrain",
            "--data",
            str(small_csv),
            "--hook",
            "tests.unit.training.test_results:random_hook",
            "--seed",
            "5",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "proposed:" in res.output
    db = ResultsDB.open()
    run = db.run("latest")
    assert run["config"]["hook"] == "tests.unit.training.test_results:random_hook" and run["seed"] == 5
    assert (tmp_path / "art" / "runs" / run["run_id"] / "report" / "report.html").is_file()  # default

    res = runner.invoke(app, ["leaderboard", "--metric", "total_return", "--window", "test"])
    assert res.exit_code == 0, res.output
    test_rows = db.evaluations(run_id=run["run_id"], window="test")
    best = max(test_rows, key=lambda e: e.metrics["total_return"])
    starred = [line for line in res.output.splitlines() if line.startswith("*")]
    assert len(starred) == 2 and f" {best.id} " in starred[0] and best.candidate in starred[0]
    assert f"best by total_return: {best.candidate}" in res.output
    proposed = next(e for e in test_rows if e.proposed)
    assert any(proposed.candidate in line and "proposed" in line for line in res.output.splitlines())

    res = runner.invoke(app, ["leaderboard", "--metric", "max_drawdown", "--window", "validation"])
    assert res.exit_code == 0 and "lower is better" in res.output
    assert "* " in res.output and "flat" in next(ln for ln in res.output.splitlines() if ln.startswith("*"))

    out = tmp_path / "rep"
    res = runner.invoke(app, ["report", "--run", run["run_id"][:12], "--out", str(out)])
    assert res.exit_code == 0, res.output
    page = (out / "report.html").read_text()
    for name in ("ppo", "a2c", "buy_and_hold", "single:ott", run["run_id"]):
        assert name in page
    assert "proposed" in page and page.count("<table>") == 3  # run info + validation + test
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == [
        "drawdown_test_fold0.png",
        "drawdown_validation_fold0.png",
        "equity_test_fold0.png",
        "equity_validation_fold0.png",
    ]
    for p in out.glob("*.png"):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 10_000
        assert f'src="{p.name}"' in page

    res = runner.invoke(app, ["runs"])
    assert res.exit_code == 0 and run["run_id"] in res.output


def test_cli_bad_arguments_print_usage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BTCMETA_TRAINING__RESULTS_DATABASE_URL", f"sqlite:///{tmp_path / 'r.db'}")
    db = ResultsDB.open()
    run = db.start_run(commit="x")
    db.record_evaluation(run, "buy_and_hold", window="test", metrics={"sharpe": 1.0})
    cases = {
        ("leaderboard", "--window", "nowhere"): "no evaluations on window 'nowhere'",
        ("leaderboard", "--metric", "luck"): "unknown metric 'luck'",
        ("leaderboard", "--run", "zzzz"): "no run 'zzzz'",
        ("select", "nonsense"): "expected <evaluation id> or <run>:<candidate>",
        ("select", f"{run}:buy_and_hold"): "not a stored model",
        ("report", "--run", "zzzz"): "no run 'zzzz'",
        ("retrain", "--hook", "no_such_module:train"): "cannot be imported",
        ("retrain", "--hook", "nocolon"): "package.module:function",
        ("retrain", "--mode", "sideways"): "expanding or rolling",
        ("download", "--out", str(tmp_path / "o.csv")): "exactly one of --csv PATH or --exchange ID",
        ("download", "--out", "o.csv", "--csv", str(tmp_path / "missing.csv")): "missing.csv",
        (
            "download",
            "--out",
            "o.csv",
            "--exchange",
            "krakenfutures",
            "--since",
            "yesterday",
        ): "not an ISO date",
        ("retrain-check", "--registry", str(tmp_path / "none.json")): "cannot read",
    }
    for args, message in cases.items():
        res = runner.invoke(app, list(args))
        assert res.exit_code == 2, (args, res.output)
        assert "Usage" in res.output, args
        flat = " ".join(res.output.replace("│", " ").split())
        assert message in flat, (args, res.output)


def test_cli_download_csv_validates_and_writes_project_format(
    real_candles: pd.DataFrame, tmp_path: Path
) -> None:
    src = tmp_path / "in.csv"
    frame = real_candles.iloc[:50].reset_index()
    frame = frame[["date", "close", "open", "high", "low", "volume"]]  # another column order is fine
    frame.to_csv(src, index=False)
    out = tmp_path / "sub" / "out.csv"
    res = runner.invoke(app, ["download", "--csv", str(src), "--out", str(out)])
    assert res.exit_code == 0, res.output
    written = pd.read_csv(out)
    assert list(written.columns) == ["date", "open", "high", "low", "close", "volume"] and len(written) == 50
    np.testing.assert_allclose(written["close"], real_candles["close"].iloc[:50])
    bad = frame.iloc[[0, 2, 1]]  # dates out of order
    bad.to_csv(src, index=False)
    res = runner.invoke(app, ["download", "--csv", str(src), "--out", str(tmp_path / "bad.csv")])
    assert res.exit_code == 2 and "Usage" in res.output and not (tmp_path / "bad.csv").exists()


def test_cli_features_fit_on_train_only(small_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "f.npz"
    res = runner.invoke(app, ["features", "--data", str(small_csv), "--out", str(out)])
    assert res.exit_code == 0, res.output
    with np.load(out, allow_pickle=False) as z:
        stats = json.loads(str(z["stats"]))
        start, end = (int(v) for v in z["train"])
        vol = z["volatility"]
    assert {"vol_scale", "ret_mean", "ret_std"} <= set(stats) and start < end < len(vol)
    assert abs(float(np.nanmedian(vol[start:end]))) < 1e-9  # normalized by the train median only
