"""The meta consumer's model portfolio: the exposure its intents target and the entry price.

Why its own book and not the executor's fills: fills lag (and may be refused by risk limits), while
the policy was trained on the exposure it *asked for*. Live and the training environment both use
these rules (hence ``common``: the training engine imports no service's modules), and the PnL
itself is :func:`common.pnl.unrealized_pnl` (``relative=True``), the one definition the executor's
book uses too:

* exposure ``e``: signed fraction of the maximum position (+1 max long, -1 max short);
* entry price ``p0``: the volume-weighted price at which the current exposure was built, marked at
  the decision timeframe's bar close; adding to a position averages in, reducing keeps ``p0``,
  going flat clears it, flipping sides restarts it at the current price;
* unrealized PnL fraction: ``e * (price / p0 - 1)``, i.e. the return on equity of the open position
  (0 when flat or when no price is known yet).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from common.pnl import FloatArray, unrealized_pnl_scalar

__all__ = ["Portfolio", "next_entry_price", "next_entry_price_scalar"]


def next_entry_price(
    exposure: npt.ArrayLike, entry_price: npt.ArrayLike, new_exposure: npt.ArrayLike, price: npt.ArrayLike
) -> FloatArray:
    """Entry price after moving from ``exposure`` to ``new_exposure`` at ``price`` (NaN = none)."""
    e = np.asarray(exposure, dtype=np.float64)
    n = np.asarray(new_exposure, dtype=np.float64)
    p0 = np.asarray(entry_price, dtype=np.float64)
    p = np.asarray(price, dtype=np.float64)
    flat_after = n == 0.0
    opened = (e == 0.0) | (np.sign(e) != np.sign(n)) | ~np.isfinite(p0)
    grows = np.abs(n) > np.abs(e)
    with np.errstate(divide="ignore", invalid="ignore"):
        averaged = (np.abs(e) * p0 + (np.abs(n) - np.abs(e)) * p) / np.abs(n)
    out = np.where(flat_after, np.nan, np.where(opened, p, np.where(grows, averaged, p0)))
    return out + 0.0


def next_entry_price_scalar(exposure: float, entry_price: float, new_exposure: float, price: float) -> float:
    """:func:`next_entry_price` for one book in float arithmetic (the live tick's path), bit-identical."""
    e, p0, n, p = float(exposure), float(entry_price), float(new_exposure), float(price)
    if n == 0.0:
        return math.nan
    if e == 0.0 or _sign(e) != _sign(n) or not math.isfinite(p0):
        return p + 0.0
    if abs(n) > abs(e):
        return (abs(e) * p0 + (abs(n) - abs(e)) * p) / abs(n) + 0.0
    return p0 + 0.0


def _sign(x: float) -> float:
    """``np.sign`` of a float: -1, 0 or 1, NaN for NaN."""
    if x != x:
        return math.nan
    return float((x > 0.0) - (x < 0.0))


@dataclass(frozen=True)
class Portfolio:
    """The live book between ticks; persisted in every decision row so a restart continues it."""

    exposure: float = 0.0
    entry_price: float | None = None

    def pnl(self, price: float | None) -> float:
        return unrealized_pnl_scalar(self.exposure, self.entry_price, price, relative=True)

    def moved_to(self, new_exposure: float, price: float | None) -> Portfolio:
        entry = next_entry_price_scalar(self.exposure, _nan(self.entry_price), new_exposure, _nan(price))
        return Portfolio(exposure=float(new_exposure), entry_price=entry if math.isfinite(entry) else None)

    def to_dict(self) -> dict[str, float | None]:
        return {"exposure": self.exposure, "entry_price": self.entry_price}

    @classmethod
    def from_dict(cls, data: dict[str, float | None] | None) -> Portfolio:
        if not data:
            return cls()
        entry = data.get("entry_price")
        exposure = float(data.get("exposure") or 0.0)
        return cls(exposure=exposure, entry_price=None if entry is None else float(entry))


def _nan(value: float | None) -> float:
    return np.nan if value is None else float(value)
