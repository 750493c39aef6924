"""Kill switch while trading is paused (hole 3 of issue 18), end to end on Kafka and Postgres.

Before: the executor refused the FLAT intent as "trading_paused", while the CLI and the bridge had
answered with a flatten intent id as if the book had been flattened. Now the kill switch wins
over the pause, and both entry points say what they did: set the switch and REQUEST a flatten;
the executor's outcome is what counts (the CLI can wait for it and prints it).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from bridge.app import create_app
from common.db.models import Intent
from common.db.session import make_engine, session_scope
from common.events import ExecutionReport, ExecutionStatus, OrderIntent
from config import BridgeSettings, RiskLimits, Settings
from executor import book
from executor.clock import FixedPriceFeed, SystemClock
from executor.exchanges.paper import PaperExchange
from executor.runner import run
from executor.service import Executor
from tests.conftest import REPO
from tests.standin.kit import SYMBOL, drain_reports, fills_position, make_intent

pytestmark = pytest.mark.integration
LIMITS = RiskLimits(max_position_btc=1.0, max_order_btc=0.5, daily_loss_cap_usd=500.0, max_orders_per_hour=20)
OPERATOR = "op-secret-kill"


def _executor(settings: Settings) -> Executor:
    s = settings.model_copy(update={"risk": LIMITS})
    engine = make_engine(s.database_url.get_secret_value())
    ns = s.kafka.topic_prefix
    venue = PaperExchange(
        engine, ns, FixedPriceFeed(20_000.0), symbol=SYMBOL, taker_fee_rate=0.0005, slippage_bps=1.0
    )
    return Executor(s, engine, venue, SystemClock(), ns)


def _hold(ex: Executor, target: float) -> None:
    sent: list[ExecutionReport] = []
    intent: OrderIntent = make_intent(0, target)
    assert ex.handle(intent, sent.append).status is ExecutionStatus.FILLED


def _pause(ex: Executor) -> None:
    with session_scope(ex.engine) as s:
        book.set_risk_state(s, ex.namespace, "test", "pause", "maintenance", trading_paused=True)


def test_cli_kill_switch_flattens_a_paused_book_and_reports_the_outcome(settings: Settings) -> None:
    ex = _executor(settings)
    _hold(ex, 0.8)
    _pause(ex)
    env = {
        **os.environ,
        "BTCMETA_DATABASE_URL": settings.database_url.get_secret_value(),
        "BTCMETA_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "BTCMETA_KAFKA__TOPIC_PREFIX": settings.kafka.topic_prefix,
        "BTCMETA_LOG_JSON": "false",
    }
    args = ["kill-switch", "--actor", "alice", "--reason", "paused drill", "--wait-s", "90"]
    cli = subprocess.Popen(
        [sys.executable, "-m", "executor", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        run(ex.settings, ex, max_messages=1, idle_timeout=60)  # the CLI's FLAT intent
        out, err = cli.communicate(timeout=120)
    finally:
        if cli.poll() is None:
            cli.kill()
    assert cli.returncode == 0, out + err
    assert "flatten REQUESTED (not executed yet)" in out
    assert "executor outcome: FILLED" in out and "position 0 BTC" in out
    (report,) = [r for r in drain_reports(settings, 1) if r.intent_id.endswith("|operator")]
    assert report.status is ExecutionStatus.FILLED and report.reason.startswith("kill_switch")
    assert (
        report.position_after
        == 0.0
        == ex.exchange.fetch_position()
        == fills_position(ex.engine, ex.namespace)
    )


def test_bridge_trip_while_paused_is_honest_and_the_executor_flattens(settings: Settings) -> None:
    ex = _executor(settings)
    ns = ex.namespace
    _hold(ex, -0.6)
    bridge = BridgeSettings(
        operator_tokens=[SecretStr(f"olga:{OPERATOR}")],
        default_namespace=ns,
        stream_enabled=False,
        flatten_on_trip=True,  # this test's own topic prefix: publishing is safe
    )
    headers = {"Authorization": f"Bearer {OPERATOR}"}
    with TestClient(create_app(settings, bridge)) as client:
        paused = client.post("/api/control/trading/pause", headers=headers, json={"reason": "news"})
        assert paused.status_code == 200 and paused.json()["risk"]["trading_paused"] is True
        trip = client.post("/api/control/kill-switch/trip", headers=headers, json={"reason": "drill"})
        assert trip.status_code == 200, trip.text
        body = trip.json()
        # the answer says what happened: switch set, a FLAT intent published; nothing filled yet
        assert body["flatten_status"] == "published" and body["flatten_error"] is None
        flatten_id = body["flatten_intent_id"]
        assert flatten_id.endswith("|operator")
        with session_scope(ex.engine) as s:
            assert s.get(Intent, (ns, flatten_id)) is None  # not executed by the bridge
        no_flat = client.post(
            "/api/control/kill-switch/trip", headers=headers, json={"reason": "again", "flatten": False}
        )
        assert (
            no_flat.json()["flatten_status"] == "not_requested"
            and no_flat.json()["flatten_intent_id"] is None
        )
        run(ex.settings, ex, max_messages=1, idle_timeout=60)
        intents = client.get("/api/intents", headers=headers, params={"namespace": ns}).json()
    outcome = {i["intent_id"]: i for i in intents}[flatten_id]
    assert outcome["status"] == "FILLED" and outcome["reason"].startswith("kill_switch"), outcome
    assert ex.exchange.fetch_position() == 0.0 == fills_position(ex.engine, ex.namespace)
    with session_scope(ex.engine) as s:
        state = book.load_risk_state(s, ns)
    assert state.kill_switch and state.trading_paused  # both stay engaged until an operator resumes
