"""Kraken Futures (BTC perpetual, PF_XBTUSD) through CCXT ``krakenfutures``.

What this adapter adds on top of CCXT, and why:

* Client order ids are ours (derived from the intent, see ``common.order_ids``) and every placement
  first looks the id up, inside each retry attempt too: a ``sendorder`` that timed out may well
  have executed, and blindly re-sending it is how orders get doubled.
* Kraken Futures reports an order through ``orders/status`` only while it is working or briefly
  after; a market order is usually gone by the time we ask. So an empty lookup is confirmed
  against ``fills`` (which carry ``cliOrdId``) before we conclude the venue never saw the order.
* Retries with exponential backoff (tenacity), within ``deadline_s`` per call, only for transport
  trouble: NetworkError (which in CCXT includes RequestTimeout, RateLimitExceeded/DDoSProtection,
  ExchangeNotAvailable, lost answers) and errors CCXT cannot classify (Kraken's HTTP 500 "Server
  Error"). On ``sendorder`` these are "unknown outcome" and the retry starts with the lookup.
  Refusals (InsufficientFunds, InvalidOrder and its subclasses) are never retried: they will not
  change. Every HTTP request carries the client's explicit ``timeout`` (required > 0).
* ``base_url`` points every API family at another host (the local stand-in in tests).

Fees: Kraken's ``fills`` carry no fee; the fee is CCXT's estimate from the market's taker rate
(0.05 %, the base tier), which overstates it for higher volume tiers: conservative for the loss cap.

Limits: ``fills`` returns the most recent 100 fills, enough for reconciliation at our order rate
(<= max_orders_per_hour); realized funding is read by the venue's account log, not here (returns
none, so the book's funding column stays empty on Kraken: known gap).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import ccxt
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
)

from common.events import OrderSide
from common.kraken import api_urls
from common.logging import get_logger, register_secret
from config import Settings
from executor.exchanges.base import (
    ExchangeError,
    ExchangeFill,
    ExchangeOrder,
    FundingEvent,
    OrderRefused,
    OrderRequest,
    TransientExchangeError,
)
from executor.prices import checked_price

log = get_logger(__name__)
T = TypeVar("T")
#: CCXT errors worth another try. RequestTimeout and RateLimitExceeded are NetworkError subclasses.
RETRYABLE = (ccxt.NetworkError, ccxt.RateLimitExceeded, ccxt.RequestTimeout)
#: CCXT errors that are a definitive "no" from the venue.
REFUSALS = (ccxt.InsufficientFunds, ccxt.InvalidOrder, ccxt.BadRequest, ccxt.PermissionDenied)


def _transient(exc: BaseException) -> bool:
    """Worth another try: transport trouble, or an error CCXT could not classify (Kraken's HTTP 500
    "Server Error", "unknownError"). Every call this adapter makes is safe to repeat: reads and
    cancels are idempotent, and a placement looks its client order id up before each attempt."""
    return isinstance(exc, RETRYABLE) or type(exc) is ccxt.ExchangeError


def _ccxt_verbose_log(*args: Any) -> None:
    """Stands in for ``Exchange.log`` (a bare print): a DEBUG record, scrubbed of credentials."""
    logging.getLogger("ccxt.verbose").debug(" ".join(str(a) for a in args))


def _ts(ms: int | None) -> datetime:
    return datetime.fromtimestamp((ms or 0) / 1000, tz=UTC)


class KrakenFutures:
    """The :class:`executor.exchanges.base.Exchange` for Kraken Futures."""

    name = "kraken"
    #: Wall-clock budget of one call including its retries (each HTTP request also has the client's
    #: own timeout): past it the call gives up and the intent stops, uncommitted, to be re-delivered.
    deadline_s = 60.0

    def __init__(
        self,
        client: Any,
        symbol: str,
        *,
        attempts: int = 5,
        backoff_s: float = 0.5,
        max_backoff_s: float = 8.0,
        max_mark_age_s: float | None = None,
    ) -> None:
        self._x = client
        #: Marks older than this (by the ticker's timestamp) are refused; None: no age check.
        self._max_mark_age = max_mark_age_s
        self._symbol = symbol
        self._attempts = attempts
        self._backoff = backoff_s
        self._max_backoff = max_backoff_s

    @classmethod
    def from_settings(
        cls, settings: Settings, *, client_options: dict[str, Any] | None = None, **kwargs: Any
    ) -> KrakenFutures:
        """Build the CCXT client; ``client_options`` (e.g. ``timeout`` in ms) override the defaults."""
        ex = settings.exchange
        if ex.api_key is None or ex.api_secret is None:
            raise ExchangeError("kraken needs api_key and api_secret")
        register_secret(ex.api_key)  # masked in every log line, whichever library writes it
        register_secret(ex.api_secret)
        options: dict[str, Any] = {
            "apiKey": ex.api_key.get_secret_value(),
            "secret": ex.api_secret.get_secret_value(),
            "enableRateLimit": True,
            "timeout": 10_000,
            **(client_options or {}),
        }
        if not float(options.get("timeout") or 0) > 0:
            # CCXT applies this to every HTTP call it makes (load_markets included); without it a
            # wedged connection would hold the executor, and its namespace lock, forever
            raise ExchangeError("kraken: the CCXT client needs an explicit timeout (ms) > 0")
        client = getattr(ccxt, ex.ccxt_id)(options)
        # CCXT's verbose mode print()s request headers (APIKey, Authent) to stdout: route it
        # through stdlib logging, where common.logging masks them like every other record.
        client.log = _ccxt_verbose_log
        if ex.base_url:
            client.urls["api"] = api_urls(ex.base_url)
        kwargs.setdefault("max_mark_age_s", settings.risk.max_mark_age_s)
        return cls(client, settings.symbol, **kwargs)

    # ------------------------------------------------------------------ retry plumbing

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        """Run ``fn`` with backoff on transport errors; translate CCXT errors into ours."""
        retrying = Retrying(
            retry=retry_if_exception(_transient),
            stop=stop_after_attempt(self._attempts) | stop_after_delay(self.deadline_s),
            wait=wait_exponential(multiplier=self._backoff, max=self._max_backoff),
            before_sleep=lambda rs: log.warning(
                "kraken_retry",
                call=what,
                attempt=rs.attempt_number,
                error=type(rs.outcome.exception()).__name__ if rs.outcome else "?",
            ),
            reraise=False,
        )
        try:
            return retrying(fn)
        except RetryError as exc:
            last = exc.last_attempt.exception()
            raise TransientExchangeError(
                f"kraken {what}: gave up after {self._attempts} attempts: {last}"
            ) from last
        except REFUSALS as exc:
            raise OrderRefused(f"kraken {what}: {type(exc).__name__}: {exc}") from exc
        except ccxt.BaseError as exc:
            raise ExchangeError(f"kraken {what}: {type(exc).__name__}: {exc}") from exc

    # ------------------------------------------------------------------ orders

    def place_order(self, request: OrderRequest) -> ExchangeOrder:
        def attempt() -> ExchangeOrder:
            found = self._lookup(request.client_order_id)  # a timed-out attempt may have executed
            if found is not None:
                return found
            try:
                sent = self._x.create_order(
                    self._symbol,
                    "market",
                    request.side.value.lower(),
                    request.quantity,
                    None,
                    {"clientOrderId": request.client_order_id},
                )
            except ccxt.DuplicateOrderId:
                # the venue already has this id (an earlier attempt got through): use that order
                found = self._lookup(request.client_order_id)
                if found is None:
                    # It exists (the venue said so) but shows neither status nor fills yet (its
                    # fill history lags). Never send it again; book it as working with nothing
                    # filled: reconciliation books its fills, by this id, when they show.
                    log.warning("kraken_order_outcome_unknown", client_order_id=request.client_order_id)
                    cid, side, qty = request.client_order_id, request.side, request.quantity
                    return ExchangeOrder(cid, None, side, qty, "unknown")
                return found
            except (*REFUSALS, ccxt.NetworkError, ccxt.AuthenticationError):
                raise  # refusals stop; transport errors are retried, the next attempt looks up first
            except ccxt.ExchangeError as exc:
                # e.g. HTTP 500 {"error": "Server Error"}: CCXT makes it a plain ExchangeError, yet
                # the venue may have executed. Unknown outcome: retry, i.e. look it up first.
                log.warning(
                    "kraken_order_outcome_unknown",
                    client_order_id=request.client_order_id,
                    error=type(exc).__name__,
                )
                raise ccxt.NetworkError(f"sendorder outcome unknown: {exc}") from exc
            fills = self._fills_for(request.client_order_id, sent.get("id"))
            return self._order(request.client_order_id, sent, fills, request.side, request.quantity)

        return self._call("place_order", attempt)

    def fetch_order(self, client_order_id: str) -> ExchangeOrder | None:
        return self._call("fetch_order", lambda: self._lookup(client_order_id))

    def _lookup(self, cid: str) -> ExchangeOrder | None:
        response = self._x.privateGetOrdersStatus({"cliOrdIds": cid})
        raw = [o for o in response.get("orders", []) if (o.get("order") or {}).get("cliOrdId") == cid]
        if raw:
            parsed = self._x.parse_order(raw[0])
            side = OrderSide(str(parsed["side"]).upper())
            return self._order(
                cid, parsed, self._fills_for(cid, parsed.get("id")), side, float(parsed["amount"])
            )
        fills = self._fills_for(cid, None)  # the status is gone: the fills are the proof
        if not fills:
            return None
        qty = sum(f.quantity for f in fills)
        return ExchangeOrder(cid, None, fills[0].side, qty, "closed", fills)

    def _order(
        self, cid: str, parsed: dict[str, Any], fills: tuple[ExchangeFill, ...], side: OrderSide, qty: float
    ) -> ExchangeOrder:
        status = str(parsed.get("status") or "open")
        if fills and sum(f.quantity for f in fills) + 1e-12 >= qty:
            status = "closed"
        return ExchangeOrder(cid, parsed.get("id"), side, qty, status, fills)

    def _fills_for(self, cid: str, order_id: str | None) -> tuple[ExchangeFill, ...]:
        """Fills of one order, by our client id (or by the venue's order id when a fill lacks it)."""
        ids = {cid, f"order:{order_id}"} if order_id else {cid}
        return tuple(f for f in self._all_fills() if f.client_order_id in ids)

    def _all_fills(self) -> list[ExchangeFill]:
        out = []
        for t in self._x.fetch_my_trades(self._symbol):
            info = t.get("info") or {}
            fee = (t.get("fee") or {}).get("cost")
            out.append(
                ExchangeFill(
                    fill_id=str(t["id"]),
                    client_order_id=str(info.get("cliOrdId") or f"order:{t.get('order')}"),
                    side=OrderSide(str(t["side"]).upper()),
                    quantity=float(t["amount"]),
                    price=float(t["price"]),
                    fee=float(fee) if fee is not None else 0.0,
                    filled_at=_ts(t.get("timestamp")),
                    liquidity=t.get("takerOrMaker") or "taker",
                )
            )
        return sorted(out, key=lambda f: (f.filled_at, f.fill_id))

    def fetch_fills(self, since: datetime | None = None) -> list[ExchangeFill]:
        fills = self._call("fetch_fills", self._all_fills)
        return [f for f in fills if since is None or f.filled_at >= since]

    def fetch_position(self) -> float:
        def get() -> float:
            for p in self._x.fetch_positions([self._symbol]):
                if p.get("symbol") == self._symbol:
                    size = float(p.get("contracts") or 0.0) * float(p.get("contractSize") or 1.0)
                    return round(size if p.get("side") == "long" else -size, 8)
            return 0.0

        return self._call("fetch_position", get)

    def fetch_open_orders(self) -> list[ExchangeOrder]:
        def get() -> list[ExchangeOrder]:
            return [
                ExchangeOrder(
                    str(o.get("clientOrderId") or o.get("id")),
                    o.get("id"),
                    OrderSide(str(o["side"]).upper()),
                    float(o.get("amount") or 0.0),
                    "open",
                )
                for o in self._x.fetch_open_orders(self._symbol)
            ]

        return self._call("fetch_open_orders", get)

    def cancel_order(self, client_order_id: str) -> None:
        def cancel() -> None:
            try:
                self._x.privatePostCancelorder({"cliOrdId": client_order_id})
            except ccxt.OrderNotFound:
                return None  # already gone: that is what we wanted

        self._call("cancel_order", cancel)

    def mark_price(self, at: datetime) -> float:
        """The venue's mark, validated (see ``executor.prices``): missing, NaN, <= 0 or older than
        ``max_mark_age_s`` by the ticker's own time raises NoPrice. No fallback to the last trade:
        a venue without a mark is a venue whose prices we should not trust for risk."""
        ticker = self._call("mark_price", lambda: self._x.fetch_ticker(self._symbol))
        stamp = ticker.get("timestamp")
        return checked_price(
            ticker.get("markPrice"),
            f"kraken mark {self._symbol}",
            stamped_at=_ts(stamp) if stamp else None,
            now=at,
            max_age_s=self._max_mark_age,
        )

    def fetch_funding(self, since: datetime | None, now: datetime) -> list[FundingEvent]:
        return []  # see the module doc: funding is settled by the venue and read from its account log
