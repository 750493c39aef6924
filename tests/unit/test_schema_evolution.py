"""Schema evolution: every kept version and the current schema must stay mutually readable.

Two independent checks, because each catches what the other can miss:

* a static checker implementing the Avro schema-resolution rules (deterministic: it flags a
  removed enum symbol even when no random record happens to use it);
* real bytes: records written with one version are decoded with the other by fastavro, from
  ``fastavro.utils.generate_many`` and from the hand-built samples in ``common.testkit``.

Project policy on top of the Avro rules: enum symbols may be added (old readers fall back to the
enum's ``default``) but never removed, even when a default exists, because silently mapping
recorded history onto another symbol would change what a replay decides.
"""

from __future__ import annotations

import copy
import random
from dataclasses import replace
from datetime import datetime
from io import BytesIO
from itertools import pairwise
from typing import Any

import pytest
from fastavro import schemaless_reader, schemaless_writer
from fastavro.schema import expand_schema, parse_schema
from fastavro.utils import generate_many

from common import serde, testkit
from common.events import Event, to_epoch_ms

SCHEMAS = serde.load_schema_set()
# (schema name, kept version) for every historical file.
HISTORY = [(name, sv.version) for name, versions in sorted(SCHEMAS.history.items()) for sv in versions]
HISTORY_IDS = [f"{name.split('.')[-1]}-v{v}" for name, v in HISTORY]
SAMPLES = {type(e).SCHEMA_NAME: e for e in testkit.all_samples()}
GENERATED = 40

# --------------------------------------------------------------------------- the static checker

_PROMOTIONS = {
    ("int", "long"),
    ("int", "float"),
    ("int", "double"),
    ("long", "float"),
    ("long", "double"),
    ("float", "double"),
    ("string", "bytes"),
    ("bytes", "string"),
}
_PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}


def _kind(schema: Any) -> str:
    if isinstance(schema, list):
        return "union"
    if isinstance(schema, dict):
        inner = schema["type"]
        return _kind(inner) if isinstance(inner, dict | list) else inner
    return schema


def _logical(schema: Any) -> str | None:
    return schema.get("logicalType") if isinstance(schema, dict) else None


def _resolve(reader: Any, writer: Any, path: str, allow_enum_default: bool, out: list[str]) -> None:
    """Append to ``out`` why data written with ``writer`` cannot be read with ``reader``."""
    if isinstance(writer, list):
        for branch in writer:
            _resolve(reader, branch, f"{path}<{_kind(branch)}>", allow_enum_default, out)
        return
    if isinstance(reader, list):
        if not any(_compatible(branch, writer, allow_enum_default) for branch in reader):
            out.append(f"{path}: writer type {_kind(writer)} matches no branch of the reader union")
        return
    rk, wk = _kind(reader), _kind(writer)
    if isinstance(reader, dict) and isinstance(reader["type"], dict):
        reader = reader["type"]
    if isinstance(writer, dict) and isinstance(writer["type"], dict):
        writer = writer["type"]
    if rk in _PRIMITIVES or wk in _PRIMITIVES:
        if rk != wk and (wk, rk) not in _PROMOTIONS:
            out.append(f"{path}: writer {wk} cannot be read as {rk}")
        elif _logical(reader) != _logical(writer):
            out.append(f"{path}: logical type changed from {_logical(writer)} to {_logical(reader)}")
        return
    if rk != wk:
        out.append(f"{path}: writer {wk} cannot be read as {rk}")
        return
    if rk in ("record", "enum", "fixed"):
        names = {reader["name"], *reader.get("aliases", [])}
        if writer["name"] not in names:
            out.append(f"{path}: named type {writer['name']} cannot be read as {reader['name']}")
            return
    if rk == "record":
        written = {f["name"]: f for f in writer["fields"]}
        for field in reader["fields"]:
            candidates = (field["name"], *field.get("aliases", []))
            match = next((written[n] for n in candidates if n in written), None)
            if match is not None:
                _resolve(field["type"], match["type"], f"{path}.{field['name']}", allow_enum_default, out)
            elif "default" not in field:
                out.append(f"{path}.{field['name']}: reader field missing from writer and has no default")
    elif rk == "enum":
        missing = [s for s in writer["symbols"] if s not in reader["symbols"]]
        if missing and not (allow_enum_default and "default" in reader):
            out.append(f"{path}: enum symbols {missing} unknown to the reader")
    elif rk == "array":
        _resolve(reader["items"], writer["items"], f"{path}[]", allow_enum_default, out)
    elif rk == "map":
        _resolve(reader["values"], writer["values"], f"{path}{{}}", allow_enum_default, out)
    elif rk == "fixed" and reader["size"] != writer["size"]:
        out.append(f"{path}: fixed size changed from {writer['size']} to {reader['size']}")


def _compatible(reader: Any, writer: Any, allow_enum_default: bool) -> bool:
    problems: list[str] = []
    _resolve(reader, writer, "", allow_enum_default, problems)
    return not problems


def compatibility_problems(current: dict[str, Any], old: dict[str, Any]) -> list[str]:
    """Everything that breaks either direction between the current schema and an older one.

    backward: the current service reads what the old one wrote (no enum-default fallback: removing
    a symbol is refused). forward: the old service reads what the current one writes (new enum
    symbols are fine when the old reader's enum has a default).
    """
    cur, prev = expand_schema(copy.deepcopy(current)), expand_schema(copy.deepcopy(old))
    backward: list[str] = []
    _resolve(cur, prev, cur["name"], False, backward)
    forward: list[str] = []
    _resolve(prev, cur, cur["name"], True, forward)
    return [f"backward {p}" for p in backward] + [f"forward {p}" for p in forward]


# --------------------------------------------------------------------------- helpers


def _norm(value: Any) -> Any:
    """Compare decoded and generated data: datetimes as epoch ms, containers recursively."""
    if isinstance(value, datetime):
        return to_epoch_ms(value)
    if isinstance(value, dict):
        return {k: _norm(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_norm(v) for v in value]
    return value


def _field_defaults(schema: dict[str, Any]) -> dict[str, Any]:
    return {f["name"]: f["default"] for f in schema["fields"] if "default" in f}


def _field_names(schema: dict[str, Any]) -> list[str]:
    return [f["name"] for f in schema["fields"]]


def _read_with(reader: serde.SchemaVersion, data: bytes) -> dict[str, Any]:
    """Decode single-object bytes the way a service pinned to ``reader`` would."""
    writer = serde.parse_header(data)
    buf = BytesIO(data)
    buf.seek(serde.HEADER_SIZE)
    record = schemaless_reader(buf, writer.parsed, reader.parsed)
    assert buf.tell() == len(data)
    return record


def _records(sv: serde.SchemaVersion, seed: int) -> list[dict[str, Any]]:
    random.seed(seed)  # generate_many draws from the global RNG; keep failures reproducible
    return list(generate_many(sv.parsed, GENERATED))


# --------------------------------------------------------------------------- kept versions are real


def test_every_current_schema_has_its_latest_version_kept() -> None:
    """Changing a .avsc without adding history/<Name>/v<k+1>.avsc must fail here."""
    for name, current in SCHEMAS.current.items():
        versions = SCHEMAS.history.get(name)
        assert versions, f"{name}: no schemas/avro/history/{name.split('.')[-1]}/v1.avsc"
        numbers = [sv.version for sv in versions]
        assert numbers == list(range(1, len(numbers) + 1)), f"{name}: versions {numbers} are not v1..vN"
        latest = versions[-1]
        assert latest.fingerprint == current.fingerprint and _strip_docs(latest.raw) == _strip_docs(
            current.raw
        ), (
            f"{name} changed without a kept version: copy the new schema to "
            f"history/{name.split('.')[-1]}/v{latest.version + 1}.avsc (latest kept is v{latest.version})"
        )
        for older, newer in pairwise(versions):
            repeated = _strip_docs(older.raw) == _strip_docs(newer.raw)
            assert not repeated, f"{name}: v{newer.version} repeats v{older.version}"


def _strip_docs(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _strip_docs(v) for k, v in schema.items() if k != "doc"}
    if isinstance(schema, list):
        return [_strip_docs(v) for v in schema]
    return schema


def test_evolved_schemas_really_evolved() -> None:
    """Recommendation and OrderIntent have a genuinely different v1, so the tests below bite."""
    for name in ("btcmeta.Recommendation", "btcmeta.OrderIntent", "btcmeta.BarClosed"):
        v1 = SCHEMAS.get(name, 1)
        assert v1.fingerprint != SCHEMAS.current[name].fingerprint
    assert "indicators" not in _field_names(SCHEMAS.get("btcmeta.Recommendation", 1).raw)
    assert {"reason", "attention"}.isdisjoint(_field_names(SCHEMAS.get("btcmeta.Recommendation", 2).raw))
    assert "exogenous" not in _field_names(SCHEMAS.get("btcmeta.BarClosed", 1).raw)
    assert {"degraded", "reason"}.isdisjoint(_field_names(SCHEMAS.get("btcmeta.OrderIntent", 1).raw))


@pytest.mark.parametrize(("name", "version"), HISTORY, ids=HISTORY_IDS)
def test_kept_version_is_decodable(name: str, version: int) -> None:
    sv = SCHEMAS.get(name, version)
    assert SCHEMAS.by_fingerprint[sv.fingerprint].name == name


@pytest.mark.parametrize(("name", "version"), HISTORY, ids=HISTORY_IDS)
def test_static_compatibility(name: str, version: int) -> None:
    problems = compatibility_problems(SCHEMAS.current[name].raw, SCHEMAS.get(name, version).raw)
    assert problems == []


# --------------------------------------------------------------------------- real bytes, both ways


@pytest.mark.parametrize(("name", "version"), HISTORY, ids=HISTORY_IDS)
def test_backward_old_data_decodes_with_current_schema(name: str, version: int) -> None:
    old, current = SCHEMAS.get(name, version), SCHEMAS.current[name]
    added = {k: v for k, v in _field_defaults(current.raw).items() if k not in _field_names(old.raw)}
    for record in _records(old, seed=version):
        data = serde.encode_raw(record, name, version)
        got_name, decoded = serde.decode_raw(data)
        assert got_name == name
        assert _norm(decoded) == _norm({**record, **added})


@pytest.mark.parametrize(("name", "version"), HISTORY, ids=HISTORY_IDS)
def test_forward_current_data_decodes_with_old_schema(name: str, version: int) -> None:
    old, current = SCHEMAS.get(name, version), SCHEMAS.current[name]
    kept = _field_names(old.raw)
    for record in _records(current, seed=100 + version):
        decoded = _read_with(old, serde.encode_raw(record, name))
        assert _norm(decoded) == _norm({k: record[k] for k in kept})


@pytest.mark.parametrize(("name", "version"), HISTORY, ids=HISTORY_IDS)
def test_hand_built_sample_survives_both_ways(name: str, version: int) -> None:
    sample: Event = SAMPLES[name]
    old = SCHEMAS.get(name, version)
    current_dict = sample.to_dict()
    old_dict = {k: v for k, v in current_dict.items() if k in _field_names(old.raw)}
    # backward: an old producer's message becomes a current event, new fields at their defaults
    decoded = serde.decode(serde.encode_raw(old_dict, name, version), type(sample))
    defaults = {k: v for k, v in _field_defaults(SCHEMAS.current[name].raw).items() if k not in old_dict}
    assert decoded == replace(sample, **defaults)  # type: ignore[type-var]
    # forward: an old consumer reads the current event, ignoring fields it does not know
    assert _norm(_read_with(old, serde.encode(sample))) == _norm(old_dict)


def test_v1_recommendation_becomes_current_event() -> None:
    old = {k: v for k, v in testkit.sample_recommendation().to_dict().items() if k != "indicators"}
    event = serde.decode(serde.encode_raw(old, "btcmeta.Recommendation", 1))
    assert event == testkit.sample_recommendation(indicators={})


def test_v2_recommendation_becomes_current_event_and_v3_reads_as_v2() -> None:
    """reason / attention (v3): old messages read with their defaults; old readers skip them."""
    sample = replace(testkit.sample_recommendation(), reason="stale:funding_binance_8h", attention=True)
    old = {k: v for k, v in sample.to_dict().items() if k not in ("reason", "attention")}
    event = serde.decode(serde.encode_raw(old, "btcmeta.Recommendation", 2))
    assert event == replace(sample, reason="", attention=None)
    assert _norm(_read_with(SCHEMAS.get("btcmeta.Recommendation", 2), serde.encode(sample))) == _norm(old)
    for attention in (None, False, True):
        rec = replace(sample, attention=attention)
        assert serde.decode(serde.encode(rec)) == rec


def test_bar_closed_exogenous_field_both_ways() -> None:
    """exogenous (v2): a v1 bar reads as a bar without inputs; a v1 reader skips the inputs."""
    from common.events import ExogenousFrame

    frame = ExogenousFrame(
        "news_headlines",
        (1_600_000_000_000,),
        (1_600_003_600_000,),
        (("sentiment_polarity", (0.25,)),),
        (("title", ("Bitcoin up",)),),
    )
    sample = replace(testkit.sample_bar_closed(bars=5), exogenous=(frame,))
    v3 = {"keyframe_offset", "prev_tick_id", "window_start", "window_bars", "window_crc"}
    old = {k: v for k, v in sample.to_dict().items() if k != "exogenous" and k not in v3}
    assert serde.decode(serde.encode_raw(old, "btcmeta.BarClosed", 1)) == replace(sample, exogenous=())
    assert _norm(_read_with(SCHEMAS.get("btcmeta.BarClosed", 1), serde.encode(sample))) == _norm(old)
    assert serde.decode(serde.encode(sample)) == sample


def test_v1_order_intent_becomes_current_event() -> None:
    sample = testkit.sample_order_intent()
    old = {k: v for k, v in sample.to_dict().items() if k not in ("degraded", "reason")}
    event = serde.decode(serde.encode_raw(old, "btcmeta.OrderIntent", 1))
    assert event == replace(sample, degraded=False, reason="")


# --------------------------------------------------------------------------- the checker bites


def _current(name: str) -> dict[str, Any]:
    return copy.deepcopy(SCHEMAS.current[f"btcmeta.{name}"].raw)


def _field(schema: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in schema["fields"] if f["name"] == name)


def _added_field_without_default() -> dict[str, Any]:
    s = _current("Recommendation")
    s["fields"].append({"name": "sharpe", "type": "double"})
    return s


def _removed_enum_symbol() -> dict[str, Any]:
    s = _current("Recommendation")
    _field(s, "target")["type"]["symbols"].remove("SHORT")
    return s


def _added_symbol_to_enum_without_default() -> dict[str, Any]:
    s = _current("ExecutionReport")
    _field(s, "orders")["type"]["items"]["fields"][1]["type"]["symbols"].append("CLOSE")
    return s


def _removed_required_field() -> dict[str, Any]:
    s = _current("OrderIntent")
    s["fields"] = [f for f in s["fields"] if f["name"] != "model_id"]
    return s


def _changed_field_type() -> dict[str, Any]:
    s = _current("Recommendation")
    _field(s, "confidence")["type"] = "string"
    return s


def _narrowed_type() -> dict[str, Any]:
    s = _current("DeadLetter")
    _field(s, "offset")["type"] = "int"
    return s


def _dropped_logical_type() -> dict[str, Any]:
    s = _current("TickPlan")
    _field(s, "deadline")["type"] = "long"
    return s


def _renamed_nested_record() -> dict[str, Any]:
    s = _current("TickPlan")
    _field(s, "due_strategies")["type"]["items"]["name"] = "Expected"
    return s


def _null_dropped_from_union() -> dict[str, Any]:
    s = _current("DeadLetter")
    _field(s, "key")["type"] = "bytes"
    del _field(s, "key")["default"]
    return s


BROKEN = {
    "added field without default": (_added_field_without_default, "backward"),
    "removed enum symbol (despite enum default)": (_removed_enum_symbol, "backward"),
    "added symbol to enum without default": (_added_symbol_to_enum_without_default, "forward"),
    "removed field without default": (_removed_required_field, "forward"),
    "changed field type": (_changed_field_type, "backward"),
    "narrowed long to int": (_narrowed_type, "backward"),
    "dropped logical type": (_dropped_logical_type, "backward"),
    "renamed nested record": (_renamed_nested_record, "backward"),
    "null dropped from union": (_null_dropped_from_union, "backward"),
}


@pytest.mark.parametrize("case", list(BROKEN), ids=list(BROKEN))
def test_checker_rejects_broken_evolution(case: str) -> None:
    build, direction = BROKEN[case]
    broken = build()
    parse_schema(copy.deepcopy(broken), named_schemas={})  # still a valid schema on its own
    name = f"btcmeta.{broken['name']}"
    problems = compatibility_problems(broken, SCHEMAS.current[name].raw)
    assert any(p.startswith(direction) for p in problems), problems


def test_added_field_without_default_also_fails_on_real_bytes() -> None:
    """The static verdict agrees with fastavro: old bytes cannot be read by the broken reader."""
    broken = parse_schema(_added_field_without_default(), named_schemas={})
    data = serde.encode(testkit.sample_recommendation())
    buf = BytesIO(data)
    buf.seek(serde.HEADER_SIZE)
    with pytest.raises(Exception, match="sharpe"):
        schemaless_reader(buf, SCHEMAS.current["btcmeta.Recommendation"].parsed, broken)


@pytest.mark.parametrize(
    "change",
    ["add field with default", "add enum symbol where enum has default", "widen int to long", "add doc"],
)
def test_checker_accepts_compatible_evolution(change: str) -> None:
    s = _current("Recommendation")
    if change == "add field with default":
        s["fields"].append({"name": "notes", "type": "string", "default": ""})
    elif change == "add enum symbol where enum has default":
        _field(s, "event")["type"]["symbols"].append("REVERSE")
    elif change == "widen int to long":
        _field(s, "horizon_bars")["type"] = "long"
        # widening is backward-only: an old int reader cannot take a long, so expect exactly that
        problems = compatibility_problems(s, SCHEMAS.current["btcmeta.Recommendation"].raw)
        assert problems and all(p.startswith("forward") for p in problems)
        return
    else:
        _field(s, "confidence")["doc"] = "changed words"
    assert compatibility_problems(s, SCHEMAS.current["btcmeta.Recommendation"].raw) == []


def test_new_enum_symbol_reads_as_default_in_old_reader() -> None:
    """What makes adding a symbol forward compatible: the old reader maps it to the enum default."""
    s = _current("Recommendation")
    _field(s, "event")["type"]["symbols"].append("REVERSE")
    newer = parse_schema(s, named_schemas={})
    record = {**testkit.sample_recommendation().to_dict(), "event": "REVERSE"}
    buf = BytesIO()
    schemaless_writer(buf, newer, record)
    buf.seek(0)
    decoded = schemaless_reader(buf, newer, SCHEMAS.current["btcmeta.Recommendation"].parsed)
    assert decoded["event"] == "NONE"
