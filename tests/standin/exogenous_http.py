"""A local stand-in of the live exogenous sources, serving the real shared files in the APIs' shapes.

Stdlib only (http.server in a thread on 127.0.0.1:0, or its own process: ``python -m
tests.standin.exogenous_http --port 8099``). Endpoints:

* ``GET /fng/?limit=N&format=json``: alternative.me's Crypto Fear & Greed answer, built from
  ``fear_greed_daily.csv``: ``{"name", "data": [{"value": "40", "value_classification": "Fear",
  "timestamp": "<epoch s of the UTC day>", ...}], "metadata": {"error": null}}``, newest first, the
  last N days up to ``as_of`` (``limit=0``: all, as the real API).
* ``GET /rss``: an RSS 2.0 feed of the ``news_headlines_cryptonews.csv`` items published in the
  ``news_window`` before ``as_of`` (title, link, description, RFC 822 pubDate), newest first.
* ``GET /sentiment?days=N``: ``{"data": [{"date": "YYYY-MM-DD", <social_sentiment columns>}]}`` from
  ``social_sentiment_daily.csv`` (JSON numbers, null where the file cell is empty), the last N
  days up to ``sentiment_as_of``.
* ``GET /fapi/v1/fundingRate?symbol=BTCUSDT&startTime=MS&limit=N``: Binance USDT-M's funding-rate
  history from ``funding_binance_btcusdt_8h.csv``: ``[{"symbol", "fundingTime": <epoch ms>,
  "fundingRate": "<text>", "markPrice": ""}]``, oldest first, settlements in ``[startTime, as_of]``,
  at most ``limit`` (default 100, max 1000, as the real API). Every third ``fundingTime`` carries
  the few milliseconds of jitter the real API shows (the shared file truncated them to the second).

Bad days: ``fail_next(path, kind, times=1)`` makes the next answers on ``path`` fail with ``kind``:
``"500"`` (HTTP 500), ``"malformed"`` (a JSON/XML body of the wrong shape), ``"garbage"`` (not
JSON/XML at all), ``"html"`` (an HTML error page with status 200), ``"bad_rows"`` (the right shape
with one unreadable row). ``requests`` counts the calls per path.
"""

from __future__ import annotations

import argparse
import json
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse
from xml.sax.saxutils import escape

import pandas as pd

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "exogenous"
FAULTS = ("500", "malformed", "garbage", "html", "bad_rows")


def _read(folder: Path, name: str) -> pd.DataFrame:
    frame = pd.read_csv(folder / name, dtype=str, keep_default_na=False)
    frame["when"] = pd.to_datetime(frame["ts"], utc=True)
    return frame


class ExogenousStandIn:
    """The three sources over one local HTTP server; ``as_of`` is the stand-in's "now"."""

    def __init__(
        self,
        *,
        as_of: datetime | None = None,
        news_window: timedelta = timedelta(days=2),
        sentiment_as_of: datetime | None = None,
        port: int = 0,
        data: Path = DATA,
    ) -> None:
        self.fear_greed = _read(data, "fear_greed_daily.csv")
        self.news = _read(data, "news_headlines_cryptonews.csv")
        self.sentiment = _read(data, "social_sentiment_daily.csv")
        self.binance_funding = _read(data, "funding_binance_btcusdt_8h.csv")
        self.as_of = as_of or datetime(2022, 3, 1, tzinfo=UTC)
        self.news_window = news_window
        #: The sentiment file stops in May 2021, before the news starts: it has a "now" of its own.
        self.sentiment_as_of = sentiment_as_of or datetime(2021, 4, 1, tzinfo=UTC)
        self.requests: Counter[str] = Counter()
        self._faults: dict[str, list[str]] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> ExogenousStandIn:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def fail_next(self, path: str, kind: str, times: int = 1) -> None:
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; known: {FAULTS}")
        with self._lock:
            self._faults.setdefault(path, []).extend([kind] * times)

    def _fault(self, path: str) -> str | None:
        with self._lock:
            queue = self._faults.get(path)
            return queue.pop(0) if queue else None

    # -------------------------------------------------------------------------------- answers

    def fng_rows(self, limit: int) -> pd.DataFrame:
        """The rows ``/fng/`` serves: the last ``limit`` days up to ``as_of`` (0: all), newest first."""
        rows = self.fear_greed[self.fear_greed["when"] <= pd.Timestamp(self.as_of)]
        rows = rows if limit == 0 else rows.tail(limit)
        return rows.iloc[::-1]

    def fng(self, q: dict[str, str], fault: str | None) -> tuple[int, str, bytes]:
        if fault == "malformed":
            return 200, "application/json", b'{"name": "Fear and Greed Index", "data": "oops"}'
        rows = self.fng_rows(int(q.get("limit", "1")))
        data = [
            {
                "value": r.value,
                "value_classification": r.classification,
                "timestamp": str(int(r.when.timestamp())),
            }
            for r in rows.itertuples()
        ]
        if data:
            data[0]["time_until_update"] = "3600"
        if fault == "bad_rows" and data:
            data[0]["value"] = "n/a"
        doc = {"name": "Fear and Greed Index", "data": data, "metadata": {"error": None}}
        return 200, "application/json", json.dumps(doc).encode()

    def news_rows(self) -> pd.DataFrame:
        """The items ``/rss`` serves: published in ``(as_of - news_window, as_of]``, newest first."""
        end = pd.Timestamp(self.as_of)
        rows = self.news[(self.news["when"] > end - self.news_window) & (self.news["when"] <= end)]
        return rows.iloc[::-1]

    def rss(self, fault: str | None) -> tuple[int, str, bytes]:
        if fault == "malformed":
            return 200, "application/rss+xml", b"<rss version='2.0'><channel><item><title>broken"
        items = []
        for r in self.news_rows().itertuples():
            items.append(
                "<item>"
                f"<title>{escape(r.title)}</title><link>{escape(r.url)}</link>"
                f"<description>{escape(r.text)}</description>"
                f"<pubDate>{format_datetime(r.when.to_pydatetime(), usegmt=True)}</pubDate>"
                f"<category>{escape(r.subject)}</category>"
                "</item>"
            )
        if fault == "bad_rows" and items:
            items[0] = "<item><title>no date on this one</title><link>https://x</link></item>"
        body = (
            "<?xml version='1.0' encoding='UTF-8'?><rss version='2.0'><channel>"
            "<title>Crypto news (stand-in)</title><link>http://127.0.0.1/</link>"
            "<description>shared/data/exogenous/news_headlines_cryptonews.csv</description>"
            + "".join(items)
            + "</channel></rss>"
        )
        return 200, "application/rss+xml; charset=utf-8", body.encode()

    def sentiment_rows(self, days: int) -> pd.DataFrame:
        return self.sentiment[self.sentiment["when"] <= pd.Timestamp(self.sentiment_as_of)].tail(days)

    def sentiment_doc(self, q: dict[str, str], fault: str | None) -> tuple[int, str, bytes]:
        if fault == "malformed":
            return 200, "application/json", b'[{"date": "2021-01-01"}]'
        columns = [c for c in self.sentiment.columns if c not in ("ts", "when")]
        data: list[dict[str, Any]] = []
        for r in self.sentiment_rows(int(q.get("days", "7"))).to_dict("records"):
            item: dict[str, Any] = {"date": r["ts"][:10]}
            for c in columns:
                item[c] = float(r[c]) if r[c] != "" else None
            data.append(item)
        if fault == "bad_rows" and data:
            data[-1]["reddit_comments_sentiment"] = "high"
        return 200, "application/json", json.dumps({"data": data}).encode()

    def binance_funding_doc(self, q: dict[str, str], fault: str | None) -> tuple[int, str, bytes]:
        if fault == "malformed":
            return 200, "application/json", b'{"code": -1121, "msg": "Invalid symbol."}'
        if q.get("symbol") != "BTCUSDT":
            return 400, "application/json", b'{"code": -1121, "msg": "Invalid symbol."}'
        limit = min(int(q.get("limit", "100")), 1000)
        start = pd.Timestamp(int(q.get("startTime", "0")), unit="ms", tz="UTC")
        frame = self.binance_funding
        rows = frame[(frame["when"] >= start) & (frame["when"] <= pd.Timestamp(self.as_of))].head(limit)
        data: list[dict[str, Any]] = []
        for k, r in enumerate(rows.itertuples()):
            ms = int(r.when.timestamp()) * 1000 + (k % 3 == 2) * (1 + k % 7)
            item = {"symbol": "BTCUSDT", "fundingTime": ms, "fundingRate": r.funding_rate, "markPrice": ""}
            data.append(item)
        if fault == "bad_rows" and data:
            data[0]["fundingRate"] = "n/a"
        return 200, "application/json", json.dumps(data).encode()

    def route(self, path: str, q: dict[str, str]) -> tuple[int, str, bytes]:
        self.requests[path] += 1
        fault = self._fault(path)
        if fault == "500":
            return 500, "text/plain", b"Internal Server Error"
        if fault == "garbage":
            return 200, "application/json", b"\x00\x01 this is not json {"
        if fault == "html":
            return 200, "text/html", b"<html><body><h1>Service unavailable</h1></body></html>"
        if path in ("/fng/", "/fng"):
            return self.fng(q, fault)
        if path == "/rss":
            return self.rss(fault)
        if path == "/sentiment":
            return self.sentiment_doc(q, fault)
        if path == "/fapi/v1/fundingRate":
            return self.binance_funding_doc(q, fault)
        return 404, "text/plain", b"not found"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: Any) -> None:
                pass

            def do_GET(self) -> None:
                url = urlparse(self.path)
                q = {k: v[-1] for k, v in parse_qs(url.query).items()}
                status, ctype, body = standin.route(url.path, q)
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--as-of", default="2022-03-01T00:00:00+00:00")
    args = parser.parse_args()
    with ExogenousStandIn(as_of=datetime.fromisoformat(args.as_of), port=args.port) as standin:
        paths = "/fng/, /rss, /sentiment, /fapi/v1/fundingRate"
        print(f"exogenous stand-in on {standin.base_url} ({paths})", flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()
