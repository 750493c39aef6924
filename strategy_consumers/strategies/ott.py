"""Optimized Trend Tracker (OTT): trade crosses of a CMO-adaptive average over its trailing stop."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import ClassVar

import numpy as np
import pandas as pd

from strategy_consumers.strategies import indicators as ind
from strategy_consumers.strategies.base import Strategy, ohlcv_arrays
from strategy_consumers.strategies.stepping import Adx, Bar, Stepper, Tail


def ott_lines(close: np.ndarray, pds: int, percent: float) -> tuple[np.ndarray, np.ndarray]:
    """VAR and OTT (already delayed by 2 bars) in one linear pass.

    The original re-sliced the frame per bar (quadratic); every recursion here only needs the
    previous bar, so one pass computes VAR, one carries both stops, and the direction (a latch
    set by the last cross) is a forward fill.
    """
    n = len(close)
    alpha = 2.0 / (pds + 1)
    diff = np.zeros(n)
    diff[1:] = close[1:] - close[:-1]
    ud = ind.rolling_sum(np.where(diff > 0, diff, 0.0), 9)
    dd = ind.rolling_sum(np.where(diff < 0, -diff, 0.0), 9)
    with np.errstate(divide="ignore", invalid="ignore"):
        cmo = np.abs((ud - dd) / (ud + dd))
    k_arr = (alpha * np.nan_to_num(cmo, nan=0.0)).tolist()
    var_l = [0.0] * n
    v = 0.0
    for i, (k, c) in enumerate(zip(k_arr[pds:], close[pds:].tolist(), strict=True), start=pds):
        v = k * c + (1 - k) * v
        var_l[i] = v
    var = np.asarray(var_l)
    newlong = var - var * percent / 100
    newshort = var + var * percent / 100
    longstop, shortstop = newlong, newshort
    if n:
        long_l: list[float] = []
        short_l: list[float] = []
        add_l, add_s = long_l.append, short_l.append
        ls, ss = float(newlong[0]), float(newshort[0])
        add_l(ls)
        add_s(ss)
        for v, nl, ns in zip(var_l[1:], newlong[1:].tolist(), newshort[1:].tolist(), strict=True):
            # max/min written out: ties keep the same value either way, and it is faster.
            if v > ls:
                if nl > ls:
                    ls = nl
            else:
                ls = nl
            if v < ss:
                if ns < ss:
                    ss = ns
            else:
                ss = ns
            add_l(ls)
            add_s(ss)
        longstop = np.asarray(long_l)
        shortstop = np.asarray(short_l)
    prev_v, prev_l, prev_s = var[:-1], longstop[:-1], shortstop[:-1]
    down = (prev_v > prev_l) & (var[1:] < prev_l)
    up = (prev_v < prev_s) & (var[1:] > prev_s)
    # A bar meeting both conditions turns down (the down test is applied first).
    events = np.concatenate([[1], np.where(down, -1, np.where(up, 1, 0))])
    idx = np.where(events != 0, np.arange(n), 0)
    direction = events[np.maximum.accumulate(idx)]
    mt = np.where(direction == 1, longstop, shortstop)
    ott = np.where(var > mt, mt * (200 + percent) / 200, mt * (200 - percent) / 200)
    delayed = np.full(n, np.nan)
    delayed[2:] = ott[:-2]
    return var, delayed


class OttStepper(Stepper):
    """VAR, OTT (delayed 2 bars) and ADX bar by bar, the operations of ``ott_lines`` and ``adx``."""

    def __init__(self, strategy: Strategy) -> None:
        super().__init__(strategy)
        p = strategy.params
        self.pds = int(p["pds"])
        self.percent = float(p["percent"])
        self.alpha = 2.0 / (self.pds + 1)
        self.adx = Adx(int(p["adx_period"]))
        self.up = Tail(9)
        self.down = Tail(9)
        self.i = -1
        self.prev_close = math.nan
        self.var = 0.0
        self.ls = self.ss = 0.0
        self.direction = 1
        self.otts: list[float] = [math.nan, math.nan]  # OTT of the last two bars, oldest first
        self.prev_var = math.nan
        self.prev_ott = math.nan

    def _push(self, bar: Bar) -> dict[str, float]:
        _, _, h, lo, c, _ = bar
        self.i += 1
        diff = c - self.prev_close if self.i else 0.0
        self.prev_close = c
        self.up.push(diff if diff > 0 else 0.0)
        self.down.push(-diff if diff < 0 else 0.0)
        ud, dd = self.up.sum(9), self.down.sum(9)
        with np.errstate(divide="ignore", invalid="ignore"):
            cmo = abs(np.float64(ud - dd) / np.float64(ud + dd))
        k = self.alpha * (0.0 if cmo != cmo else float(cmo))
        prev_v = self.var
        if self.i >= self.pds:
            self.var = k * c + (1 - k) * self.var
        v = self.var
        nl = v - v * self.percent / 100
        ns = v + v * self.percent / 100
        if self.i == 0:
            self.ls, self.ss = nl, ns
        else:
            prev_l, prev_s = self.ls, self.ss
            if v > self.ls:
                if nl > self.ls:
                    self.ls = nl
            else:
                self.ls = nl
            if v < self.ss:
                if ns < self.ss:
                    self.ss = ns
            else:
                self.ss = ns
            if prev_v > prev_l and v < prev_l:
                self.direction = -1
            elif prev_v < prev_s and v > prev_s:
                self.direction = 1
        mt = self.ls if self.direction == 1 else self.ss
        ott_now = mt * (200 + self.percent) / 200 if v > mt else mt * (200 - self.percent) / 200
        ott = self.otts[0]
        self.otts = [self.otts[1], ott_now]
        adx = self.adx.push(h, lo, c)
        prev_var, prev_ott = self.prev_var, self.prev_ott
        self.prev_var, self.prev_ott = v, ott
        strong = float(adx > float(self.strategy.params["adx_exit"]))
        return {
            "var": v,
            "ott": ott,
            "adx": adx,
            "enter_long": float(v > ott and prev_var <= prev_ott),
            "exit_long": strong,
            "enter_short": float(v < ott and prev_var >= prev_ott),
            "exit_short": strong,
        }


class OTT(Strategy):
    """Long on VAR crossing above OTT, short on crossing below; both exit when ADX(14) > 60."""

    name = "ott"
    default_lookback_hours = 4200
    warmup_bars = 750
    horizon_bars = 24
    default_params: ClassVar[dict[str, float]] = {
        "pds": 2,
        "percent": 1.4,
        "adx_period": 14,
        "adx_exit": 60.0,
    }
    indicator_columns = ("var", "ott", "adx")

    def _signals(self, df: pd.DataFrame) -> dict[str, np.ndarray]:
        p = self.params
        _, h, lo, c, _ = ohlcv_arrays(df)
        var, ott = ott_lines(c, int(p["pds"]), float(p["percent"]))
        adx = ind.adx(h, lo, c, int(p["adx_period"]))
        prev_var = np.concatenate([[np.nan], var[:-1]])
        prev_ott = np.concatenate([[np.nan], ott[:-1]])
        strong = adx > float(p["adx_exit"])
        return {
            "var": var,
            "ott": ott,
            "adx": adx,
            "enter_long": (var > ott) & (prev_var <= prev_ott),
            "exit_long": strong,
            "enter_short": (var < ott) & (prev_var >= prev_ott),
            "exit_short": strong,
        }

    def stepper(self) -> Stepper:
        return OttStepper(self)

    def _holding_confidence(self, cols: Mapping[str, np.ndarray], target: np.ndarray) -> np.ndarray:
        # Distance of VAR beyond OTT on the held side, in units of the OTT band (percent of OTT).
        var, ott = cols["var"], cols["ott"]
        with np.errstate(divide="ignore", invalid="ignore"):
            gap = target * (var - ott) / (ott * float(self.params["percent"]) / 100)
        return gap
