"""SharedCloses: marks' close tuples equal a fresh ``tuple(window.tolist())`` bit for bit, and
consecutive windows share their float objects (the fix for the meta consumer's memory growth)."""

from __future__ import annotations

import math
import struct

import numpy as np

from common.dataset import load_bundled_candles
from meta_consumer.bars import SharedCloses


def _bits(values: tuple[float, ...]) -> list[bytes]:
    return [struct.pack("<d", v) for v in values]


def test_sliding_windows_share_floats_and_equal_a_fresh_tuple() -> None:
    series = load_bundled_candles()["close"].to_numpy(dtype=np.float64)[-900:]  # the real closes
    shared = SharedCloses()
    previous: tuple[float, ...] | None = None
    for end in range(721, len(series) + 1):
        window = series[end - 721 : end]
        got = shared(window)
        assert _bits(got) == _bits(tuple(window.tolist()))
        if previous is not None:  # all but the new close are the previous tuple's objects
            assert all(a is b for a, b in zip(got[:-1], previous[1:], strict=True))
        previous = got


def test_a_window_that_did_not_slide_by_one_is_built_anew() -> None:
    shared = SharedCloses()
    first = shared(np.array([1.0, 2.0, 3.0, 4.0]))
    skipped = shared(np.array([3.0, 4.0, 5.0, 6.0]))  # two bars later: no sharing possible
    assert skipped == (3.0, 4.0, 5.0, 6.0) and not any(a is b for a, b in zip(skipped, first, strict=True))
    longer = shared(np.array([4.0, 5.0, 6.0, 7.0, 8.0]))  # another length
    assert longer == (4.0, 5.0, 6.0, 7.0, 8.0)
    revised = shared(np.array([5.0, 6.5, 7.0, 8.0, 9.0]))  # a revised close inside the window
    assert revised == (5.0, 6.5, 7.0, 8.0, 9.0)


def test_signed_zeros_and_nans_are_kept_bit_for_bit() -> None:
    shared = SharedCloses()
    shared(np.array([1.0, 0.0, 5.0]))
    got = shared(np.array([-0.0, 5.0, 2.0]))  # "slid by one" by value (0.0 == -0.0), not by bits
    assert math.copysign(1.0, got[0]) == -1.0 and got[1:] == (5.0, 2.0)
    shared(np.array([4.0, math.nan, 6.0]))
    again = shared(np.array([math.nan, 6.0, 7.0]))  # slid by one bit for bit, NaN included
    assert _bits(again) == _bits((math.nan, 6.0, 7.0))
