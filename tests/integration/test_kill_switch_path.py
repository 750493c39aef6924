"""One kill-switch path: the executor CLI and the bridge engage and release it through
``common.control``, and the executor refuses new risk under a switch engaged either way."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from typer.testing import CliRunner

from bridge.app import create_app
from common import control
from common.db.session import session_scope
from common.events import ExecutionReport, ExecutionStatus
from config import BridgeSettings, Settings
from executor.cli import app as executor_cli
from tests.integration.test_kill_while_paused import _executor
from tests.standin.kit import make_intent

pytestmark = pytest.mark.integration
OPERATOR = "op-secret-path"


def _spy(monkeypatch: pytest.MonkeyPatch, name: str, calls: list[str]) -> None:
    """Record each call of ``common.control.<name>`` and run the real function (Postgres, no mock)."""
    real = getattr(control, name)

    def recording(*args: Any, **kwargs: Any) -> Any:
        calls.append(f"{name}:{kwargs['actor']}")
        return real(*args, **kwargs)

    monkeypatch.setattr(control, name, recording)


def _verdict(ex: Any, n: int) -> ExecutionReport:
    sent: list[ExecutionReport] = []
    return ex.handle(make_intent(n, 0.5), sent.append)  # type: ignore[no-any-return]


def test_cli_and_bridge_share_the_switch_and_the_executor_honours_both(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    ex = _executor(settings)
    ns = ex.namespace
    calls: list[str] = []
    _spy(monkeypatch, "engage_kill_switch", calls)
    _spy(monkeypatch, "release_kill_switch", calls)
    for key, value in {
        "BTCMETA_DATABASE_URL": settings.database_url.get_secret_value(),
        "BTCMETA_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "BTCMETA_KAFKA__TOPIC_PREFIX": settings.kafka.topic_prefix,
    }.items():
        monkeypatch.setenv(key, value)
    cli = CliRunner()
    bridge = BridgeSettings(
        operator_tokens=[SecretStr(f"olga:{OPERATOR}")],
        default_namespace=ns,
        stream_enabled=False,
        flatten_on_trip=False,
        control_rate_per_min=0,
    )
    headers = {"Authorization": f"Bearer {OPERATOR}"}
    with TestClient(create_app(settings, bridge)) as client:
        # engaged by the CLI: the executor refuses; released by the bridge: it trades again
        done = cli.invoke(
            executor_cli, ["kill-switch", "--actor", "alice", "--reason", "cli", "--no-flatten"]
        )
        assert done.exit_code == 0, done.output
        with session_scope(ex.engine) as s:
            assert control.read_kill_switch(s, ns) == (True, "cli")
        refused = _verdict(ex, 0)
        assert refused.status is ExecutionStatus.REFUSED and refused.reason.startswith("kill_switch: cli")
        reset = client.post("/api/control/kill-switch/reset", headers=headers, json={"reason": "ok"})
        assert reset.status_code == 200 and reset.json()["risk"]["kill_switch"] is False
        assert _verdict(ex, 1).status is ExecutionStatus.FILLED
        # engaged by the bridge: the executor refuses new risk; released by the CLI
        trip = client.post(
            "/api/control/kill-switch/trip", headers=headers, json={"reason": "web", "flatten": False}
        )
        assert trip.status_code == 200, trip.text
        with session_scope(ex.engine) as s:
            assert control.read_kill_switch(s, ns) == (True, "web")
        under_bridge = _verdict(ex, 2)
        assert under_bridge.status is not ExecutionStatus.FILLED or under_bridge.position_after == 0.0
        assert under_bridge.reason.startswith("kill_switch")
        done = cli.invoke(executor_cli, ["resume", "--actor", "alice", "--reason", "ok"])
        assert done.exit_code == 0, done.output
        with session_scope(ex.engine) as s:
            assert control.read_kill_switch(s, ns) == (False, None)
    assert calls == [
        "engage_kill_switch:alice",
        "release_kill_switch:olga",
        "engage_kill_switch:olga",
        "release_kill_switch:alice",
    ]
