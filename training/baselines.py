"""Rule-based reference policies, evaluated on the same window and ledger as any trained model.

Each baseline maps the strategies' answers at bar t to the exposure held over bar t+1:

* ``buy_and_hold``: max long throughout; ``flat``: never in the market;
* ``majority_vote``: ``common.actions.majority_vote`` (the live fallback itself, bar by bar);
* ``equal_weight``: the average of the strategies' targets times max exposure, snapped to the meta
  consumer's exposure grid (what a live intent could target);
* ``single:<strategy>``: that strategy's own target times max exposure.
"""

from __future__ import annotations

import numpy as np

from common.actions import apply_actions, majority_vote
from common.events import Target
from training.signals import SignalArrays
from training.split import Window

_TARGETS = {1: Target.LONG, 0: Target.FLAT, -1: Target.SHORT}


def baseline_names(strategies: tuple[str, ...]) -> list[str]:
    return ["buy_and_hold", "flat", "majority_vote", "equal_weight", *(f"single:{s}" for s in strategies)]


def baseline_exposure(
    name: str, signals: SignalArrays, window: Window, *, step: float = 0.25, max_exposure: float = 1.0
) -> np.ndarray:
    """Exposures decided at bars ``window.start .. window.end - 2`` (held over the next bar)."""
    rows = slice(window.start, window.end - 1)
    tgt = signals.target[rows].astype(np.float64)
    n = tgt.shape[0]
    if name == "buy_and_hold":
        return np.full(n, max_exposure)
    if name == "flat":
        return np.zeros(n)
    if name == "majority_vote":
        # As the live fallback: only strategies that have answered vote (a 1d strategy before its
        # first bar of a run is absent, not a flat vote).
        present = signals.present[rows]
        return np.array(
            [
                majority_vote([_TARGETS[int(v)] for v, p in zip(row, seen, strict=True) if p], max_exposure)
                for row, seen in zip(tgt, present, strict=True)
            ]
        )
    if name == "equal_weight":
        wanted = tgt.mean(axis=1) * max_exposure
        return apply_actions(np.zeros(n, dtype=np.int64), wanted, step, max_exposure)
    if name.startswith("single:"):
        strategy = name.removeprefix("single:")
        if strategy not in signals.strategies:
            raise KeyError(f"unknown strategy {strategy!r}; known: {', '.join(signals.strategies)}")
        return tgt[:, signals.strategies.index(strategy)] * max_exposure
    raise KeyError(f"unknown baseline {name!r}")
