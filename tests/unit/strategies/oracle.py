"""Reference implementations built straight from the strategy definitions with TA-Lib / technical.

Test-only code: TA-Lib and ``technical`` are dev dependencies. Written for obviousness, not speed.
Note on ``technical.indicators.supertrend`` 1.7.0: signature ``supertrend(dataframe, period=10,
multiplier=3)`` (period first); it returns ``(st, stx)`` with stx 'up'/'down'/None and tests
``st > 0`` for "defined" where the definition says ``st != 0`` (identical for positive prices).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import talib
from technical.indicators import supertrend

BUY = ((4, 8), (7, 9), (1, 8))
SELL = ((1, 16), (3, 18), (6, 18))


def _frame(el, xl, es, xs, index) -> pd.DataFrame:
    return pd.DataFrame(
        {"enter_long": el, "exit_long": xl, "enter_short": es, "exit_short": xs}, index=index
    ).astype(np.int8)


def volatility_system(df: pd.DataFrame) -> pd.DataFrame:
    bins = (
        df.resample("3h", origin="start_day")
        .agg({"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
        .dropna()
    )
    bins["atr"] = talib.ATR(bins["high"], bins["low"], bins["close"], timeperiod=14) * 2.0
    bins["close_change"] = bins["close"].diff()
    # freqtrade-style informative merge: bin visible at its last hour, forward filled.
    inf = bins[["atr", "close_change"]].copy()
    inf.index = inf.index + pd.Timedelta(hours=2)
    inf = inf.rename_axis("date").reset_index()
    left = df.reset_index()[["date"]]
    merged = left.merge(inf, on="date", how="left").ffill().set_index("date")
    atr_prev = merged["atr"].shift(1)
    up = merged["close_change"] > atr_prev
    down = -merged["close_change"] > atr_prev
    return _frame(up, down, down, up, df.index)


def supertrend_dirs(df: pd.DataFrame) -> list[np.ndarray]:
    frame = df.reset_index()
    dirs = []
    for mult, period in BUY + SELL:
        _, stx = supertrend(frame, period=period, multiplier=mult)
        dirs.append(np.array([0 if x is None else (1 if x == "up" else -1) for x in stx]))
    return dirs


def supertrend_spot(df: pd.DataFrame) -> pd.DataFrame:
    d = supertrend_dirs(df)
    vol = df["volume"].to_numpy() > 0
    el = (d[0] == 1) & (d[1] == 1) & (d[2] == 1) & vol
    xl = (d[3] == -1) & (d[4] == -1) & (d[5] == -1) & vol
    zero = np.zeros(len(df), dtype=bool)
    return _frame(el, xl, zero, zero, df.index)


def fsupertrend(df: pd.DataFrame) -> pd.DataFrame:
    d = supertrend_dirs(df)
    vol = df["volume"].to_numpy() > 0
    el = (d[0] == 1) & (d[1] == 1) & (d[2] == 1) & vol
    es = (d[3] == -1) & (d[4] == -1) & (d[5] == -1) & vol
    return _frame(el, d[4] == -1, es, d[1] == 1, df.index)


def ott_var_ott(close: np.ndarray, pds: int = 2, percent: float = 1.4) -> tuple[np.ndarray, np.ndarray]:
    """Loop transcription of the OTT definition (linear; the original re-sliced per bar)."""
    s = pd.Series(close)
    diff = s.diff()
    ud = diff.where(diff > 0, 0.0).fillna(0.0).rolling(9).sum()
    dd = (-diff).where(diff < 0, 0.0).fillna(0.0).rolling(9).sum()
    cmo = ((ud - dd) / (ud + dd)).abs().fillna(0.0).to_numpy()
    alpha = 2 / (pds + 1)
    n = len(close)
    var = np.zeros(n)
    for i in range(pds, n):
        var[i] = alpha * cmo[i] * close[i] + (1 - alpha * cmo[i]) * var[i - 1]
    newlong = var - var * percent / 100
    newshort = var + var * percent / 100
    longstop = np.zeros(n)
    shortstop = np.zeros(n)
    longstop[0], shortstop[0] = newlong[0], newshort[0]
    direction = np.ones(n, dtype=int)
    for i in range(1, n):
        longstop[i] = max(newlong[i], longstop[i - 1]) if var[i] > longstop[i - 1] else newlong[i]
        shortstop[i] = min(newshort[i], shortstop[i - 1]) if var[i] < shortstop[i - 1] else newshort[i]
        if var[i - 1] > longstop[i - 1] and var[i] < longstop[i - 1]:
            direction[i] = -1
        elif var[i - 1] < shortstop[i - 1] and var[i] > shortstop[i - 1]:
            direction[i] = 1
        else:
            direction[i] = direction[i - 1]
    mt = np.where(direction == 1, longstop, shortstop)
    ott = np.where(var > mt, mt * (200 + percent) / 200, mt * (200 - percent) / 200)
    return var, pd.Series(ott).shift(2).to_numpy()


def ott_quadratic_last(close: np.ndarray) -> float:
    """The original's cost model: each new bar re-runs the recursion over the whole prefix."""
    return float(ott_var_ott(close)[1][-1])


def ott(df: pd.DataFrame) -> pd.DataFrame:
    var, ott_ = ott_var_ott(df["close"].to_numpy())
    v, o = pd.Series(var), pd.Series(ott_)
    el = (v > o) & (v.shift(1) <= o.shift(1))
    es = (v < o) & (v.shift(1) >= o.shift(1))
    adx = talib.ADX(df["high"].to_numpy(), df["low"].to_numpy(), df["close"].to_numpy(), timeperiod=14)
    strong = adx > 60
    return _frame(el.to_numpy(), strong, es.to_numpy(), strong, df.index)


def bband_rsi(df: pd.DataFrame) -> pd.DataFrame:
    rsi = talib.RSI(df["close"].to_numpy(), timeperiod=14)
    tp = (df["high"] + df["low"] + df["close"]) / 3
    mid = tp.rolling(20, min_periods=1).mean()
    std = tp.rolling(20, min_periods=1).std(ddof=1)
    lower = (mid - 2 * std).to_numpy()
    el = (rsi < 30) & (df["close"].to_numpy() < lower)
    zero = np.zeros(len(df), dtype=bool)
    return _frame(el, rsi > 70, zero, zero, df.index)


ORACLES = {
    "volatility_system": volatility_system,
    "supertrend": supertrend_spot,
    "fsupertrend": fsupertrend,
    "ott": ott,
    "bband_rsi": bband_rsi,
}
