"""The meta consumer's hot SQL over plain psycopg (ADR 0021): same rows, same answers, survives a drop.

The reference for "same rows" is the SQLAlchemy statement the store ran before (an ``INSERT .. ON
CONFLICT DO NOTHING`` built from the models), executed here on the same input into a namespace of
its own; every column but the namespace and the database clock's must come back equal. The
connection tests kill the service's own backends with ``pg_terminate_backend`` (what a Postgres
restart or failover does to an idle connection) and expect the next tick to go through.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.dialects.postgresql import insert

from common.db.direct import PgConnection
from common.db.models import Decision, Recommendation, Tick
from common.db.session import make_engine, session_scope, with_local_passfile
from common.events import SignalEvent, Target
from config import Settings
from meta_consumer import store
from meta_consumer.join import PendingTick, Ready
from meta_consumer.service import MetaConsumer
from tests.integration.test_meta_consumer import LIVE, meta_settings, plan, rec, tick_id

pytestmark = pytest.mark.integration


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    eng = make_engine(database_url)
    yield eng
    eng.dispose()


def _ns() -> str:
    return f"t{uuid.uuid4().hex[:10]}."


def _recs(i: int) -> list[Any]:
    """Answers with what the JSON and NULL rules must handle: NaN/inf, unicode, v3 fields."""
    out = []
    for k, name in enumerate(LIVE):
        r = rec(i, name, (Target.LONG, Target.SHORT, Target.FLAT)[k % 3])
        indicators = {"ema": 20_000.5 + k, "warmup": math.nan, "upper": math.inf, "δ": -1.5}
        out.append(
            replace(
                r,
                event=SignalEvent.ENTER_LONG if k == 0 else SignalEvent.NONE,
                confidence=0.1 * k,
                indicators=indicators,
                reason="" if k % 2 else f"stale:feed_{k}",
                attention=(None, True, False)[k % 3],
            )
        )
    return out


def _rows(engine: Engine, model: Any, namespace: str, skip: set[str]) -> list[dict[str, Any]]:
    """The namespace's rows, every column but ``namespace`` and ``skip``, in primary-key order."""
    cols = [c for c in model.__table__.columns if c.name not in {"namespace", *skip}]
    with session_scope(engine) as s:
        rows = s.execute(select(*cols).where(model.namespace == namespace).order_by(*cols[:3])).all()
    return [dict(r._mapping) for r in rows]


def test_rows_equal_what_the_sqlalchemy_statements_wrote(engine: Engine, database_url: str) -> None:
    old, new = _ns(), _ns()
    recs, plans = _recs(1) + _recs(2), [plan(1), plan(2)]
    with engine.begin() as conn:  # the statements the store ran through SQLAlchemy before
        conn.execute(insert(Recommendation).on_conflict_do_nothing(), [store._rec_row(old, r) for r in recs])
        conn.execute(insert(Tick).on_conflict_do_nothing(), [store._tick_row(old, p) for p in plans])
    db = PgConnection(database_url)
    try:
        saved = store.save_batch(db, new, recs[:7], plans[:1])  # tick 2's plan comes in a later batch
        assert saved.fresh == {(r.tick_id, r.strategy) for r in recs[:7]}
        assert saved.answered == {tick_id(1): set(LIVE)}
        saved = store.save_batch(db, new, recs, plans)  # re-delivered with the rest: only the rest is new
        assert saved.fresh == {(r.tick_id, r.strategy) for r in recs[7:]}
        assert saved.answered == {tick_id(1): set(LIVE), tick_id(2): set(LIVE)}
        assert store.save_recommendation(db, new, recs[0]) is False
        assert store.answered(db, new, tick_id(2)) == set(LIVE)
        got = store.recs_for_ticks(db, new, [tick_id(1), tick_id(2), tick_id(3)])
        assert got[tick_id(3)] == {}
        assert got[tick_id(1)]["volatility_system"] == (Target.LONG, SignalEvent.ENTER_LONG, 0.0)
        assert store.recs_for_tick(db, new, tick_id(2)) == got[tick_id(2)]
    finally:
        db.close()
    for model, skip in ((Recommendation, {"received_at"}), (Tick, {"published_at"})):
        want = _rows(engine, model, old, skip)
        assert len(want) == {Recommendation: 10, Tick: 2}[model]
        assert _rows(engine, model, new, skip) == want
    stored = _rows(engine, Recommendation, new, {"received_at"})[0]
    assert stored["indicators"]["warmup"] == "nan" and stored["indicators"]["upper"] == "inf"
    reasons = {r["strategy"]: r["reason"] for r in _rows(engine, Recommendation, new, set())}
    assert (reasons["volatility_system"], reasons["supertrend"]) == ("stale:feed_0", None)  # "" -> NULL


def _decision(namespace: str, i: int, index: int) -> dict[str, Any]:
    return {
        "namespace": namespace,
        "tick_id": tick_id(i),
        "model_id": "fallback:majority_vote",
        "observation": {
            "features": {"ott.target": 1.0, "volatility": math.nan},
            "state": {"seq": i, "mark": {"closes": [20_000.0, 20_001.5]}},
            "present": sorted(LIVE),
            "commit": {"index": index, "of": 2},
        },
        "action": "INCREASE",
        "current_exposure": 0.25 * index,
        "target_exposure": 0.5,
        "degraded": bool(index),
        "late_strategies": ["ott"] if index else [],
        "decided_at": datetime(2026, 1, 2, 3, 4, 5, 678_000, tzinfo=UTC),
    }


def test_decisions_equal_and_a_decided_tick_is_kept(engine: Engine, database_url: str) -> None:
    old, new = _ns(), _ns()
    with engine.begin() as conn:
        conn.execute(
            insert(Decision).on_conflict_do_nothing(constraint="uq_decisions_namespace_tick_id"),
            [_decision(old, i, k) for k, i in enumerate((1, 2))],
        )
    db = PgConnection(database_url)
    try:
        with db.transaction() as cur:  # the decider's transaction: a cursor passed in
            assert store.insert_decisions(cur, [_decision(new, i, k) for k, i in enumerate((1, 2))]) == 2
        again = _decision(new, 2, 0) | {"action": "DECREASE"}
        assert store.insert_decisions(db, [again, _decision(new, 3, 1)]) == 1  # tick 2 was decided
        assert store.insert_decision(db, again) is False
    finally:
        db.close()
    want = _rows(engine, Decision, old, {"id"})
    got = _rows(engine, Decision, new, {"id"})
    assert got[:2] == want and got[1]["action"] == "INCREASE"
    assert want[0]["observation"]["features"]["volatility"] == "nan"
    with session_scope(engine) as s:  # ids grow in row order: last_decisions() relies on it
        ids = s.scalars(select(Decision.id).where(Decision.namespace == new).order_by(Decision.tick_id)).all()
    assert list(ids) == sorted(ids)


def test_a_failed_block_rolls_back_and_keeps_the_connection(database_url: str) -> None:
    ns = _ns()
    db = PgConnection(database_url)
    try:
        with db.cursor() as cur:
            cur.execute("SELECT pg_backend_pid()")
            pid = cur.fetchone()
        with pytest.raises(RuntimeError), db.transaction() as cur:
            store.save_batch(cur, ns, _recs(1), [plan(1)])
            raise RuntimeError("the decider changed its mind")
        assert store.answered(db, ns, tick_id(1)) == set()  # rolled back
        with pytest.raises(psycopg.errors.UndefinedTable), db.transaction() as cur:
            cur.execute("SELECT 1 FROM no_such_table")
        with db.cursor() as cur:
            cur.execute("SELECT pg_backend_pid()")
            assert cur.fetchone() == pid  # neither error cost a reconnect
    finally:
        db.close()


def _terminate(database_url: str, *pids: int) -> None:
    admin = with_local_passfile(database_url.replace("+psycopg", ""))
    with psycopg.connect(admin, autocommit=True) as conn:
        for pid in pids:
            conn.execute("SELECT pg_terminate_backend(%s)", (pid,))


def _pid(db: PgConnection) -> int:
    conn = db._conn
    assert conn is not None and not conn.closed, "the connection is held between calls"
    return int(conn.info.backend_pid)


def _ready(svc: MetaConsumer, i: int) -> list[Ready]:
    p = plan(i)
    tick = PendingTick(p.tick_id, p.tick_time, frozenset(LIVE), False, deadline=time.time(), arrived_at=0.0)
    return [Ready(tick, timed_out=False)]


def test_the_next_tick_survives_killed_connections(settings: Settings) -> None:
    """Both held connections dropped by the server between two ticks: the tick is stored and
    decided on new connections, exactly once, without an error reaching the loop."""
    svc = MetaConsumer(settings, meta_settings(), live=LIVE)
    url = settings.database_url.get_secret_value()
    try:
        for i in (1, 2):
            for message in (plan(i), *_recs(i)):
                svc.handle(message, None)
            svc.store_batch()
            if i == 1:
                svc._decide_batch(_ready(svc, 1))
                before = (_pid(svc.ingest_db), _pid(svc.decide_db))
                _terminate(url, *before)
                continue
            svc._decide_batch(_ready(svc, 2))
        after = (_pid(svc.ingest_db), _pid(svc.decide_db))
        assert set(after).isdisjoint(before)
        assert store.answered(svc.engine, svc.namespace, tick_id(2)) == set(LIVE)
        rows = _rows(svc.engine, Decision, svc.namespace, set())
        assert [r["tick_id"] for r in rows] == [tick_id(1), tick_id(2)]
        assert svc.carry.seq == 2
    finally:
        svc.producer.close()
        svc.close_db()


def test_the_store_refuses_an_engine_that_is_not_postgresql() -> None:
    """The SQL is PostgreSQL's; the meta consumer never ran elsewhere (SQLite is the training CLI's)."""
    eng = make_engine("sqlite://")
    with pytest.raises(ValueError, match="needs PostgreSQL, not sqlite"):
        store.answered(eng, "live", tick_id(1))
