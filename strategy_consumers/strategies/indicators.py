"""Indicator math shared by the strategies, reproducing TA-Lib's numbers without depending on it.

TA-Lib is a test-only dependency, so the product carries its own transcription of the few functions
the strategies use. The recursions follow TA-Lib's C source operation order (SMA seed, then
``(prev * (n - 1) + x) / n`` for ATR/RSI, ``s - s / n + x`` for the ADX sums). ADX comes out
bit-identical to the installed TA-Lib; ATR and RSI differ by at most ~2e-15 relative (the compiled
library rounds some intermediate steps differently), far inside the 1e-9 tolerance. No signal on the
real data flips because of it (tests/unit/strategies/test_oracle_parity.py).

Rolling means/std are computed per window from the raw values (not with a running sum) so that a
value depends only on the bars inside its window: the live path that sees a short window gets the
same bits as the full-history path, which a running sum (pandas) does not guarantee.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

#: TA-Lib's TA_IS_ZERO threshold. Public because the incremental steppers (``stepping.py``) must use
#: the very same constant to stay bit-identical with these vectorized indicators.
TA_EPS = 1e-8


def trange(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> np.ndarray:
    """TA-Lib TRANGE: NaN on the first bar, then max(h - l, |c[-1] - h|, |c[-1] - l|)."""
    out = np.full(len(close), np.nan)
    if len(close) > 1:
        prev = close[:-1]
        h, lo = high[1:], low[1:]
        out[1:] = np.maximum(np.maximum(h - lo, np.abs(prev - h)), np.abs(prev - lo))
    return out


def _seq_sum(values: np.ndarray) -> float:
    """Left-to-right sum, as TA-Lib's seed loops do (numpy's pairwise sum rounds differently)."""
    total = 0.0
    for v in values.tolist():
        total += v
    return total


def atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, period: int) -> np.ndarray:
    """TA-Lib ATR: SMA of the first ``period`` true ranges as seed, then Wilder smoothing."""
    n = len(close)
    out = np.full(n, np.nan)
    if n <= period:
        return out
    tr = trange(high, low, close)
    prev = _seq_sum(tr[1 : period + 1]) / period
    res = [prev]
    k = period - 1
    for x in tr[period + 1 :].tolist():
        prev = (prev * k + x) / period
        res.append(prev)
    out[period:] = res
    return out


def rsi(close: np.ndarray, period: int) -> np.ndarray:
    """TA-Lib RSI (non-Metastock): average gain/loss seeded with an SMA of ``period`` moves."""
    n = len(close)
    out = np.full(n, np.nan)
    if n <= period:
        return out
    diff = np.diff(close)
    gain = np.where(diff < 0, 0.0, diff)
    loss = np.where(diff < 0, -diff, 0.0)
    g = _seq_sum(gain[:period]) / period
    lo = _seq_sum(loss[:period]) / period
    gains, losses = [g], [lo]
    k = period - 1
    for up, dn in zip(gain[period:].tolist(), loss[period:].tolist(), strict=True):
        g = (g * k + up) / period
        lo = (lo * k + dn) / period
        gains.append(g)
        losses.append(lo)
    ga, la = np.asarray(gains), np.asarray(losses)
    tot = ga + la
    ok = np.abs(tot) >= TA_EPS
    res = np.zeros(len(ga))
    res[ok] = 100.0 * (ga[ok] / tot[ok])
    out[period:] = res
    return out


def adx(high: np.ndarray, low: np.ndarray, close: np.ndarray, period: int) -> np.ndarray:
    """TA-Lib ADX: Wilder sums of +DM/-DM/TR seeded over ``period - 1`` bars, DX averaged, then smoothed."""
    n = len(close)
    out = np.full(n, np.nan)
    lookback = 2 * period - 1
    if n <= lookback:
        return out
    diff_p = high[1:] - high[:-1]
    diff_m = low[:-1] - low[1:]
    minus = (diff_m > 0) & (diff_p < diff_m)
    plus = ~minus & (diff_p > 0) & (diff_p > diff_m)
    mdm = np.where(minus, diff_m, 0.0)
    pdm = np.where(plus, diff_p, 0.0)
    tr = trange(high, low, close)[1:]
    seed = period - 1
    sp, sm, st = _seq_sum(pdm[:seed]), _seq_sum(mdm[:seed]), _seq_sum(tr[:seed])
    sps: list[float] = []
    sms: list[float] = []
    sts: list[float] = []
    add_p, add_m, add_t = sps.append, sms.append, sts.append
    for a, b, c in zip(pdm[seed:].tolist(), mdm[seed:].tolist(), tr[seed:].tolist(), strict=True):
        sp = sp - sp / period + a
        sm = sm - sm / period + b
        st = st - st / period + c
        add_p(sp)
        add_m(sm)
        add_t(st)
    spa, sma_, sta = np.asarray(sps), np.asarray(sms), np.asarray(sts)
    valid_tr = np.abs(sta) >= TA_EPS
    safe_tr = np.where(valid_tr, sta, 1.0)
    mdi = 100.0 * (sma_ / safe_tr)
    pdi = 100.0 * (spa / safe_tr)
    di_sum = mdi + pdi
    valid = valid_tr & (np.abs(di_sum) >= TA_EPS)
    dx = np.where(valid, 100.0 * (np.abs(mdi - pdi) / np.where(valid, di_sum, 1.0)), 0.0)
    # The first ``period`` DX values (bars period..2*period-1) are averaged into the seed.
    prev = _seq_sum(np.where(valid[:period], dx[:period], 0.0)) / period
    res = [prev]
    append = res.append
    k = period - 1
    for ok, x in zip(valid[period:].tolist(), dx[period:].tolist(), strict=True):
        if ok:
            prev = (prev * k + x) / period
        append(prev)
    out[lookback:] = res
    return out


def rolling_mean_std(values: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Rolling mean and sample std (ddof 1) with ``min_periods=1``, each from its own window only."""
    n = len(values)
    mean = np.full(n, np.nan)
    std = np.full(n, np.nan)
    for m in range(1, min(window, n + 1)):
        head = values[:m]
        mean[m - 1] = head.sum() / m
        if m > 1:
            std[m - 1] = np.sqrt(((head - mean[m - 1]) ** 2).sum() / (m - 1))
    if n >= window:
        view = sliding_window_view(values, window)
        mu = view.sum(axis=1) / window
        mean[window - 1 :] = mu
        std[window - 1 :] = np.sqrt(((view - mu[:, None]) ** 2).sum(axis=1) / (window - 1))
    return mean, std


def rolling_sum(values: np.ndarray, window: int) -> np.ndarray:
    """Rolling sum, NaN until a full window, each value from its own window only."""
    out = np.full(len(values), np.nan)
    if len(values) >= window:
        out[window - 1 :] = sliding_window_view(values, window).sum(axis=1)
    return out


def _supertrend_bands(
    basic_ub: np.ndarray, basic_lb: np.ndarray, close: np.ndarray, period: int
) -> tuple[np.ndarray, np.ndarray]:
    """Final bands: each ratchets toward price and resets once the previous close breaks through."""
    n = len(close)
    fub = np.zeros(n)
    flb = np.zeros(n)
    ub_l: list[float] = []
    lb_l: list[float] = []
    fu = fl = 0.0
    for bu, bl, c1 in zip(
        basic_ub[period:].tolist(), basic_lb[period:].tolist(), close[period - 1 : -1].tolist(), strict=True
    ):
        if bu < fu or c1 > fu:
            fu = bu
        if bl > fl or c1 < fl:
            fl = bl
        ub_l.append(fu)
        lb_l.append(fl)
    fub[period:] = ub_l
    flb[period:] = lb_l
    return fub, flb


def _supertrend_line_loop(fub: np.ndarray, flb: np.ndarray, close: np.ndarray, period: int) -> np.ndarray:
    """Literal line recursion; used only when the vectorized form below could disagree."""
    n = len(close)
    st = np.zeros(n)
    for i in range(period, n):
        if st[i - 1] == fub[i - 1]:
            st[i] = fub[i] if close[i] <= fub[i] else flb[i]
        elif st[i - 1] == flb[i - 1]:
            st[i] = flb[i] if close[i] >= flb[i] else fub[i]
    return st


def supertrend_direction(
    high: np.ndarray, low: np.ndarray, close: np.ndarray, multiplier: float, period: int
) -> tuple[np.ndarray, np.ndarray]:
    """Supertrend line and direction as ``technical`` 1.7 defines them.

    Returns ``(st, direction)`` with direction int8: 1 'up', -1 'down', 0 while the line is 0.
    The ATR here is a plain rolling mean of TRANGE, not Wilder's, which is why this is not ``atr``.
    The line is on the upper band until a close above it and on the lower band until a close below
    it: a two-threshold state, i.e. the last single breakout forward filled, flipped once more for
    every bar since then that broke out of both bands (the literal rule toggles there). Equal bands
    would make the literal "which band is the line on" test ambiguous; there the literal recursion runs.
    """
    n = len(close)
    st = np.zeros(n)
    direction: np.ndarray = np.zeros(n, dtype=np.int8)
    if n <= period:
        return st, direction
    tr = trange(high, low, close)
    atr_ = rolling_sum(tr, period) / period  # NaN up to index period-1 because tr[0] is NaN
    hl2 = (high + low) / 2
    fub, flb = _supertrend_bands(hl2 + multiplier * atr_, hl2 - multiplier * atr_, close, period)
    body = slice(period, n)
    if (fub[period:-1] == flb[period:-1]).any():
        st = _supertrend_line_loop(fub, flb, close, period)
    else:
        up_break = close[body] > fub[body]
        down_break = close[body] < flb[body]
        both = up_break & down_break
        single = up_break ^ down_break
        toggles = np.cumsum(both)
        pos = np.where(single, np.arange(len(single)), -1)
        last = np.maximum.accumulate(pos)
        have = last >= 0
        at = np.maximum(last, 0)
        # State before any single breakout: on the upper band (False = upper, True = lower).
        base = np.where(have, up_break[at], False)
        since = toggles - np.where(have, toggles[at], 0)
        on_lower = base ^ (since % 2 == 1)
        st[body] = np.where(on_lower, flb[body], fub[body])
    direction = np.where(st != 0.0, np.where(close < st, -1, 1), 0).astype(np.int8)
    return st, direction


def resample_3h_last_hour(frame: pd.DataFrame, hours: int = 3) -> pd.DataFrame:
    """OHLCV bins of ``hours`` aligned to 00:00 UTC, indexed by the bin's last hour (open + hours - 1).

    Indexing by the last hour is what makes the merge causal: a bin's values become visible on the
    1h bar that completes it, never earlier.
    """
    rule = f"{hours}h"
    res = frame.resample(rule, origin="epoch", label="left", closed="left").agg(
        {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
    )
    # Bins with no bars have NaN OHLC (volume sums to 0); they are dropped.
    res = res.dropna(subset=["open", "high", "low", "close"])
    res.index = res.index + pd.Timedelta(hours=hours - 1)
    return res
