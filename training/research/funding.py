"""The real funding series as a per-bar cost on the exposure held (instead of a constant).

Sources (``../shared/data/exogenous``, read through ``common.exogenous`` so each row carries its
catalog ``published_at``): BitMEX XBTUSD 8h funding until Binance's BTCUSDT series starts
(2020-01-01), Binance after. Together they cover 2016-05 .. 2023-12, the whole project window.

Rule (one place, tested): a settlement at instant ``s`` charges ``exposure * rate`` to the position
held over the bar whose close is the first close at or after ``s`` (bar ``t`` is held from the close
of bar ``t-1`` to its own close), and the rate charged is the **latest rate published at or before
``s``**. With the catalog's publication rule (published at settlement) that is the settlement's own
rate; a later publication makes the previous rate apply, so a backtest can never use a value before
the world knew it. Bars outside the series' coverage pay the configured constant hourly rate
(``config.DEFAULT_FUNDING_RATE_HOURLY``) per hour held, and the report says how many did.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

HOUR_NS = 3_600_000_000_000
INTERVAL_NS = 8 * HOUR_NS
SERIES = ("funding_bitmex_8h", "funding_binance_8h")


@dataclass(frozen=True)
class FundingEvents:
    """Settlements: instant (ns, UTC), rate per settlement, publication instant (ns, UTC)."""

    settle_ns: np.ndarray
    rate: np.ndarray
    published_ns: np.ndarray
    source: str

    def __len__(self) -> int:
        return int(self.settle_ns.size)


def _ns(values: pd.Series) -> np.ndarray:
    return pd.DatetimeIndex(values).asi8.astype(np.int64)


def from_frames(primary: pd.DataFrame, secondary: pd.DataFrame | None = None) -> FundingEvents:
    """Events of ``primary`` until ``secondary`` starts, then ``secondary`` (loader frames)."""
    s_ns, r, p_ns = (
        _ns(primary["about_ts"]),
        primary["funding_rate"].to_numpy(np.float64),
        _ns(primary["published_at"]),
    )
    source = "primary"
    if secondary is not None and len(secondary):
        cut = _ns(secondary["about_ts"]).min()
        keep = s_ns < cut
        s_ns = np.concatenate([s_ns[keep], _ns(secondary["about_ts"])])
        r = np.concatenate([r[keep], secondary["funding_rate"].to_numpy(np.float64)])
        p_ns = np.concatenate([p_ns[keep], _ns(secondary["published_at"])])
        source = "primary+secondary"
    ok = np.isfinite(r)
    order = np.argsort(s_ns[ok], kind="stable")
    return FundingEvents(s_ns[ok][order], r[ok][order], p_ns[ok][order], source)


def load_funding(directory: Path) -> FundingEvents:
    """BitMEX then Binance funding from the shared folder (``SeriesFileError`` if unreadable)."""
    from common.exogenous.files import load_dir

    frames = load_dir(directory, SERIES)
    ev = from_frames(frames["funding_bitmex_8h"], frames["funding_binance_8h"])
    return FundingEvents(ev.settle_ns, ev.rate, ev.published_ns, "BitMEX XBTUSD 8h, then Binance BTCUSDT 8h")


@dataclass(frozen=True)
class BarFunding:
    """``per_bar[t]``: funding per unit exposure for holding over bar ``t`` (``per_bar[0] = 0``)."""

    per_bar: np.ndarray
    covered: np.ndarray  # bool: the real series applied (False: constant fallback)
    source: str


def bar_funding(index: pd.DatetimeIndex, events: FundingEvents | None, default_hourly: float) -> BarFunding:
    """Funding per bar for 1h bars indexed by open time (see the module doc for the rule)."""
    n = len(index)
    open_ns = pd.DatetimeIndex(index).asi8.astype(np.int64)
    close_ns = open_ns + HOUR_NS
    hours = np.ones(n)
    hours[1:] = np.diff(open_ns) / HOUR_NS
    fallback = default_hourly * hours
    fallback[0] = 0.0
    if events is None or len(events) == 0:
        return BarFunding(fallback, np.zeros(n, dtype=bool), f"constant {default_hourly:g}/h")
    # the rate charged at each settlement: latest one published at or before it
    pub_order = np.argsort(events.published_ns, kind="stable")
    pub_sorted = events.published_ns[pub_order]
    last_pub = np.searchsorted(pub_sorted, events.settle_ns, side="right") - 1
    charged = np.where(last_pub >= 0, events.rate[pub_order][np.maximum(last_pub, 0)], np.nan)
    # settlement s lands on the first bar whose close is >= s, held from the previous close
    bar = np.searchsorted(close_ns, events.settle_ns, side="left")
    inside = (bar >= 1) & (bar < n) & np.isfinite(charged)
    real = np.zeros(n)
    np.add.at(real, bar[inside], charged[inside])
    first, last = events.settle_ns[0], events.settle_ns[-1] + INTERVAL_NS
    covered = (close_ns - hours * HOUR_NS >= first - INTERVAL_NS) & (close_ns <= last)
    covered[0] = False
    return BarFunding(np.where(covered, real, fallback), covered, events.source)
