"""Splits are ordered, disjoint and embargoed; train-fitted statistics never read later bars."""

from __future__ import annotations

import numpy as np
import pytest

from training.features import fit_stats, market_features
from training.split import Window, time_split, walk_forward


@pytest.mark.parametrize("mode", ["expanding", "rolling"])
def test_walk_forward_folds_are_ordered_and_embargoed(mode: str) -> None:
    folds = walk_forward(10_000, folds=4, start=500, mode=mode, embargo=24)  # type: ignore[arg-type]
    assert len(folds) == 4
    for k, f in enumerate(folds):
        assert f.train.end + 24 == f.validation.start
        assert f.validation.end + 24 == f.test.start
        assert f.train.start >= 500
        if k:
            assert f.test.start == folds[k - 1].test.end  # test blocks tile the tail
            if mode == "expanding":
                assert f.train.start == 500 and len(f.train) > len(folds[k - 1].train)
            else:
                assert f.train.start > folds[k - 1].train.start
    assert folds[-1].test.end == 10_000


def test_time_split_and_bad_arguments() -> None:
    f = time_split(1000, start=100, train=0.5, validation=0.25, embargo=10)
    assert (f.train.start, f.validation.start - f.train.end, f.test.start - f.validation.end) == (100, 10, 10)
    assert f.test.end == 1000
    with pytest.raises(ValueError):
        walk_forward(100, folds=10, embargo=24)
    with pytest.raises(ValueError):
        walk_forward(10_000, folds=2, mode="sideways")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Window(5, 5)


def test_stats_ignore_everything_after_the_train_window(real_candles) -> None:
    close = real_candles["close"].to_numpy().copy()
    train = Window(2100, 20_000)
    before = fit_stats(close, train)
    close[train.end :] *= np.random.default_rng(0).uniform(0.5, 2.0, size=close.size - train.end)
    assert fit_stats(close, train) == before
    close[train.end - 1] *= 1.5  # the last train bar does count
    assert fit_stats(close, train) != before


def test_features_are_causal_and_normalized_on_train(real_candles) -> None:
    close = real_candles["close"].to_numpy()
    train = Window(2100, 20_000)
    stats = fit_stats(close, train)
    feats = market_features(close, stats)
    cut = market_features(close[:25_000], stats)  # a prefix gives the same values: no lookahead
    for name in feats:
        assert np.array_equal(feats[name][:25_000], cut[name], equal_nan=True)
    r = feats["returns"][train.as_slice()]
    assert abs(np.mean(r)) < 1e-9 and abs(np.std(r, ddof=1) - 1) < 1e-9
    assert np.nanmedian(feats["volatility"][train.as_slice()]) == pytest.approx(0.0, abs=1e-12)
