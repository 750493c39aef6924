"""``python -m training signals --data CSV [--exogenous DIR] [--until T] --out FILE.csv``.

The team's own checks read this file: one row per 1h bar of the price CSV, ``ts`` (open time, ISO
UTC) and one column per registered strategy with its target (-1/0/1) as known at the bar's close.
Tested on real data: the shared hourly CSV and the shared exogenous files, with the repo registry
(which holds the strategies of issue 15: 4h/1d, exogenous inputs).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from common.registry import REGISTRY_PATH, load_registry
from tests.unit.strategies.exo_parity import NEW, exogenous_dir, make
from training.cli import app
from training.signals import load_exogenous, positions_table, resample_candles

runner = CliRunner()
REPO = Path(__file__).resolve().parents[3]
PRICE_CSV = (REPO / ".." / "shared" / "data" / "btcusd_1h_bitstamp.csv").resolve()


@pytest.fixture(scope="module")
def price_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The last 9,000 bars of the shared hourly CSV, as written by the exchange export (real data)."""
    lines = PRICE_CSV.read_text().splitlines()
    path = tmp_path_factory.mktemp("prices") / "btc_1h.csv"
    path.write_text("\n".join([lines[0], *lines[-9000:]]) + "\n")
    return path


@pytest.fixture(scope="module")
def extended_registry() -> Path:
    """The repo registry: the five price strategies and every strategy of issue 15 (4h/1d, exogenous)."""
    names = load_registry(REGISTRY_PATH).names
    assert set(NEW) <= set(names), "every new strategy is registered"
    return REGISTRY_PATH


def run(*args: str) -> pd.DataFrame:
    res = runner.invoke(app, ["signals", *args])
    assert res.exit_code == 0, res.output
    out = Path(args[list(args).index("--out") + 1])
    return pd.read_csv(out, dtype={"ts": str})


def test_one_row_per_bar_one_column_per_registered_strategy(price_csv: Path, tmp_path: Path) -> None:
    table = run("--data", str(price_csv), "--out", str(tmp_path / "s.csv"))
    prices = pd.read_csv(price_csv)
    assert list(table.columns) == ["ts", *(s.name for s in load_registry().enabled)]
    assert len(table) == len(prices)
    iso = pd.to_datetime(prices["date"], utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert table["ts"].tolist() == iso.tolist()
    values = table.drop(columns="ts").to_numpy()
    assert set(np.unique(values)) <= {-1, 0, 1} and (values != 0).any()


def test_until_cuts_every_input_and_equals_the_uncut_run(
    price_csv: Path, extended_registry: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BTCMETA_REGISTRY_PATH", str(extended_registry))
    exo = str(exogenous_dir())
    full = run("--data", str(price_csv), "--exogenous", exo, "--out", str(tmp_path / "full.csv"))
    assert list(full.columns) == ["ts", *(s.name for s in load_registry(extended_registry).enabled)]
    assert set(NEW) <= set(full.columns)
    assert set(np.unique(full.drop(columns="ts").to_numpy())) <= {-1, 0, 1}
    for until in (
        "2022-03-15T09:00:00Z",
        "2022-03-15T09:30:00+00:00",
        "2021-12-31T23:00:00",
        "2022-06-20T16:00Z",
    ):
        cut = run(
            "--data", str(price_csv), "--exogenous", exo, "--until", until, "--out", str(tmp_path / "cut.csv")
        )
        t = pd.Timestamp(until)
        t = t.tz_localize("UTC") if t.tzinfo is None else t
        # Rows: the 1h bars closed by T (open + 1h <= T); values: the uncut run's, bar for bar.
        closed = (pd.to_datetime(full["ts"], utc=True) + pd.Timedelta(hours=1)) <= t
        assert len(cut) == int(closed.sum())
        pd.testing.assert_frame_equal(cut, full.iloc[: len(cut)], check_exact=True)


def test_higher_timeframes_answer_only_when_their_bar_closes(
    price_csv: Path, extended_registry: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BTCMETA_REGISTRY_PATH", str(extended_registry))
    exo = exogenous_dir()
    table = run("--data", str(price_csv), "--exogenous", str(exo), "--out", str(tmp_path / "s.csv"))
    close = pd.to_datetime(table["ts"], utc=True) + pd.Timedelta(hours=1)
    for name in NEW:
        strategy = make(name)
        col = table[name].to_numpy()
        changed = np.flatnonzero(col[1:] != col[:-1]) + 1
        hours = {"1h": 1, "4h": 4, "1d": 24}[strategy.timeframe]
        # A 4h/1d target can only change at a 1h bar whose close is the close of a 4h/1d bar ...
        assert ((close.iloc[changed].dt.hour % hours) == 0).all(), name
        # ... and it is that bar's target: the value known at the 4h/1d close, never a later one.
        if hours > 1:
            prices = pd.read_csv(price_csv, index_col="date", parse_dates=True)
            frame = resample_candles(prices, strategy.timeframe)
            ev = strategy.evaluate(frame, exogenous=load_exogenous(exo, tuple(strategy.exogenous_inputs)))
            tf_close = frame.index + pd.Timedelta(strategy.timeframe)
            by_close = pd.Series(ev["target"].to_numpy(), index=tf_close)
            at = close[close.isin(by_close.index)]
            np.testing.assert_array_equal(col[at.index], by_close.loc[at.to_numpy()].to_numpy())


def test_without_exogenous_the_readers_of_it_are_flat(
    price_csv: Path, extended_registry: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BTCMETA_REGISTRY_PATH", str(extended_registry))
    table = run("--data", str(price_csv), "--out", str(tmp_path / "s.csv"))
    for name in NEW:
        if make(name).exogenous_inputs:
            assert (table[name] == 0).all(), name
        else:
            assert (table[name] != 0).any(), name


def test_positions_table_matches_the_command_on_any_hourly_frame(price_csv: Path, tmp_path: Path) -> None:
    # A CSV with a gap (two hours and a whole day missing) works, one row per bar it has.
    prices = pd.read_csv(price_csv)
    gappy = prices.drop(index=[100, 101, *range(3000, 3024)])
    path = tmp_path / "gappy.csv"
    gappy.to_csv(path, index=False)
    table = run("--data", str(path), "--out", str(tmp_path / "g.csv"))
    assert len(table) == len(gappy)
    frame = pd.read_csv(path, index_col="date", parse_dates=True)
    expected = positions_table(frame.set_axis(pd.DatetimeIndex(frame.index, name="date")))
    pd.testing.assert_frame_equal(
        table, expected.astype({c: np.int64 for c in expected.columns[1:]}), check_exact=True
    )


def test_bad_arguments_print_usage(price_csv: Path, tmp_path: Path) -> None:
    out = str(tmp_path / "x.csv")
    for args in (
        ["--data", str(price_csv), "--until", "yesterday-ish", "--out", out],
        ["--data", str(tmp_path / "missing.csv"), "--out", out],
        ["--data", str(price_csv), "--exogenous", str(tmp_path / "no_such_dir"), "--out", out],
        ["--data", str(price_csv), "--until", "2022-01-01", "--out", str(tmp_path / "x.npz")],
    ):
        res = runner.invoke(app, ["signals", *args])
        assert res.exit_code == 2, (args, res.output)
        assert "Usage" in res.output, args
    assert not Path(out).exists()
