"""Window-vs-history comparison shared by the parity tests and the measurement run for ADR 0004."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from strategy_consumers.strategies.base import Strategy
from strategy_consumers.strategies.targets import SIGNAL_COLUMNS, event_of, transition


@dataclass
class ParityReport:
    """Counts of bars where the live path disagreed with the full history."""

    checked: int = 0
    signal_mismatch: list[int] = field(default_factory=list)
    cold_target_mismatch: list[int] = field(default_factory=list)
    warm_target_mismatch: list[int] = field(default_factory=list)
    confidence_mismatch: list[int] = field(default_factory=list)
    max_indicator_rel: float = 0.0
    indicator_bits_differ: int = 0

    @property
    def exact(self) -> bool:
        return not (
            self.signal_mismatch
            or self.cold_target_mismatch
            or self.warm_target_mismatch
            or self.confidence_mismatch
        )


def _rel(a: float, b: float) -> float:
    if math.isnan(a) and math.isnan(b):
        return 0.0
    if math.isnan(a) or math.isnan(b):
        return math.inf
    return abs(a - b) / max(abs(b), 1e-12)


def check_windows(strategy: Strategy, df: pd.DataFrame, bars: Iterable[int]) -> ParityReport:
    """Compare, at each bar t, the cold window path, the warm (carried target) path and the history."""
    full = strategy.evaluate(df)
    sig = full[list(SIGNAL_COLUMNS)].to_numpy()
    target = full["target"].to_numpy()
    event = full["event"].to_numpy()
    conf = full["confidence"].to_numpy()
    ind = full[list(strategy.indicator_columns)].to_numpy()
    need = strategy.bars_needed()
    rep = ParityReport()
    for t in bars:
        window = df.iloc[max(0, t - need + 1) : t + 1]
        cold = strategy.evaluate(window)
        last = cold.iloc[-1]
        rep.checked += 1
        if not np.array_equal(last[list(SIGNAL_COLUMNS)].to_numpy(dtype=np.int8), sig[t]):
            rep.signal_mismatch.append(t)
        if int(last["target"]) != target[t] or last["event"] != event[t]:
            rep.cold_target_mismatch.append(t)
        if not math.isclose(float(last["confidence"]), conf[t], rel_tol=1e-9, abs_tol=1e-12):
            rep.confidence_mismatch.append(t)
        for a, b in zip(last[list(strategy.indicator_columns)].to_numpy(dtype=float), ind[t], strict=True):
            r = _rel(float(a), float(b))
            rep.max_indicator_rel = max(rep.max_indicator_rel, r)
            if r != 0.0:
                rep.indicator_bits_differ += 1
        prev = int(target[t - 1]) if t > 0 else 0
        warm = strategy.recommend(window, prev_target=prev)
        if warm.target != target[t] or warm.event != event[t] or warm.event != event_of(prev, warm.target):
            rep.warm_target_mismatch.append(t)
    return rep


def warm_transition_reference(strategy: Strategy, full: pd.DataFrame, t: int) -> int:
    """Target at ``t`` from the full-history target at t-1 and the full-history signals at t."""
    prev = int(full["target"].iloc[t - 1]) if t > 0 else 0
    bits = [bool(full[c].iloc[t]) and t >= strategy.warmup_bars for c in SIGNAL_COLUMNS]
    return transition(prev, *bits)
