"""Unrealized P&L: the one definition the executor, the meta consumer and training all use.

Why one place: the executor values its book (BTC quantity, USD average cost) and the meta consumer
and the training env value the model portfolio (exposure fraction, entry price); both used to carry
their own copy of "position times the move since entry", each with its own idea of what a missing
entry or mark means. The rule is now written once:

* ``position * (mark - entry_price)`` in the quote currency (the executor's book, the replay
  backtest's book), or with ``relative=True`` ``position * (mark / entry_price - 1)``, the return
  since entry (the model portfolio, where ``position`` is the exposure fraction and the result is
  a fraction of equity, an input of the policy's observation);
* 0 when flat, when no entry price is known (NaN, None or not positive) or when the mark is not a
  number. The executor never reaches the last case with a real mark: every venue price passes
  ``executor.prices.checked_price`` first, which refuses a non-finite or non-positive one.

The two forms are kept exactly as they were computed before (not derived from each other) so that
stored books, trained policies and the parity checks (live == training features, replay ==
vectorized book) stay bit-identical: ``q * (m - p0)`` and ``q * p0 * (m / p0 - 1)`` differ in the
last bits.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from config import DEFAULT_FUNDING_RATE_HOURLY

FloatArray = npt.NDArray[np.float64]

# The paper venue's default hourly funding rate lives in the configuration tree (config.py); it is
# re-exported here for the P&L helpers' callers so there is one definition.

__all__ = ["DEFAULT_FUNDING_RATE_HOURLY", "FloatArray", "unrealized_pnl", "unrealized_pnl_scalar"]


def unrealized_pnl(
    position: npt.ArrayLike, entry_price: npt.ArrayLike, mark: npt.ArrayLike, *, relative: bool = False
) -> FloatArray:
    """Unrealized P&L of ``position`` opened at ``entry_price`` and marked at ``mark`` (broadcast).

    ``relative=False``: ``position * (mark - entry_price)`` (quote currency per position unit);
    ``relative=True``: ``position * (mark / entry_price - 1)``. 0 where flat, where the entry is
    unknown (NaN or not positive) or where the mark is NaN/infinite; never ``-0.0``.
    """
    q = np.asarray(position, dtype=np.float64)
    p0 = np.asarray(entry_price, dtype=np.float64)
    p = np.asarray(mark, dtype=np.float64)
    ok = (q != 0.0) & np.isfinite(p0) & np.isfinite(p) & (p0 > 0.0)
    safe_p0 = np.where(ok, p0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        move = p / safe_p0 - 1.0 if relative else p - safe_p0
        out = np.where(ok, q * move, 0.0)
    return out + 0.0


def unrealized_pnl_scalar(
    position: float, entry_price: float | None, mark: float | None, *, relative: bool = False
) -> float:
    """:func:`unrealized_pnl` of one position as a Python float; ``None`` means "not known".

    Plain float arithmetic with the same operations (a tick's one value; the array version costs
    ~30 µs of numpy overhead per call), bit-identical (tests/unit/test_pnl.py).
    """
    q = float(position)
    p0 = math.nan if entry_price is None else float(entry_price)
    p = math.nan if mark is None else float(mark)
    if not (q != 0.0 and math.isfinite(p0) and math.isfinite(p) and p0 > 0.0):
        return 0.0
    move = p / p0 - 1.0 if relative else p - p0
    return q * move + 0.0
