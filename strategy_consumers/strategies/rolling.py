"""Rolling statistics over bars that tolerate gaps (NaN) and never depend on where a frame starts.

Exogenous inputs are NaN on bars where they are stale or missing; a trailing z-score must then use
the usable values of its window only, and say "not enough history" rather than guess. Every value
here is computed from its own window (``sliding_window_view``), never from a running sum, so a
live window and the full history give bit-identical numbers once the window is full (ADR 0004).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def nan_rolling_mean_std(
    values: np.ndarray, window: int, min_count: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, sample std and count of the finite values among the last ``window`` bars.

    NaN (mean, std) where fewer than ``min_count`` (>= 2) finite values; NaN before a full window.
    """
    if min_count < 2 or window < min_count:
        raise ValueError(f"need 2 <= min_count <= window, got min_count={min_count}, window={window}")
    x = np.asarray(values, dtype=np.float64)
    n = len(x)
    mean, std, count = np.full(n, np.nan), np.full(n, np.nan), np.zeros(n)
    if n < window:
        return mean, std, count
    view = sliding_window_view(x, window)
    finite = np.isfinite(view)
    cnt = finite.sum(axis=1).astype(np.float64)
    filled = np.where(finite, view, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mu = filled.sum(axis=1) / cnt
        var = np.where(finite, (view - mu[:, None]) ** 2, 0.0).sum(axis=1) / (cnt - 1)
    enough = cnt >= min_count
    mean[window - 1 :] = np.where(enough, mu, np.nan)
    std[window - 1 :] = np.where(enough, np.sqrt(var), np.nan)
    count[window - 1 :] = cnt
    return mean, std, count


def zscore(values: np.ndarray, window: int, min_count: int) -> np.ndarray:
    """(value - trailing mean) / trailing std, the trailing window *including* the current bar."""
    mean, std, _ = nan_rolling_mean_std(values, window, min_count)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (np.asarray(values, dtype=np.float64) - mean) / std
    return np.where(std > 0, z, np.nan)


def rolling_any(mask: np.ndarray, window: int) -> np.ndarray:
    """True where ``mask`` was True on any of the last ``window`` bars (the current one included).

    The first ``window - 1`` bars look only at the bars the frame has; the strategy's warm-up
    covers them, so this does not make a window differ from the history after the warm-up.
    """
    m = np.asarray(mask, dtype=bool)
    out = np.zeros(len(m), dtype=bool)
    for k in range(window):
        out[k:] |= m[: len(m) - k]
    return out


def lag(values: np.ndarray, bars: int) -> np.ndarray:
    """The value ``bars`` bars earlier (NaN for the first ``bars`` bars)."""
    x = np.asarray(values, dtype=np.float64)
    out = np.full(len(x), np.nan)
    if bars < len(x):
        out[bars:] = x[: len(x) - bars]
    return out


def latest_event_side(event: np.ndarray, side: np.ndarray, hold: int) -> np.ndarray:
    """Per bar, ``side`` at the most recent ``event`` within the last ``hold`` bars (0 if none).

    "Hold a position for ``hold`` bars after a spike" without any state: a newer event replaces
    an older one, so a window and the history agree once they share the last ``hold`` bars.
    """
    n = len(event)
    ev = np.asarray(event, dtype=bool)
    sd = np.asarray(side, dtype=np.int64)
    out: np.ndarray = np.zeros(n, dtype=np.int64)
    for k in range(hold - 1, -1, -1):  # oldest first, so a newer event overwrites an older one
        src = np.zeros(n, dtype=np.int64)
        src[k:] = np.where(ev[: n - k], sd[: n - k], 0)
        out = np.where(src != 0, src, out)
    return out
