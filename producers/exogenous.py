"""Exogenous series into Postgres: the shared files (import) and the live sources (poll).

Both paths validate rows with the loader's rules (``common.exogenous.files.parse_rows``) and store
through ``common.exogenous.store``, so a value is judged and stored alike wherever it came from,
and running either twice stores exactly what running it once does.

Live sources, each behind a URL in ``Settings.exogenous``:

* Fear & Greed (alternative.me ``/fng/?limit=N&format=json``) -> series ``fear_greed``;
* a news RSS/Atom feed (parsed with feedparser) -> ``news_headlines`` (no upstream scores);
* a mentions/sentiment JSON source (``{"data": [{"date": "YYYY-MM-DD", <social_sentiment
  columns>...}]}``) -> ``social_sentiment``;
* Kraken Futures through CCXT's ``krakenfutures`` (public endpoints, no keys), at
  ``kraken_futures_url``: the funding-rate history (``fetch_funding_rate_history``, Kraken's
  ``/derivatives/api/v4/historicalfundingrates``) -> ``kraken_funding``, and the open interest the
  ticker shows (``fetch_ticker``, ``/derivatives/api/v3/tickers/<id>``; krakenfutures has no
  ``fetch_open_interest``) -> ``kraken_open_interest``, one snapshot per poll stamped with the
  answer's ``serverTime``. Both are live-only series (``catalog.LIVE_SERIES``): no shared file.
* Binance USD-M futures' public funding-rate history (``/fapi/v1/fundingRate``, plain HTTP: one
  documented GET, no key, so no exchange client) -> ``funding_binance_8h``, the series of the shared
  file ``funding_binance_btcusdt_8h.csv``, so a live deployment keeps feeding what the research and
  the linear combiners read (ADR 0025) instead of stopping where the file stops.

A source that cannot be reached or answers something unreadable raises ``SourceError`` with the
source's name and what went wrong; nothing of it is written, so the last good data stays as it is.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit, urlunsplit

import feedparser
import pandas as pd
from prometheus_client import Counter
from sqlalchemy import Engine, func, select

from common.exogenous.catalog import TIME_SERIES, Series, get_series
from common.exogenous.files import SeriesFileError, load_series, parse_rows
from common.exogenous.models import ExogenousObservation
from common.exogenous.store import CONFLICTS_WITH_STORED, store_frame
from common.logging import get_logger, register_secret
from config import ExogenousSettings

log = get_logger(__name__)

EXO_STORED = Counter("btcmeta_exogenous_stored_total", "New exogenous observations stored", ["series"])
EXO_REJECTED = Counter("btcmeta_exogenous_rejected_total", "Exogenous rows refused", ["series", "reason"])
EXO_SOURCE_ERRORS = Counter("btcmeta_exogenous_source_errors_total", "Live source failures", ["source"])
USER_AGENT = "btcmeta-producers/1 (+exogenous)"
T = TypeVar("T")


@dataclass
class ImportReport:
    """One series' import or poll: rows read, taken, new in the database, and refusals per reason."""

    series: str
    origin: str
    rows_read: int = 0
    taken: int = 0
    inserted: int = 0
    unchanged: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    error: str | None = None

    def line(self) -> str:
        """The CLI's summary line (stable ``key=value`` pairs, grep-able in cron logs)."""
        if self.error is not None:
            return f"{self.series}: ERROR {self.error}"
        refused = sum(self.rejected.values())
        parts = [
            f"{self.series}: read={self.rows_read} taken={self.taken} inserted={self.inserted} "
            f"unchanged={self.unchanged} rejected={refused}"
        ]
        parts += [f"rejected[{reason}]={n}" for reason, n in sorted(self.rejected.items())]
        return " ".join(parts)


def _store(engine: Engine, series: Series, frame: pd.DataFrame, origin: str, report: ImportReport) -> None:
    stored = store_frame(engine, series, frame, origin)
    report.inserted = stored.inserted
    report.unchanged = stored.unchanged
    if stored.conflicts:
        report.rejected[CONFLICTS_WITH_STORED] = len(stored.conflicts)
        report.taken -= len(stored.conflicts)
    EXO_STORED.labels(series.name).inc(stored.inserted)
    for reason, n in report.rejected.items():
        EXO_REJECTED.labels(series.name, reason).inc(n)


# ------------------------------------------------------------------------------------------ files


def import_dir(
    engine: Engine, directory: Path, names: Sequence[str] | None = None, *, now: datetime | None = None
) -> list[ImportReport]:
    """Load the shared files of ``names`` (default: every time series) into the database.

    Idempotent and incremental: rows already stored alike are counted as unchanged, not written
    again. A file that cannot be read at all (missing, header unlike the catalog) gives a report
    with ``error`` set and the other series still load.
    """
    reports = []
    for name in TIME_SERIES if names is None else names:
        series = get_series(name)
        report = ImportReport(name, str(Path(directory) / series.file))
        try:
            loaded = load_series(directory, name, now=now)
        except SeriesFileError as exc:
            report.error = str(exc)
            log.error("exogenous_import_failed", series=name, error=str(exc))
            reports.append(report)
            continue
        report.rows_read, report.taken, report.rejected = loaded.rows_read, loaded.taken, loaded.rejected
        _store(engine, series, loaded.frame, f"file:{series.file}", report)
        reports.append(report)
    return reports


# ------------------------------------------------------------------------------------------ live


class SourceError(RuntimeError):
    """A live source was unreachable or answered something unreadable; nothing of it was stored."""


def public_url(url: str) -> str:
    """The URL without query or credentials: what may be logged and stored as a row's source."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def http_get(url: str, *, timeout_s: float, attempts: int, source: str) -> bytes:
    """GET with a few attempts; a clear ``SourceError`` (source, public URL, reason) when all fail."""
    if not url.startswith(("http://", "https://")):
        raise SourceError(f"{source}: refusing non-http URL {public_url(url)!r}")
    last = ""
    for attempt in range(1, attempts + 1):
        request = urllib.request.Request(  # noqa: S310 - scheme checked above
            url,
            headers={"User-Agent": USER_AGENT, "Accept": "*/*"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
                return bytes(response.read())
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code} {exc.reason}"
            if exc.code < 500 and exc.code != 429:
                break  # a client error will not heal by retrying
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            last = f"unreachable ({reason})"
        if attempt < attempts:
            time.sleep(min(0.5 * 2 ** (attempt - 1), 5.0))
    raise SourceError(f"{source}: {public_url(url)} failed after {attempts} attempt(s): {last}")


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _text_table(series: Series, records: list[dict[str, str]]) -> pd.DataFrame:
    """Rows as text cells in the file layout (``ts`` + catalog columns), oldest first."""
    columns = ["ts", *series.value_columns]
    table = pd.DataFrame([{c: r.get(c, "") for c in columns} for r in records], columns=columns, dtype=object)
    return table.sort_values("ts", kind="stable", ignore_index=True)


def _number_text(value: Any, what: str) -> str:
    """A JSON number (or numeric string) as the text the row rules check; null -> empty."""
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{what} is {type(value).__name__}, not a number")
    return value if isinstance(value, str) else repr(value)


def parse_fear_greed(body: bytes) -> list[dict[str, str]]:
    """alternative.me ``/fng/`` JSON -> rows (``timestamp`` is the UTC day start in epoch seconds)."""
    doc = json.loads(body)
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        raise ValueError("no 'data' list")
    error = (doc.get("metadata") or {}).get("error") if isinstance(doc.get("metadata"), dict) else None
    if error:
        raise ValueError(f"the API reports an error: {error}")
    rows = []
    for item in doc["data"]:
        if not isinstance(item, dict):
            raise ValueError("a 'data' item is not an object")
        stamp = item.get("timestamp")
        try:
            ts = _iso(datetime.fromtimestamp(int(str(stamp)), tz=UTC))
        except (TypeError, ValueError, OverflowError, OSError):
            ts = str(stamp)  # refused by the row rules as bad_timestamp, counted, logged
        rows.append(
            {
                "ts": ts,
                "value": _number_text(item.get("value"), "value"),
                "classification": str(item.get("value_classification") or ""),
            }
        )
    return rows


def parse_news_feed(body: bytes) -> list[dict[str, str]]:
    """An RSS/Atom feed -> ``news_headlines`` rows (title, summary, link; no upstream scores)."""
    feed = feedparser.parse(body)
    if not feed.get("version"):  # feedparser names the dialect it recognised; "" for an HTML page
        problem = f" ({feed.get('bozo_exception')})" if feed.bozo else ""
        raise ValueError(f"not an RSS/Atom feed{problem}")
    if feed.bozo and not feed.entries:
        raise ValueError(f"unreadable feed: {feed.get('bozo_exception')}")
    publisher = str(feed.feed.get("title") or "")
    rows = []
    for entry in feed.entries:
        stamp = entry.get("published_parsed") or entry.get("updated_parsed")
        ts = time.strftime("%Y-%m-%dT%H:%M:%SZ", stamp) if stamp else ""
        rows.append(
            {
                "ts": ts,
                "source": publisher,
                "subject": "",
                "title": str(entry.get("title") or ""),
                "text": str(entry.get("summary") or ""),
                "url": str(entry.get("link") or ""),
                "sentiment_class": "",
                "sentiment_polarity": "",
                "sentiment_subjectivity": "",
            }
        )
    return rows


def parse_sentiment_json(body: bytes) -> list[dict[str, str]]:
    """``{"data": [{"date": "YYYY-MM-DD", <social_sentiment columns>}]}`` -> ``social_sentiment`` rows."""
    doc = json.loads(body)
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        raise ValueError("no 'data' list")
    columns = get_series("social_sentiment").value_columns
    rows = []
    for item in doc["data"]:
        if not isinstance(item, dict):
            raise ValueError("a 'data' item is not an object")
        day = str(item.get("date") or "")
        row = {"ts": f"{day}T00:00:00Z" if len(day) == 10 else day}
        for c in columns:
            row[c] = _number_text(item.get(c), c)
        rows.append(row)
    return rows


# ------------------------------------------------------------------- Kraken Futures via CCXT

KRAKEN_FUNDING_PATH = "/derivatives/api/v4/historicalfundingrates"
KRAKEN_TICKERS_PATH = "/derivatives/api/v3/tickers"
_DETAIL_CHARS = 300  # a venue's error body can be a whole page: enough of it to see what went wrong


def _kraken_client(settings: ExogenousSettings) -> Any:
    """A CCXT ``krakenfutures`` client re-rooted at ``kraken_futures_url`` (no keys: public data).

    It keeps the last JSON answer (``last_json_response``) because CCXT turns a body that is not
    JSON, or JSON without the expected list, into an empty result: the caller checks the answer.
    """
    import ccxt  # seconds to import: only when a Kraken source is polled

    from common.kraken import api_urls  # the one place that knows CCXT's URL families

    root = settings.kraken_futures_url
    if urlsplit(root).password:
        register_secret(root)  # CCXT debug-logs request URLs
    client = ccxt.krakenfutures({"enableRateLimit": True, "timeout": int(settings.timeout_s * 1000)})
    client.enableLastJsonResponse = True
    client.urls["api"] = api_urls(root)
    return client


def _ccxt_call(source: str, origin: str, settings: ExogenousSettings, call: Callable[[], T]) -> T:
    """Run ``call`` with ``settings.attempts`` tries; a clear ``SourceError`` when all fail.

    Retried: transport trouble, rate limits, and the errors CCXT cannot classify (Kraken's HTTP 500
    "Server Error"); a definitive answer (bad symbol, refused request) is not.
    """
    import ccxt

    last, attempt = "", 0
    for attempt in range(1, settings.attempts + 1):
        try:
            return call()
        except ccxt.BaseError as exc:
            detail = str(exc).replace(
                settings.kraken_futures_url.rstrip("/"), public_url(settings.kraken_futures_url).rstrip("/")
            )
            detail = detail if len(detail) <= _DETAIL_CHARS else detail[:_DETAIL_CHARS] + "..."
            kind = "unreachable" if type(exc) is ccxt.NetworkError else type(exc).__name__
            last = f"{kind} ({detail})"
            if not isinstance(exc, ccxt.NetworkError) and type(exc) is not ccxt.ExchangeError:
                break  # a definitive answer will not change by asking again
        if attempt < settings.attempts:
            time.sleep(min(0.5 * 2 ** (attempt - 1), 5.0))
    raise SourceError(f"{source}: {origin} failed after {attempt} attempt(s): {last}")


def _latest_about(engine: Engine, series: str) -> datetime | None:
    """The newest stored ``about_ts`` of ``series`` (None: nothing stored yet)."""
    query = select(func.max(ExogenousObservation.about_ts)).where(ExogenousObservation.series == series)
    with engine.connect() as conn:
        latest = conn.execute(query).scalar_one()
    return None if latest is None else (latest.replace(tzinfo=UTC) if latest.tzinfo is None else latest)


def _json_answer(client: Any, key: str, kind: type) -> dict[str, Any]:
    """The last raw answer, checked to hold ``key`` of ``kind`` (else ``ValueError``: malformed)."""
    raw = client.last_json_response
    if not isinstance(raw, dict):
        raise ValueError("the answer is not a JSON object")
    if not isinstance(raw.get(key), kind):
        raise ValueError(f"no {key!r} {'list' if kind is list else 'object'} in the answer")
    return raw


def fetch_kraken_funding(engine: Engine, settings: ExogenousSettings, now: datetime) -> list[dict[str, str]]:
    """Kraken's funding-rate history through CCXT -> ``kraken_funding`` rows (``funding_rate``).

    Kraken answers the whole history; CCXT keeps the rates from ``since`` on: the last
    ``kraken_funding_days`` (re-read, so they count as unchanged), or from the last stored rate
    when that is older (an outage is caught up). CCXT's ``fundingRate`` is Kraken's
    ``relativeFundingRate`` (a fraction per funding period).
    """
    origin = public_url(settings.kraken_futures_url.rstrip("/") + KRAKEN_FUNDING_PATH)
    since = now - timedelta(days=settings.kraken_funding_days)
    latest = _latest_about(engine, "kraken_funding")
    if latest is not None and latest < since:
        since = latest
    client = _kraken_client(settings)

    def call() -> list[dict[str, Any]]:
        client.load_markets()
        return list(
            client.fetch_funding_rate_history(settings.kraken_symbol, since=int(since.timestamp() * 1000))
        )

    history = _ccxt_call("kraken_funding", origin, settings, call)
    _json_answer(client, "rates", list)
    rows = []
    for item in history:
        ms = item.get("timestamp")
        # a whole-second instant in the row format; anything else as sent, refused by the row rules
        ts = (
            _iso(datetime.fromtimestamp(ms / 1000, tz=UTC))
            if isinstance(ms, int) and ms % 1000 == 0
            else str(item.get("datetime"))
        )
        rows.append({"ts": ts, "funding_rate": _number_text(item.get("fundingRate"), "fundingRate")})
    return rows


def _snapshot_ts(server_time: object) -> str:
    """Kraken's ``serverTime`` (``2022-02-18T14:16:29.440Z``) cut to the second, in the row format.

    Cut, not rounded: the series publishes at ts + 1 s, so the reading is never visible before it
    was taken. Unreadable: returned as sent and refused by the row rules (``bad_timestamp``).
    """
    try:
        taken = datetime.fromisoformat(str(server_time))
    except ValueError:
        return str(server_time)
    if taken.tzinfo is None:
        return str(server_time)
    return _iso(taken.replace(microsecond=0))


def fetch_kraken_open_interest(
    engine: Engine, settings: ExogenousSettings, now: datetime
) -> list[dict[str, str]]:
    """The open interest on Kraken's ticker through CCXT -> one ``kraken_open_interest`` row.

    The snapshot is stamped with the answer's ``serverTime`` (when the venue took it), not the
    ticker's ``lastTime`` (the last trade, possibly earlier than the reading) nor our clock: the
    same answer twice stores one row, a later one adds a row.
    """
    del engine, now  # a snapshot has no window to ask for
    origin = public_url(settings.kraken_futures_url.rstrip("/") + KRAKEN_TICKERS_PATH)
    client = _kraken_client(settings)

    def call() -> dict[str, Any]:
        client.load_markets()
        return dict(client.fetch_ticker(settings.kraken_symbol))

    ticker = _ccxt_call("kraken_open_interest", origin, settings, call)
    raw = _json_answer(client, "ticker", dict)
    info = ticker.get("info")
    if not isinstance(info, dict) or "openInterest" not in info:
        raise ValueError("the ticker has no 'openInterest'")
    return [
        {
            "ts": _snapshot_ts(raw.get("serverTime")),
            "open_interest": _number_text(info["openInterest"], "openInterest"),
        }
    ]


BINANCE_FUNDING_PATH = "/fapi/v1/fundingRate"
#: Binance's page limit for the funding history (its maximum; the default is 100).
BINANCE_PAGE = 1000


def fetch_binance_funding(engine: Engine, settings: ExogenousSettings, now: datetime) -> list[dict[str, str]]:
    """Binance's funding-rate history -> ``funding_binance_8h`` rows (``funding_rate``).

    From the last ``binance_funding_days`` (re-read: stored rates count as unchanged), or from the
    last stored settlement when that is older (an outage, or a fresh database after the file
    import, is caught up page by page). ``fundingTime`` carries a few milliseconds of jitter past
    the settlement; it is truncated to the second, as the shared file was, so a polled settlement
    is the same row as the imported one.
    """
    root = settings.binance_futures_url.rstrip("/")
    since = now - timedelta(days=settings.binance_funding_days)
    latest = _latest_about(engine, "funding_binance_8h")
    if latest is not None and latest < since:
        since = latest
    start_ms = int(since.timestamp() * 1000)
    rows: list[dict[str, str]] = []
    while True:
        query = urlencode({"symbol": settings.binance_symbol, "startTime": start_ms, "limit": BINANCE_PAGE})
        body = http_get(
            f"{root}{BINANCE_FUNDING_PATH}?{query}",
            timeout_s=settings.timeout_s,
            attempts=settings.attempts,
            source="binance_funding",
        )
        page = json.loads(body)
        if not isinstance(page, list):
            raise ValueError("the answer is not a JSON list of funding rates")
        last_ms = start_ms - 1
        for item in page:
            if not isinstance(item, dict):
                raise ValueError("a funding-rate entry is not a JSON object")
            ms = item.get("fundingTime")
            if not isinstance(ms, int) or isinstance(ms, bool):
                raise ValueError(f"fundingTime {ms!r} is not epoch milliseconds")
            last_ms = max(last_ms, ms)
            ts = _iso(datetime.fromtimestamp(ms // 1000, tz=UTC))
            rows.append({"ts": ts, "funding_rate": _number_text(item.get("fundingRate"), "fundingRate")})
        if len(page) < BINANCE_PAGE or last_ms < start_ms:
            return rows
        start_ms = last_ms + 1  # the next page starts after this one's last settlement


@dataclass(frozen=True)
class LiveSource:
    """One live source: its name, the series it feeds, its URL and how to read it.

    Either ``parse`` (one GET of ``url``, the body parsed) or ``fetch`` (a client library does the
    requests, e.g. CCXT; ``url`` then only names where, for reports and the rows' ``source``).
    """

    name: str
    series: str
    url: str
    parse: Callable[[bytes], list[dict[str, str]]] | None = None
    fetch: Callable[[Engine, ExogenousSettings, datetime], list[dict[str, str]]] | None = None


def live_sources(settings: ExogenousSettings) -> list[LiveSource]:
    """The configured live sources (a source whose URL is empty is switched off)."""
    fng = settings.fear_greed_url
    if fng:
        sep = "&" if "?" in fng else "?"
        fng = f"{fng}{sep}{urlencode({'limit': settings.fear_greed_limit, 'format': 'json'})}"
    candidates = [
        LiveSource("fear_greed", "fear_greed", fng, parse_fear_greed),
        LiveSource("news", "news_headlines", settings.news_rss_url, parse_news_feed),
        LiveSource("sentiment", "social_sentiment", settings.sentiment_url, parse_sentiment_json),
    ]
    kraken = settings.kraken_futures_url.rstrip("/") if settings.kraken_symbol else ""
    if kraken:
        candidates += [
            LiveSource(
                "kraken_funding", "kraken_funding", kraken + KRAKEN_FUNDING_PATH, fetch=fetch_kraken_funding
            ),
            LiveSource(
                "kraken_open_interest",
                "kraken_open_interest",
                kraken + KRAKEN_TICKERS_PATH,
                fetch=fetch_kraken_open_interest,
            ),
        ]
    binance = settings.binance_futures_url.rstrip("/") if settings.binance_symbol else ""
    if binance:
        candidates.append(
            LiveSource(
                "binance_funding",
                "funding_binance_8h",
                binance + BINANCE_FUNDING_PATH,
                fetch=fetch_binance_funding,
            )
        )
    return [s for s in candidates if s.url]


def poll_source(
    engine: Engine, source: LiveSource, settings: ExogenousSettings, *, now: datetime | None = None
) -> ImportReport:
    """Fetch, validate and store one source; ``SourceError`` before anything is written on failure."""
    origin = public_url(source.url)
    try:
        if source.fetch is not None:
            records = source.fetch(engine, settings, now or datetime.now(UTC))
        else:
            assert source.parse is not None, f"{source.name}: a live source needs parse or fetch"
            body = http_get(
                source.url, timeout_s=settings.timeout_s, attempts=settings.attempts, source=source.name
            )
            records = source.parse(body)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:  # json.JSONDecodeError is a ValueError
        raise SourceError(f"{source.name}: malformed answer from {origin}: {exc}") from None
    series = get_series(source.series)
    loaded = parse_rows(series, _text_table(series, records), now=now, origin=origin, first_line=1)
    if records and loaded.taken == 0:
        raise SourceError(
            f"{source.name}: malformed answer from {origin}: every row refused "
            f"({', '.join(f'{k}={v}' for k, v in sorted(loaded.rejected.items()))})"
        )
    report = ImportReport(series.name, origin, loaded.rows_read, loaded.taken, rejected=loaded.rejected)
    _store(engine, series, loaded.frame, origin, report)
    return report


def poll(
    engine: Engine,
    settings: ExogenousSettings,
    names: Iterable[str] | None = None,
    *,
    now: datetime | None = None,
) -> list[ImportReport]:
    """Poll the chosen live sources (default: all configured); a failing one does not stop the others."""
    chosen = set(names) if names is not None else None
    reports = []
    for source in live_sources(settings):
        if chosen is not None and source.name not in chosen:
            continue
        try:
            reports.append(poll_source(engine, source, settings, now=now))
        except SourceError as exc:
            EXO_SOURCE_ERRORS.labels(source.name).inc()
            log.error("exogenous_source_failed", source=source.name, error=str(exc))
            reports.append(ImportReport(source.series, public_url(source.url), error=str(exc)))
    return reports


SOURCE_NAMES = (
    "fear_greed", "news", "sentiment", "kraken_funding", "kraken_open_interest", "binance_funding"
)  # fmt: skip
