"""The JavaFX client against a real running bridge: seed real candles, start `python -m bridge run`,
run the TestFX screenshot test headless (Monocle), and check the PNG it saved.

The seeded run looks like what `make demo` leaves behind: it lives in 2022 data time, its rows are
written at wall-clock time, its services are named after its namespace, and it stopped before the
newest stored candle, so a client windowing on the wall clock (or on the newest candle) shows it
empty or misplaced. The Java test compares every view with the API.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, delete

from common.db.migrate import upgrade
from common.db.models import Decision, Fill, Intent, Order, PnlDaily, Recommendation
from common.db.session import make_engine, session_scope
from common.events import SignalEvent, Target
from common.ids import make_tick_id
from common.kafka import topics
from common.kafka.producer import EventProducer
from common.testkit import sample_execution_report, sample_order_intent, sample_recommendation
from config import Settings
from tests.bridge_seed import SYMBOL, seed_demo
from tests.conftest import _create_db, _drop_db, _url

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
GUI = REPO / "gui-java"
SCREENSHOT = GUI / "target" / "gui-main-window.png"
TOKEN = "gui-operator-token"
NAMESPACE = "demo.r20220817t000000."
#: The run stopped this long before the newest stored candle.
STOPPED_BEFORE = timedelta(days=3)


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
    summary = seed_demo(engine, NAMESPACE, weeks=4, like_replay=True)
    _stop_run_early(engine, summary.last_candle - STOPPED_BEFORE)
    engine.dispose()
    port = _free_port()
    env = os.environ | {
        "BTCMETA_DATABASE_URL": url,
        "BTCMETA_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "BTCMETA_KAFKA__TOPIC_PREFIX": settings.kafka.topic_prefix,
        "BTCMETA_BRIDGE__OPERATOR_TOKENS": f'["gui-test:{TOKEN}"]',
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


def _stop_run_early(engine: Engine, cutoff: datetime) -> None:
    """Drop the run's rows after ``cutoff`` (data time): it ended before the newest candle."""
    with session_scope(engine) as s:
        s.execute(delete(Fill).where(Fill.namespace == NAMESPACE, Fill.filled_at > cutoff))
        s.execute(delete(Order).where(Order.namespace == NAMESPACE, Order.created_at > cutoff))
        s.execute(
            delete(Intent).where(Intent.namespace == NAMESPACE, Intent.tick_id > make_tick_id(SYMBOL, cutoff))
        )
        s.execute(
            delete(Decision).where(
                Decision.namespace == NAMESPACE, Decision.tick_id > make_tick_id(SYMBOL, cutoff)
            )
        )
        s.execute(
            delete(Recommendation).where(
                Recommendation.namespace == NAMESPACE, Recommendation.bar_close_time > cutoff
            )
        )
        s.execute(delete(PnlDaily).where(PnlDaily.namespace == NAMESPACE, PnlDaily.day > cutoff.date()))


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
