"""Market data for the chart: candles at any timeframe, resampled from what is stored."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.exceptions import RequestValidationError

from bridge.candles import resample, source_timeframe
from bridge.dependencies import DbSession, State
from bridge.schemas import IDENT, CandlesOut
from common.timeframes import format_timeframe, parse_timeframe

router = APIRouter(tags=["market"])

#: Longest bar served: a week; beyond that a chart is better drawn from daily bars.
MAX_TIMEFRAME_MINUTES = 7 * 24 * 60


@router.get("/candles", response_model=CandlesOut, summary="OHLCV bars resampled from the base candles")
def candles(
    session: DbSession,
    state: State,
    timeframe: Annotated[str, Query(pattern=r"^[1-9][0-9]{0,3}[mhd]$", description="15m, 1h, 4h...")] = "1h",
    symbol: Annotated[str | None, Query(max_length=64, pattern=IDENT)] = None,
    start: Annotated[datetime | None, Query(description="Inclusive; default: `limit` bars.")] = None,
    end: Annotated[datetime | None, Query(description="Exclusive; default: after the newest candle.")] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> CandlesOut:
    minutes = parse_timeframe(timeframe)
    if minutes > MAX_TIMEFRAME_MINUTES:
        # Same 422 shape as any other invalid parameter, so clients parse one error format.
        raise RequestValidationError(
            [{"loc": ("query", "timeframe"), "msg": "timeframe longer than 7d", "type": "value_error"}]
        )
    symbol = symbol or state.settings.symbol
    tf = format_timeframe(minutes)
    source = source_timeframe(session, symbol, minutes, state.settings.min_timeframe)
    if source is None:
        return CandlesOut(symbol=symbol, timeframe=tf, source_timeframe=None, candles=[])
    bars = resample(session, symbol=symbol, minutes=minutes, source=source, start=start, end=end, limit=limit)
    return CandlesOut(symbol=symbol, timeframe=tf, source_timeframe=source, candles=bars)
