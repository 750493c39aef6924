"""A local stand-in of the Kraken Futures REST endpoints CCXT's ``krakenfutures`` calls.

Stdlib only (http.server in a thread on 127.0.0.1:0, or its own process: ``python -m
tests.standin.kraken_futures``). It keeps orders, fills and the position, fills market orders at
``price``, and forgets an order's status ``status_ttl_s`` after it closed (as Kraken does; the
fills stay). Why a stand-in and not mocks: the executor's exactly-once logic depends on what CCXT
makes of Kraken's real payloads (``placed`` with no execution parses as an open order, HTTP 500
"Server Error" is a plain ExchangeError, ...), so the real CCXT code path must run.

Bad days, configurable per test (``BadDay``, ``fail_next``; the how-to is in
``/work/rooms/notes/standin-api.md`` and the module's ``BadDay`` docstring):

* delayed fills: the order answer says ``placed`` (untouched), fills appear N seconds or N
  requests later; partial fills: part now, the rest later (or never, until cancelled);
* a fill history that lags the position by N requests;
* lost answers (connection closed, before or after the venue acted), timeouts (answer after the
  client gave up, the venue acted), 5xx (before or after acting), rate limits (HTTP 429 and
  Kraken's ``apiLimitExceeded`` error, which CCXT maps to RateLimitExceeded), refusals;
* a human trading by hand (foreign fills, foreign working orders).

Private calls must carry ``APIKey`` and ``Authent`` headers; their values are checked for
presence and the key for equality, and are never logged or stored.

Recorded market history (``serve_recorded(as_of)``, off by default; what the exogenous pollers
read through CCXT, issue 15). The stand-in then replays real recorded data up to its clock
``as_of`` (``state.as_of``), never anything later:

* ``GET /derivatives/api/v4/historicalfundingrates?symbol=PF_XBTUSD`` (CCXT
  ``fetch_funding_rate_history``): ``{"result", "serverTime", "rates": [{"timestamp",
  "relativeFundingRate"}]}``, oldest first, every rate up to ``as_of`` (Kraken sends the whole
  history; CCXT filters by ``since``). The rates are the **Deribit BTC-PERPETUAL hourly funding**
  of the shared file ``funding_deribit_btc_perpetual_1h.csv`` (column ``interest_1h``, the
  funding accrued in the hour ending at ``ts``): there is no recorded Kraken funding, and that
  file is the only hourly one, as Kraken's perpetual funding is. Kraken's absolute
  ``fundingRate`` (USD per contract) needs a mark price the shared data does not have, so it is
  left out; CCXT reads only ``relativeFundingRate``.
* ``GET /derivatives/api/v3/tickers/PF_XBTUSD`` (CCXT ``fetch_ticker``) and ``.../tickers`` gain
  ``openInterest`` and the answer a ``serverTime`` (= ``as_of``, when the snapshot is taken). The
  value is the last row of the shared file ``open_interest_allexchanges_daily.csv``
  (``open_interest_usd``, the aggregate of all exchanges in USD: so the scale is not Kraken's
  per-contract one) published by ``as_of`` (a daily row about day D at D+1 00:00 UTC).

Two body faults serve the pollers' bad days (``fail_next`` on any endpoint, ``FAULTS_BODY``):
``"garbage"`` (HTTP 200, an HTML page, not JSON) and ``"malformed"`` (HTTP 200, JSON of the wrong
shape: ``result`` and ``serverTime`` only). Without ``serve_recorded`` every answer stays as above.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import signal
import threading
import time
import uuid
from collections import Counter, deque
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

API = "/derivatives/api/v3/"
API_V4 = "/derivatives/api/v4/"  # CCXT asks for historicalfundingrates on v4 (options['versions'])
V4_ENDPOINTS = {"historicalfundingrates"}  # the only v4 call CCXT makes (public)
CHARTS = "/api/charts/v1/"  # CCXT fetch_ohlcv: GET {price_type}/{symbol}/{interval}?from=s&to=s
CONTROL = "/__standin/"  # test controls (no auth: the stand-in only ever listens on 127.0.0.1)
CHART_LIMIT = 2000
PRIVATE = {"sendorder", "cancelorder", "openorders", "openpositions", "fills", "accounts", "orders/status"}
#: Faults after which the venue has NOT acted (the call may safely be repeated as is).
FAULTS_BEFORE = {"429", "rate_limit", "unavailable", "500", "lost_before", "insufficient_funds"}
#: Faults where the venue DID act and the client does not hear so (the ambiguous outcome).
FAULTS_AFTER = {"timeout", "lost", "500_after"}
DEFAULT_FAULT_KINDS = ("429", "rate_limit", "unavailable", "500", "timeout", "lost")
#: Faults in the body of a 200 answer (only by ``fail_next``): not JSON, or JSON of the wrong shape.
FAULTS_BODY = {"garbage", "malformed"}
GARBAGE = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
#: The shared real data ``serve_recorded`` replays (see the module docstring for why these files).
DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "exogenous"
FUNDING_FILE, FUNDING_COLUMN = "funding_deribit_btc_perpetual_1h.csv", "interest_1h"
OPEN_INTEREST_FILE, OPEN_INTEREST_COLUMN = "open_interest_allexchanges_daily.csv", "open_interest_usd"
_EPS = 1e-9
INSTRUMENT = {
    "symbol": "PF_XBTUSD",
    "type": "flexible_futures",
    "tradeable": True,
    "tickSize": 0.5,
    "contractSize": 1,
    "contractValueTradePrecision": 4,
    "impactMidSize": 1,
    "maxPositionSize": 1000000,
    "openingDate": "2022-01-01T00:00:00.000Z",
    "marginLevels": [],
    "fundingRateCoefficient": 8,
    "maxRelativeFundingRate": 0.001,
    "isin": "GB00J62YGL67",
    "tags": [],
    "category": "Layer 1",
}


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(t * 1000) % 1000:03d}Z"


def _file_ts(text: str) -> datetime:
    """A shared file's ``YYYY-MM-DDTHH:MM:SSZ`` as an aware UTC datetime."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _public(d: dict[str, Any]) -> dict[str, Any]:
    """A record without the stand-in's private bookkeeping keys (those start with '_')."""
    return {k: v for k, v in d.items() if not k.startswith("_")}


@dataclass(frozen=True)
class BadDay:
    """How badly the venue behaves; every field defaults to a good day.

    ``fill_delay_s`` / ``fill_delay_requests``: a new order fills nothing at once (answer
    ``placed`` with a PLACE event, the order works); its fills arrive this many seconds / further
    API requests later (whichever first when both are set). ``partial_fraction``: the part of each
    order filled at once; the rest follows the delay rules, or works until cancelled when no
    delay is set. ``history_lag_requests``: fills show in ``fills`` only this many requests after
    they changed the position. ``fault_rate``: chance that a private call (``fault_endpoints``, or
    all) gets a fault drawn from ``fault_kinds``, seeded by ``seed``.
    """

    fill_delay_s: float = 0.0
    fill_delay_requests: int = 0
    partial_fraction: float = 1.0
    history_lag_requests: int = 0
    fault_rate: float = 0.0
    fault_kinds: tuple[str, ...] = DEFAULT_FAULT_KINDS
    fault_endpoints: tuple[str, ...] = ()
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.partial_fraction <= 1.0:
            raise ValueError(f"partial_fraction must be in (0, 1], got {self.partial_fraction}")
        if not 0.0 <= self.fault_rate <= 1.0:
            raise ValueError(f"fault_rate must be in [0, 1], got {self.fault_rate}")
        unknown = set(self.fault_kinds) - FAULTS_BEFORE - FAULTS_AFTER
        if unknown:
            raise ValueError(f"unknown fault kinds: {sorted(unknown)}")

    @property
    def delays_fills(self) -> bool:
        return self.fill_delay_s > 0 or self.fill_delay_requests > 0

    @classmethod
    def from_json(cls, doc: dict[str, Any], base: BadDay | None = None) -> BadDay:
        names = {f.name for f in fields(cls)}
        unknown = set(doc) - names
        if unknown:
            raise ValueError(f"unknown BadDay fields: {sorted(unknown)}")
        values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in doc.items()}
        return replace(base or cls(), **values)


@dataclass
class Pending:
    """A fill the venue owes: released at ``at`` (monotonic wall time) or request ``at_request``."""

    key: str
    size: float
    at: float | None
    at_request: int | None


@dataclass
class VenueState:
    price: float = 20_000.0
    position: float = 0.0
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)  # by cliOrdId (or orderId)
    fills: list[dict[str, Any]] = field(default_factory=list)
    pending: list[Pending] = field(default_factory=list)
    faults: dict[str, deque[str]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    requests: int = 0
    sendorder_executions: int = 0
    duplicate_sends: int = 0
    executions_by_cid: Counter[str] = field(default_factory=Counter)
    faults_served: Counter[str] = field(default_factory=Counter)
    auth_failures: int = 0
    #: Trade-price candles served by the charts API: [open time ms, open, high, low, close, volume].
    candles: list[list[float]] = field(default_factory=list)
    #: Bad-mark days (issue 18, hole 6): fields merged into every ticker answer, e.g.
    #: {"markPrice": float("nan")}, {"markPrice": -5.0}, {"markPrice": None}, or a stale "lastTime".
    ticker_override: dict[str, Any] = field(default_factory=dict)
    #: Recorded history (``serve_recorded``): (ts, relative funding rate) and (ts published,
    #: open interest), oldest first, as the files' literal texts; ``as_of`` is the replay clock
    #: (None: no history served, the answers are as without it).
    funding: list[tuple[datetime, str]] = field(default_factory=list)
    open_interest: list[tuple[datetime, str]] = field(default_factory=list)
    as_of: datetime | None = None


class KrakenFuturesStandIn:
    """Start with ``with KrakenFuturesStandIn(api_key) as venue: venue.base_url ...``."""

    def __init__(
        self,
        api_key: str,
        *,
        delay_s: float = 2.0,
        status_ttl_s: float = 0.0,
        bad_day: BadDay | None = None,
        port: int = 0,
    ) -> None:
        self.api_key = api_key
        self.delay_s = delay_s
        self.status_ttl_s = status_ttl_s
        self.bad_day = bad_day or BadDay()
        self.state = VenueState()
        self.lock = threading.RLock()
        self._rng = random.Random(self.bad_day.seed)
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}"

    def __enter__(self) -> KrakenFuturesStandIn:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    # ------------------------------------------------------------------ test controls

    def fail_next(self, endpoint: str, *kinds: str) -> None:
        """Queue faults for the next calls of ``endpoint`` (kinds: FAULTS_BEFORE / _AFTER / _BODY)."""
        unknown = set(kinds) - FAULTS_BEFORE - FAULTS_AFTER - FAULTS_BODY
        if unknown:
            raise ValueError(f"unknown fault kinds: {sorted(unknown)}")
        with self.lock:
            self.state.faults.setdefault(endpoint, deque()).extend(kinds)

    def serve_recorded(self, as_of: datetime, data: Path = DATA) -> None:
        """Serve the recorded funding history and open interest (module docstring) up to ``as_of``.

        Move the clock with ``state.as_of`` (under ``lock``); nothing after it is ever served.
        """
        if as_of.tzinfo is None:
            raise ValueError("as_of must be timezone-aware (UTC)")
        funding = [(_file_ts(r["ts"]), r[FUNDING_COLUMN]) for r in _csv_rows(data / FUNDING_FILE)]
        # a daily aggregate about day D is known at D+1 00:00 UTC (the shared README's rule)
        oi = [
            (_file_ts(r["ts"]) + timedelta(days=1), r[OPEN_INTEREST_COLUMN])
            for r in _csv_rows(data / OPEN_INTEREST_FILE)
        ]
        with self.lock:
            self.state.funding, self.state.open_interest = funding, oi
            self.state.as_of = as_of.astimezone(UTC)

    def set_bad_day(self, **changes: Any) -> BadDay:
        """Change some ``BadDay`` fields from now on (others keep their value)."""
        with self.lock:
            self.bad_day = BadDay.from_json(changes, self.bad_day)
            if "seed" in changes:
                self._rng = random.Random(self.bad_day.seed)
            return self.bad_day

    def release_fills(self) -> int:
        """Deliver every owed fill now and make lagging history visible; returns how many fills."""
        with self.lock:
            owed = list(self.state.pending)
            self.state.pending.clear()
            for p in owed:
                self._fill(p.key, p.size, lag=0)
            for f in self.state.fills:
                f["_visible_at_request"] = 0
            return len(owed)

    def trade_by_hand(self, side: str, size: float, cli_ord_id: str | None = "by-hand") -> None:
        """Someone trades on the venue behind our back: a filled order with a foreign client id."""
        with self.lock:
            key = self._new_order(cli_ord_id or None, side, size, time.time())
            self._fill(key, size, lag=0)

    def place_foreign_order(self, side: str, size: float, cli_ord_id: str = "foreign-open") -> None:
        """A working order we did not place; it never fills (until cancelled)."""
        with self.lock:
            self._new_order(cli_ord_id, side, size, time.time())

    def snapshot(self) -> dict[str, Any]:
        """Counts a test asserts on: positions, fills, duplicates, faults served."""
        with self.lock:
            st = self.state
            return {
                "position": st.position,
                "fills_position": round(
                    sum(float(f["size"]) * (1 if f["side"] == "buy" else -1) for f in st.fills), 8
                ),
                "fills": len(st.fills),
                "pending_fills": len(st.pending),
                "open_orders": sum(1 for o in st.orders.values() if o["_open"]),
                "sendorder_executions": st.sendorder_executions,
                "duplicate_sends": st.duplicate_sends,
                "executions_by_cid": dict(st.executions_by_cid),
                "faults_served": dict(st.faults_served),
                "calls": dict(Counter(st.calls)),
                "requests": st.requests,
                "auth_failures": st.auth_failures,
                "bad_day": asdict(self.bad_day),
            }

    def control(self, method: str, action: str, doc: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """The HTTP face of the controls above, for a stand-in running in its own process."""
        try:
            if method == "GET" and action == "snapshot":
                return 200, self.snapshot()
            if method != "POST":
                return 405, {"error": "use POST"}
            if action == "bad_day":
                return 200, {"bad_day": asdict(self.set_bad_day(**doc))}
            if action == "fail_next":
                self.fail_next(str(doc["endpoint"]), *[str(k) for k in doc.get("kinds", [])])
                return 200, {"ok": True}
            if action == "recorded":
                self.serve_recorded(datetime.fromisoformat(str(doc["as_of"])))
                return 200, {"as_of": _iso(self.state.as_of.timestamp()) if self.state.as_of else None}
            if action == "release":
                return 200, {"released": self.release_fills()}
            if action == "trade_by_hand":
                self.trade_by_hand(str(doc["side"]), float(doc["size"]), doc.get("cli_ord_id", "by-hand"))
                return 200, {"ok": True}
            if action == "foreign_order":
                self.place_foreign_order(
                    str(doc["side"]), float(doc["size"]), str(doc.get("cli_ord_id", "foreign-open"))
                )
                return 200, {"ok": True}
        except (KeyError, TypeError, ValueError) as exc:
            return 400, {"error": str(exc)}
        return 404, {"error": f"unknown control {action}"}

    # ------------------------------------------------------------------ venue bookkeeping

    def _new_order(self, cid: str | None, side: str, size: float, now: float) -> str:
        oid = str(uuid.uuid4())
        key = cid or oid
        self.state.orders[key] = {
            "orderId": oid,
            "cliOrdId": cid,
            "type": "lmt",
            "symbol": "PF_XBTUSD",
            "side": side,
            "quantity": size,
            "filled": 0.0,
            "limitPrice": self.state.price,
            "reduceOnly": False,
            "timestamp": _iso(now),
            "lastUpdateTimestamp": _iso(now),
            "_open": True,
            "_cancelled": False,
            "_closed_at": None,
        }
        return key

    def _fill(self, key: str, size: float, *, lag: int) -> dict[str, Any]:
        """Execute ``size`` of an order: position, fill history (visible after ``lag`` requests)."""
        order = self.state.orders[key]
        now = time.time()
        size = round(min(size, float(order["quantity"]) - float(order["filled"])), 8)
        order["filled"] = round(float(order["filled"]) + size, 8)
        order["lastUpdateTimestamp"] = _iso(now)
        if float(order["filled"]) + _EPS >= float(order["quantity"]):
            order["_open"], order["_closed_at"] = False, now
        side = order["side"]
        self.state.position = round(self.state.position + (size if side == "buy" else -size), 8)
        fill = {
            "fillTime": _iso(now),
            "order_id": order["orderId"],
            "fill_id": str(uuid.uuid4()),
            "cliOrdId": order["cliOrdId"],
            "symbol": "PF_XBTUSD",
            "side": side,
            "size": size,
            "price": self.state.price,
            "fillType": "taker",
            "_visible_at_request": self.state.requests + lag,
        }
        self.state.fills.append(fill)
        return fill

    def _tick(self) -> None:
        """One more API request: release owed fills that are due."""
        self.state.requests += 1
        now = time.time()
        due = [
            p
            for p in self.state.pending
            if (p.at is not None and now >= p.at)
            or (p.at_request is not None and self.state.requests >= p.at_request)
        ]
        for p in due:
            self.state.pending.remove(p)
            order = self.state.orders.get(p.key)
            if order is not None and order["_open"]:
                self._fill(p.key, p.size, lag=self.bad_day.history_lag_requests)

    def _draw_fault(self, endpoint: str) -> str | None:
        queue = self.state.faults.get(endpoint)
        if queue:
            return queue.popleft()
        bd = self.bad_day
        if bd.fault_rate <= 0 or endpoint not in PRIVATE:
            return None
        if bd.fault_endpoints and endpoint not in bd.fault_endpoints:
            return None
        if self._rng.random() >= bd.fault_rate:
            return None
        kinds = [k for k in bd.fault_kinds if k != "insufficient_funds" or endpoint == "sendorder"]
        return self._rng.choice(kinds) if kinds else None

    # ------------------------------------------------------------------ behaviour

    def route(self, method: str, endpoint: str, q: dict[str, str]) -> tuple[int, dict[str, Any], str | None]:
        """Answer one API call: (HTTP status, payload, what to do after: None/'sleep'/'drop'/'500')."""
        with self.lock:
            self.state.calls.append(endpoint)
            self._tick()
            fault = self._draw_fault(endpoint)
            if fault is not None:
                self.state.faults_served[fault] += 1
            if fault == "429":
                return 429, {"result": "error", "error": "Too Many Requests"}, None
            if fault == "rate_limit":
                return (
                    200,
                    {"result": "error", "error": "apiLimitExceeded", "serverTime": _iso(time.time())},
                    None,
                )
            if fault == "unavailable":
                return 503, {"result": "error", "error": "Unavailable"}, None
            if fault == "500":
                return 500, {"result": "error", "error": "Server Error"}, None
            if fault == "lost_before":
                return 0, {}, "drop"
            if fault == "garbage":
                return 200, {}, "garbage"
            if fault == "malformed":
                return 200, {"result": "success", "serverTime": _iso(time.time())}, None
            status, payload = self._answer(endpoint, q, fault)
        after = {"timeout": "sleep", "lost": "drop", "500_after": "500"}.get(fault or "")
        return status, payload, after

    def _answer(self, endpoint: str, q: dict[str, str], fault: str | None) -> tuple[int, dict[str, Any]]:
        now = time.time()
        if endpoint == "instruments":
            return 200, {"result": "success", "instruments": [INSTRUMENT]}
        if endpoint in ("tickers/PF_XBTUSD", "tickers"):
            t = {
                "tag": "perpetual",
                "pair": "XBT:USD",
                "symbol": "PF_XBTUSD",
                "markPrice": self.state.price,
                "bid": self.state.price - 0.5,
                "ask": self.state.price + 0.5,
                "last": self.state.price,
                "open24h": self.state.price,
                "vol24h": 1.0,
                "lastTime": _iso(now),
                "suspended": False,
                **self._recorded_ticker(),
                **self.state.ticker_override,
            }
            return 200, (
                {"result": "success", "ticker": t, **self._server_time()}
                if endpoint != "tickers"
                else {"result": "success", "tickers": [t], **self._server_time()}
            )
        if endpoint == "historicalfundingrates":
            return self._funding_history(q.get("symbol", ""))
        if endpoint == "sendorder":
            return self._send(q, fault)
        if endpoint == "orders/status":
            return 200, {"result": "success", "orders": self._status(q.get("cliOrdIds", ""))}
        if endpoint == "fills":
            visible = [
                _public(f) for f in self.state.fills if f.get("_visible_at_request", 0) <= self.state.requests
            ]
            return 200, {"result": "success", "fills": visible[-100:]}
        if endpoint == "openpositions":
            pos = self.state.position
            op = (
                []
                if abs(pos) < 1e-12
                else [
                    {
                        "side": "long" if pos > 0 else "short",
                        "symbol": "PF_XBTUSD",
                        "price": self.state.price,
                        "fillTime": _iso(now),
                        "size": abs(pos),
                        "unrealizedFunding": 0.0,
                    }
                ]
            )
            return 200, {"result": "success", "openPositions": op}
        if endpoint == "openorders":
            return 200, {"result": "success", "openOrders": [self._open_view(o) for o in self._open_orders()]}
        if endpoint == "cancelorder":
            return 200, self._cancel(q.get("cliOrdId") or q.get("order_id") or "")
        if endpoint == "accounts":
            return 200, {
                "result": "success",
                "accounts": {
                    "flex": {"type": "multiCollateralMarginAccount", "currencies": {}, "balanceValue": 10_000}
                },
            }
        return 404, {"result": "error", "error": "notFound"}

    def _recorded_ticker(self) -> dict[str, Any]:
        """``openInterest`` as of the replay clock (nothing without ``serve_recorded``)."""
        as_of = self.state.as_of
        if as_of is None:
            return {}
        known = [value for published, value in self.state.open_interest if published <= as_of]
        return {"openInterest": float(known[-1])} if known else {}

    def _server_time(self) -> dict[str, Any]:
        """The answer's ``serverTime`` on the replay clock (nothing without ``serve_recorded``)."""
        as_of = self.state.as_of
        return {} if as_of is None else {"serverTime": _iso(as_of.timestamp())}

    def _funding_history(self, symbol: str) -> tuple[int, dict[str, Any]]:
        """Kraken's historicalfundingrates: every recorded rate up to the replay clock, oldest first."""
        if symbol != "PF_XBTUSD":
            return 400, {"result": "error", "error": "invalidArgument", "serverTime": _iso(time.time())}
        as_of = self.state.as_of
        rates = (
            []
            if as_of is None
            else [
                {"timestamp": _iso(ts.timestamp()), "relativeFundingRate": float(rate)}
                for ts, rate in self.state.funding
                if ts <= as_of
            ]
        )
        return 200, {"result": "success", "rates": rates, **self._server_time()}

    def charts(self, path: str, q: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """Candles with open time in [from, to] (seconds), oldest first, at most CHART_LIMIT."""
        self.state.calls.append("charts")
        parts = path.split("/")
        if len(parts) != 3 or parts[0] not in ("trade", "mark", "spot") or parts[1] != "PF_XBTUSD":
            return 400, {"result": "error", "error": "invalidArgument"}
        if parts[2] != "1h":
            return 200, {"candles": [], "more_candles": False}
        lo = int(q.get("from", "0")) * 1000
        hi = int(q.get("to", str(int(time.time())))) * 1000
        rows = [c for c in self.state.candles if lo <= c[0] <= hi]
        page = rows[:CHART_LIMIT]
        return 200, {
            "candles": [
                {
                    "time": int(c[0]),
                    "open": str(c[1]),
                    "high": str(c[2]),
                    "low": str(c[3]),
                    "close": str(c[4]),
                    "volume": c[5],
                }
                for c in page
            ],
            "more_candles": len(rows) > len(page),
        }

    def _send(self, q: dict[str, str], fault: str | None) -> tuple[int, dict[str, Any]]:
        now = time.time()
        cid = q.get("cliOrdId")
        if fault == "insufficient_funds":
            return 200, {
                "result": "success",
                "sendStatus": {
                    "status": "insufficientAvailableFunds",
                    "receivedTime": _iso(now),
                    "orderEvents": [],
                },
            }
        if cid and cid in self.state.orders:
            self.state.duplicate_sends += 1
            return 200, {
                "result": "success",
                "sendStatus": {
                    "status": "clientOrderIdAlreadyExist",
                    "receivedTime": _iso(now),
                    "orderEvents": [],
                },
            }
        side, size = q["side"], float(q["size"])
        key = self._new_order(cid, side, size, now)
        order = self.state.orders[key]
        self.state.sendorder_executions += 1
        self.state.executions_by_cid[cid or key] += 1
        bd = self.bad_day
        if bd.partial_fraction < 1.0:
            now_part = round(size * bd.partial_fraction, 4)  # the venue's lot precision
        elif bd.delays_fills:
            now_part = 0.0
        else:
            now_part = size
        prior = _public(order) | {"filled": 0}
        events: list[dict[str, Any]] = []
        if now_part > 0:
            fill = self._fill(key, now_part, lag=bd.history_lag_requests)
            events.append(
                {
                    "type": "EXECUTION",
                    "executionId": fill["fill_id"],
                    "price": self.state.price,
                    "amount": now_part,
                    "orderPriorEdit": None,
                    "orderPriorExecution": prior,
                    "takerReducedQuantity": None,
                }
            )
        rest = round(size - now_part, 8)
        if rest > _EPS:
            if bd.delays_fills:
                self.state.pending.append(
                    Pending(
                        key,
                        rest,
                        now + bd.fill_delay_s if bd.fill_delay_s > 0 else None,
                        self.state.requests + bd.fill_delay_requests if bd.fill_delay_requests > 0 else None,
                    )
                )
            if not events:
                events.append({"type": "PLACE", "order": _public(order), "reducedQuantity": None})
        return 200, {
            "result": "success",
            "serverTime": _iso(now),
            "sendStatus": {
                "status": "placed",
                "order_id": order["orderId"],
                "receivedTime": _iso(now),
                "orderEvents": events,
            },
        }

    def _open_orders(self) -> list[dict[str, Any]]:
        return [o for o in self.state.orders.values() if o["_open"]]

    @staticmethod
    def _open_view(o: dict[str, Any]) -> dict[str, Any]:
        """An order as ``openorders`` shows it (Kraken's field names, not ``orders/status``')."""
        filled = float(o["filled"])
        return {
            "order_id": o["orderId"],
            "cliOrdId": o["cliOrdId"],
            "symbol": o["symbol"],
            "side": o["side"],
            "orderType": "lmt",
            "limitPrice": o["limitPrice"],
            "unfilledSize": round(float(o["quantity"]) - filled, 8),
            "filledSize": filled,
            "receivedTime": o["timestamp"],
            "lastUpdateTime": o["lastUpdateTimestamp"],
            "status": "partiallyFilled" if filled > 0 else "untouched",
            "reduceOnly": False,
        }

    def _cancel(self, ref: str) -> dict[str, Any]:
        now = time.time()
        order = self.state.orders.get(ref) or next(
            (o for o in self.state.orders.values() if o["orderId"] == ref), None
        )
        if order is None:
            return {"result": "success", "cancelStatus": {"status": "notFound", "receivedTime": _iso(now)}}
        if not order["_open"]:
            status = "notFound" if order["_cancelled"] else "filled"
            return {"result": "success", "cancelStatus": {"status": status, "receivedTime": _iso(now)}}
        order["_open"], order["_cancelled"], order["_closed_at"] = False, True, now
        order["lastUpdateTimestamp"] = _iso(now)
        self.state.pending = [p for p in self.state.pending if self.state.orders.get(p.key) is not order]
        return {
            "result": "success",
            "cancelStatus": {
                "status": "cancelled",
                "order_id": order["orderId"],
                "receivedTime": _iso(now),
                "orderEvents": [{"uid": order["orderId"], "order": _public(order), "type": "CANCEL"}],
            },
        }

    def _status(self, cids: str) -> list[dict[str, Any]]:
        out = []
        for cid in [c for c in cids.split(",") if c]:
            order = self.state.orders.get(cid)
            if order is None:
                continue
            closed_at = order["_closed_at"]
            if closed_at is not None and time.time() - closed_at > self.status_ttl_s:
                continue  # closed long enough ago that Kraken no longer shows it
            filled = float(order["filled"])
            if order["_open"]:
                status = "PARTIALLY_FILLED" if filled > 0 else "ENTERED_BOOK"
            else:
                status = "CANCELLED" if order["_cancelled"] else "FULLY_EXECUTED"
            inner = _public(order) | {"type": "ORDER"}
            out.append({"order": inner, "status": status, "updateReason": None, "error": None})
        return out

    # ------------------------------------------------------------------ HTTP

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        venue = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: Any) -> None:  # never log requests: headers carry credentials
                return None

            def _serve(self, method: str) -> None:
                url = urlparse(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                if url.path.startswith(CONTROL):
                    try:
                        doc = json.loads(body) if body else {}
                    except ValueError:
                        return self._reply(400, {"error": "body must be JSON"})
                    return self._reply(*venue.control(method, url.path[len(CONTROL) :], doc))
                if url.path.startswith(CHARTS):
                    return self._reply(
                        *venue.charts(
                            url.path[len(CHARTS) :], {k: v[0] for k, v in parse_qs(url.query).items()}
                        )
                    )
                v4 = url.path[len(API_V4) :] if url.path.startswith(API_V4) else None
                if v4 is not None and v4 not in V4_ENDPOINTS:
                    return self._reply(404, {"result": "error", "error": "notFound"})
                if v4 is None and not url.path.startswith(API):
                    return self._reply(404, {"result": "error", "error": "notFound"})
                endpoint = url.path[len(API) :] if v4 is None else v4
                q = {k: v[0] for k, v in parse_qs(url.query or body).items()}
                if endpoint in PRIVATE:
                    key, sig = self.headers.get("APIKey"), self.headers.get("Authent")
                    if not key or not sig or key != venue.api_key:
                        venue.state.auth_failures += 1
                        return self._reply(401, {"result": "error", "error": "authenticationError"})
                status, payload, after = venue.route(method, endpoint, q)
                if after == "drop":
                    self.close_connection = True  # no answer at all: the client sees a reset
                    return None
                if after == "sleep":
                    time.sleep(venue.delay_s)  # done, but the client gives up before hearing so
                if after == "500":
                    status, payload = 500, {"result": "error", "error": "Server Error"}
                if after == "garbage":
                    return self._reply_raw(status, GARBAGE, "text/html")
                self._reply(status, payload)

            def _reply(self, status: int, payload: dict[str, Any]) -> None:
                self._reply_raw(status, json.dumps(payload).encode(), "application/json")

            def _reply_raw(self, status: int, data: bytes, content_type: str) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and left: fine

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

        return Handler


def main(argv: list[str] | None = None) -> None:
    """Serve the stand-in in its own process until SIGTERM/SIGINT (the chaos suite's venue)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--delay-s", type=float, default=2.0, help="how late a 'timeout' fault answers")
    p.add_argument("--status-ttl-s", type=float, default=0.0)
    p.add_argument("--bad-day", default="{}", help="BadDay fields as a JSON object")
    p.add_argument("--api-key-env", default="BTCMETA_STANDIN_API_KEY", help="env var holding the API key")
    args = p.parse_args(argv)
    key = os.environ.get(args.api_key_env)
    if not key:
        raise SystemExit(f"set {args.api_key_env} to the API key the clients will use")
    venue = KrakenFuturesStandIn(
        key,
        delay_s=args.delay_s,
        status_ttl_s=args.status_ttl_s,
        bad_day=BadDay.from_json(json.loads(args.bad_day)),
        port=args.port,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with venue:
        print(json.dumps({"base_url": venue.base_url}), flush=True)
        stop.wait()


if __name__ == "__main__":
    main()
