"""Time splits and walk-forward folds over bar positions, with an embargo between the parts.

Why an embargo: features at bar t look back ``vol_window`` bars and the strategies look back much
further, so the first bars after a boundary still carry information from before it. A gap of
``embargo`` bars between train, validation and test keeps a model from being scored on bars whose
inputs overlap what it was fitted or selected on (the "purge" of López de Prado, by time).

Windows are half-open position ranges ``[start, end)`` into the candle/signal arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Window:
    """Bars ``start .. end-1``."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.end:
            raise ValueError(f"empty or negative window [{self.start}, {self.end})")

    def __len__(self) -> int:
        return self.end - self.start

    def as_slice(self) -> slice:
        return slice(self.start, self.end)


@dataclass(frozen=True)
class Fold:
    """One walk-forward step: fit on ``train``, choose on ``validation``, report ``test``."""

    train: Window
    validation: Window
    test: Window


def time_split(
    n: int, *, start: int = 0, train: float = 0.6, validation: float = 0.2, embargo: int = 24
) -> Fold:
    """One chronological train/validation/test split of bars ``start .. n-1`` (test gets the rest)."""
    if not (train > 0 and validation > 0 and train + validation < 1):
        raise ValueError("train and validation must be positive fractions summing below 1")
    usable = n - start - 2 * embargo
    n_train, n_val = int(usable * train), int(usable * validation)
    tr = Window(start, start + n_train)
    va = Window(tr.end + embargo, tr.end + embargo + n_val)
    return Fold(tr, va, Window(va.end + embargo, n))


def walk_forward(
    n: int,
    *,
    folds: int,
    start: int = 0,
    mode: Literal["expanding", "rolling"] = "expanding",
    min_train_blocks: int = 2,
    validation_fraction: float = 0.25,
    embargo: int = 24,
) -> list[Fold]:
    """``folds`` consecutive test blocks at the end of ``start .. n-1``, each preceded by its own
    train + validation history.

    The range is cut into ``min_train_blocks + folds`` equal blocks; fold k tests on block
    ``min_train_blocks + k``. Its history is every earlier block (``expanding``) or the
    ``min_train_blocks`` blocks just before (``rolling``); the last ``validation_fraction`` of that
    history is the validation window. Embargo gaps separate train | validation | test.
    """
    if folds < 1 or min_train_blocks < 1:
        raise ValueError("folds and min_train_blocks must be >= 1")
    if mode not in ("expanding", "rolling"):
        raise ValueError(f"mode must be 'expanding' or 'rolling', got {mode!r}")
    blocks = min_train_blocks + folds
    size = (n - start) // blocks
    if size <= 4 * embargo + 2:
        raise ValueError(f"{n - start} bars are too few for {folds} folds with embargo {embargo}")
    out = []
    for k in range(folds):
        test_start = start + (min_train_blocks + k) * size
        test_end = n if k == folds - 1 else test_start + size
        hist_start = start if mode == "expanding" else test_start - min_train_blocks * size
        hist_end = test_start - embargo
        n_val = max(1, int((hist_end - hist_start) * validation_fraction))
        val = Window(hist_end - n_val, hist_end)
        out.append(Fold(Window(hist_start, val.start - embargo), val, Window(test_start, test_end)))
    return out
