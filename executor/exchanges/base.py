"""The one interface every venue adapter implements, and the errors the service acts on.

The service never sees CCXT types: adapters translate into these small records, so the paper
exchange and Kraken are interchangeable and the exactly-once logic (lookup before place, adopt
orders a crashed run left behind) is written once, in the service, against this interface.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from common.events import OrderSide


class ExchangeError(Exception):
    """Base of adapter errors. ``retryable`` says whether trying the same call again may succeed."""

    retryable = False


class TransientExchangeError(ExchangeError):
    """Network trouble, timeouts, rate limits: retried with backoff, then surfaced."""

    retryable = True


class OrderRefused(ExchangeError):
    """The venue refused the order (insufficient funds, invalid order): never retried."""


class NoPrice(ExchangeError):
    """No price is available to fill or value the position: do not trade."""


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """A market order to send. ``ref_time`` is the time the price should be taken at (paper)."""

    client_order_id: str
    intent_id: str
    tick_id: str
    symbol: str
    side: OrderSide
    quantity: float
    ref_time: datetime


@dataclass(frozen=True, slots=True)
class ExchangeFill:
    """One execution as the venue reports it; ``fee`` in USD."""

    fill_id: str
    client_order_id: str
    side: OrderSide
    quantity: float
    price: float
    fee: float
    filled_at: datetime
    liquidity: str = "taker"

    @property
    def signed_quantity(self) -> float:
        return self.quantity if self.side is OrderSide.BUY else -self.quantity


@dataclass(frozen=True, slots=True)
class ExchangeOrder:
    """An order as the venue knows it, with the fills it has produced."""

    client_order_id: str
    exchange_order_id: str | None
    side: OrderSide
    quantity: float
    status: str  # 'open', 'closed' (filled), 'canceled', 'rejected'
    fills: tuple[ExchangeFill, ...] = ()

    @property
    def filled(self) -> float:
        return sum(f.quantity for f in self.fills)

    @property
    def average_price(self) -> float:
        qty = self.filled
        return sum(f.quantity * f.price for f in self.fills) / qty if qty else 0.0

    @property
    def fee(self) -> float:
        return sum(f.fee for f in self.fills)


@dataclass(frozen=True, slots=True)
class FundingEvent:
    """A funding settlement on the perpetual; ``amount`` is signed USD (negative: we paid)."""

    symbol: str
    funding_time: datetime
    rate: float
    position_quantity: float
    amount: float


@runtime_checkable
class Exchange(Protocol):
    """A venue for one perpetual. Every method may raise :class:`ExchangeError`."""

    name: str

    def place_order(self, request: OrderRequest) -> ExchangeOrder:
        """Send a market order. Callers look the client order id up first (see the service)."""
        ...

    def fetch_order(self, client_order_id: str) -> ExchangeOrder | None:
        """The order with that client id, fills included; None when the venue does not know it."""
        ...

    def fetch_fills(self, since: datetime | None = None) -> list[ExchangeFill]:
        """Fills at or after ``since`` (all when None), oldest first."""
        ...

    def fetch_position(self) -> float:
        """Signed position in BTC (long > 0)."""
        ...

    def fetch_open_orders(self) -> list[ExchangeOrder]:
        """Orders still working on the venue."""
        ...

    def cancel_order(self, client_order_id: str) -> None:
        """Cancel a working order (no error when it is already gone)."""
        ...

    def mark_price(self, at: datetime) -> float:
        """Price to value the position at ``at``; raises :class:`NoPrice` when there is none."""
        ...

    def fetch_funding(self, since: datetime | None, now: datetime) -> list[FundingEvent]:
        """Funding settlements in ``(since, now]``; the caller stores them idempotently by time."""
        ...
