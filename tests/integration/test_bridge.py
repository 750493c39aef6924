"""Bridge REST API against a real, seeded PostgreSQL: every read endpoint, auth, audited controls."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine, select

from bridge.app import create_app
from bridge.settings import api_tokens
from common.db.migrate import upgrade
from common.db.models import AuditLog, Model, RiskState
from common.db.session import make_engine, session_scope
from config import BridgeSettings, load_settings
from tests.bridge_seed import DemoSummary, seed_demo
from tests.conftest import _create_db, _drop_db, _url

pytestmark = pytest.mark.integration

VIEWER = "viewer-secret-1"
OPERATOR = "operator-secret-1"
NS = "demo"


@dataclass
class Seeded:
    url: str
    engine: Engine
    summary: DemoSummary


@pytest.fixture(scope="module")
def seeded(pg_server: str) -> Iterator[Seeded]:
    """A database of this module's own (models and candles are global tables), seeded once."""
    name = _create_db()
    url = _url(name)
    upgrade(url, "head")
    engine = make_engine(url)
    summary = seed_demo(engine, NS)
    yield Seeded(url, engine, summary)
    engine.dispose()
    _drop_db(name)


def bridge_settings(**overrides: object) -> BridgeSettings:
    values: dict[str, object] = {
        "viewer_tokens": [SecretStr(f"vera:{VIEWER}")],
        "operator_tokens": [SecretStr(f"olga:{OPERATOR}")],
        "default_namespace": NS,
        "stream_enabled": False,
        # These tests talk to the developer's broker without a topic prefix: never publish there.
        "flatten_on_trip": False,
        # Many control calls in a row from one test client; throttling has its own test
        # (test_bridge_security.py).
        "control_rate_per_min": 0,
    }
    return BridgeSettings(**(values | overrides))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def client(seeded: Seeded) -> Iterator[TestClient]:
    app = create_app(load_settings(database_url=seeded.url), bridge_settings())
    with TestClient(app) as c:
        yield c


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def get(client: TestClient, path: str, token: str = VIEWER, **params: object) -> object:
    response = client.get(path, headers=auth(token), params=params)
    assert response.status_code == 200, response.text
    return response.json()


# ----------------------------------------------------------------------------- auth


@pytest.mark.parametrize("path", ["/api/status", "/api/candles", "/api/models", "/api/stream?follow=false"])
def test_missing_or_wrong_token_is_401(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 401
    wrong = client.get(path, headers=auth("not-a-token-at-all"))
    assert wrong.status_code == 401
    assert wrong.headers["www-authenticate"] == "Bearer"
    assert client.get(path, headers={"Authorization": f"Basic {VIEWER}"}).status_code == 401


def test_viewer_reads_but_cannot_control(client: TestClient) -> None:
    assert get(client, "/api/whoami") == {"name": "vera", "role": "viewer"}
    assert get(client, "/api/whoami", OPERATOR) == {"name": "olga", "role": "operator"}
    for path in [
        "/api/control/kill-switch/trip",
        "/api/control/trading/pause",
        "/api/control/models/x/select",
    ]:
        response = client.post(path, headers=auth(VIEWER), json={"reason": "nope"})
        assert response.status_code == 403, path
        assert client.post(path, json={"reason": "nope"}).status_code == 401


def test_health_needs_no_token(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}


def test_tokens_never_appear_in_repr() -> None:
    tokens = api_tokens(bridge_settings())
    assert [(t.name, t.role.value) for t in tokens] == [("vera", "viewer"), ("olga", "operator")]
    assert VIEWER not in repr(tokens) and OPERATOR not in repr(bridge_settings())


def test_token_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BTCMETA_BRIDGE__OPERATOR_TOKENS", '["ops:0123456789abcdef"]')
    monkeypatch.setenv("BTCMETA_BRIDGE__PORT", "8123")
    s = load_settings().bridge
    assert s.port == 8123
    assert [(t.name, t.secret.get_secret_value()) for t in api_tokens(s)] == [("ops", "0123456789abcdef")]


# ----------------------------------------------------------------------------- reads


def test_status_lists_services_and_degraded_ticks(client: TestClient, seeded: Seeded) -> None:
    body = get(client, "/api/status")
    assert isinstance(body, dict)
    services = {s["service"]: s for s in body["services"]}
    assert {"tick_emitter", "meta_consumer", "executor", "strategy:supertrend"} <= set(services)
    assert services["executor"]["lag_s"] == pytest.approx(0.1)
    assert services["executor"]["stale"] is False
    assert body["decisions_total"] == seeded.summary.decisions
    assert 0 < body["degraded_ticks"] < body["decisions_total"]
    assert body["selected_model_id"] == seeded.summary.selected_model_id
    assert body["risk"]["kill_switch"] is False
    assert body["stream"]["enabled"] is False
    other = get(client, "/api/status", namespace="live")
    assert isinstance(other, dict) and other["decisions_total"] == 0 and other["namespace"] == "live"


def test_position_and_pnl(client: TestClient) -> None:
    pos = get(client, "/api/position")
    assert isinstance(pos, dict)
    assert pos["quantity"] in (0.5, -0.5)
    assert pos["mark_price"] == pytest.approx(20963.0)  # last bundled close
    assert pos["unrealized_pnl"] == pytest.approx(pos["quantity"] * (20963.0 - pos["avg_entry_price"]))
    pnl = get(client, "/api/pnl", days=7)
    assert isinstance(pnl, dict)
    assert len(pnl["daily"]) == 7
    assert pnl["realized"] == pytest.approx(pos["realized_pnl"])
    assert pnl["total"] == pytest.approx(pnl["realized"] + pnl["unrealized"])
    assert pnl["latest_day"] == pnl["daily"][-1]


def test_recommendations_grouped_per_strategy(client: TestClient) -> None:
    groups = get(client, "/api/recommendations", per_strategy=3)
    assert isinstance(groups, list)
    assert [g["strategy"] for g in groups] == sorted(
        ["volatility_system", "supertrend", "fsupertrend", "ott", "bband_rsi"]
    )
    for g in groups:
        assert len(g["recent"]) == 3
        assert g["latest"] == g["recent"][0]
        times = [r["bar_close_time"] for r in g["recent"]]
        assert times == sorted(times, reverse=True)
    one = get(client, "/api/recommendations", strategy="ott")
    assert isinstance(one, list) and [g["strategy"] for g in one] == ["ott"]


def test_decisions_intents_orders_fills(client: TestClient, seeded: Seeded) -> None:
    decisions = get(client, "/api/decisions", limit=5)
    assert isinstance(decisions, list) and len(decisions) == 5
    assert decisions[0]["model_id"] == seeded.summary.selected_model_id
    assert set(decisions[0]["observation"]["votes"]) >= {"supertrend", "ott"}
    degraded = get(client, "/api/decisions", degraded=True, limit=1000)
    assert isinstance(degraded, list) and degraded and all(d["degraded"] for d in degraded)
    intents = get(client, "/api/intents")
    assert isinstance(intents, list) and len(intents) == seeded.summary.fills
    orders = get(client, "/api/orders")
    assert isinstance(orders, list) and len(orders) == seeded.summary.fills
    assert all(len(o["fills"]) == 1 and o["fills"][0]["side"] == o["side"] for o in orders)
    fills = get(client, "/api/fills")
    assert isinstance(fills, list) and len(fills) == seeded.summary.fills
    last = fills[0]["filled_at"]
    assert get(client, "/api/fills", since=last) == fills[:1]


def test_candles_resampled_from_hourly(client: TestClient, seeded: Seeded) -> None:
    hourly = get(client, "/api/candles", timeframe="1h", limit=8)
    assert isinstance(hourly, dict)
    assert hourly["source_timeframe"] == "1h" and len(hourly["candles"]) == 8
    assert hourly["candles"][-1]["close"] == 20963.0
    four = get(client, "/api/candles", timeframe="4h", limit=2)
    assert isinstance(four, dict)
    last4, prev4 = four["candles"][-1], four["candles"][-2]
    # 2022-08-20 00:00 opens a fresh 4h bucket containing only one hourly bar so far.
    assert last4["open_time"].startswith("2022-08-20T00:00") and last4["complete"] is False
    h = hourly["candles"][-5:-1]  # the four hourly bars of 2022-08-19 20:00..23:00
    assert prev4["open"] == h[0]["open"] and prev4["close"] == h[-1]["close"]
    assert prev4["high"] == max(c["high"] for c in h) and prev4["low"] == min(c["low"] for c in h)
    assert prev4["volume"] == pytest.approx(sum(c["volume"] for c in h)) and prev4["complete"] is True
    daily = get(client, "/api/candles", timeframe="1d", limit=400)
    assert isinstance(daily, dict) and 27 <= len(daily["candles"]) <= 30
    empty = get(client, "/api/candles", timeframe="15m")
    assert isinstance(empty, dict) and empty["candles"] == [] and empty["source_timeframe"] is None
    assert client.get("/api/candles", params={"timeframe": "1w"}, headers=auth(VIEWER)).status_code == 422


def test_leaderboard_ranks_and_marks_selected(client: TestClient, seeded: Seeded) -> None:
    board = get(client, "/api/models")
    assert isinstance(board, dict)
    assert board["best_model_id"] == "demo-ppo-v3"
    assert board["selected_model_id"] == seeded.summary.selected_model_id
    assert [m["rank"] for m in board["models"]] == [1, 2, 3, 4]
    assert board["models"][0]["metrics"]["sharpe"] == pytest.approx(1.42)
    assert [b["name"] for b in board["baselines"]] == ["buy_and_hold"]
    by_dd = get(client, "/api/models", metric="max_drawdown", order="asc")
    assert isinstance(by_dd, dict) and by_dd["best_model_id"] == "demo-dqn-v3"


# ----------------------------------------------------------------------------- control


def _audit_rows(engine: Engine, action: str) -> list[AuditLog]:
    with session_scope(engine) as s:
        return list(s.scalars(select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id)))


def test_kill_switch_trip_and_reset_are_audited(client: TestClient, seeded: Seeded) -> None:
    ns = "ctl-kill"
    trip = client.post(
        "/api/control/kill-switch/trip",
        params={"namespace": ns},
        headers=auth(OPERATOR),
        json={"reason": "drill"},
    )
    assert trip.status_code == 200, trip.text
    assert trip.json()["risk"]["kill_switch"] is True and trip.json()["actor"] == "olga"
    with session_scope(seeded.engine) as s:
        row = s.get(RiskState, ns)
        assert row is not None and row.kill_switch and row.kill_reason == "drill" and row.updated_by == "olga"
    status = get(client, "/api/status", namespace=ns)
    assert isinstance(status, dict) and status["risk"]["kill_switch"] is True
    assert client.post("/api/control/kill-switch/trip", headers=auth(OPERATOR), json={}).status_code == 422
    reset = client.post("/api/control/kill-switch/reset", params={"namespace": ns}, headers=auth(OPERATOR))
    assert reset.status_code == 200 and reset.json()["risk"]["kill_switch"] is False
    assert trip.json()["flatten_intent_id"] is None and "disabled" in trip.json()["flatten_error"]
    trips = [r for r in _audit_rows(seeded.engine, "kill_switch") if r.namespace == ns]
    assert len(trips) == 1
    assert (trips[0].actor, trips[0].role, trips[0].payload) == (
        "olga",
        "operator",
        {"reason": "drill", "kill_switch": True, "kill_reason": "drill"},
    )
    assert [r.namespace for r in _audit_rows(seeded.engine, "kill_switch_reset")].count(ns) == 1
    audit = get(client, "/api/audit", namespace=ns)
    assert isinstance(audit, list) and [a["action"] for a in audit] == [
        "kill_switch_reset",
        "kill_switch",
    ]


def test_pause_and_resume_are_audited(client: TestClient, seeded: Seeded) -> None:
    ns = "ctl-pause"
    r = client.post(
        "/api/control/trading/pause",
        params={"namespace": ns},
        headers=auth(OPERATOR),
        json={"reason": "news"},
    )
    assert r.status_code == 200 and r.json()["risk"]["trading_paused"] is True
    r = client.post("/api/control/trading/resume", params={"namespace": ns}, headers=auth(OPERATOR))
    assert r.status_code == 200 and r.json()["risk"]["trading_paused"] is False
    actions = [(a.action, a.payload) for a in _audit_rows(seeded.engine, "pause") if a.namespace == ns]
    assert actions == [("pause", {"reason": "news", "trading_paused": True})]
    assert [a.namespace for a in _audit_rows(seeded.engine, "resume")].count(ns) == 1


def test_select_model_moves_the_selection_and_is_audited(client: TestClient, seeded: Seeded) -> None:
    before = seeded.summary.selected_model_id
    r = client.post("/api/control/models/demo-ppo-v3/select", headers=auth(OPERATOR), json={"reason": "best"})
    assert r.status_code == 200, r.text
    with session_scope(seeded.engine) as s:
        chosen = s.scalars(select(Model).where(Model.selected.is_(True))).all()
        assert [(m.model_id, m.selected_by) for m in chosen] == [("demo-ppo-v3", "olga")]
    (row,) = _audit_rows(seeded.engine, "model_select")[-1:]
    assert row.payload == {"model_id": "demo-ppo-v3", "previous_model_id": before, "reason": "best"}
    assert client.post("/api/control/models/nope/select", headers=auth(OPERATOR)).status_code == 404
    # put the fixture's selection back for the other tests of this module
    client.post(f"/api/control/models/{before}/select", headers=auth(OPERATOR))
