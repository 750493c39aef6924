"""Candle history from an exchange through CCXT: the one pager the live sync and the download use.

Why one place: the tick emitter's sync (``producers.sources.CcxtSource``) and training's
``download`` command each had their own loop over ``fetch_ohlcv`` and they had drifted: the sync
retried rate limits and network errors but stopped at the first empty page, the download stepped
over empty pages but gave up on the first 429. Both now page through :class:`OhlcvHistory`:

* CCXT's own throttle (``enableRateLimit``) spaces requests; what still goes wrong (429s, timeouts,
  resets) is retried with exponential backoff (tenacity), and a persistent failure surfaces after
  ``attempts`` tries instead of hanging a tick or a download forever;
* an empty page, or one with nothing newer than the cursor, is a hole in the venue's history
  (before the listing, maintenance, a venue that ignores ``since``), not its end: the cursor steps
  over one page and goes on until ``until``. In the live sync's usual case (the last page is empty
  because nothing newer exists yet) that costs no extra request: the step lands past ``until``;
* rows come back verbatim, even out of range, duplicated or with missing values: the sync's
  validation judges and records them; :func:`download_csv` keeps the rows before ``until`` and the
  first of each timestamp, exactly as the download always did.

``ccxt`` is imported when an exchange is built or paged, not with this module: training's CLI
imports it for ``--help`` and tests without the exchange path must not pay for ccxt.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from common.events import to_epoch_ms
from common.logging import get_logger
from common.timeframes import parse_timeframe

log = get_logger(__name__)

MINUTE_MS = 60_000
OHLCV = ["open", "high", "low", "close", "volume"]

__all__ = ["OhlcvExchange", "OhlcvHistory", "download_csv", "make_exchange"]


class OhlcvExchange(Protocol):
    """The part of a ccxt exchange used here (so tests can hand in a local stand-in)."""

    def fetch_ohlcv(
        self, symbol: str, timeframe: str = "1m", since: int | None = None, limit: int | None = None
    ) -> list[list[Any]]: ...


def make_exchange(ccxt_id: str = "krakenfutures", *, timeout_ms: int = 10_000, **options: Any) -> Any:
    """A real ccxt exchange with its rate limiter on (public endpoints: no keys needed).

    ``options`` go to the CCXT constructor (e.g. ``urls={"api": ...}`` to reach a local stand-in).
    An unknown ``ccxt_id`` raises ``AttributeError`` (ccxt has no such class).
    """
    import ccxt

    return getattr(ccxt, ccxt_id)({"enableRateLimit": True, "timeout": timeout_ms, **options})


class _StdlibLogAdapter:
    """tenacity's before_sleep_log wants a stdlib-style ``log(level, msg)``; route it to structlog."""

    def log(self, level: int, msg: str, *args: Any, **kwargs: Any) -> None:
        log.warning("exchange_retry", detail=msg % args if args else msg)


class OhlcvHistory:
    """Paginated ``fetch_ohlcv`` with backoff on rate limits and network errors (see the module doc)."""

    def __init__(
        self,
        exchange: OhlcvExchange,
        *,
        page_limit: int = 1000,
        attempts: int = 6,
        base_wait_s: float = 0.5,
        max_wait_s: float = 30.0,
    ) -> None:
        import ccxt
        import tenacity as t

        self.exchange = exchange
        self.page_limit = page_limit
        self._fetch_page = t.retry(
            retry=t.retry_if_exception_type((ccxt.RateLimitExceeded, ccxt.NetworkError)),
            wait=t.wait_exponential(multiplier=base_wait_s, max=max_wait_s),
            stop=t.stop_after_attempt(attempts),
            before_sleep=t.before_sleep_log(_StdlibLogAdapter(), 30),
            reraise=True,
        )(self._fetch_page_once)

    def _fetch_page_once(self, symbol: str, timeframe: str, since_ms: int) -> list[list[Any]]:
        return self.exchange.fetch_ohlcv(symbol, timeframe, since=since_ms, limit=self.page_limit)

    def rows(
        self, symbol: str, timeframe: str, since_ms: int, until_ms: int, *, max_rows: int | None = None
    ) -> list[list[Any]]:
        """Every row the venue returns paging forward from ``since_ms`` until a page reaches ``until_ms``.

        With ``max_rows`` paging stops once that many rows are in (the rows are not cut here).
        """
        tf_ms = parse_timeframe(timeframe) * MINUTE_MS
        out: list[list[Any]] = []
        cursor = since_ms
        while cursor < until_ms and (max_rows is None or len(out) < max_rows):
            page = self._fetch_page(symbol, timeframe, cursor)
            out.extend(page)
            newest = max((int(row[0]) for row in page), default=cursor - 1)
            if newest < cursor:  # a hole (or a venue ignoring since): step over it, never loop on it
                cursor += self.page_limit * tf_ms
            else:
                cursor = newest + tf_ms
        return out


def download_csv(
    out: str | Path,
    *,
    exchange: str = "krakenfutures",
    symbol: str = "BTC/USD:USD",
    timeframe: str = "1h",
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 1000,
    client_options: dict[str, Any] | None = None,
) -> Path:
    """Download candles with CCXT and write them as the ``date,open,...,volume`` CSV training reads.

    Why a file: no exchange is reachable from the dev or CI machines and results must be
    reproducible from a file kept next to them, so a download is written once and every later step
    reads the CSV (through ``common.dataset.read_ohlcv_csv``, which refuses unusable candles).
    ``since`` defaults to 2018-01-01, ``until`` to now; rows at or after ``until`` are dropped, and
    of rows sharing a timestamp the first one is kept.
    """
    import pandas as pd

    client = make_exchange(exchange, **(client_options or {}))
    start = to_epoch_ms(since or datetime(2018, 1, 1, tzinfo=UTC))
    stop = to_epoch_ms(until or datetime.now(UTC))
    rows = OhlcvHistory(client, page_limit=limit).rows(symbol, timeframe, start, stop)
    rows = [r for r in rows if r[0] < stop]
    frame = pd.DataFrame(rows, columns=["ts", *OHLCV]).drop_duplicates("ts")
    frame["date"] = pd.to_datetime(frame.pop("ts"), unit="ms", utc=True)
    path = Path(out)
    frame[["date", *OHLCV]].to_csv(path, index=False)
    return path
