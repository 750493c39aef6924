"""The ``signals`` tooling contract of ``python -m strategy_consumers``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from strategy_consumers.cli import app
from strategy_consumers.strategies import BUILTIN, builtin_strategy

REPO = Path(__file__).resolve().parents[3]
runner = CliRunner()


@pytest.fixture(scope="module")
def small_csv(tmp_path_factory: pytest.TempPathFactory, candles: pd.DataFrame) -> Path:
    path = tmp_path_factory.mktemp("cli") / "in.csv"
    part = candles.iloc[:1500].drop(candles.index[[700, 701]])  # a gap is allowed
    part.reset_index().to_csv(path, index=False)
    return path


def _run(*args: str):
    return runner.invoke(app, list(args))


@pytest.mark.parametrize("name", list(BUILTIN))
def test_signals_writes_one_row_per_bar(tmp_path: Path, small_csv: Path, name: str) -> None:
    out = tmp_path / "out.csv"
    res = _run("signals", "--strategy", name, "--input", str(small_csv), "--output", str(out))
    assert res.exit_code == 0, res.output
    got = pd.read_csv(out)
    inp = pd.read_csv(small_csv)
    assert list(got.columns) == ["date", "enter_long", "exit_long", "enter_short", "exit_short", "target"]
    assert len(got) == len(inp)
    assert (pd.to_datetime(got["date"], utc=True) == pd.to_datetime(inp["date"], utc=True)).all()
    for col in ("enter_long", "exit_long", "enter_short", "exit_short"):
        assert set(got[col].unique()) <= {0, 1}
    assert set(got["target"].unique()) <= {-1, 0, 1}
    frame = pd.read_csv(small_csv, index_col="date", parse_dates=["date"])
    expected = builtin_strategy(name).evaluate(frame)
    np.testing.assert_array_equal(got["target"].to_numpy(), expected["target"].to_numpy())


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    return path


HEADER = "date,open,high,low,close,volume\n"
ROW0 = "2020-01-01T00:00:00Z,1,2,0.5,1.5,10\n"
ROW1 = "2020-01-01T01:00:00Z,1.5,2,1,1.8,11\n"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("date,open,high,low,close\n2020-01-01T00:00:00Z,1,2,0.5,1.5\n", "missing columns"),
        (HEADER + ROW1 + ROW0, "strictly increasing"),
        (HEADER + ROW0 + ROW1 + ROW1, "strictly increasing"),
        ("date,open,high,low,close,volume\n2020-01-01T00:00:00Z,1,abc,0.5,1.5,10\n", "not numeric"),
        ("date,open,high,low,close,volume\nyesterday,1,2,0.5,1.5,10\n", "date"),
        ("date,open,high,low,close,volume\n", "no rows"),
        ("", "cannot read"),
    ],
)
def test_bad_input_exits_non_zero_with_message(tmp_path: Path, text: str, needle: str) -> None:
    path = _write(tmp_path, text)
    res = _run("signals", "--strategy", "ott", "--input", str(path), "--output", str(tmp_path / "o.csv"))
    assert res.exit_code != 0
    assert needle in res.output
    assert not (tmp_path / "o.csv").exists()


def test_unknown_strategy_and_missing_file(tmp_path: Path, small_csv: Path) -> None:
    out = str(tmp_path / "o.csv")
    res = _run("signals", "--strategy", "nope", "--input", str(small_csv), "--output", out)
    assert res.exit_code != 0 and "unknown strategy" in res.output
    res = _run("signals", "--strategy", "ott", "--input", str(tmp_path / "none.csv"), "--output", "x.csv")
    assert res.exit_code != 0 and "cannot read" in res.output


def test_module_help_runs_as_subprocess() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "strategy_consumers", "signals", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "--strategy" in proc.stdout and "--input" in proc.stdout and "--output" in proc.stdout
