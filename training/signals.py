"""Every enabled registry strategy over the whole history, as the arrays the live observation uses.

Why the batch path is exact: each strategy's ``evaluate`` is the same vectorized code the live
service runs on its window, and docs/decisions/0004 proves window == history at every bar of the
real data. So ``target/event/confidence[t]`` here is what the meta consumer would have received for
the tick that closes bar ``t``.

All registry strategies are 1h and due at every hourly tick, so each answer is fresh when the tick
is decided: age is 0 and every strategy is present (the live service publishes from the first bar,
warm-up included, where the target is FLAT). ``warmup`` is the longest ``warmup_bars``: before it
some strategy's target is flat by construction, so windows for training start after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from common.events import SignalEvent
from common.observation import EVENT_CODES
from common.registry import Registry, load_registry

_EVENT_TO_CODE = {e.value: code for e, code in EVENT_CODES.items()}


@dataclass(frozen=True)
class SignalArrays:
    """Per-bar strategy answers, shape [T, S] each, strategies in registry order."""

    strategies: tuple[str, ...]
    index: pd.DatetimeIndex
    target: np.ndarray  # int8 in {-1, 0, 1}
    event: np.ndarray  # int8 codes of common.observation.EVENT_CODES
    confidence: np.ndarray  # float64 in [0, 1]
    age: np.ndarray  # int64 ticks since the answer (0: due every tick)
    present: np.ndarray  # bool
    warmup: int

    def __len__(self) -> int:
        return len(self.index)

    def save(self, path: str | Path) -> None:
        """``.npz`` without pickles, so a stored signal file cannot run code when read."""
        np.savez_compressed(
            path, strategies=np.array(self.strategies), index=self.index.asi8, target=self.target,
            event=self.event, confidence=self.confidence, age=self.age, present=self.present,
            warmup=np.array(self.warmup),
        )

    @classmethod
    def load(cls, path: str | Path) -> SignalArrays:
        with np.load(path, allow_pickle=False) as z:
            return cls(
                strategies=tuple(str(s) for s in z["strategies"]),
                index=pd.DatetimeIndex(pd.to_datetime(z["index"], utc=True), name="date"),
                target=z["target"], event=z["event"], confidence=z["confidence"], age=z["age"],
                present=z["present"], warmup=int(z["warmup"]),
            )


def event_codes(events: np.ndarray) -> np.ndarray:
    """Event names (``ENTER_LONG`` ...) to the observation's integer codes; unknown names raise."""
    try:
        return np.array([_EVENT_TO_CODE[str(e)] for e in events], dtype=np.int8)
    except KeyError as exc:
        known = [e.value for e in SignalEvent]
        raise ValueError(f"unknown event {exc.args[0]!r}; expected one of {known}") from None


def compute_signals(candles: pd.DataFrame, registry: Registry | None = None) -> SignalArrays:
    """Run each enabled strategy of ``registry`` (default: the repo's) over ``candles``."""
    reg = registry if registry is not None else load_registry()
    specs = reg.enabled
    if not specs:
        raise ValueError("the registry has no enabled strategy")
    n, s = len(candles), len(specs)
    target = np.zeros((n, s), dtype=np.int8)
    event = np.zeros((n, s), dtype=np.int8)
    confidence = np.zeros((n, s), dtype=np.float64)
    warmup = 0
    for j, spec in enumerate(specs):
        strategy = spec.load_class()(params=dict(spec.params), lookback_hours=spec.lookback_hours,
                                     version=spec.version)
        out = strategy.evaluate(candles)
        target[:, j] = out["target"].to_numpy(dtype=np.int8)
        event[:, j] = event_codes(out["event"].to_numpy())
        confidence[:, j] = out["confidence"].to_numpy(dtype=np.float64)
        warmup = max(warmup, int(strategy.warmup_bars))
    return SignalArrays(
        strategies=tuple(spec.name for spec in specs),
        index=pd.DatetimeIndex(candles.index, name="date"),
        target=target, event=event, confidence=confidence,
        age=np.zeros((n, s), dtype=np.int64), present=np.ones((n, s), dtype=bool), warmup=warmup,
    )
