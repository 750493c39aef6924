"""``python -m training``: the steps that exist, usage on bad arguments, report.json shape."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from training.cli import app

runner = CliRunner()
REPO = Path(__file__).resolve().parents[3]


def test_help_lists_only_built_steps() -> None:
    res = runner.invoke(app, ["--help"])
    assert res.exit_code == 0
    for cmd in ("signals", "split", "baselines", "walkforward"):
        assert cmd in res.output
    for absent in ("train",):
        assert runner.invoke(app, [absent]).exit_code == 2


def test_bad_arguments_print_usage(tmp_path: Path) -> None:
    for args in (["walkforward", "--folds", "x"], ["walkforward", "--folds", "0"],
                 ["baselines", "--data", str(tmp_path / "missing.csv")], ["split", "--mode", "sideways"],
                 ["split", "--folds", "5000"]):
        res = runner.invoke(app, args)
        assert res.exit_code == 2, args
        assert "Usage" in res.output, args


def test_walkforward_writes_report(real_candles: pd.DataFrame, tmp_path: Path) -> None:
    csv = tmp_path / "c.csv"
    real_candles.iloc[-12_000:].reset_index().to_csv(csv, index=False)
    out = tmp_path / "wf"
    res = runner.invoke(app, ["walkforward", "--data", str(csv), "--folds", "2", "--budget-steps", "1000",
                              "--out", str(out)])
    assert res.exit_code == 0, res.output
    report = json.loads((out / "report.json").read_text())
    assert len(report["folds"]) == 2
    names = {"buy_and_hold", "flat", "majority_vote", "equal_weight", "single:volatility_system",
             "single:supertrend", "single:fsupertrend", "single:ott", "single:bband_rsi"}
    for fold in report["folds"]:
        assert fold["train"][0] < fold["train"][1] < fold["validation"][0] < fold["test"][0] < fold["test"][1]
        assert set(fold["results"]) == names | {"selected"}
        assert fold["results"]["selected"]["name"] == fold["selected"] in {"majority_vote", "flat"}
        for row in fold["results"].values():
            assert {"sharpe", "max_drawdown", "total_return", "win_rate", "trades"} <= set(row)
    assert report["selected"] in {"majority_vote", "flat"} and report["budget_steps"] == 1000


def test_module_entry_point() -> None:
    res = subprocess.run([sys.executable, "-m", "training", "--help"], cwd=REPO, capture_output=True,
                         text=True)
    assert res.returncode == 0 and "walkforward" in res.stdout
