"""common.dataset.read_ohlcv_csv: the one candle CSV reader, its lenient and strict policies."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common.dataset import BUNDLED_CSV, CandleCsvError, load_bundled_candles, read_ohlcv_csv

HEADER = "date,open,high,low,close,volume\n"
ROW0 = "2020-01-01T00:00:00Z,1,2,0.5,1.5,10\n"
ROW1 = "2020-01-01T01:00:00+00:00,1.5,2,1,1.8,11\n"


def _csv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.csv"
    path.write_text(text)
    return path


def test_good_file_reads_the_same_under_both_policies(tmp_path: Path) -> None:
    path = _csv(tmp_path, HEADER + ROW0 + ROW1)
    lenient, strict = read_ohlcv_csv(path), read_ohlcv_csv(path, strict=True)
    assert lenient.equals(strict)
    assert list(strict.columns) == ["open", "high", "low", "close", "volume"]
    assert (strict.dtypes == np.float64).all()
    assert strict.index.name == "date" and str(strict.index.tz) == "UTC"
    assert strict.index.tolist() == [pd.Timestamp("2020-01-01T00:00Z"), pd.Timestamp("2020-01-01T01:00Z")]
    assert strict["close"].tolist() == [1.5, 1.8]


def test_strict_and_lenient_agree_bit_for_bit_on_the_bundled_data(tmp_path: Path) -> None:
    bundled = load_bundled_candles()
    part = bundled.iloc[:2_000]
    path = tmp_path / "part.csv"
    part.reset_index().to_csv(path, index=False)
    assert read_ohlcv_csv(path, strict=True).equals(read_ohlcv_csv(path))
    assert read_ohlcv_csv(BUNDLED_CSV).equals(bundled)


def test_lenient_keeps_bad_values_as_nan_and_reports_unreadable_dates(tmp_path: Path) -> None:
    path = _csv(tmp_path, HEADER + ROW0 + "someday,1,2,0.5,1.5,10\n" + ROW1.replace("1.8", "abc"))
    seen: list[tuple[int, str]] = []
    frame = read_ohlcv_csv(path, on_bad_row=lambda line, why: seen.append((line, why)))
    assert seen == [(3, "unreadable date 'someday'")]
    assert len(frame) == 2 and np.isnan(frame["close"].iloc[1])  # the importer rejects it, with a reason
    with pytest.raises(CandleCsvError, match="line 3: unreadable date 'someday'"):
        read_ohlcv_csv(path)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("date,open,high,low,close\n2020-01-01T00:00:00Z,1,2,0.5,1.5\n", r"missing columns \['volume'\]"),
        (HEADER, "no rows"),
        ("", "cannot read"),
        (HEADER + ROW1 + ROW0, "strictly increasing"),
        (HEADER + ROW0 + ROW0, "strictly increasing"),
        (HEADER + ROW0 + ROW1.replace(",2,1,", ",abc,1,"), "column 'high' is not numeric at line 3: 'abc'"),
        (HEADER + ROW0 + ROW1.replace(",11\n", ",inf\n"), "column 'volume' is not numeric at line 3"),
        (HEADER + ROW0 + ROW1.replace(",1.5,", ",,"), "column 'open' is not numeric at line 3"),
        (HEADER + "yesterday,1,2,0.5,1.5,10\n", "line 2: unreadable date 'yesterday'"),
    ],
)
def test_strict_refuses_with_the_reason(tmp_path: Path, text: str, needle: str) -> None:
    path = _csv(tmp_path, text)
    with pytest.raises(CandleCsvError, match=needle) as info:
        read_ohlcv_csv(path, strict=True)
    assert str(path) in str(info.value)


def test_a_missing_file_is_a_clear_error_under_both_policies(tmp_path: Path) -> None:
    for strict in (False, True):
        with pytest.raises(CandleCsvError, match=r"cannot read .*none\.csv"):
            read_ohlcv_csv(tmp_path / "none.csv", strict=strict)


def test_strict_has_no_bad_row_callback(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        read_ohlcv_csv(_csv(tmp_path, HEADER + ROW0), strict=True, on_bad_row=lambda *_: None)
