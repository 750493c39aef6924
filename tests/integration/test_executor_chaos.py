"""Chaos: the executor as a separate process, SIGKILLed at random moments, restarted each time.

Invariants checked afterwards (the definition of "exactly once" here):

* every distinct intent id published has exactly one row in ``intents`` (none lost, none twice);
* every distinct intent has at least one report that is not a ``duplicate_intent`` refusal, and
  all such reports of one intent agree (status, client order ids, position after): a report may
  be re-sent after a crash (at-least-once, consumers dedup by intent_id) but never contradicts;
* re-published intent ids only ever get ``duplicate_intent`` refusals beyond that first outcome;
* no order was placed twice: the paper venue's orders and fills (its own namespace, committed
  before the executor's transaction) equal the executor's, one for one by client order id;
* position (executor book) == sum of its fills == venue position == sum of the venue's fills;
* no intent was refused because venue and book disagreed (crashes are always explainable).

Run twice: one intent per transaction (live, ADR 0007) and in batches (replays, ADR 0018), where
most intents keep the previous target as in a replay, so transactions hold many intents and the
kills land in the middle of them.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from common.db.models import Fill, Intent, Order
from common.db.session import make_engine, session_scope
from config import Settings
from executor import book
from executor.exchanges.paper import venue_namespace
from tests.conftest import REPO
from tests.standin.kit import SYMBOL, drain_reports, fills_position, make_intent, publish

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SEED = 20261124
INTENTS = 1000
REPUBLISHED = 25
KILLS = 20


def _env(settings: Settings, batch: int | None = None) -> dict[str, str]:
    extra = {"BTCMETA_EXECUTOR__BATCH_SIZE": str(batch)} if batch else {}
    return {
        **os.environ,
        "BTCMETA_DATABASE_URL": settings.database_url.get_secret_value(),
        "BTCMETA_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "BTCMETA_KAFKA__TOPIC_PREFIX": settings.kafka.topic_prefix,
        "BTCMETA_RISK__MAX_POSITION_BTC": "1.0",
        "BTCMETA_RISK__MAX_ORDER_BTC": "1.0",
        "BTCMETA_RISK__MAX_ORDERS_PER_HOUR": "100000",
        "BTCMETA_RISK__MAX_INTENT_AGE_S": "3600",
        "BTCMETA_RISK__DAILY_LOSS_CAP_USD": "1000000",
        "BTCMETA_EXECUTOR__FIXED_PRICE": "20000",
        "BTCMETA_LOG_LEVEL": "WARNING",
        **extra,
    }


def _start(
    settings: Settings, log: Path, idle: float | None = None, batch: int | None = None
) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "executor", "run"] + (["--idle-timeout", str(idle)] if idle else [])
    with log.open("ab") as err:
        return subprocess.Popen(args, cwd=REPO, env=_env(settings, batch), stdout=err, stderr=err)


@pytest.mark.parametrize(("batch", "hold"), [(None, 0.0), (50, 0.8)], ids=["one-at-a-time", "batched"])
def test_sigkill_chaos_keeps_exactly_once(
    settings: Settings, tmp_path: Path, batch: int | None, hold: float
) -> None:
    rng = random.Random(SEED)
    grid = [-1.0, -0.75, -0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 1.0]
    # ~5 % refused by max_intent_age_s, every time: intents for ticks hours old (the executor ages
    # an intent by its tick, not its created_at); the rest are for ticks that just happened
    stale = datetime.now(UTC) - timedelta(hours=3, minutes=INTENTS)
    targets: list[float] = []
    for _ in range(INTENTS):  # ``hold``: share of intents keeping the previous target (no order)
        targets.append(targets[-1] if targets and rng.random() < hold else rng.choice(grid))
    intents = [
        make_intent(i, target, model=f"chaos{i // 60}", base=stale if rng.random() < 0.05 else None)
        for i, target in enumerate(targets)
    ]
    again = rng.sample(intents, REPUBLISHED)
    stream = intents + again
    rng.shuffle(again)
    publish(settings, stream)
    log = tmp_path / "executor.log"
    kills = 0
    started = time.monotonic()
    engine = make_engine(settings.database_url.get_secret_value())
    ns = settings.kafka.topic_prefix
    while kills < KILLS:
        proc = _start(settings, log, batch=batch)
        time.sleep(rng.uniform(1.5, 4.5))  # start-up takes ~1.5-3 s here: some kills land before any work
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
    proc = _start(settings, log, idle=6.0, batch=batch)
    deadline = time.monotonic() + 300  # ~40 s idle; a loaded CI box is several times slower
    distinct = {i.intent_id for i in intents}
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.5)
    if proc.poll() is None:
        proc.kill()
        pytest.fail("final executor run did not drain the intents in time")
    text = log.read_text(errors="replace")
    assert proc.returncode == 0, text[-3000:]
    elapsed = time.monotonic() - started

    # --- one intents row per distinct intent id
    with session_scope(engine) as s:
        rows = s.execute(
            select(Intent.intent_id, Intent.status, Intent.reason).where(Intent.namespace == ns)
        ).all()
    assert len(rows) == len({r[0] for r in rows}) == len(distinct)
    assert {r[0] for r in rows} == distinct
    assert not [r for r in rows if (r[2] or "").startswith("reconcile")]
    refused_stale = sum(1 for r in rows if (r[2] or "").startswith("max_intent_age_s"))
    assert refused_stale > 0

    # --- reports: a consistent first outcome per intent, duplicates refused
    reports = drain_reports(settings, len(stream), timeout=60)
    outcomes: dict[str, set[tuple[object, ...]]] = defaultdict(set)
    dup_refusals = 0
    for r in reports:
        if r.reason.startswith("duplicate_intent"):
            dup_refusals += 1
            continue
        assert not r.reason.startswith("reconcile"), r.reason
        outcomes[r.intent_id].add((r.status, tuple(o.client_order_id for o in r.orders), r.position_after))
    assert set(outcomes) == distinct
    assert all(len(v) == 1 for v in outcomes.values()), [v for v in outcomes.values() if len(v) > 1][:3]
    assert dup_refusals >= REPUBLISHED
    status_by_id = {r[0]: r[1] for r in rows}
    assert all(next(iter(outcomes[i]))[0].value == status_by_id[i] for i in distinct)

    # --- no order twice: venue and book agree one for one
    venue = venue_namespace(ns)
    with session_scope(engine) as s:
        ours = set(s.scalars(select(Order.client_order_id).where(Order.namespace == ns)))
        theirs = set(s.scalars(select(Order.client_order_id).where(Order.namespace == venue)))
        our_fills = set(s.scalars(select(Fill.fill_id).where(Fill.namespace == ns)))
        their_fills = set(s.scalars(select(Fill.fill_id).where(Fill.namespace == venue)))
        held = book.load_holding(s, ns, SYMBOL).quantity
        venue_pos = book.load_holding(s, venue, SYMBOL).quantity
    reported_cids = [c for v in outcomes.values() for (_, cids, _) in v for c in cids]
    assert len(reported_cids) == len(set(reported_cids)) == len(ours)
    assert ours == theirs and our_fills == their_fills and len(our_fills) == len(ours)
    assert held == fills_position(engine, ns) == venue_pos == fills_position(engine, venue)
    adoptions = text.count("adopting_orders")
    print(
        f"\nchaos: {len(stream)} intents ({len(distinct)} distinct), {kills} SIGKILLs, {len(ours)} orders, "
        f"{adoptions} crash adoptions, {len(reports)} reports ({dup_refusals} duplicate refusals, "
        f"{refused_stale} stale refusals), "
        f"position {held:g} BTC, {elapsed:.1f}s"
    )
