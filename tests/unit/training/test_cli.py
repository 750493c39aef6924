"""``python -m training``: the steps that exist, usage on bad arguments, report.json shape."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from common.registry import load_registry
from training.cli import app

runner = CliRunner()
REPO = Path(__file__).resolve().parents[3]


def test_help_lists_every_step() -> None:
    res = runner.invoke(app, ["--help"])
    assert res.exit_code == 0
    for cmd in (
        "download",
        "signals",
        "features",
        "split",
        "train",
        "walkforward",
        "baselines",
        "runs",
        "leaderboard",
        "report",
        "select",
        "retrain-check",
        "retrain",
        "all",
        "replay-backtest",
        "research",
        "export-combiner",
    ):
        assert cmd in res.output, cmd
    assert runner.invoke(app, ["no-such-step"]).exit_code == 2


def test_unknown_agent_prints_usage() -> None:
    for args in (["train", "--algos", "ppo,alphago"], ["all", "--algos", "dqn,x"]):
        res = runner.invoke(app, args)
        assert res.exit_code == 2 and "unknown agent" in res.output and "Usage" in res.output, args


def test_all_runs_every_step_and_records_a_trained_model(real_candles: pd.DataFrame, tmp_path: Path) -> None:
    """`all` end to end on 12,000 real bars with one small agent: every artifact a person looks at."""
    csv = tmp_path / "c.csv"
    real_candles.iloc[-12_000:].reset_index().to_csv(csv, index=False)
    out = tmp_path / "all"
    db = f"sqlite:///{tmp_path / 'results.db'}"
    res = runner.invoke(
        app,
        [
            "all",
            "--data",
            str(csv),
            "--out",
            str(out),
            "--algos",
            "ppo",
            "--budget-steps",
            "2048",
            "--results-db",
            db,
        ],
    )
    assert res.exit_code == 0, res.output
    for step in range(1, 8):
        assert f"[{step}/7]" in res.output
    for name in ("candles.csv", "signals.npz", "features.npz", "report/report.html"):
        assert (out / name).is_file(), name
    assert "probability of backtest overfitting" in res.output
    board = runner.invoke(app, ["leaderboard", "--results-db", db, "--window", "validation"])
    assert board.exit_code == 0 and " ppo " in board.output and "majority_vote" in board.output
    assert "proposed" in board.output  # one deployable candidate is marked, none selected
    assert (out / "checkpoints").is_dir() and list((out / "checkpoints").rglob("*.pt"))


def test_bad_arguments_print_usage(tmp_path: Path) -> None:
    for args in (
        ["walkforward", "--folds", "x"],
        ["walkforward", "--folds", "0"],
        ["baselines", "--data", str(tmp_path / "missing.csv")],
        ["split", "--mode", "sideways"],
        ["split", "--folds", "5000"],
        ["train", "--reward", "sharpe"],
        ["walkforward", "--reward", "sortino"],
        ["all", "--reward", ""],
    ):
        res = runner.invoke(app, args)
        assert res.exit_code == 2, args
        assert "Usage" in res.output, args


def test_walkforward_writes_report(real_candles: pd.DataFrame, tmp_path: Path) -> None:
    csv = tmp_path / "c.csv"
    real_candles.iloc[-12_000:].reset_index().to_csv(csv, index=False)
    out = tmp_path / "wf"
    res = runner.invoke(
        app,
        [
            "walkforward",
            "--data",
            str(csv),
            "--folds",
            "2",
            "--budget-steps",
            "1000",
            "--out",
            str(out),
            "--reward",
            "dsr",
        ],
    )
    assert res.exit_code == 0, res.output
    report = json.loads((out / "report.json").read_text())
    assert len(report["folds"]) == 2
    names = {
        "buy_and_hold",
        "flat",
        "majority_vote",
        "equal_weight",
        *(f"single:{s}" for s in load_registry().names),
    }  # every registered strategy, new families too
    assert "single:funding_extremes" in names and "single:ma_trend" in names
    agents = {"ppo", "a2c", "dqn", "sac"}  # trained per fold, named by algorithm
    for fold in report["folds"]:
        assert fold["train"][0] < fold["train"][1] < fold["validation"][0] < fold["test"][0] < fold["test"][1]
        assert set(fold["results"]) == names | agents | {"selected"}
        assert fold["results"]["selected"]["name"] == fold["selected"] in agents | {"majority_vote", "flat"}
        assert set(fold["models"]) == agents and all(m["steps"] >= 1000 for m in fold["models"].values())
        assert {m["reward"] for m in fold["models"].values()} == {"dsr"}  # the option reached every agent
        for row in fold["results"].values():
            assert {"sharpe", "max_drawdown", "total_return", "win_rate", "trades"} <= set(row)
    assert report["selected"] in agents | {"majority_vote", "flat"} and report["budget_steps"] == 1000
    assert report["reward"] == "dsr"


def test_module_entry_point() -> None:
    res = subprocess.run(
        [sys.executable, "-m", "training", "--help"], cwd=REPO, capture_output=True, text=True
    )
    assert res.returncode == 0 and "walkforward" in res.stdout
