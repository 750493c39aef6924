"""The strategies' answers over a history, as arrays: the signal file the training engine reads.

In ``common`` because two sides produce it and must not import each other: the training engine
computes it from candles (``training.signals.compute_signals``), and ``ops runs backfill`` rebuilds
it from the recommendations a replay stored. One class, one ``.npz`` layout.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd


@dataclass(frozen=True)
class SignalArrays:
    """Per-bar strategy answers, shape [T, S] each, strategies in registry order."""

    strategies: tuple[str, ...]
    index: pd.DatetimeIndex
    target: npt.NDArray[np.int8]  # int8 in {-1, 0, 1}
    event: npt.NDArray[np.int8]  # int8 codes of common.observation.EVENT_CODES
    confidence: npt.NDArray[np.float64]  # float64 in [0, 1]
    age: npt.NDArray[np.int64]  # int64 ticks since the answer (0: due every tick)
    present: npt.NDArray[np.bool_]  # bool
    warmup: int

    def __len__(self) -> int:
        return len(self.index)

    def restricted(self, strategies: tuple[str, ...]) -> SignalArrays:
        """These answers for ``strategies`` only, in that order (a model's own strategy set)."""
        missing = [s for s in strategies if s not in self.strategies]
        if missing:
            raise ValueError(f"no signals for {missing}: the registry computes {list(self.strategies)}")
        cols = [self.strategies.index(s) for s in strategies]
        fields = ("target", "event", "confidence", "age", "present")
        return dataclasses.replace(
            self, strategies=tuple(strategies), **{f: getattr(self, f)[:, cols] for f in fields}
        )

    def save(self, path: str | Path) -> None:
        """``.npz`` without pickles, so a stored signal file cannot run code when read."""
        np.savez_compressed(
            path,
            strategies=np.array(self.strategies),
            index=self.index.asi8,
            target=self.target,
            event=self.event,
            confidence=self.confidence,
            age=self.age,
            present=self.present,
            warmup=np.array(self.warmup),
        )

    @classmethod
    def load(cls, path: str | Path) -> SignalArrays:
        with np.load(path, allow_pickle=False) as z:
            return cls(
                strategies=tuple(str(s) for s in z["strategies"]),
                index=pd.DatetimeIndex(pd.to_datetime(z["index"], utc=True), name="date"),
                target=z["target"],
                event=z["event"],
                confidence=z["confidence"],
                age=z["age"],
                present=z["present"],
                warmup=int(z["warmup"]),
            )
