"""Writer schemas learned at run time (from the schema store), and the executor's model-id constants."""

from __future__ import annotations

import copy
import io
import json
import uuid
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_writer

from common import serde, testkit
from common.events import OrderIntent


def _newer(change: str) -> dict[str, Any]:
    raw = copy.deepcopy(serde.load_schema_set().get(OrderIntent.SCHEMA_NAME).raw)
    tag = uuid.uuid4().hex[:8]  # a fingerprint no other test has taught this process
    if change == "added_field":
        raw["fields"].append({"name": f"hint_{tag}", "type": "string", "default": ""})
    elif change == "incompatible":
        raw["fields"] = [f for f in raw["fields"] if f["name"] != "target_exposure"]
        raw["fields"].append({"name": "target_exposure", "type": "string"})
        raw["fields"].append({"name": f"x_{tag}", "type": "int", "default": 0})
    return raw


def _encode(raw: dict[str, Any], record: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    buf.write(serde.MAGIC + serde.schema_fingerprint(raw))
    schemaless_writer(buf, parse_schema(raw, named_schemas={}), record)
    return buf.getvalue()


def test_a_learned_newer_schema_resolves_to_the_current_reader() -> None:
    raw = _newer("added_field")
    intent = testkit.sample_order_intent()
    data = _encode(raw, intent.to_dict() | {raw["fields"][-1]["name"]: "post-only"})
    with pytest.raises(serde.UnknownSchema) as info:
        serde.decode(data, OrderIntent)
    assert info.value.fingerprint == serde.schema_fingerprint(raw)
    sv = serde.learn_schema(json.dumps(raw), serde.schema_fingerprint(raw))
    assert not sv.shipped and sv.fingerprint.hex() in sv.label
    assert serde.decode(data, OrderIntent) == intent


def test_store_entries_that_lie_or_name_unknown_types_are_refused() -> None:
    raw = _newer("added_field")
    with pytest.raises(serde.SerdeError, match="has fingerprint"):
        serde.learn_schema(raw, b"\x00" * 8)
    nope = raw | {"name": "Nope"}
    with pytest.raises(serde.SerdeError, match="not a message type this version reads"):
        serde.learn_schema(nope)
    with pytest.raises(serde.SerdeError, match="not JSON"):
        serde.learn_schema("{not json")
    assert serde.schema_fingerprint(raw) not in serde.learned_schemas()


def test_a_learned_schema_this_reader_cannot_resolve_stays_unknown() -> None:
    """Not the message's fault: a consumer that must not lose it waits for a newer reader."""
    raw = _newer("incompatible")
    record = testkit.sample_order_intent().to_dict() | {"target_exposure": "0.5"}
    data = _encode(raw, record)
    serde.learn_schema(raw)
    with pytest.raises(serde.UnknownSchema, match="does not resolve"):
        serde.decode(data, OrderIntent)


def test_every_shipped_schema_is_offered_to_the_store() -> None:
    shipped = serde.shipped_schemas()
    fps = {sv.fingerprint for sv in shipped}
    assert fps == set(serde.load_schema_set().by_fingerprint)
    assert all(sv.shipped for sv in shipped)


def test_model_ids_the_executor_allows_match_their_producers() -> None:
    """The executor spells these out (its image has no meta consumer); they must not drift."""
    from bridge.routers.control import OPERATOR_MODEL as BRIDGE_OPERATOR
    from common.control import OPERATOR_MODEL as CLI_OPERATOR
    from config import FallbackMode, MetaSettings
    from executor.validate import FALLBACK_MODELS, OPERATOR_MODEL
    from meta_consumer.models import fallback_id

    assert OPERATOR_MODEL == CLI_OPERATOR == BRIDGE_OPERATOR
    assert {fallback_id(MetaSettings(fallback=mode)) for mode in FallbackMode} == FALLBACK_MODELS
