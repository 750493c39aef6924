"""Single-object Avro serde: exact round trips, and SerdeError (never anything else) on bad bytes."""

from __future__ import annotations

import json
import re
import struct
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from fastavro.schema import to_parsing_canonical_form
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common import serde, testkit
from common.events import (
    EVENT_TYPES,
    BarClosed,
    DeadLetter,
    DueStrategy,
    Event,
    ExecutionReport,
    ExecutionStatus,
    IntentAction,
    Order,
    OrderIntent,
    OrderSide,
    Recommendation,
    SignalEvent,
    Target,
    TickPlan,
    to_epoch_ms,
)
from common.ids import make_intent_id, make_tick_id, parse_tick_id
from common.serde import SerdeError

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# --------------------------------------------------------------------------- strategies

texts = st.text(max_size=20)
names = st.text(min_size=1, max_size=20)
doubles = st.floats(allow_nan=False)
finite = st.floats(allow_nan=False, allow_infinity=False)
timeframes = st.builds(lambda n, u: f"{n}{u}", st.integers(1, 999), st.sampled_from("mhd"))
# Millisecond precision, well inside datetime's range, including pre-1970 instants.
ms_values = st.integers(
    to_epoch_ms(datetime(1900, 1, 1, tzinfo=UTC)), to_epoch_ms(datetime(2200, 1, 1, tzinfo=UTC))
)
timestamps = ms_values.map(lambda ms: EPOCH + timedelta(milliseconds=ms))


@st.composite
def bar_closed(draw: st.DrawFn) -> BarClosed:
    times = sorted(draw(st.sets(ms_values, max_size=25)))
    n = len(times)
    cols = {c: tuple(draw(st.lists(doubles, min_size=n, max_size=n))) for c in BarClosed._COLUMNS}
    open_time = tuple(EPOCH + timedelta(milliseconds=t) for t in times)
    return BarClosed(
        tick_id=draw(names),
        symbol=draw(names),
        timeframe=draw(timeframes),
        bar_open_time=open_time[-1] if open_time else draw(timestamps),
        open_time=open_time,
        **cols,
    )


due_strategies = st.builds(DueStrategy, name=names, version=names, timeframe=timeframes)
tick_plans = st.builds(
    TickPlan,
    tick_id=names,
    symbol=names,
    tick_time=timestamps,
    due_timeframes=st.lists(timeframes, max_size=4).map(tuple),
    due_strategies=st.lists(due_strategies, max_size=6).map(tuple),
    deadline=timestamps,
    published_at=timestamps,
    namespace=texts,
)
recommendations = st.builds(
    Recommendation,
    tick_id=names,
    strategy=names,
    strategy_version=names,
    symbol=names,
    timeframe=timeframes,
    bar_close_time=timestamps,
    target=st.sampled_from(Target),
    event=st.sampled_from(SignalEvent),
    confidence=st.floats(0.0, 1.0),
    horizon_bars=st.integers(0, 2**31 - 1),
    produced_at=timestamps,
    indicators=st.dictionaries(texts, doubles, max_size=6),
)
order_intents = st.builds(
    OrderIntent,
    intent_id=names,
    tick_id=names,
    model_id=names,
    symbol=names,
    action=st.sampled_from(IntentAction),
    current_exposure=finite,
    target_exposure=finite,
    created_at=timestamps,
    degraded=st.booleans(),
    reason=texts,
)
orders = st.builds(
    Order,
    client_order_id=names,
    side=st.sampled_from(OrderSide),
    quantity=st.floats(0.0, 1e9),
    price=finite,
    fee=finite,
    filled_at=timestamps,
)
execution_reports = st.builds(
    ExecutionReport,
    intent_id=names,
    tick_id=names,
    status=st.sampled_from(ExecutionStatus),
    reason=texts,
    orders=st.lists(orders, max_size=4).map(tuple),
    position_after=finite,
    exchange=st.sampled_from(["paper", "kraken"]),
    reported_at=timestamps,
)
dead_letters = st.builds(
    DeadLetter,
    original_topic=names,
    partition=st.integers(-(2**31), 2**31 - 1),
    offset=st.integers(-(2**63), 2**63 - 1),
    key=st.none() | st.binary(max_size=40),
    value=st.binary(max_size=200),
    headers=st.dictionaries(texts, st.binary(max_size=20), max_size=5),
    reason=texts,
    error_type=texts,
    service=names,
    failed_at=timestamps,
)

SAMPLES = testkit.all_samples()
SAMPLE_IDS = [type(e).__name__ for e in SAMPLES]


# --------------------------------------------------------------------------- round trips


def _roundtrip(event: Event) -> None:
    data = serde.encode(event)
    assert data[:2] == b"\xc3\x01"
    assert data[2:10] == serde.fingerprint_of(event.SCHEMA_NAME)
    back = serde.decode(data, type(event))
    assert back == event
    assert type(back) is type(event)
    assert serde.decode(data) == event
    name, record = serde.decode_raw(data)
    assert name == event.SCHEMA_NAME
    assert type(event).from_dict(record) == event
    assert serde.encode(back) == data  # encoding is deterministic


@pytest.mark.parametrize("event", SAMPLES, ids=SAMPLE_IDS)
def test_samples_round_trip(event: Event) -> None:
    _roundtrip(event)


def test_every_event_type_has_a_sample_and_a_schema() -> None:
    assert {type(e) for e in SAMPLES} == set(EVENT_TYPES)
    assert set(serde.load_schema_set().current) == {t.SCHEMA_NAME for t in EVENT_TYPES}


@SETTINGS
@given(tick_plans)
def test_tick_plan_round_trip(event: TickPlan) -> None:
    _roundtrip(event)


@SETTINGS
@given(bar_closed())
def test_bar_closed_round_trip(event: BarClosed) -> None:
    _roundtrip(event)


@SETTINGS
@given(recommendations)
def test_recommendation_round_trip(event: Recommendation) -> None:
    _roundtrip(event)


@SETTINGS
@given(order_intents)
def test_order_intent_round_trip(event: OrderIntent) -> None:
    _roundtrip(event)


@SETTINGS
@given(execution_reports)
def test_execution_report_round_trip(event: ExecutionReport) -> None:
    _roundtrip(event)


@SETTINGS
@given(dead_letters)
def test_dead_letter_round_trip(event: DeadLetter) -> None:
    _roundtrip(event)


def test_empty_collections_round_trip() -> None:
    empty = [
        testkit.sample_tick_plan(due_timeframes=(), due_strategies=()),
        testkit.sample_bar_closed(bars=0),
        testkit.sample_recommendation(indicators={}),
        testkit.sample_execution_report(orders=(), status=ExecutionStatus.NOOP),
        testkit.sample_dead_letter(key=None, value=b"", headers={}),
    ]
    for event in empty:
        _roundtrip(event)


def test_datetimes_normalised_to_utc_milliseconds() -> None:
    plus2 = timezone(timedelta(hours=2))
    event = testkit.sample_recommendation(
        bar_close_time=datetime(2022, 8, 20, 2, 0, 0, 123_999, tzinfo=plus2)
    )
    assert event.bar_close_time == datetime(2022, 8, 20, 0, 0, 0, 123_000, tzinfo=UTC)
    assert event.bar_close_time.utcoffset() == timedelta(0)
    assert serde.decode(serde.encode(event)) == event


# --------------------------------------------------------------------------- refusing bad input


@pytest.mark.parametrize(
    "build",
    [
        lambda: testkit.sample_tick_plan(tick_time=datetime(2022, 8, 20)),
        lambda: testkit.sample_recommendation(produced_at=datetime(2022, 8, 20)),
        lambda: testkit.sample_order_intent(created_at=datetime(2022, 8, 20)),
        lambda: testkit.sample_bar_closed(bars=1, open_time=(datetime(2022, 1, 1),)),
    ],
)
def test_naive_datetime_refused(build: Any) -> None:
    with pytest.raises(ValueError, match="naive datetime"):
        build()


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: testkit.sample_recommendation(confidence=1.5), "not in \\[0, 1\\]"),
        (lambda: testkit.sample_recommendation(confidence=float("nan")), "not in \\[0, 1\\]"),
        (lambda: testkit.sample_recommendation(target="UP"), "not one of LONG, SHORT, FLAT"),
        (lambda: testkit.sample_recommendation(timeframe="1x"), "invalid timeframe '1x'"),
        (lambda: testkit.sample_bar_closed(bars=3, close=(1.0,)), "1 values but 3 open times"),
        (lambda: testkit.sample_order_intent(target_exposure=float("inf")), "must be finite"),
    ],
)
def test_invalid_values_refused(build: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()


def test_bar_window_must_be_oldest_first_and_end_at_bar_open_time() -> None:
    bar = testkit.sample_bar_closed(bars=3)
    with pytest.raises(ValueError, match="not strictly increasing"):
        testkit.sample_bar_closed(
            bars=3, open_time=tuple(reversed(bar.open_time)), bar_open_time=bar.open_time[0]
        )
    with pytest.raises(ValueError, match="is not the last open_time"):
        testkit.sample_bar_closed(bars=3, bar_open_time=bar.open_time[0])


@pytest.mark.parametrize("event", SAMPLES, ids=SAMPLE_IDS)
def test_every_truncation_is_a_serde_error(event: Event) -> None:
    data = serde.encode(event)
    for n in range(len(data)):
        with pytest.raises(SerdeError):
            serde.decode(data[:n])
        with pytest.raises(SerdeError):
            serde.decode_raw(data[:n])


def test_error_messages_say_what_is_wrong() -> None:
    data = serde.encode(testkit.sample_tick_plan())
    with pytest.raises(SerdeError, match=r"^truncated: 5 bytes, need at least 10$"):
        serde.decode(data[:5])
    with pytest.raises(SerdeError, match="bad magic 0x7b22"):
        serde.decode(b'{"tick_id": "x", "symbol": "y"}')
    with pytest.raises(SerdeError, match="unknown schema fingerprint 0001020304050607"):
        serde.decode(b"\xc3\x01" + bytes(range(8)) + data[10:])
    with pytest.raises(SerdeError, match=r"body does not decode as btcmeta\.TickPlan"):
        serde.decode(data[:-1])
    with pytest.raises(SerdeError, match="1 trailing bytes"):
        serde.decode(data + b"\x00")
    with pytest.raises(SerdeError, match=r"^expected btcmeta\.TickPlan, got btcmeta\.BarClosed$"):
        serde.decode(serde.encode(testkit.sample_bar_closed()), TickPlan)


@pytest.mark.parametrize("event", SAMPLES, ids=SAMPLE_IDS)
def test_wrong_expected_type(event: Event) -> None:
    data = serde.encode(event)
    for other in EVENT_TYPES:
        if other is type(event):
            continue
        message = re.escape(f"expected {other.SCHEMA_NAME}, got {event.SCHEMA_NAME}")
        with pytest.raises(SerdeError, match=message):
            serde.decode(data, other)


@SETTINGS
@given(st.binary(max_size=300))
def test_random_garbage_is_a_serde_error(data: bytes) -> None:
    with pytest.raises(SerdeError):
        serde.decode(data)


@SETTINGS
@given(st.sampled_from(sorted(serde.load_schema_set().by_fingerprint)), st.binary(max_size=300))
def test_garbage_body_behind_a_valid_header(fp: bytes, body: bytes) -> None:
    """A right header with a random body: SerdeError, or (rarely) a well-formed event of that type."""
    sv = serde.load_schema_set().by_fingerprint[fp]
    try:
        event = serde.decode(b"\xc3\x01" + fp + body)
    except SerdeError:
        return
    assert sv.name == event.SCHEMA_NAME


@pytest.mark.parametrize("event", SAMPLES, ids=SAMPLE_IDS)
def test_corrupted_bytes_never_yield_a_wrong_object(event: Event) -> None:
    data = serde.encode(event)
    for i in range(len(data)):
        for flip in (0x01, 0x80, 0xFF):
            corrupted = bytearray(data)
            corrupted[i] ^= flip
            try:
                back = serde.decode(bytes(corrupted))
            except SerdeError:
                continue
            assert type(back) is type(event)  # only a body byte changed: same type, still valid


def test_encode_refuses_non_events() -> None:
    with pytest.raises(SerdeError, match=r"not a common\.events message type"):
        serde.encode({"tick_id": "x"})  # type: ignore[arg-type]
    with pytest.raises(SerdeError, match=r"cannot encode btcmeta\.Recommendation"):
        serde.encode_raw({"tick_id": "only"}, "btcmeta.Recommendation")
    with pytest.raises(SerdeError, match="unknown schema"):
        serde.fingerprint_of("btcmeta.Nope")


def test_accepts_bytearray_and_memoryview() -> None:
    event = testkit.sample_order_intent()
    data = serde.encode(event)
    assert serde.decode(bytearray(data)) == event
    assert serde.decode(memoryview(data)) == event


# --------------------------------------------------------------------------- fingerprints


def _rabin(data: bytes) -> int:
    """CRC-64-AVRO written out from the Avro spec, as an independent oracle for fastavro's."""
    empty = 0xC15D213AA4D7A795
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (empty & -(fp & 1))
        table.append(fp)
    fp = empty
    for byte in data:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp


# Published vectors from the Avro project's schema-tests.txt (signed 64-bit, as Java prints them).
SPEC_VECTORS = [
    ('"null"', 7195948357588979594),
    ('"boolean"', -6970731678124411036),
    ('"int"', 8247732601305521295),
    ('{"type":"fixed","name":"foo","size":15}', 1756455273707447556),
    ('{"type":"record","name":"foo","fields":[{"name":"f1","type":"boolean"}]}', 7843277075252814651),
]


@pytest.mark.parametrize(("schema", "expected"), SPEC_VECTORS)
def test_fingerprint_matches_spec_vectors(schema: str, expected: int) -> None:
    wire = struct.pack("<q", expected)
    assert serde.schema_fingerprint(json.loads(schema)) == wire
    assert _rabin(to_parsing_canonical_form(json.loads(schema)).encode()).to_bytes(8, "little") == wire


def test_project_fingerprints_match_reference_rabin() -> None:
    schemas = serde.load_schema_set()
    for name, sv in schemas.current.items():
        assert sv.fingerprint == _rabin(sv.canonical.encode()).to_bytes(8, "little"), name
        assert serde.fingerprint_of(name) == sv.fingerprint
    fingerprints = [sv.fingerprint for sv in schemas.current.values()]
    assert len(set(fingerprints)) == len(fingerprints)


# --------------------------------------------------------------------------- ids


def test_tick_and_intent_ids_are_deterministic_and_readable() -> None:
    t = datetime(2022, 8, 20, tzinfo=UTC)
    tick_id = make_tick_id("BTC/USD:USD", t)
    assert tick_id == "BTC/USD:USD|2022-08-20T00:00Z"
    assert make_tick_id("BTC/USD:USD", t.astimezone(timezone(timedelta(hours=-5)))) == tick_id
    assert parse_tick_id(tick_id) == ("BTC/USD:USD", t)
    assert make_intent_id(tick_id, "ppo-v1") == "BTC/USD:USD|2022-08-20T00:00Z|ppo-v1"
    with pytest.raises(ValueError, match="naive"):
        make_tick_id("BTC/USD:USD", datetime(2022, 8, 20))
    with pytest.raises(ValueError, match="symbol"):
        make_tick_id("A|B", t)
    with pytest.raises(ValueError, match="model id"):
        make_intent_id(tick_id, "")
    with pytest.raises(ValueError, match="invalid tick id"):
        make_intent_id("no-separator", "m")
    # parse_tick_id is cached: a refused id is refused again, a non-canonical one too
    for _ in range(2):
        with pytest.raises(ValueError, match="canonical"):
            parse_tick_id("BTC/USD:USD|2022-08-20T00:00:00Z")
    assert parse_tick_id(tick_id) is parse_tick_id(tick_id)


@SETTINGS
@given(
    st.text(min_size=1, max_size=12).filter(lambda s: "|" not in s),
    st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)),
    st.text(min_size=1, max_size=12).filter(lambda s: "|" not in s),
    st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)),
)
def test_tick_ids_collision_free(sym_a: str, t_a: datetime, sym_b: str, t_b: datetime) -> None:
    ms_a, ms_b = to_epoch_ms(t_a), to_epoch_ms(t_b)
    same = (sym_a, ms_a) == (sym_b, ms_b)
    assert (make_tick_id(sym_a, t_a) == make_tick_id(sym_b, t_b)) == same
    symbol, when = parse_tick_id(make_tick_id(sym_a, t_a))
    assert (symbol, to_epoch_ms(when)) == (sym_a, ms_a)
