"""A local stand-in of the Kraken Futures REST endpoints CCXT's ``krakenfutures`` calls.

Stdlib only (http.server in a thread on 127.0.0.1:0). It keeps orders, fills and the position,
fills market orders at once at ``price``, forgets an order's status ``status_ttl_s`` after it
filled (as Kraken does; the fills stay), and can be told to fail the next call(s) of an endpoint:
HTTP 429, Kraken's ``apiLimitExceeded`` payload, insufficient funds, or a delay longer than the
client's timeout (the order is executed anyway: the ambiguous case a retry must survive).

Private calls must carry ``APIKey`` and ``Authent`` headers; their values are checked for
presence and the key for equality, and are never logged or stored.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

API = "/derivatives/api/v3/"
CHARTS = "/api/charts/v1/"  # CCXT fetch_ohlcv: GET {price_type}/{symbol}/{interval}?from=s&to=s
CHART_LIMIT = 2000
PRIVATE = {"sendorder", "cancelorder", "openorders", "openpositions", "fills", "accounts", "orders/status"}
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


@dataclass
class VenueState:
    price: float = 20_000.0
    position: float = 0.0
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)  # by cliOrdId
    fills: list[dict[str, Any]] = field(default_factory=list)
    faults: dict[str, deque[str]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    sendorder_executions: int = 0
    auth_failures: int = 0
    #: Trade-price candles served by the charts API: [open time ms, open, high, low, close, volume].
    candles: list[list[float]] = field(default_factory=list)


class KrakenFuturesStandIn:
    """Start with ``with KrakenFuturesStandIn(api_key) as venue: venue.base_url ...``."""

    def __init__(self, api_key: str, *, delay_s: float = 2.0, status_ttl_s: float = 0.0) -> None:
        self.api_key = api_key
        self.delay_s = delay_s
        self.status_ttl_s = status_ttl_s
        self.state = VenueState()
        self.lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> KrakenFuturesStandIn:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def fail_next(self, endpoint: str, *kinds: str) -> None:
        """Queue faults: '429', 'rate_limit', 'insufficient_funds', 'timeout', 'unavailable'."""
        with self.lock:
            self.state.faults.setdefault(endpoint, deque()).extend(kinds)

    # ------------------------------------------------------------------ behaviour

    def _fault(self, endpoint: str) -> str | None:
        with self.lock:
            queue = self.state.faults.get(endpoint)
            return queue.popleft() if queue else None

    def route(self, method: str, endpoint: str, q: dict[str, str]) -> tuple[int, dict[str, Any]]:
        self.state.calls.append(endpoint)
        fault = self._fault(endpoint)
        if fault == "429":
            return 429, {"result": "error", "error": "Too Many Requests"}
        if fault == "rate_limit":
            return 200, {"result": "error", "error": "apiLimitExceeded", "serverTime": _iso(time.time())}
        if fault == "unavailable":
            return 503, {"result": "error", "error": "Unavailable"}
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
                "lastTime": _iso(time.time()),
                "suspended": False,
            }
            return 200, (
                {"result": "success", "ticker": t}
                if endpoint != "tickers"
                else {"result": "success", "tickers": [t]}
            )
        if endpoint == "sendorder":
            return self._send(q, fault)
        if endpoint == "orders/status":
            return 200, {"result": "success", "orders": self._status(q.get("cliOrdIds", ""))}
        if endpoint == "fills":
            return 200, {"result": "success", "fills": list(self.state.fills[-100:])}
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
                        "fillTime": _iso(time.time()),
                        "size": abs(pos),
                        "unrealizedFunding": 0.0,
                    }
                ]
            )
            return 200, {"result": "success", "openPositions": op}
        if endpoint == "openorders":
            return 200, {"result": "success", "openOrders": []}
        if endpoint == "cancelorder":
            return 200, {
                "result": "success",
                "cancelStatus": {"status": "notFound", "receivedTime": _iso(time.time())},
            }
        if endpoint == "accounts":
            return 200, {
                "result": "success",
                "accounts": {
                    "flex": {"type": "multiCollateralMarginAccount", "currencies": {}, "balanceValue": 10_000}
                },
            }
        return 404, {"result": "error", "error": "notFound"}

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
                {"time": int(c[0]), "open": str(c[1]), "high": str(c[2]), "low": str(c[3]),
                 "close": str(c[4]), "volume": c[5]}
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
            return 200, {
                "result": "success",
                "sendStatus": {
                    "status": "clientOrderIdAlreadyExist",
                    "receivedTime": _iso(now),
                    "orderEvents": [],
                },
            }
        side, size = q["side"], float(q["size"])
        oid = str(uuid.uuid4())
        with self.lock:
            self.state.sendorder_executions += 1
            self.state.position = round(self.state.position + (size if side == "buy" else -size), 8)
            order = {
                "orderId": oid,
                "cliOrdId": cid,
                "type": "ioc",
                "symbol": "PF_XBTUSD",
                "side": side,
                "quantity": size,
                "filled": size,
                "limitPrice": self.state.price,
                "reduceOnly": False,
                "timestamp": _iso(now),
                "lastUpdateTimestamp": _iso(now),
                "_filled_at": now,
            }
            self.state.orders[cid or oid] = order
            self.state.fills.append(
                {
                    "fillTime": _iso(now),
                    "order_id": oid,
                    "fill_id": str(uuid.uuid4()),
                    "cliOrdId": cid,
                    "symbol": "PF_XBTUSD",
                    "side": side,
                    "size": size,
                    "price": self.state.price,
                    "fillType": "taker",
                }
            )
        if fault == "timeout":
            time.sleep(self.delay_s)  # executed, but the client gives up before hearing so
        prior = {k: v for k, v in order.items() if not k.startswith("_")} | {"filled": 0}
        return 200, {
            "result": "success",
            "serverTime": _iso(now),
            "sendStatus": {
                "status": "placed",
                "order_id": oid,
                "receivedTime": _iso(now),
                "orderEvents": [
                    {
                        "type": "EXECUTION",
                        "executionId": str(uuid.uuid4()),
                        "price": self.state.price,
                        "amount": size,
                        "orderPriorEdit": None,
                        "orderPriorExecution": prior,
                        "takerReducedQuantity": None,
                    }
                ],
            },
        }

    def _status(self, cid: str) -> list[dict[str, Any]]:
        order = self.state.orders.get(cid)
        if order is None or time.time() - order["_filled_at"] > self.status_ttl_s:
            return []  # unknown, or filled long enough ago that Kraken no longer shows it
        inner = {k: v for k, v in order.items() if not k.startswith("_")} | {"type": "ORDER"}
        return [{"order": inner, "status": "FULLY_EXECUTED", "updateReason": None, "error": None}]

    # ------------------------------------------------------------------ HTTP

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        venue = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: Any) -> None:  # never log requests: headers carry credentials
                return None

            def _serve(self, method: str) -> None:
                url = urlparse(self.path)
                if url.path.startswith(CHARTS):
                    return self._reply(*venue.charts(url.path[len(CHARTS) :], {
                        k: v[0] for k, v in parse_qs(url.query).items()}))
                if not url.path.startswith(API):
                    return self._reply(404, {"result": "error", "error": "notFound"})
                endpoint = url.path[len(API) :]
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                q = {k: v[0] for k, v in parse_qs(url.query or body).items()}
                if endpoint in PRIVATE:
                    key, sig = self.headers.get("APIKey"), self.headers.get("Authent")
                    if not key or not sig or key != venue.api_key:
                        venue.state.auth_failures += 1
                        return self._reply(401, {"result": "error", "error": "authenticationError"})
                status, payload = venue.route(method, endpoint, q)
                self._reply(status, payload)

            def _reply(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
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
