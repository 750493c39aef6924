"""Deterministic ids for ticks and order intents.

Ids are derived from the data instead of drawn at random so that re-publishing a tick, or
re-running the meta consumer on the same tick, yields the same ids: downstream de-duplication
(executor refusing a second intent for one tick and model) depends on that.

Format (stable; changing it breaks de-duplication across a deploy, so do not):

* tick id:   ``<symbol>|<UTC time>``, e.g. ``BTC/USD:USD|2022-08-20T00:00Z``. The time is printed
  to the minute when the tick is minute-aligned (the normal case) and with seconds and
  milliseconds otherwise (``...T00:00:30.500Z``); the two shapes differ in length, so distinct
  instants never print alike.
* intent id: ``<tick id>|<model id>``.

The symbol may not contain ``|``, which makes both formats uniquely splittable (collision-free).
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta

SEPARATOR = "|"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MINUTE_FMT = "%Y-%m-%dT%H:%MZ"


def _utc_ms(value: datetime) -> datetime:
    """UTC, truncated to the millisecond (the precision every message carries)."""
    if not isinstance(value, datetime):
        raise TypeError(f"expected a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value.isoformat()} not allowed: pass a tz-aware UTC datetime")
    ms = (value - _EPOCH) // timedelta(milliseconds=1)
    return _EPOCH + timedelta(milliseconds=ms)


def format_tick_time(tick_time: datetime) -> str:
    """The time part of a tick id."""
    t = _utc_ms(tick_time)
    if t.second == 0 and t.microsecond == 0:
        return t.strftime(_MINUTE_FMT)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def _check_symbol(symbol: str) -> None:
    if not isinstance(symbol, str) or not symbol or SEPARATOR in symbol:
        raise ValueError(f"invalid symbol {symbol!r}: must be a non-empty string without {SEPARATOR!r}")


def make_tick_id(symbol: str, tick_time: datetime) -> str:
    """``"<symbol>|<UTC time>"``, e.g. ``"BTC/USD:USD|2022-08-20T00:00Z"``; see the module doc."""
    _check_symbol(symbol)
    return f"{symbol}{SEPARATOR}{format_tick_time(tick_time)}"


@functools.lru_cache(maxsize=4096)
def parse_tick_id(tick_id: str) -> tuple[str, datetime]:
    """Inverse of make_tick_id, for logs and replays that only kept the id.

    Cached: the meta consumer parses the same few live ids a dozen times per tick (joining,
    forgetting decided ticks) and ``strptime`` costs ~9 us a call; the result is immutable and an
    invalid id raises every time (exceptions are not cached).
    """
    symbol, sep, stamp = tick_id.partition(SEPARATOR)
    if not sep or not symbol or SEPARATOR in stamp:
        raise ValueError(f"invalid tick id {tick_id!r}: expected '<symbol>|<UTC time>'")
    for fmt in (_MINUTE_FMT, "%Y-%m-%dT%H:%M:%S.%fZ"):
        try:
            when = datetime.strptime(stamp, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
        if format_tick_time(when) == stamp:  # only the canonical spelling is an id
            return symbol, when
    raise ValueError(f"invalid tick id {tick_id!r}: time part {stamp!r} is not in canonical form")


def make_intent_id(tick_id: str, model_id: str) -> str:
    """``"<tick id>|<model id>"``: one intent per tick and model, so a replayed decision is a duplicate."""
    parse_tick_id(tick_id)
    if not isinstance(model_id, str) or not model_id:
        raise ValueError(f"invalid model id {model_id!r}: must be a non-empty string")
    return f"{tick_id}{SEPARATOR}{model_id}"
