"""Fuzz every consumer's way in: random bytes and schema-valid nonsense.

Two kinds of input, into each decoder the services use (``common.serde.decode`` for every event
type, the strategies' array bar decoder, the meta consumer's decode + handler entry, the
executor's decode + poison check):

* random bytes, bare or behind a real header (magic + a fingerprint we know or do not know);
* "schema-valid nonsense": bodies that ARE valid Avro for a shipped writer schema (current or
  kept history), with absurd values: any text (control characters included), NaN and infinities,
  the whole int64 range for times, empty and oversized arrays.

The property: a rejection is always a ``SerdeError`` (dead-lettered by the loop) or a
``PoisonMessage`` (dead-lettered by the handler) -- never another exception type, which would stop
a ``OnError.STOP`` loop on every restart -- and an intent the executor accepts is one it can book
(parseable tick, derived id, finite numbers) whose plan stays within the risk limits.
"""

from __future__ import annotations

import contextlib
import io
import math
from datetime import UTC, datetime, timedelta
from typing import Any

from fastavro import schemaless_writer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common import serde, serde_bars
from common.events import EVENT_TYPES, OrderIntent, Recommendation, TickPlan
from common.ids import make_intent_id, make_tick_id, parse_tick_id
from common.kafka.consumer import PoisonMessage, nul_field
from config import RiskLimits, Settings, load_settings
from executor.risk import Book, RiskEngine, RiskState
from executor.validate import check_intent

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SYMBOL = "BTC/USD:USD"
SCHEMAS = serde.shipped_schemas()
KNOWN_FPS = sorted({sv.fingerprint for sv in SCHEMAS})
EXPECTED: list[type[Any] | None] = [None, *EVENT_TYPES]

# ---------------------------------------------------------------------------- Avro -> strategy

_INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
_DOUBLES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1e308, -1e308, 5e-324, math.nan, math.inf, -math.inf]),
)
_TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", "\x00", "|", "BTC/USD:USD", "BTC/USD:USD|", "fallback:majority_vote", "operator"]),
)


def avro_values(schema: Any) -> st.SearchStrategy[Any]:
    """Any value the (parsed-as-JSON) Avro ``schema`` can encode, absurd ones favoured."""
    if isinstance(schema, list):
        return st.one_of([avro_values(branch) for branch in schema])
    if isinstance(schema, str):
        return {
            "null": st.none(),
            "boolean": st.booleans(),
            "int": st.integers(min_value=-(2**31), max_value=2**31 - 1),
            "long": _INT64,
            "double": _DOUBLES,
            "float": _DOUBLES,
            "string": _TEXT,
            "bytes": st.binary(max_size=40),
        }[schema]
    kind = schema["type"]
    if kind == "record":
        return st.fixed_dictionaries({f["name"]: avro_values(f["type"]) for f in schema["fields"]})
    if kind == "enum":
        return st.sampled_from(schema["symbols"])
    if kind == "array":
        return st.lists(avro_values(schema["items"]), max_size=12)
    if kind == "map":
        return st.dictionaries(_TEXT, avro_values(schema["values"]), max_size=4)
    if schema.get("logicalType") == "timestamp-millis":
        return _INT64  # fastavro writes ints as they are: the whole range, far past datetime's
    return avro_values(kind)


def encode_with(sv: serde.SchemaVersion, record: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    buf.write(serde.MAGIC + sv.fingerprint)
    schemaless_writer(buf, sv.parsed, record)
    return buf.getvalue()


@st.composite
def schema_valid_nonsense(draw: st.DrawFn) -> tuple[serde.SchemaVersion, bytes]:
    sv = draw(st.sampled_from(SCHEMAS))
    return sv, encode_with(sv, draw(avro_values(sv.raw)))


# ---------------------------------------------------------------------------- generic decoder


def _decode_each(data: bytes) -> None:
    """Every decoder a consumer may use: only SerdeError or a value of the asked type."""
    for expected in EXPECTED:
        try:
            event = serde.decode(data, expected)
        except serde.SerdeError:
            continue
        assert expected is None or isinstance(event, expected)
    try:
        window = serde_bars.decode_bar_window(data)
    except serde.SerdeError:
        return
    assert window.SCHEMA_NAME == "btcmeta.BarClosed"


@FUZZ
@given(st.binary(max_size=400))
def test_random_bytes_are_only_serde_errors(data: bytes) -> None:
    _decode_each(data)


@FUZZ
@given(st.one_of(st.sampled_from(KNOWN_FPS), st.binary(min_size=8, max_size=8)), st.binary(max_size=400))
def test_random_body_behind_a_real_header(fp: bytes, body: bytes) -> None:
    _decode_each(serde.MAGIC + fp + body)


@FUZZ
@given(st.binary(min_size=8, max_size=8).filter(lambda fp: fp not in KNOWN_FPS), st.binary(max_size=64))
def test_unknown_fingerprint_is_an_unknown_schema_error(fp: bytes, body: bytes) -> None:
    """The one rejection a loop may wait on (instead of dead-lettering) names its fingerprint."""
    try:
        serde.decode(serde.MAGIC + fp + body)
    except serde.UnknownSchema as exc:
        assert exc.fingerprint == fp
    else:
        raise AssertionError("an unknown fingerprint decoded")


@FUZZ
@given(schema_valid_nonsense())
def test_schema_valid_nonsense_is_an_event_or_a_serde_error(case: tuple[serde.SchemaVersion, bytes]) -> None:
    sv, data = case
    try:
        event = serde.decode(data)
    except serde.SerdeError as exc:
        assert not isinstance(exc, serde.UnknownSchema), "a shipped schema must never read as unknown"
        return
    assert sv.name == event.SCHEMA_NAME
    where = nul_field(event)  # the loop's last check before any handler: text Postgres can store
    assert where is None or isinstance(where, str)
    _decode_each(data)


# ---------------------------------------------------------------------------- meta consumer entry


def _meta_handler(settings: Settings) -> Any:
    """The meta consumer's real ``handle`` with only the state it touches (no DB, no Kafka)."""
    from meta_consumer.service import MetaConsumer

    meta = MetaConsumer.__new__(MetaConsumer)
    meta.settings = settings
    meta._batch_recs = []
    meta._batch_plans = []
    return meta


META_SETTINGS = load_settings()
META_SCHEMAS = [sv for sv in SCHEMAS if sv.name in (TickPlan.SCHEMA_NAME, Recommendation.SCHEMA_NAME)]


@FUZZ
@given(st.sampled_from(META_SCHEMAS).flatmap(lambda sv: avro_values(sv.raw).map(lambda r: (sv, r))))
def test_meta_consumer_decode_and_handle(case: tuple[serde.SchemaVersion, dict[str, Any]]) -> None:
    sv, record = case
    meta = _meta_handler(META_SETTINGS)
    try:
        event = serde.decode(encode_with(sv, record))
        if nul_field(event) is not None:
            return  # dead-lettered by the loop before the handler (Postgres cannot store it)
        meta.handle(event, None)
    except (serde.SerdeError, PoisonMessage):
        return
    collected = [*meta._batch_recs, *meta._batch_plans]
    assert all(e.symbol == META_SETTINGS.symbol and nul_field(e) is None for e in collected)


@FUZZ
@given(st.binary(max_size=300))
def test_meta_consumer_random_bytes(data: bytes) -> None:
    meta = _meta_handler(META_SETTINGS)
    with contextlib.suppress(serde.SerdeError, PoisonMessage):
        meta.handle(serde.decode(data), None)


# ---------------------------------------------------------------------------- executor entry

LIMITS = RiskLimits(max_position_btc=1.0, max_order_btc=0.5, daily_loss_cap_usd=500.0, max_orders_per_hour=20)
NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
_TICK_TIMES = st.one_of(
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)),
    st.integers(min_value=-600, max_value=600).map(lambda m: NOW + timedelta(minutes=m)),
)


@st.composite
def intent_records(draw: st.DrawFn) -> dict[str, Any]:
    """OrderIntent bodies: sometimes well-formed ids (so the risk path is reached), else anything."""
    sv = serde.load_schema_set().get(OrderIntent.SCHEMA_NAME)
    record: dict[str, Any] = draw(avro_values(sv.raw))
    if draw(st.booleans()):
        symbol = draw(st.sampled_from([SYMBOL, "ETH/USD:USD", "x"]))
        record["symbol"] = symbol
        record["tick_id"] = make_tick_id(symbol, draw(_TICK_TIMES))
        record["model_id"] = draw(st.sampled_from(["m1", "operator", "fallback:flat", "a|b"]))
        if draw(st.booleans()):
            record["intent_id"] = f"{record['tick_id']}|{record['model_id']}"  # make_intent_id's format
        if draw(st.booleans()):
            record["created_at"] = draw(st.integers(min_value=-(10**13), max_value=10**13))
    return record


@FUZZ
@given(intent_records(), st.floats(min_value=-2, max_value=2), st.floats(min_value=-1e5, max_value=1e5))
def test_executor_decode_and_validate(record: dict[str, Any], position: float, pnl: float) -> None:
    """Only SerdeError / PoisonMessage; what passes is bookable and its plan stays within limits."""
    sv = serde.load_schema_set().get(OrderIntent.SCHEMA_NAME)
    try:
        intent = serde.decode(encode_with(sv, record), OrderIntent)
        check_intent(intent)
    except (serde.SerdeError, PoisonMessage):
        return
    symbol, _tick_time = parse_tick_id(intent.tick_id)
    assert symbol == intent.symbol and intent.intent_id == make_intent_id(intent.tick_id, intent.model_id)
    assert math.isfinite(intent.target_exposure) and math.isfinite(intent.current_exposure)
    assert "\x00" not in intent.intent_id + intent.model_id + intent.symbol
    plan = RiskEngine(LIMITS, symbol=SYMBOL).evaluate(
        intent, Book(round(position, 4), pnl, 0), RiskState(), NOW
    )
    legs = plan.legs
    assert all(abs(leg) <= LIMITS.max_order_btc + 1e-9 for leg in legs)
    if legs:
        assert intent.symbol == SYMBOL
        reducing = abs(plan.target_position) <= abs(position) + 1e-9
        assert reducing or abs(plan.target_position) <= LIMITS.max_position_btc + 1e-9
