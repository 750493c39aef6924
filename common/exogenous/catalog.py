"""The exogenous (non-price) series the project knows: files, columns, units, and publication rules.

Why a typed catalog: every consumer (file loader, database import, live pollers, strategies) must
agree on *when a value became known*. The shared data's README gives, per file, the earliest time a
row may be used without lookahead ("usable from"); this module is the one place that turns a row's
``ts`` (what the value is about) into ``published_at`` (when it was known), so a strategy can never
read a daily value at the start of the day it describes.

Names are short and stable (``funding_binance_8h``, ``fear_greed``): they are the keys of the
database tables and of strategy declarations, and must not change when a file is renamed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from pandas.tseries.holiday import USFederalHolidayCalendar


class Frequency(StrEnum):
    """How often a series has a row (``EVENT``: irregular; ``STATIC``: no time axis).

    ``SNAPSHOT``: irregular times (whenever a live poll took the reading), at most one row per
    ``ts``, so a changed value at a stored ``ts`` is still refused (unlike ``EVENT`` items).
    """

    HOURLY = "1h"
    EIGHT_HOURLY = "8h"
    DAILY = "1d"
    MONTHLY = "1mo"
    EVENT = "event"
    SNAPSHOT = "snapshot"
    STATIC = "static"


class ColumnKind(StrEnum):
    NUMBER = "number"
    TEXT = "text"


class Category(StrEnum):
    DERIVATIVES = "derivatives"
    ONCHAIN = "onchain"
    MARKET = "market"
    MACRO = "macro"
    SENTIMENT = "sentiment"
    ATTENTION = "attention"
    NEWS = "news"
    LEXICON = "lexicon"


class RuleKind(StrEnum):
    """The shapes of "usable from" found in the README."""

    #: Known at ``ts`` itself (settlements, end-of-hour accruals).
    AT_TS = "at_ts"
    #: Known ``delay`` after ``ts``.
    DELAY = "delay"
    #: Daily value about day D: known at D+1 00:00 UTC (the day has to end first).
    NEXT_DAY = "next_day"
    #: ``ts`` plus a buffer, then rounded up to the next full hour (timezone of ``ts`` uncertain).
    CEIL_HOUR_AFTER_DELAY = "ceil_hour_after_delay"
    #: Next US business day after D (weekends and federal holidays skipped), at ``delay`` UTC.
    NEXT_US_BUSINESS_DAY = "next_us_business_day"
    #: Monthly value about month M: first day of month M+2, 00:00 UTC (released late, revised).
    MONTH_AFTER_NEXT = "month_after_next"
    #: No time axis (a lexicon).
    STATIC = "static"


@dataclass(frozen=True, slots=True)
class PublicationRule:
    """When a row about ``ts`` becomes known; ``text`` quotes the rule for people and the database."""

    kind: RuleKind
    text: str
    delay: timedelta = timedelta(0)

    def published_at(self, about: pd.DatetimeIndex) -> pd.DatetimeIndex:
        """Vectorized: publication instants (UTC) for tz-aware UTC ``about`` instants."""
        if about.tz is None:
            raise ValueError("about must be tz-aware UTC")
        if self.kind is RuleKind.AT_TS:
            return about
        if self.kind is RuleKind.DELAY:
            return about + self.delay
        if self.kind is RuleKind.NEXT_DAY:
            return about.floor("D") + pd.Timedelta(days=1)
        if self.kind is RuleKind.CEIL_HOUR_AFTER_DELAY:
            return (about + self.delay).ceil("h")
        if self.kind is RuleKind.NEXT_US_BUSINESS_DAY:
            days = about.floor("D").tz_localize(None).to_numpy().astype("datetime64[D]")
            # roll a weekend/holiday D back to its business day first, then step one forward:
            # that is the first business day strictly after D.
            nxt = np.busday_offset(days, 1, roll="backward", holidays=_us_federal_holidays())
            return pd.DatetimeIndex(nxt.astype("datetime64[ns]")).tz_localize("UTC") + self.delay
        if self.kind is RuleKind.MONTH_AFTER_NEXT:
            month_start = about.tz_localize(None).to_period("M").to_timestamp()
            return pd.DatetimeIndex(month_start + pd.offsets.MonthBegin(2)).tz_localize("UTC")
        raise ValueError(f"a {self.kind.value} series has no publication time")


@lru_cache(maxsize=1)
def _us_federal_holidays() -> npt.NDArray[Any]:
    """The Federal Reserve's holidays are the US federal ones (pandas' calendar, Juneteenth included)."""
    days = USFederalHolidayCalendar().holidays("1990-01-01", "2100-12-31")
    return np.asarray(days.to_numpy().astype("datetime64[D]"))


AT_TS = PublicationRule(RuleKind.AT_TS, "ts (settlement / end of the period)")
NEXT_DAY = PublicationRule(RuleKind.NEXT_DAY, "D+1 00:00 UTC")


@dataclass(frozen=True, slots=True)
class Column:
    """One value column of a file.

    ``required``: an empty cell refuses the row; an optional column may be empty (the source had no
    value) as long as the row has at least one value. ``allowed``: the literal texts a unit-like
    column may hold (anything else is an unknown unit). ``minimum``/``maximum`` bound numbers.
    """

    name: str
    unit: str
    kind: ColumnKind = ColumnKind.NUMBER
    required: bool = True
    allowed: frozenset[str] | None = None
    minimum: float | None = None
    maximum: float | None = None


@dataclass(frozen=True, slots=True)
class Series:
    """One exogenous series: its file, columns, frequency and when each row is published."""

    name: str
    file: str
    category: Category
    frequency: Frequency
    columns: tuple[Column, ...]
    publication: PublicationRule
    source: str
    description: str
    #: False when history was restated or stitched after the fact (README caveats): backtests
    #: on such a series can look better than live trading could have been.
    point_in_time: bool = True
    caveat: str = ""

    @property
    def value_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def numeric_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.kind is ColumnKind.NUMBER)

    @property
    def text_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.kind is ColumnKind.TEXT)

    @property
    def units(self) -> dict[str, str]:
        return {c.name: c.unit for c in self.columns}

    @property
    def is_event(self) -> bool:
        """Several rows may share a ``ts`` (news items); rows are told apart by an item key."""
        return self.frequency is Frequency.EVENT

    @property
    def is_static(self) -> bool:
        return self.frequency is Frequency.STATIC

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"series {self.name!r} has no column {name!r}")


HEUN = "github heun630/Onchain-Data-Eval-Algorithm@717ebdd"
NEARRIDGE = "github nearridge/Hehmeyer@7744d79"
SUPERVIK = "github supervik/historical-funding-rates-fetcher@66a085b"
ZACK = "github zackdilan/bitcoin-sentiment-index@66541e8"
HEUN_CAVEAT = "one snapshot of 2024-11-21; entity metrics restated by the provider; last rows may be partial"


def _daily(
    name: str,
    file: str,
    column: str,
    unit: str,
    description: str,
    category: Category = Category.ONCHAIN,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    point_in_time: bool = False,
    caveat: str = HEUN_CAVEAT,
) -> Series:
    """A one-column heun630 daily series (all share the D+1 00:00 rule and the snapshot caveat)."""
    return Series(
        name,
        file,
        category,
        Frequency.DAILY,
        (Column(column, unit, minimum=minimum, maximum=maximum),),
        NEXT_DAY,
        HEUN,
        description,
        point_in_time=point_in_time,
        caveat=caveat,
    )


_NEWS_TEXT = ("source", "subject", "title", "text", "url", "sentiment_class")

SERIES: tuple[Series, ...] = (
    # --- derivatives --------------------------------------------------------------------------
    Series(
        "funding_bitmex_8h",
        "funding_bitmex_xbtusd_8h.csv",
        Category.DERIVATIVES,
        Frequency.EIGHT_HOURLY,
        (
            Column("symbol", "instrument", ColumnKind.TEXT, allowed=frozenset({"XBTUSD"})),
            Column("funding_interval_hours", "hours", allowed=frozenset({"8", "24"})),
            Column("funding_rate", "fraction per interval"),
            Column("funding_rate_daily", "fraction per day"),
        ),
        PublicationRule(
            RuleKind.AT_TS, "ts (settlement at 04/12/20 UTC; rate fixed at ts-8h, so ts is conservative)"
        ),
        NEARRIDGE,
        "BitMEX XBTUSD funding rate (24h interval until 2016-06-04 12:00, then 8h)",
    ),
    Series(
        "funding_binance_8h",
        "funding_binance_btcusdt_8h.csv",
        Category.DERIVATIVES,
        Frequency.EIGHT_HOURLY,
        (Column("funding_rate", "fraction per 8h"),),
        PublicationRule(RuleKind.AT_TS, "ts (settlement 00/08/16 UTC)"),
        SUPERVIK,
        "Binance USDT-M BTCUSDT perpetual funding rate",
    ),
    Series(
        "funding_bybit_8h",
        "funding_bybit_btcusdt_8h.csv",
        Category.DERIVATIVES,
        Frequency.EIGHT_HOURLY,
        (Column("funding_rate", "fraction per 8h"),),
        PublicationRule(RuleKind.AT_TS, "ts (settlement 00/08/16 UTC)"),
        SUPERVIK,
        "Bybit linear BTCUSDT perpetual funding rate",
    ),
    Series(
        "funding_deribit_1h",
        "funding_deribit_btc_perpetual_1h.csv",
        Category.DERIVATIVES,
        Frequency.HOURLY,
        (
            Column("interest_1h", "fraction (hour ending at ts)"),
            Column("interest_8h", "fraction (trailing 8h ending at ts)"),
        ),
        PublicationRule(RuleKind.AT_TS, "ts (end of the hour)"),
        NEARRIDGE,
        "Deribit BTC-PERPETUAL funding accrued per hour and trailing 8h",
    ),
    Series(
        "funding_aggregate_daily",
        "funding_allexchanges_daily.csv",
        Category.DERIVATIVES,
        Frequency.DAILY,
        (Column("funding_rate_pct", "aggregate funding, % (scale uncertain: use as a relative indicator)"),),
        NEXT_DAY,
        HEUN,
        "Aggregate funding fee across exchanges (relative indicator, scale drifts by regime)",
        point_in_time=False,
        caveat=HEUN_CAVEAT,
    ),
    Series(
        "open_interest_daily",
        "open_interest_allexchanges_daily.csv",
        Category.DERIVATIVES,
        Frequency.DAILY,
        (Column("open_interest_usd", "USD", minimum=0.0),),
        NEXT_DAY,
        HEUN,
        "Aggregate BTC futures open interest across exchanges",
        point_in_time=False,
        caveat=HEUN_CAVEAT,
    ),
    # --- on-chain, market, macro ----------------------------------------------------------------
    _daily(
        "exchange_reserves",
        "onchain_exchange_reserves_daily.csv",
        "exchange_reserves",
        "BTC",
        "BTC held on exchange wallets",
        minimum=0.0,
    ),
    _daily(
        "exchange_inflow_cdd",
        "onchain_exchange_inflow_cdd_daily.csv",
        "exchange_inflow_cdd",
        "coin-days destroyed",
        "Coin-days destroyed by exchange inflows",
        minimum=0.0,
    ),
    _daily(
        "miner_to_exchange",
        "onchain_miner_to_exchange_transfers_daily.csv",
        "miner_to_exchange_transfers",
        "BTC per day",
        "Miner to exchange transfers",
        minimum=0.0,
    ),
    _daily(
        "exchange_stablecoin_ratio",
        "onchain_exchange_stablecoin_ratio_daily.csv",
        "exchange_stablecoin_ratio",
        "ratio",
        "Exchange BTC reserve over stablecoin reserve (unverified)",
        minimum=0.0,
    ),
    _daily(
        "fund_reserves",
        "onchain_fund_reserves_daily.csv",
        "fund_reserves",
        "BTC",
        "BTC held by funds and trusts",
        minimum=0.0,
    ),
    _daily(
        "miner_reserves",
        "onchain_miner_reserves_daily.csv",
        "miner_reserves",
        "BTC",
        "BTC held by miners",
        minimum=0.0,
    ),
    _daily(
        "miner_position_index",
        "onchain_miner_position_index_daily.csv",
        "miner_position_index",
        "dimensionless",
        "Miner position index (outflow relative to its 1y mean)",
    ),
    _daily(
        "hashrate",
        "onchain_hashrate_daily.csv",
        "hashrate",
        "GH/s (inferred)",
        "Network hash rate",
        minimum=0.0,
    ),
    _daily(
        "mvrv", "onchain_mvrv_daily.csv", "mvrv", "ratio", "Market value over realized value", minimum=0.0
    ),
    _daily("sopr", "onchain_sopr_daily.csv", "sopr", "ratio", "Spent output profit ratio", minimum=0.0),
    _daily("nupl", "onchain_nupl_daily.csv", "nupl", "ratio", "Net unrealized profit/loss"),
    _daily(
        "utxo_in_profit_pct",
        "onchain_utxo_in_profit_pct_daily.csv",
        "utxo_in_profit_pct",
        "%",
        "Share of UTXOs in profit",
        minimum=0.0,
        maximum=100.0,
    ),
    _daily(
        "utxo_in_loss_pct",
        "onchain_utxo_in_loss_pct_daily.csv",
        "utxo_in_loss_pct",
        "%",
        "Share of UTXOs in loss",
        minimum=0.0,
        maximum=100.0,
    ),
    _daily(
        "btc_dominance",
        "market_btc_dominance_daily.csv",
        "btc_dominance_pct",
        "% of crypto market cap",
        "Bitcoin dominance",
        Category.MARKET,
        minimum=0.0,
        maximum=100.0,
    ),
    Series(
        "fed_funds_rate",
        "macro_fed_funds_effective_rate_daily.csv",
        Category.MACRO,
        Frequency.DAILY,
        (Column("fed_funds_effective_rate_pct", "% p.a."),),
        PublicationRule(
            RuleKind.NEXT_US_BUSINESS_DAY,
            "next US business day after D, 14:00 UTC (EFFR is published ~09:00 ET)",
            timedelta(hours=14),
        ),
        HEUN,
        "Effective federal funds rate (weekends carry the previous business day's rate)",
    ),
    Series(
        "real_dollar_index",
        "macro_real_broad_dollar_index_monthly.csv",
        Category.MACRO,
        Frequency.MONTHLY,
        (Column("real_broad_dollar_index", "index (Jan 2006 = 100)", minimum=0.0),),
        PublicationRule(
            RuleKind.MONTH_AFTER_NEXT,
            "first day of the month after next, 00:00 UTC (conservative: released with a lag and revised)",
        ),
        HEUN,
        "Real broad dollar index, monthly",
        point_in_time=False,
        caveat="revised after release",
    ),
    # --- sentiment, attention, news -------------------------------------------------------------
    Series(
        "fear_greed",
        "fear_greed_daily.csv",
        Category.SENTIMENT,
        Frequency.DAILY,
        (
            Column("value", "index 0..100", minimum=0.0, maximum=100.0),
            Column(
                "classification",
                "label",
                ColumnKind.TEXT,
                allowed=frozenset({"Extreme Fear", "Fear", "Neutral", "Greed", "Extreme Greed"}),
            ),
        ),
        PublicationRule(
            RuleKind.DELAY,
            "D 01:00 UTC (alternative.me posts day D's value around "
            "00:00 UTC on D; posting minute unknown, so one hour of margin)",
            timedelta(hours=1),
        ),
        "github GOURAVmalviy/PrimeTrade@b4ccfd5 (alternative.me Crypto Fear & Greed Index)",
        "Crypto Fear & Greed index; use value, not the label (label thresholds differ between copies)",
    ),
    Series(
        "social_sentiment",
        "social_sentiment_daily.csv",
        Category.SENTIMENT,
        Frequency.DAILY,
        (
            Column(
                "reddit_comments_sentiment",
                "mean lexicon score (-1..1)",
                required=False,
                minimum=-1.0,
                maximum=1.0,
            ),
            Column(
                "reddit_submissions_sentiment",
                "mean lexicon score (-1..1)",
                required=False,
                minimum=-1.0,
                maximum=1.0,
            ),
            Column(
                "stocktwits_sentiment",
                "mean lexicon score (-1..1)",
                required=False,
                minimum=-1.0,
                maximum=1.0,
            ),
            Column("reddit_comments_volume", "messages per day", required=False, minimum=0.0),
            Column("reddit_submissions_volume", "messages per day", required=False, minimum=0.0),
            Column("stocktwits_volume", "messages per day", required=False, minimum=0.0),
        ),
        NEXT_DAY,
        ZACK,
        "Daily Reddit/StockTwits sentiment and message counts (empty where no source row)",
        point_in_time=False,
        caveat="counts as crawled after later deletions; Reddit is a sample",
    ),
    Series(
        "google_trends",
        "google_trends_daily.csv",
        Category.ATTENTION,
        Frequency.DAILY,
        (Column("search_volume", "Google Trends relative index (0..100, rescaled)", minimum=0.0),),
        PublicationRule(RuleKind.NEXT_DAY, "D+1 00:00 UTC at the earliest (not point-in-time)"),
        ZACK,
        "Google search attention for bitcoin",
        point_in_time=False,
        caveat="stitched and rescaled with later data: do not trade on its level",
    ),
    Series(
        "news_headlines",
        "news_headlines_cryptonews.csv",
        Category.NEWS,
        Frequency.EVENT,
        (
            *(Column(n, "text", ColumnKind.TEXT, required=False) for n in _NEWS_TEXT),
            # Optional: the live RSS source has no upstream scores (empty there, NaN in frames).
            Column(
                "sentiment_polarity", "TextBlob polarity (-1..1)", required=False, minimum=-1.0, maximum=1.0
            ),
            Column(
                "sentiment_subjectivity",
                "TextBlob subjectivity (0..1)",
                required=False,
                minimum=0.0,
                maximum=1.0,
            ),
        ),
        PublicationRule(
            RuleKind.CEIL_HOUR_AFTER_DELAY,
            "ts + 1 h, rounded up to the next full hour (timezone inferred as UTC: one-bar buffer)",
            timedelta(hours=1),
        ),
        "github nyu-tandon-capstone/crypto-team4@f46f035",
        "Crypto news headlines (CoinTelegraph, CryptoNews, CryptoPotato) with upstream sentiment scores",
    ),
    Series(
        "news_events",
        "news_events_dykstranet.csv",
        Category.NEWS,
        Frequency.EVENT,
        (
            Column("source", "url host", ColumnKind.TEXT, required=False),
            Column("title", "text", ColumnKind.TEXT),
            Column("url", "text", ColumnKind.TEXT, required=False),
        ),
        PublicationRule(RuleKind.NEXT_DAY, "D+1 00:00 UTC at the earliest (event date, no time of day)"),
        "github dykstranet/cryptonews@a5dd133",
        "Major crypto events, dated by when they occurred",
        point_in_time=False,
        caveat="picked in hindsight because they moved the price: annotation only",
    ),
    Series(
        "lexicon_chen2019",
        "lexicon_crypto_chen2019.csv",
        Category.LEXICON,
        Frequency.STATIC,
        (
            Column("keyword", "text", ColumnKind.TEXT),
            Column("sw", "sentiment weight"),
            Column("positive_occurrences", "count", minimum=0.0),
            Column("negative_occurrences", "count", minimum=0.0),
        ),
        PublicationRule(RuleKind.STATIC, "static"),
        ZACK,
        "Crypto sentiment lexicon (Chen et al. 2019)",
        point_in_time=False,
        caveat="built from StockTwits messages that overlap the backtest period",
    ),
)

KRAKEN_CCXT = "Kraken Futures public REST API via CCXT krakenfutures (live polls only)"

#: Series that only live sources fill (``python -m producers exogenous poll``): no shared file
#: (``file`` is empty), so they are not in ``SERIES``/``TIME_SERIES`` and a backtest has no history
#: of them. Why series of their own: one venue's funding or one contract's open interest is not
#: another venue's, nor the all-exchange daily aggregate, and a strategy's thresholds are fitted
#: to one of them.
LIVE_SERIES: tuple[Series, ...] = (
    Series(
        "kraken_funding",
        "",
        Category.DERIVATIVES,
        Frequency.HOURLY,
        (
            Column(
                "funding_rate", "fraction per funding period (Kraken relativeFundingRate; 1h on perpetuals)"
            ),
        ),
        PublicationRule(RuleKind.AT_TS, "ts (the funding period's timestamp on Kraken)"),
        KRAKEN_CCXT,
        "Kraken Futures perpetual funding-rate history (historicalfundingrates)",
    ),
    Series(
        "kraken_open_interest",
        "",
        Category.DERIVATIVES,
        Frequency.SNAPSHOT,
        (Column("open_interest", "contracts (PF_XBTUSD: 1 contract = 1 BTC)", minimum=0.0),),
        PublicationRule(
            RuleKind.DELAY,
            "ts + 1 s (ts = the ticker answer's serverTime, cut to the "
            "second: the snapshot is known by then)",
            timedelta(seconds=1),
        ),
        KRAKEN_CCXT,
        "Kraken Futures open interest of one contract, as the ticker showed it when polled",
    ),
)

_BY_NAME: dict[str, Series] = {s.name: s for s in (*SERIES, *LIVE_SERIES)}
_BY_FILE: dict[str, Series] = {s.file: s for s in SERIES}
assert len(_BY_NAME) == len(SERIES) + len(LIVE_SERIES) and len(_BY_FILE) == len(SERIES), (
    "duplicate name or file in the catalog"
)

#: Names of the series with a time axis (everything but the lexicon): what ``load_dir`` loads.
TIME_SERIES: tuple[str, ...] = tuple(s.name for s in SERIES if not s.is_static)


def get_series(name: str) -> Series:
    """The catalog entry for ``name``; the error lists the known names (typos in configs happen)."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown exogenous series {name!r}; known: {', '.join(sorted(_BY_NAME))}") from None


def series_for_file(file: str) -> Series:
    try:
        return _BY_FILE[file]
    except KeyError:
        raise KeyError(f"no exogenous series is stored in {file!r}") from None
