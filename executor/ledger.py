"""Position and P&L arithmetic (average-cost method), kept pure so tests can recompute it.

Average cost because it is what Kraken Futures reports as the position's entry price, so our
realized/unrealized split matches the venue's statements. Fees and funding are tracked apart from
realized trading P&L: a trader wants to see edge and costs separately.
"""

from __future__ import annotations

from dataclasses import dataclass

from common.pnl import unrealized_pnl_scalar

_EPS = 1e-12


@dataclass(frozen=True, slots=True)
class Holding:
    quantity: float = 0.0
    avg_price: float | None = None
    realized: float = 0.0

    def unrealized(self, mark: float) -> float:
        """``quantity * (mark - avg_price)``, 0 when flat: :func:`common.pnl.unrealized_pnl`."""
        return unrealized_pnl_scalar(self.quantity, self.avg_price, mark)


def apply_fill(h: Holding, signed_qty: float, price: float) -> tuple[Holding, float]:
    """New holding after a fill of ``signed_qty`` at ``price``, and the P&L it realized."""
    q = h.quantity
    new_q = round(q + signed_qty, 8)
    if abs(q) < _EPS or h.avg_price is None:
        return Holding(new_q, price if abs(new_q) > _EPS else None, h.realized), 0.0
    if q * signed_qty > 0:  # adding to the position: weighted average entry
        return Holding(new_q, (abs(q) * h.avg_price + abs(signed_qty) * price) / abs(new_q), h.realized), 0.0
    closed = min(abs(signed_qty), abs(q))
    realized = closed * (price - h.avg_price) * (1.0 if q > 0 else -1.0)
    if abs(new_q) < _EPS:
        avg: float | None = None
        new_q = 0.0
    elif new_q * q > 0:
        avg = h.avg_price  # partly closed: the entry of what is left is unchanged
    else:
        avg = price  # reversed through zero: the remainder was opened at this fill
    return Holding(new_q, avg, h.realized + realized), realized
