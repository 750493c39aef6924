"""The JavaFX client against a real running bridge: seed real candles, start `python -m bridge run`,
run the TestFX screenshot test headless (Monocle), and check the PNG it saved.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from common.db.migrate import upgrade
from common.db.session import make_engine
from common.events import SignalEvent, Target
from common.kafka import topics
from common.kafka.producer import EventProducer
from common.testkit import sample_execution_report, sample_order_intent, sample_recommendation
from config import Settings
from tests.bridge_seed import seed_demo
from tests.conftest import _create_db, _drop_db, _url

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
GUI = REPO / "gui-java"
SCREENSHOT = GUI / "target" / "gui-main-window.png"
TOKEN = "gui-operator-token"
NAMESPACE = "demo"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def running_bridge(settings: Settings) -> Iterator[str]:
    """A seeded database of its own and the bridge serving it as a separate process."""
    name = _create_db()
    url = _url(name)
    upgrade(url, "head")
    engine = make_engine(url)
    seed_demo(engine, NAMESPACE, weeks=4)
    engine.dispose()
    port = _free_port()
    env = os.environ | {
        "BTCMETA_DATABASE_URL": url,
        "BTCMETA_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "BTCMETA_KAFKA__TOPIC_PREFIX": settings.kafka.topic_prefix,
        "BTCMETA_BRIDGE_OPERATOR_TOKENS": f'["gui-test:{TOKEN}"]',
        "BTCMETA_LOG_JSON": "false",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "bridge", "run", "--port", str(port), "--namespace", NAMESPACE],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"bridge did not start:\n{proc.stdout.read() if proc.stdout else ''}")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        _drop_db(name)


@pytest.fixture
def live_traffic(settings: Settings) -> Iterator[None]:
    """Events on the bridge's topics while the client runs, so its live feed gets SSE traffic."""
    stop = threading.Event()

    def produce() -> None:
        producer = EventProducer(settings, "test-gui-traffic")
        strategies = ["supertrend", "ott", "bband_rsi"]
        while not stop.wait(1.5):
            for name in strategies:
                rec = sample_recommendation(strategy=name, target=Target.SHORT, event=SignalEvent.ENTER_SHORT)
                producer.send(settings.topic(topics.RECOMMENDATIONS), rec, key=rec.tick_id)
            producer.send(settings.topic(topics.INTENTS), sample_order_intent())
            producer.send(settings.topic(topics.EXECUTIONS), sample_execution_report())
            producer.flush()
        producer.close()

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(10)


def test_gui_renders_live_bridge_data(running_bridge: str, live_traffic: None) -> None:
    from PIL import Image

    SCREENSHOT.unlink(missing_ok=True)
    done = subprocess.run(
        [
            "mvn", "-q", "-B", "test",
            "-Dtest=LiveBridgeScreenshotTest",
            f"-Dbridge.url={running_bridge}",
            f"-Dbridge.token={TOKEN}",
            f"-Dbridge.namespace={NAMESPACE}",
            "-Dbridge.expectLiveEvents=true",
        ],
        cwd=GUI,
        capture_output=True,
        text=True,
        timeout=480,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert SCREENSHOT.exists(), "the TestFX test did not save a screenshot"
    assert SCREENSHOT.stat().st_size > 30_000
    with Image.open(SCREENSHOT) as img:
        assert img.size[0] >= 1200 and img.size[1] >= 800
        colours = img.convert("RGB").getcolors(maxcolors=1_000_000)
        assert colours is None or len(colours) > 50, "screenshot is (nearly) one colour"
