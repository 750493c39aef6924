"""Crash safety: the meta consumer as a separate process, SIGKILLed at random points, restarted.

What is proven, over a stream of 200 ticks published while the process is being killed (seeded, 10
kills), then one last run to the end:

* decisions table: exactly one row per published tick, no other rows (the unique constraint makes
  a second row impossible; the test checks none is missing), and the model portfolio chains without
  a gap: each decision's ``current_exposure`` is the previous decision's ``target_exposure`` and the
  carried tick counter is 1..N in tick order, so no restart lost or re-ordered state;
* intents topic: the set of intent ids is exactly {make_intent_id(tick, model)} for every tick,
  each id's copies are byte-identical (a restart re-sends its last commit's intents; the executor
  refuses the copies by id), and each intent agrees with its decision row.
"""

from __future__ import annotations

import itertools
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import SecretStr

from common.db.migrate import upgrade
from common.db.models import Decision
from common.events import SignalEvent, Target
from common.ids import make_intent_id
from common.observation import FeatureSpec
from common.registry import load_registry
from config import FallbackMode, Settings
from meta_consumer.decide import MARK_CLOSES, Carry, Choice, Mark, TickInput, decide_tick
from tests.integration.test_meta_consumer import (
    LIVE,
    VOTE,
    Bus,
    bar,
    read_intents,
    tick_id,
    tick_time,
    wait_decisions,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
TICKS = 200
KILLS = 10
AHEAD = 10


def _publish(
    bus: Bus, rng: random.Random, stop: threading.Event, unpaced: threading.Event, decided: Callable[[], int]
) -> None:
    """Publish the stream; while kills go on, stay at most AHEAD ticks ahead of the decisions so that
    the stream outlasts the kill phase whatever the machine's process start-up time."""
    for i in range(1, TICKS + 1):
        while not unpaced.is_set() and i - decided() > AHEAD and not stop.is_set():
            time.sleep(0.05)
        if stop.is_set():
            return
        targets = {s: rng.choice([Target.LONG, Target.SHORT, Target.FLAT]) for s in LIVE}
        if i % 7 == 0:  # recommendations ahead of their TickPlan
            bus.recs(i, targets)
            bus.tick(i)
        else:
            bus.tick(i)
            bus.recs(i, targets)
        if not unpaced.is_set():
            time.sleep(0.1)


def _assert_equal_to_an_uninterrupted_offline_run(rows: list[Decision]) -> None:
    """Replay the same stream through the pure decision function in one go: restarts changed nothing."""
    rng = random.Random(7)  # the publisher's seed: same targets in the same order
    carry = Carry()
    # The consumer observes every enabled strategy of the registry it runs with; only LIVE answer here.
    registered = tuple(
        s.name for s in load_registry(REPO / "strategies_registry.json", import_classes=False).enabled
    )
    choice = Choice(
        VOTE, FeatureSpec(strategies=registered), None, FallbackMode.MAJORITY_VOTE, "no model selected"
    )
    for i, row in enumerate(rows, start=1):
        targets = {s: rng.choice([Target.LONG, Target.SHORT, Target.FLAT]) for s in LIVE}
        mark = Mark(tick_id(i), tuple(bar(i).close[-MARK_CLOSES:]))
        inputs = TickInput(
            tick_id(i),
            tick_time(i),
            frozenset(LIVE),
            {s: (t, SignalEvent.NONE, 0.6) for s, t in targets.items()},
            mark,
            True,
        )
        out = decide_tick(inputs, carry, choice, registered, step=0.25, max_exposure=1.0)
        assert (row.action, row.target_exposure) == (out.action.value, out.target_exposure), row.tick_id
        assert row.observation["features"] == out.features, row.tick_id
        assert row.observation["state"]["portfolio"] == out.carry.portfolio.to_dict(), row.tick_id
        carry = out.carry


def _start(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "BTCMETA_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "BTCMETA_KAFKA__TOPIC_PREFIX": settings.kafka.topic_prefix,
        "BTCMETA_DATABASE_URL": settings.database_url.get_secret_value(),
        "BTCMETA_REGISTRY_PATH": str(REPO / "strategies_registry.json"),
        "BTCMETA_LOG_LEVEL": "WARNING",
        "BTCMETA_META__DEADLINE_S": "60",
        "BTCMETA_META__GROUP_INSTANCE_ID": "meta-0",
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "meta_consumer", "run"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def test_sigkill_restarts_decide_every_tick_exactly_once(
    settings: Settings, empty_database_url: str, tmp_path: Path
) -> None:
    upgrade(empty_database_url)
    settings = settings.model_copy(update={"database_url": SecretStr(empty_database_url)})
    rng = random.Random(20240605)
    stop, unpaced = threading.Event(), threading.Event()
    publisher = threading.Thread(
        target=_publish,
        daemon=True,
        args=(Bus(settings), random.Random(7), stop, unpaced, lambda: len(wait_decisions(settings, 0))),
    )
    publisher.start()
    log = tmp_path / "meta.log"
    kills = 0
    decided_at_kill: list[int] = []
    try:
        while kills < KILLS and publisher.is_alive():
            before = len(wait_decisions(settings, 0))
            proc = _start(settings, log)
            # Random point of a working incarnation: once it decided something, after 0-1.5 s more.
            wait_decisions(settings, before + 1, timeout=60)
            time.sleep(rng.uniform(0.0, 1.5))
            assert proc.poll() is None, log.read_text()[-3000:]
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            kills += 1
            decided_at_kill.append(len(wait_decisions(settings, 0)))
        unpaced.set()
        publisher.join(timeout=120)
        proc = _start(settings, log)
        rows = wait_decisions(settings, TICKS, timeout=90)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log.read_text()[-3000:]
    finally:
        stop.set()
        if proc.poll() is None:
            proc.kill()
    # Every incarnation was killed while working: it had decided ticks and more were still to come.
    progress = [b - a for a, b in itertools.pairwise([0, *decided_at_kill])]
    assert kills == KILLS and all(p > 0 for p in progress) and decided_at_kill[-1] < TICKS, decided_at_kill
    expected = [tick_id(i) for i in range(1, TICKS + 1)]
    assert [d.tick_id for d in rows] == expected  # one row per tick, in tick order
    states = [d.observation["state"] for d in rows]
    assert [s["seq"] for s in states] == list(range(1, TICKS + 1))
    assert all(b.current_exposure == a.target_exposure for a, b in itertools.pairwise(rows))
    assert rows[0].current_exposure == 0.0
    assert not any(d.degraded for d in rows)  # every bar and answer was found again after each restart
    _assert_equal_to_an_uninterrupted_offline_run(rows)

    copies: dict[str, set[bytes]] = defaultdict(set)
    decoded = {}
    messages = read_intents(settings, TICKS + 1, timeout=10)
    for raw, intent in messages:
        copies[intent.intent_id].add(raw)
        decoded[intent.intent_id] = intent
    # Each of the KILLS restarts re-sent the intents of the killed incarnation's last commit (one
    # tick, or a batch of ready ticks): duplicates, or the only copies when the kill fell between
    # the commit and the flush. So duplicates were exercised, and nothing else was sent twice.
    resent = sum(rows[n - 1].observation.get("commit", {}).get("of", 1) for n in decided_at_kill)
    assert KILLS <= resent <= KILLS * (AHEAD + 1), resent
    assert TICKS < len(messages) <= TICKS + resent
    assert set(copies) == {make_intent_id(t, VOTE) for t in expected}
    assert all(len(v) == 1 for v in copies.values()), "a re-sent intent differs from the first copy"
    for d in rows:
        intent = decoded[make_intent_id(d.tick_id, VOTE)]
        assert (intent.action.value, intent.current_exposure, intent.target_exposure, intent.degraded) == (
            d.action,
            d.current_exposure,
            d.target_exposure,
            d.degraded,
        )
