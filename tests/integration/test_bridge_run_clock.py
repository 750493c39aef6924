"""The status response's ``run_clock``: a replayed run's own (data) time, not the wall clock.

A demo run lives in 2022 while its decision rows are written now; clients window every view on
``run_clock``, so it must come from the tick ids and bar times, never from ``decided_at``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from bridge.app import create_app
from common.db.migrate import upgrade
from common.db.session import make_engine
from config import BridgeSettings, load_settings
from tests.bridge_seed import DemoSummary, seed_demo
from tests.conftest import _create_db, _drop_db, _url

pytestmark = pytest.mark.integration

TOKEN = "run-clock-viewer"
RUN = "demo.r20220820t000000."


@pytest.fixture(scope="module")
def seeded(pg_server: str) -> Iterator[tuple[TestClient, DemoSummary]]:
    name = _create_db()
    url = _url(name)
    upgrade(url, "head")
    engine = make_engine(url)
    summary = seed_demo(engine, RUN, weeks=2, like_replay=True)
    settings = BridgeSettings(
        viewer_tokens=[SecretStr(f"vera:{TOKEN}")],
        default_namespace=RUN,
        stream_enabled=False,
        flatten_on_trip=False,
    )
    try:
        with TestClient(create_app(load_settings(database_url=url), settings)) as client:
            yield client, summary
    finally:
        engine.dispose()
        _drop_db(name)


def _status(client: TestClient, **params: str) -> dict[str, object]:
    response = client.get("/api/status", headers={"Authorization": f"Bearer {TOKEN}"}, params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert isinstance(body, dict)
    return body


def test_run_clock_is_the_newest_tick_in_data_time(seeded: tuple[TestClient, DemoSummary]) -> None:
    client, summary = seeded
    body = _status(client)
    assert body["run_clock"] is not None
    clock = datetime.fromisoformat(str(body["run_clock"]))
    # the tick of the newest bar closes one hour after it opened
    assert clock == summary.last_candle + timedelta(hours=1)
    assert clock.year == 2022
    # the wall-clock columns are "now": the status' own last_decision_at is not the run's clock
    last_decision = datetime.fromisoformat(str(body["last_decision_at"]))
    assert last_decision > datetime.now(UTC) - timedelta(hours=1)
    assert clock < last_decision - timedelta(days=365)


def test_run_clock_is_null_for_a_namespace_without_ticks(seeded: tuple[TestClient, DemoSummary]) -> None:
    client, _ = seeded
    body = _status(client, namespace="nothing.here")
    assert body["run_clock"] is None
    assert body["decisions_total"] == 0
