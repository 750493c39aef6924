"""The paper venue's cost arithmetic: fixed adverse slippage, taker fee, funding payment.

A module of its own, with no database or exchange imports, so that code which only needs the
arithmetic (the event-driven peer benchmark, unit tests) does not load SQLAlchemy and the venue
machinery with it. The models themselves are described in ``executor.exchanges.paper``.
"""

from __future__ import annotations

from common.events import OrderSide

__all__ = ["funding_amount", "slipped_price", "taker_fee"]


def slipped_price(price: float, side: OrderSide, slippage_bps: float) -> float:
    """Adverse fixed slippage (see the module doc)."""
    sign = 1.0 if side is OrderSide.BUY else -1.0
    return price * (1.0 + sign * slippage_bps / 10_000.0)


def taker_fee(quantity: float, price: float, fee_rate: float) -> float:
    return abs(quantity) * price * fee_rate


def funding_amount(position: float, price: float, rate: float) -> float:
    """Signed USD: a long pays (negative) when the rate is positive."""
    return -position * price * rate
