"""The published OpenAPI spec: committed copy up to date, and the app fuzzed against it.

Schemathesis generates requests from the spec (operator token, so control endpoints are exercised
too) against the app on a real, seeded PostgreSQL; any 5xx or any response that does not match
its declared schema fails. The SSE endpoint is excluded: an endless stream is not a request/response
pair (it has its own test through real Kafka).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from pydantic import SecretStr
from schemathesis.checks import not_a_server_error
from schemathesis.python.asgi import shutdown_lifespans
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from bridge.app import create_app
from bridge.cli import SPEC_PATH, spec_json
from common.db.migrate import upgrade
from common.db.session import make_engine
from config import BridgeSettings, load_settings
from tests.bridge_seed import seed_demo
from tests.conftest import ADMIN_DSN, _drop_db, _url

pytestmark = pytest.mark.integration

OPERATOR = "fuzz-operator-token"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def test_committed_spec_is_up_to_date() -> None:
    assert SPEC_PATH.read_text() == spec_json(), (
        "bridge/openapi.json is stale: run `python -m bridge openapi`"
    )


# The app is built at import (schemathesis needs it to generate tests) but only touches its
# database on the first request, after the module fixture below has created and seeded it.
DB_NAME = f"test_fuzz_{uuid.uuid4().hex[:8]}"
# flatten_on_trip off: the fuzzer trips the kill switch of "live" on the developer's broker.
_bridge = BridgeSettings(
    operator_tokens=[SecretStr(f"fuzzer:{OPERATOR}")], stream_enabled=False, flatten_on_trip=False
)
app = create_app(load_settings(database_url=_url(DB_NAME)), _bridge)
schema = schemathesis.openapi.from_asgi("/openapi.json", app).exclude(path="/api/stream")


@pytest.fixture(scope="module", autouse=True)
def fuzz_database(pg_server: str) -> Iterator[None]:
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{DB_NAME}"')
    upgrade(_url(DB_NAME), "head")
    engine = make_engine(_url(DB_NAME))
    seed_demo(engine, "live", weeks=4)
    engine.dispose()
    yield
    shutdown_lifespans()
    _drop_db(DB_NAME)


@schema.parametrize()
@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_spec(case: schemathesis.Case) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {OPERATOR}"}, checks=CHECKS)
