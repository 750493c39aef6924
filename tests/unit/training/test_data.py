"""Candle loading: bundled data, a CSV path, refusals with the reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from training.data import InputError, hours_between, load_candles


def test_bundled_and_csv_give_the_same_frame(real_candles: pd.DataFrame, tmp_path: Path) -> None:
    assert load_candles().equals(real_candles) and load_candles("bundled").equals(real_candles)
    csv = tmp_path / "c.csv"
    real_candles.iloc[:500].reset_index().to_csv(csv, index=False)
    got = load_candles(csv)
    assert np.allclose(got.to_numpy(), real_candles.iloc[:500].to_numpy(), rtol=1e-15)
    assert got.index.equals(real_candles.index[:500])


def test_bad_csv_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "date,open,high,low,close,volume\n2020-01-01T01:00Z,1,1,1,1,1\n2020-01-01T00:00Z,1,1,1,1,1\n"
    )
    with pytest.raises(InputError, match="increasing"):
        load_candles(bad)
    bad.write_text("date,open,high,low,close,volume\n2020-01-01T00:00Z,1,1,1,0,1\n")
    with pytest.raises(InputError, match="non-positive"):
        load_candles(bad)


def test_hours_count_gaps(real_candles: pd.DataFrame) -> None:
    h = hours_between(real_candles.index)
    assert h[0] == 1.0 and (h >= 1.0).all()  # time only moves forward, by whole hours
    idx = pd.DatetimeIndex(["2020-01-01 00:00", "2020-01-01 01:00", "2020-01-01 04:00"], tz="UTC")
    assert hours_between(idx).tolist() == [1.0, 1.0, 3.0]  # funding accrues over the 3 h gap
