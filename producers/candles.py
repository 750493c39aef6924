"""The candle record every source produces, and the interface a source implements.

Sources hand back raw numbers exactly as received (possibly NaN, unordered, duplicated): judging
them is validation's job, so that every refusal is made in one place, with one vocabulary of reasons.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Protocol

from common.events import from_epoch_ms


@dataclass(frozen=True, slots=True)
class RawCandle:
    """One OHLCV bar as a source delivered it; ``open_time_ms`` is epoch milliseconds (UTC)."""

    open_time_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float

    @property
    def open_time(self) -> datetime:
        return from_epoch_ms(self.open_time_ms)

    def as_raw(self) -> dict[str, Any]:
        """The verbatim record kept in candle_rejections (NaN survives via the DB's JSON encoder)."""
        return asdict(self)

    def values(self) -> tuple[float, float, float, float, float]:
        return (self.open, self.high, self.low, self.close, self.volume)


class CandleSource(Protocol):
    """Anything that can list candles for a symbol and timeframe over ``[since, until)``."""

    #: Stored in ``candles.source`` so pruning and audits know where a row came from.
    name: str

    def fetch(
        self, symbol: str, timeframe: str, since: datetime, until: datetime, limit: int | None = None
    ) -> list[RawCandle]:
        """Candles with ``since <= open_time < until``, at most ``limit`` of them (None: all)."""
        ...
