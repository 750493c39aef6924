"""Python side of the Avro contracts in ``schemas/avro``: one frozen dataclass per message.

Why dataclasses and not raw dicts: every service gets the same validation at construction time
(tz-aware datetimes, enum symbols, value ranges), so a malformed message is refused by its
producer instead of surprising a consumer. ``to_dict`` yields exactly what fastavro writes for the
current schema; ``from_dict`` accepts what fastavro reads back (after schema resolution).

Times are tz-aware UTC ``datetime`` objects truncated to the millisecond, the precision Avro's
``timestamp-millis`` carries, so ``decode(encode(x)) == x`` holds exactly. Naive datetimes are
refused: a silently-local timestamp on a trading bus is a bug, not a convenience.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from itertools import pairwise
from types import MappingProxyType
from typing import Any, ClassVar, Self, TypeVar

from common.ids import make_intent_id, make_tick_id
from common.timeframes import parse_timeframe

__all__ = [
    "EVENT_TYPES",
    "BarClosed",
    "DeadLetter",
    "DueStrategy",
    "Event",
    "ExecutionReport",
    "ExecutionStatus",
    "ExogenousFrame",
    "IntentAction",
    "Order",
    "OrderIntent",
    "OrderSide",
    "Recommendation",
    "SignalEvent",
    "Target",
    "TickPlan",
    "event_type_for",
    "from_epoch_ms",
    "to_epoch_ms",
    "utc",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_E = TypeVar("_E", bound=StrEnum)


# --------------------------------------------------------------------------- enums


class Target(StrEnum):
    """Position a strategy would hold on its own."""

    LONG = "LONG"
    SHORT = "SHORT"
    FLAT = "FLAT"


class SignalEvent(StrEnum):
    """Signal that fired on the bar (NONE when nothing did)."""

    ENTER_LONG = "ENTER_LONG"
    EXIT_LONG = "EXIT_LONG"
    ENTER_SHORT = "ENTER_SHORT"
    EXIT_SHORT = "EXIT_SHORT"
    NONE = "NONE"


class IntentAction(StrEnum):
    """The meta policy's discrete action set."""

    HOLD = "HOLD"
    INCREASE = "INCREASE"
    DECREASE = "DECREASE"
    FLAT = "FLAT"
    REVERSE = "REVERSE"


class ExecutionStatus(StrEnum):
    """Outcome of one intent at the executor."""

    FILLED = "FILLED"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    NOOP = "NOOP"
    REFUSED = "REFUSED"
    REJECTED = "REJECTED"
    ERROR = "ERROR"


class OrderSide(StrEnum):
    """Order side."""

    BUY = "BUY"
    SELL = "SELL"


# --------------------------------------------------------------------------- helpers


def utc(value: datetime | int, what: str = "datetime") -> datetime:
    """Normalise to a tz-aware UTC datetime truncated to the millisecond.

    Accepts epoch milliseconds too, because that is what fastavro's data generator and some
    producers (pandas ``asi8 // 10**6``) hand us. Truncation (not rounding) matches what Avro
    stores, so normalising twice is a no-op.
    """
    if type(value) is datetime and value.tzinfo is UTC and not value.microsecond % 1000:
        return value  # fast path: what fastavro decodes, already normalised
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(
                f"{what}: naive datetime {value.isoformat()} not allowed; use a tz-aware UTC datetime"
            )
        return _EPOCH + ((value - _EPOCH) // _MS) * _MS
    if isinstance(value, int) and not isinstance(value, bool):
        return _EPOCH + value * _MS
    raise TypeError(f"{what}: expected a tz-aware datetime or epoch milliseconds, got {type(value).__name__}")


def to_epoch_ms(value: datetime) -> int:
    """Epoch milliseconds of a tz-aware datetime (for DataFrames and DB columns)."""
    return (utc(value) - _EPOCH) // _MS


def from_epoch_ms(ms: int) -> datetime:
    """Inverse of to_epoch_ms."""
    return _EPOCH + ms * _MS


def _enum(cls: type[_E], value: Any, what: str) -> _E:
    try:
        return cls(value)
    except ValueError:
        allowed = ", ".join(m.value for m in cls)
        raise ValueError(f"{what}: {value!r} is not one of {allowed}") from None


def _str(value: Any, what: str, *, empty_ok: bool = True) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what}: expected str, got {type(value).__name__}")
    if not empty_ok and not value:
        raise ValueError(f"{what}: must not be empty")
    return value


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what}: expected int, got {type(value).__name__}")
    return value


def _float(value: Any, what: str, *, finite: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{what}: expected a number, got {type(value).__name__}")
    out = float(value)
    if finite and not math.isfinite(out):
        raise ValueError(f"{what}: must be finite, got {out!r}")
    return out


def _floats(values: Iterable[Any], what: str) -> tuple[float, ...]:
    return tuple(v if type(v) is float else _float(v, what) for v in values)


def _set(obj: object, name: str, value: Any) -> None:
    """Normalise a field of a frozen dataclass in __post_init__."""
    object.__setattr__(obj, name, value)


class Event(ABC):
    """Base of every top-level message type: carries its Avro full name and its dict mapping."""

    __slots__ = ()
    SCHEMA_NAME: ClassVar[str]

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """The Avro record for this event (what the serde writes)."""

    @classmethod
    @abstractmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Build the event from a decoded Avro record."""


# --------------------------------------------------------------------------- TickPlan


@dataclass(frozen=True, slots=True)
class DueStrategy:
    """A strategy the meta consumer must wait for at a tick."""

    name: str
    version: str
    timeframe: str

    def __post_init__(self) -> None:
        _str(self.name, "DueStrategy.name", empty_ok=False)
        _str(self.version, "DueStrategy.version", empty_ok=False)
        parse_timeframe(self.timeframe)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "timeframe": self.timeframe}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DueStrategy:
        return cls(name=data["name"], version=data["version"], timeframe=data["timeframe"])


@dataclass(frozen=True, slots=True)
class TickPlan(Event):
    """What is due at one tick; published before the bars so the join knows what to expect."""

    SCHEMA_NAME: ClassVar[str] = "btcmeta.TickPlan"

    tick_id: str
    symbol: str
    tick_time: datetime
    due_timeframes: tuple[str, ...]
    due_strategies: tuple[DueStrategy, ...]
    deadline: datetime
    published_at: datetime
    namespace: str = ""

    def __post_init__(self) -> None:
        _str(self.tick_id, "TickPlan.tick_id", empty_ok=False)
        _str(self.symbol, "TickPlan.symbol", empty_ok=False)
        _str(self.namespace, "TickPlan.namespace")
        _set(self, "tick_time", utc(self.tick_time, "TickPlan.tick_time"))
        _set(self, "deadline", utc(self.deadline, "TickPlan.deadline"))
        _set(self, "published_at", utc(self.published_at, "TickPlan.published_at"))
        tfs = tuple(self.due_timeframes)
        for tf in tfs:
            parse_timeframe(tf)
        _set(self, "due_timeframes", tfs)
        due = tuple(self.due_strategies)
        for d in due:
            if not isinstance(d, DueStrategy):
                raise TypeError(f"TickPlan.due_strategies: expected DueStrategy, got {type(d).__name__}")
        _set(self, "due_strategies", due)

    @classmethod
    def create(
        cls,
        symbol: str,
        tick_time: datetime,
        due_strategies: Iterable[DueStrategy],
        deadline: datetime,
        published_at: datetime,
        namespace: str = "",
    ) -> TickPlan:
        """Build a plan with its deterministic tick id and due timeframes derived from the strategies."""
        due = tuple(due_strategies)
        tfs = tuple(sorted({d.timeframe for d in due}, key=lambda tf: (parse_timeframe(tf), tf)))
        return cls(
            tick_id=make_tick_id(symbol, tick_time),
            symbol=symbol,
            tick_time=tick_time,
            due_timeframes=tfs,
            due_strategies=due,
            deadline=deadline,
            published_at=published_at,
            namespace=namespace,
        )

    @property
    def expected_strategies(self) -> frozenset[str]:
        """Names the meta consumer waits for."""
        return frozenset(d.name for d in self.due_strategies)

    def to_dict(self) -> dict[str, Any]:
        return {
            "tick_id": self.tick_id,
            "symbol": self.symbol,
            "tick_time": self.tick_time,
            "due_timeframes": list(self.due_timeframes),
            "due_strategies": [d.to_dict() for d in self.due_strategies],
            "deadline": self.deadline,
            "published_at": self.published_at,
            "namespace": self.namespace,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TickPlan:
        return cls(
            tick_id=data["tick_id"],
            symbol=data["symbol"],
            tick_time=data["tick_time"],
            due_timeframes=tuple(data["due_timeframes"]),
            due_strategies=tuple(DueStrategy.from_dict(d) for d in data["due_strategies"]),
            deadline=data["deadline"],
            published_at=data["published_at"],
            namespace=data.get("namespace", ""),
        )


# --------------------------------------------------------------------------- BarClosed


@dataclass(frozen=True, slots=True)
class ExogenousFrame:
    """One exogenous series as a BarClosed carries it: observations cut at the tick, columnar.

    Times are epoch milliseconds (UTC) rather than datetimes: a window can hold hundreds of news
    items and the consumers turn them into numpy arrays anyway. ``numbers`` and ``texts`` are
    (column, values) pairs in catalog order, one value per observation.
    """

    series: str
    about_ts: tuple[int, ...]
    published_at: tuple[int, ...]
    numbers: tuple[tuple[str, tuple[float, ...]], ...] = ()
    texts: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def __post_init__(self) -> None:
        _str(self.series, "ExogenousFrame.series", empty_ok=False)
        about = tuple(_int(v, "ExogenousFrame.about_ts") for v in self.about_ts)
        published = tuple(_int(v, "ExogenousFrame.published_at") for v in self.published_at)
        n = len(about)
        if len(published) != n:
            raise ValueError(f"ExogenousFrame {self.series}: {len(published)} published_at but {n} about_ts")
        # Sorted by publication: a reader cuts "known at t" with one binary search.
        if any(cur < prev for prev, cur in pairwise(published)):
            raise ValueError(f"ExogenousFrame {self.series}: published_at is not non-decreasing")
        numbers = tuple(
            (_str(c, "ExogenousFrame column"), _floats(v, f"ExogenousFrame {self.series}.{c}"))
            for c, v in self.numbers
        )
        texts = tuple(
            (_str(c, "ExogenousFrame column"), tuple(_str(x, f"ExogenousFrame {self.series}.{c}") for x in v))
            for c, v in self.texts
        )
        for c, v in (*numbers, *texts):
            if len(v) != n:
                raise ValueError(f"ExogenousFrame {self.series}.{c}: {len(v)} values but {n} observations")
        names = [c for c, _ in (*numbers, *texts)]
        if len(set(names)) != len(names):
            raise ValueError(f"ExogenousFrame {self.series}: duplicate column in {names}")
        _set(self, "about_ts", about)
        _set(self, "published_at", published)
        _set(self, "numbers", numbers)
        _set(self, "texts", texts)

    def __len__(self) -> int:
        return len(self.about_ts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "series": self.series,
            "about_ts": list(self.about_ts),
            "published_at": list(self.published_at),
            "numbers": [{"column": c, "values": list(v)} for c, v in self.numbers],
            "texts": [{"column": c, "values": list(v)} for c, v in self.texts],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExogenousFrame:
        return cls(
            series=data["series"],
            about_ts=tuple(data["about_ts"]),
            published_at=tuple(data["published_at"]),
            numbers=tuple((d["column"], tuple(d["values"])) for d in data.get("numbers", ())),
            texts=tuple((d["column"], tuple(d["values"])) for d in data.get("texts", ())),
        )


@dataclass(frozen=True, slots=True)
class BarClosed(Event):
    """A closed bar plus the OHLCV window a strategy needs, columnar and oldest first."""

    SCHEMA_NAME: ClassVar[str] = "btcmeta.BarClosed"
    _COLUMNS: ClassVar[tuple[str, ...]] = ("open", "high", "low", "close", "volume")

    tick_id: str
    symbol: str
    timeframe: str
    bar_open_time: datetime
    open_time: tuple[datetime, ...]
    open: tuple[float, ...]
    high: tuple[float, ...]
    low: tuple[float, ...]
    close: tuple[float, ...]
    volume: tuple[float, ...]
    #: Exogenous inputs of the strategies due on this timeframe, cut at the tick (added in v2).
    exogenous: tuple[ExogenousFrame, ...] = ()
    #: v3: -1 for a keyframe (the arrays are the whole window); else a continuation, whose chain
    #: starts at the keyframe at this offset of the topic partition (``common.bar_stream``).
    keyframe_offset: int = -1
    #: v3: in a continuation, the tick_id of the message whose window this one continues.
    prev_tick_id: str = ""
    #: v3: the whole window's first open time (epoch ms), bar count and CRC-32 (0 before v3).
    window_start: int = 0
    window_bars: int = 0
    window_crc: int = 0

    def __post_init__(self) -> None:
        _str(self.tick_id, "BarClosed.tick_id", empty_ok=False)
        _str(self.prev_tick_id, "BarClosed.prev_tick_id")
        for name in ("keyframe_offset", "window_start", "window_bars", "window_crc"):
            _int(getattr(self, name), f"BarClosed.{name}")
        if self.keyframe_offset < -1 or self.window_bars < 0:
            raise ValueError("BarClosed: keyframe_offset must be >= -1 and window_bars >= 0")
        if self.keyframe_offset >= 0 and not self.prev_tick_id:
            raise ValueError("BarClosed: a continuation (keyframe_offset >= 0) needs prev_tick_id")
        _str(self.symbol, "BarClosed.symbol", empty_ok=False)
        parse_timeframe(self.timeframe)
        _set(self, "bar_open_time", utc(self.bar_open_time, "BarClosed.bar_open_time"))
        times = tuple(utc(t, "BarClosed.open_time") for t in self.open_time)
        _set(self, "open_time", times)
        n = len(times)
        for col in self._COLUMNS:
            values = _floats(getattr(self, col), f"BarClosed.{col}")
            if len(values) != n:
                raise ValueError(f"BarClosed.{col}: {len(values)} values but {n} open times")
            _set(self, col, values)
        # Oldest first, no duplicates: consumers index the window positionally.
        for prev, cur in pairwise(times):
            if cur <= prev:
                raise ValueError(f"BarClosed.open_time: not strictly increasing at {cur.isoformat()}")
        if times and times[-1] != self.bar_open_time:
            raise ValueError(
                f"BarClosed.bar_open_time {self.bar_open_time.isoformat()} is not the last open_time "
                f"{times[-1].isoformat()}"
            )
        frames = tuple(self.exogenous)
        if not all(isinstance(f, ExogenousFrame) for f in frames):
            raise TypeError("BarClosed.exogenous: expected ExogenousFrame items")
        names = [f.series for f in frames]
        if len(set(names)) != len(names):
            raise ValueError(f"BarClosed.exogenous: duplicate series in {names}")
        _set(self, "exogenous", frames)

    def __len__(self) -> int:
        return len(self.open_time)

    def to_dict(self) -> dict[str, Any]:
        return {
            "tick_id": self.tick_id,
            "symbol": self.symbol,
            "timeframe": self.timeframe,
            "bar_open_time": self.bar_open_time,
            "open_time": list(self.open_time),
            "open": list(self.open),
            "high": list(self.high),
            "low": list(self.low),
            "close": list(self.close),
            "volume": list(self.volume),
            "exogenous": [f.to_dict() for f in self.exogenous],
            "keyframe_offset": self.keyframe_offset,
            "prev_tick_id": self.prev_tick_id,
            "window_start": self.window_start,
            "window_bars": self.window_bars,
            "window_crc": self.window_crc,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BarClosed:
        return cls(
            tick_id=data["tick_id"],
            symbol=data["symbol"],
            timeframe=data["timeframe"],
            bar_open_time=data["bar_open_time"],
            open_time=tuple(data["open_time"]),
            open=tuple(data["open"]),
            high=tuple(data["high"]),
            low=tuple(data["low"]),
            close=tuple(data["close"]),
            volume=tuple(data["volume"]),
            exogenous=tuple(ExogenousFrame.from_dict(f) for f in data.get("exogenous", ())),
            keyframe_offset=data.get("keyframe_offset", -1),
            prev_tick_id=data.get("prev_tick_id", ""),
            window_start=data.get("window_start", 0),
            window_bars=data.get("window_bars", 0),
            window_crc=data.get("window_crc", 0),
        )

    @property
    def is_keyframe(self) -> bool:
        """The arrays are the whole window (every message before v3 is one)."""
        return self.keyframe_offset < 0


# --------------------------------------------------------------------------- Recommendation


@dataclass(frozen=True, slots=True)
class Recommendation(Event):
    """One strategy's output for one bar (the unified strategy output of the design)."""

    SCHEMA_NAME: ClassVar[str] = "btcmeta.Recommendation"

    tick_id: str
    strategy: str
    strategy_version: str
    symbol: str
    timeframe: str
    bar_close_time: datetime
    target: Target
    event: SignalEvent
    confidence: float
    horizon_bars: int
    produced_at: datetime
    indicators: Mapping[str, float] = field(default_factory=dict)
    #: Why the strategy has no opinion on this bar ("stale:funding_binance_8h"); "" otherwise (v3).
    reason: str = ""
    #: A news-related high-attention bar (True/False); None when the strategy does not say (v3).
    attention: bool | None = None

    def __post_init__(self) -> None:
        _str(self.tick_id, "Recommendation.tick_id", empty_ok=False)
        _str(self.reason, "Recommendation.reason")
        if self.attention is not None and not isinstance(self.attention, bool):
            got = type(self.attention).__name__
            raise TypeError(f"Recommendation.attention: expected bool or None, got {got}")
        _str(self.strategy, "Recommendation.strategy", empty_ok=False)
        _str(self.strategy_version, "Recommendation.strategy_version", empty_ok=False)
        _str(self.symbol, "Recommendation.symbol", empty_ok=False)
        parse_timeframe(self.timeframe)
        _set(self, "bar_close_time", utc(self.bar_close_time, "Recommendation.bar_close_time"))
        _set(self, "produced_at", utc(self.produced_at, "Recommendation.produced_at"))
        _set(self, "target", _enum(Target, self.target, "Recommendation.target"))
        _set(self, "event", _enum(SignalEvent, self.event, "Recommendation.event"))
        conf = _float(self.confidence, "Recommendation.confidence")
        if not 0.0 <= conf <= 1.0:  # also refuses NaN
            raise ValueError(f"Recommendation.confidence: {conf!r} is not in [0, 1]")
        _set(self, "confidence", conf)
        horizon = _int(self.horizon_bars, "Recommendation.horizon_bars")
        if horizon < 0:
            raise ValueError(f"Recommendation.horizon_bars: {horizon} is negative")
        ind = {
            _str(k, "Recommendation.indicators key"): _float(v, f"Recommendation.indicators[{k!r}]")
            for k, v in dict(self.indicators).items()
        }
        _set(self, "indicators", MappingProxyType(ind))

    def to_dict(self) -> dict[str, Any]:
        return {
            "tick_id": self.tick_id,
            "strategy": self.strategy,
            "strategy_version": self.strategy_version,
            "symbol": self.symbol,
            "timeframe": self.timeframe,
            "bar_close_time": self.bar_close_time,
            "target": self.target.value,
            "event": self.event.value,
            "confidence": self.confidence,
            "horizon_bars": self.horizon_bars,
            "indicators": dict(self.indicators),
            "produced_at": self.produced_at,
            "reason": self.reason,
            "attention": self.attention,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Recommendation:
        return cls(
            tick_id=data["tick_id"],
            strategy=data["strategy"],
            strategy_version=data["strategy_version"],
            symbol=data["symbol"],
            timeframe=data["timeframe"],
            bar_close_time=data["bar_close_time"],
            target=data["target"],
            event=data["event"],
            confidence=data["confidence"],
            horizon_bars=data["horizon_bars"],
            indicators=data.get("indicators", {}),
            produced_at=data["produced_at"],
            reason=data.get("reason", ""),
            attention=data.get("attention"),
        )


# --------------------------------------------------------------------------- OrderIntent


@dataclass(frozen=True, slots=True)
class OrderIntent(Event):
    """The meta policy's decision for one tick, before risk limits."""

    SCHEMA_NAME: ClassVar[str] = "btcmeta.OrderIntent"

    intent_id: str
    tick_id: str
    model_id: str
    symbol: str
    action: IntentAction
    current_exposure: float
    target_exposure: float
    created_at: datetime
    degraded: bool = False
    reason: str = ""

    def __post_init__(self) -> None:
        _str(self.intent_id, "OrderIntent.intent_id", empty_ok=False)
        _str(self.tick_id, "OrderIntent.tick_id", empty_ok=False)
        _str(self.model_id, "OrderIntent.model_id", empty_ok=False)
        _str(self.symbol, "OrderIntent.symbol", empty_ok=False)
        _str(self.reason, "OrderIntent.reason")
        _set(self, "action", _enum(IntentAction, self.action, "OrderIntent.action"))
        # Exposures are not clamped here: limits belong to the executor, which must see what was asked.
        for name in ("current_exposure", "target_exposure"):
            _set(self, name, _float(getattr(self, name), f"OrderIntent.{name}", finite=True))
        if not isinstance(self.degraded, bool):
            raise TypeError(f"OrderIntent.degraded: expected bool, got {type(self.degraded).__name__}")
        _set(self, "created_at", utc(self.created_at, "OrderIntent.created_at"))

    @classmethod
    def create(
        cls,
        tick_id: str,
        model_id: str,
        symbol: str,
        action: IntentAction | str,
        current_exposure: float,
        target_exposure: float,
        created_at: datetime,
        degraded: bool = False,
        reason: str = "",
    ) -> OrderIntent:
        """Build an intent with its deterministic id (tick + model)."""
        return cls(
            intent_id=make_intent_id(tick_id, model_id),
            tick_id=tick_id,
            model_id=model_id,
            symbol=symbol,
            action=IntentAction(action),
            current_exposure=current_exposure,
            target_exposure=target_exposure,
            created_at=created_at,
            degraded=degraded,
            reason=reason,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "intent_id": self.intent_id,
            "tick_id": self.tick_id,
            "model_id": self.model_id,
            "symbol": self.symbol,
            "action": self.action.value,
            "current_exposure": self.current_exposure,
            "target_exposure": self.target_exposure,
            "degraded": self.degraded,
            "reason": self.reason,
            "created_at": self.created_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OrderIntent:
        return cls(
            intent_id=data["intent_id"],
            tick_id=data["tick_id"],
            model_id=data["model_id"],
            symbol=data["symbol"],
            action=data["action"],
            current_exposure=data["current_exposure"],
            target_exposure=data["target_exposure"],
            degraded=data.get("degraded", False),
            reason=data.get("reason", ""),
            created_at=data["created_at"],
        )


# --------------------------------------------------------------------------- ExecutionReport


@dataclass(frozen=True, slots=True)
class Order:
    """One order placed for an intent, with its (average) fill."""

    client_order_id: str
    side: OrderSide
    quantity: float
    price: float
    fee: float
    filled_at: datetime

    def __post_init__(self) -> None:
        _str(self.client_order_id, "Order.client_order_id", empty_ok=False)
        _set(self, "side", _enum(OrderSide, self.side, "Order.side"))
        qty = _float(self.quantity, "Order.quantity", finite=True)
        if qty < 0:
            raise ValueError(f"Order.quantity: {qty!r} is negative; the side carries the direction")
        _set(self, "quantity", qty)
        _set(self, "price", _float(self.price, "Order.price", finite=True))
        _set(self, "fee", _float(self.fee, "Order.fee", finite=True))
        _set(self, "filled_at", utc(self.filled_at, "Order.filled_at"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "client_order_id": self.client_order_id,
            "side": self.side.value,
            "quantity": self.quantity,
            "price": self.price,
            "fee": self.fee,
            "filled_at": self.filled_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Order:
        return cls(
            client_order_id=data["client_order_id"],
            side=data["side"],
            quantity=data["quantity"],
            price=data["price"],
            fee=data["fee"],
            filled_at=data["filled_at"],
        )


@dataclass(frozen=True, slots=True)
class ExecutionReport(Event):
    """What the executor did with one intent."""

    SCHEMA_NAME: ClassVar[str] = "btcmeta.ExecutionReport"

    intent_id: str
    tick_id: str
    status: ExecutionStatus
    reason: str
    orders: tuple[Order, ...]
    position_after: float
    exchange: str
    reported_at: datetime

    def __post_init__(self) -> None:
        _str(self.intent_id, "ExecutionReport.intent_id", empty_ok=False)
        _str(self.tick_id, "ExecutionReport.tick_id", empty_ok=False)
        _str(self.reason, "ExecutionReport.reason")
        _str(self.exchange, "ExecutionReport.exchange", empty_ok=False)
        _set(self, "status", _enum(ExecutionStatus, self.status, "ExecutionReport.status"))
        orders = tuple(self.orders)
        for o in orders:
            if not isinstance(o, Order):
                raise TypeError(f"ExecutionReport.orders: expected Order, got {type(o).__name__}")
        _set(self, "orders", orders)
        position = _float(self.position_after, "ExecutionReport.position_after", finite=True)
        _set(self, "position_after", position)
        _set(self, "reported_at", utc(self.reported_at, "ExecutionReport.reported_at"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "intent_id": self.intent_id,
            "tick_id": self.tick_id,
            "status": self.status.value,
            "reason": self.reason,
            "orders": [o.to_dict() for o in self.orders],
            "position_after": self.position_after,
            "exchange": self.exchange,
            "reported_at": self.reported_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExecutionReport:
        return cls(
            intent_id=data["intent_id"],
            tick_id=data["tick_id"],
            status=data["status"],
            reason=data["reason"],
            orders=tuple(Order.from_dict(o) for o in data["orders"]),
            position_after=data["position_after"],
            exchange=data["exchange"],
            reported_at=data["reported_at"],
        )


# --------------------------------------------------------------------------- DeadLetter


@dataclass(frozen=True, slots=True)
class DeadLetter(Event):
    """A message a service gave up on, kept byte-for-byte for inspection and replay."""

    SCHEMA_NAME: ClassVar[str] = "btcmeta.DeadLetter"

    original_topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: Mapping[str, bytes]
    reason: str
    error_type: str
    service: str
    failed_at: datetime

    def __post_init__(self) -> None:
        _str(self.original_topic, "DeadLetter.original_topic", empty_ok=False)
        _int(self.partition, "DeadLetter.partition")
        _int(self.offset, "DeadLetter.offset")
        if self.key is not None:
            if not isinstance(self.key, bytes | bytearray | memoryview):
                raise TypeError(f"DeadLetter.key: expected bytes or None, got {type(self.key).__name__}")
            _set(self, "key", bytes(self.key))
        if not isinstance(self.value, bytes | bytearray | memoryview):
            raise TypeError(f"DeadLetter.value: expected bytes, got {type(self.value).__name__}")
        _set(self, "value", bytes(self.value))
        headers: dict[str, bytes] = {}
        for k, v in dict(self.headers).items():
            _str(k, "DeadLetter.headers key")
            if not isinstance(v, bytes | bytearray | memoryview):
                raise TypeError(f"DeadLetter.headers[{k!r}]: expected bytes, got {type(v).__name__}")
            headers[k] = bytes(v)
        _set(self, "headers", MappingProxyType(headers))
        _str(self.reason, "DeadLetter.reason")
        _str(self.error_type, "DeadLetter.error_type")
        _str(self.service, "DeadLetter.service", empty_ok=False)
        _set(self, "failed_at", utc(self.failed_at, "DeadLetter.failed_at"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "original_topic": self.original_topic,
            "partition": self.partition,
            "offset": self.offset,
            "key": self.key,
            "value": self.value,
            "headers": dict(self.headers),
            "reason": self.reason,
            "error_type": self.error_type,
            "service": self.service,
            "failed_at": self.failed_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeadLetter:
        return cls(
            original_topic=data["original_topic"],
            partition=data["partition"],
            offset=data["offset"],
            key=data.get("key"),
            value=data["value"],
            headers=data["headers"],
            reason=data["reason"],
            error_type=data["error_type"],
            service=data["service"],
            failed_at=data["failed_at"],
        )


#: Every top-level message type, in pipeline order.
EVENT_TYPES: tuple[type[Event], ...] = (
    TickPlan,
    BarClosed,
    Recommendation,
    OrderIntent,
    ExecutionReport,
    DeadLetter,
)
_BY_NAME: dict[str, type[Event]] = {t.SCHEMA_NAME: t for t in EVENT_TYPES}


def event_type_for(schema_name: str) -> type[Event]:
    """The dataclass for an Avro full name ("btcmeta.TickPlan" -> TickPlan)."""
    try:
        return _BY_NAME[schema_name]
    except KeyError:
        raise KeyError(f"no event type for schema {schema_name!r}") from None
