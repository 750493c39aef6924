"""The one check every price passes before it values the book or fills an order.

Why one place: a mark or fill price that is missing, NaN, infinite, zero or negative, or older than
the venue's own freshness allows, is not a price. Valuing the book with it can make a losing day
look fine (a negative mark turns a short into a windfall; NaN compares false with every limit), and
filling at it books garbage the venue and the book then disagree about. Every adapter calls
:func:`checked_price` and turns a bad value into :class:`NoPrice`, which the service treats as
"mark unknown": no new risk, and no order at that price.
"""

from __future__ import annotations

import math
from datetime import datetime

from executor.exchanges.base import NoPrice


class BadPrice(NoPrice):
    """A price was given but is not usable (non-finite, not positive, or stale)."""


def checked_price(
    value: object,
    what: str,
    *,
    stamped_at: datetime | None = None,
    now: datetime | None = None,
    max_age_s: float | None = None,
) -> float:
    """``value`` as a float if it is a usable price, else raise :class:`NoPrice` saying why.

    ``stamped_at`` is the venue's own time of the price; when it, ``now`` and ``max_age_s`` are all
    given, a price older than ``max_age_s`` is refused. A price stamped in the future is accepted
    (clock skew between us and the venue is not evidence of a stale price).
    """
    if value is None or value == "":
        raise NoPrice(f"{what}: no price")
    try:
        price = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise BadPrice(f"{what}: price {value!r} is not a number") from exc
    if not math.isfinite(price):
        raise BadPrice(f"{what}: price {price!r} is not finite")
    if price <= 0:
        raise BadPrice(f"{what}: price {price!r} is not positive")
    if stamped_at is not None and now is not None and max_age_s is not None:
        age = (now - stamped_at).total_seconds()
        if age > max_age_s:
            raise BadPrice(
                f"{what}: price is {age:.0f}s old (stamped {stamped_at.isoformat()}), limit {max_age_s:g}s"
            )
    return price
