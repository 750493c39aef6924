"""SSE through real Kafka: a produced event reaches a client; a reconnect replays what it missed."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from bridge.app import create_app
from bridge.server import BackgroundServer
from common.kafka import topics
from common.kafka.producer import EventProducer
from common.testkit import sample_execution_report, sample_order_intent, sample_recommendation
from config import BridgeSettings, Settings

pytestmark = pytest.mark.integration

TOKEN = "stream-viewer-token"
HEADERS = {"Authorization": f"Bearer {TOKEN}"}


def read_events(response: httpx.Response, count: int, within_s: float = 30.0) -> list[dict[str, Any]]:
    """Parse SSE frames until ``count`` events (keep-alive comments and retry lines skipped).

    The bridge's keep-alive comments reset httpx's read timeout, so a missing event would otherwise
    wait for pytest's 10-minute timeout: the deadline here is over the whole read.
    """
    events: list[dict[str, Any]] = []
    frame: dict[str, Any] = {}
    deadline = time.monotonic() + within_s
    for line in response.iter_lines():
        if time.monotonic() > deadline:
            raise AssertionError(f"only {len(events)} of {count} events within {within_s} s: {events}")
        if line == "":
            if "event" in frame:
                events.append(frame)
                if len(events) == count:
                    return events
            frame = {}
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            frame[field] = value.lstrip(" ")
    raise AssertionError(f"stream ended after {events}")


OPERATOR = "stream-operator-token"


@pytest.fixture
def bridge_url(settings: Settings) -> Iterator[str]:
    bridge = BridgeSettings(
        viewer_tokens=[SecretStr(f"v:{TOKEN}")],
        operator_tokens=[SecretStr(f"op:{OPERATOR}")],
        stream_keepalive_s=1.0,
    )
    app = create_app(settings, bridge)
    with BackgroundServer(app) as url:
        assert app.state.feed.wait_ready(60), "bridge feed never got its partitions"
        yield url


def wait_for_last_id(client: httpx.Client, url: str, expected: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = client.get(f"{url}/api/status", headers=HEADERS).json()
        if status["stream"]["last_event_id"] >= expected:
            return
        time.sleep(0.1)
    raise AssertionError(f"bridge never saw event {expected}")


def test_sse_delivers_kafka_events_and_replays_after_reconnect(settings: Settings, bridge_url: str) -> None:
    producer = EventProducer(settings, "test-bridge-stream")
    timeout = httpx.Timeout(30.0)
    with httpx.Client(timeout=timeout) as client:
        instance = client.get(f"{bridge_url}/api/status", headers=HEADERS).json()["stream"]["instance"]
        with client.stream("GET", f"{bridge_url}/api/stream", headers=HEADERS) as live:
            assert live.headers["content-type"].startswith("text/event-stream")
            producer.send(
                settings.topic(topics.RECOMMENDATIONS), sample_recommendation(strategy="ott"), key="k"
            )
            producer.flush()
            (first,) = read_events(live, 1)
        assert first["event"] == "recommendation" and first["id"] == f"{instance}-1"
        assert json.loads(first["data"])["strategy"] == "ott"

        # Disconnected: two more events happen. They are on two topics, and Kafka orders nothing
        # across topics, so the second is sent only once the bridge has numbered the first.
        producer.send(settings.topic(topics.INTENTS), sample_order_intent())
        producer.flush()
        wait_for_last_id(client, bridge_url, 2)
        producer.send(settings.topic(topics.EXECUTIONS), sample_execution_report())
        producer.flush()
        wait_for_last_id(client, bridge_url, 3)

        headers = HEADERS | {"Last-Event-ID": first["id"]}
        with client.stream("GET", f"{bridge_url}/api/stream", headers=headers) as again:
            missed = read_events(again, 2)
        assert [(e["id"], e["event"]) for e in missed] == [
            (f"{instance}-2", "intent"),
            (f"{instance}-3", "execution"),
        ]
        assert json.loads(missed[1]["data"])["orders"][0]["side"] == "BUY"

        # Filtered, non-following catch-up (what a polling client would use).
        r = client.get(
            f"{bridge_url}/api/stream",
            headers=HEADERS,
            params={"last_event_id": f"{instance}-0", "follow": "false", "types": "execution"},
        )
        assert [line for line in r.text.splitlines() if line.startswith("id:")] == [f"id: {instance}-3"]

        # Ids this bridge never issued (another replica's, from before a restart, beyond the newest):
        # reset first, then everything buffered.
        for foreign in ["0a1b2c3d-2", "999", f"{instance}-999"]:
            r = client.get(
                f"{bridge_url}/api/stream",
                headers=HEADERS | {"Last-Event-ID": foreign},
                params={"follow": "false"},
            )
            assert r.text.split("\n\n")[1].startswith("event: reset"), foreign
            assert r.text.count("\nid: ") == 3, foreign
    producer.close()


def test_kill_switch_trip_publishes_flat_intent_for_own_namespace(
    settings: Settings, bridge_url: str
) -> None:
    """Like `python -m executor kill-switch`: the executor of this namespace flattens right away."""
    own = settings.kafka.topic_prefix  # the executor's namespace on prefixed topics
    ops = {"Authorization": f"Bearer {OPERATOR}"}
    with httpx.Client(timeout=httpx.Timeout(30.0)) as client:
        with client.stream(
            "GET", f"{bridge_url}/api/stream", headers=HEADERS, params={"types": "intent"}
        ) as live:
            r = client.post(
                f"{bridge_url}/api/control/kill-switch/trip",
                headers=ops,
                params={"namespace": own},
                json={"reason": "fat finger"},
            )
            assert r.status_code == 200, r.text
            assert r.json()["flatten_error"] is None
            (event,) = read_events(live, 1)
        intent = json.loads(event["data"])
        assert intent["intent_id"] == r.json()["flatten_intent_id"]
        assert (intent["action"], intent["target_exposure"], intent["model_id"]) == ("FLAT", 0.0, "operator")
        assert "op" in intent["reason"] and "fat finger" in intent["reason"]
        # Another namespace's kill switch never flattens this one's book.
        other = client.post(
            f"{bridge_url}/api/control/kill-switch/trip",
            headers=ops,
            params={"namespace": "some-replay"},
            json={"reason": "drill"},
        )
        assert other.status_code == 200 and other.json()["flatten_intent_id"] is None
        assert "not this bridge's Kafka namespace" in other.json()["flatten_error"]
        status = client.get(f"{bridge_url}/api/status", headers=HEADERS, params={"namespace": own}).json()
        assert status["risk"]["kill_switch"] is True and status["risk"]["kill_reason"] == "fat finger"
