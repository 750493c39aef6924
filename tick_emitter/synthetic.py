"""Synthetic inputs for scale tests and benchmarks only (never for claims about trading quality)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from common.registry import Registry, parse_registry
from tick_emitter.core import MINUTE_MS, BaseCandles


def registry_of(entries: Iterable[tuple[str, str, int]], *, enabled: bool = True) -> Registry:
    """A registry of (name, timeframe, lookback_hours) entries, validated like the real file."""
    doc = {
        "strategies": [
            {
                "name": name,
                "class_path": f"synthetic.{name}:S",
                "timeframe": tf,
                "lookback_hours": lookback,
                "enabled": enabled,
                "version": "1.0.0",
                "params": {},
            }
            for name, tf, lookback in entries
        ]
    }
    return parse_registry(doc, source="<synthetic>", import_classes=False)


def random_walk_candles(start_ms: int, count: int, minutes: int = 1, seed: int = 7) -> BaseCandles:
    """A valid OHLCV random walk (high >= open/close >= low > 0) on a ``minutes`` grid."""
    rng = np.random.default_rng(seed)
    close = 30_000.0 * np.exp(np.cumsum(rng.normal(0, 0.0008, count)))
    open_ = np.concatenate(([close[0]], close[:-1]))
    spread = np.abs(rng.normal(0, 0.0005, count)) * close
    high = np.maximum(open_, close) + spread
    low = np.minimum(open_, close) - spread
    volume = rng.gamma(2.0, 3.0, count)
    times = start_ms + np.arange(count, dtype=np.int64) * minutes * MINUTE_MS
    return BaseCandles(times, np.column_stack([open_, high, low, close, volume]), minutes)
