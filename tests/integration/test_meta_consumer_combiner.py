"""A research combiner shipped live (ADR 0020): export, register, select, hot reload, decide.

The real meta consumer (in-process, real broker and database) is fed real data: the bundled
candles' bars (with the close window a BarClosed carries) and the price strategies' real answers,
tick by tick. Its intents must equal the research candidate's vectorized exposure path at every
tick, and the combiner must be picked up by the selected-row poll like any model.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select, update

from common.db.models import Model
from common.db.session import make_engine, session_scope
from common.events import BarClosed, DueStrategy, Recommendation, SignalEvent, Target, TickPlan
from common.ids import make_intent_id, make_tick_id
from common.kafka.producer import EventProducer
from common.kafka.topics import RECOMMENDATIONS, TICKS, bars_topic
from common.signals import SignalArrays
from config import Settings
from meta_consumer.decide import MARK_CLOSES
from meta_consumer.models import ModelManager
from tests.integration.test_meta_consumer import meta_settings, own_db, read_intents, running, wait_decisions
from training.research.candidates import build_context, volmanaged_exposure
from training.research.export import export
from training.research.protocol import _baseline_exposures
from training.signals import compute_signals, training_exogenous

pytestmark = pytest.mark.integration
__all__ = ["own_db"]  # the fixture, re-used from the meta consumer's tests

SYMBOL = "BTC/USD:USD"
PRICE = ("volatility_system", "supertrend", "fsupertrend", "ott", "bband_rsi", "ma_trend", "vwap_reversion")
TARGETS = {1: Target.LONG, 0: Target.FLAT, -1: Target.SHORT}
KEY = '{"target_vol":0.3,"window":72}'
TICKS_N = 240


def real_inputs() -> tuple[pd.DataFrame, SignalArrays]:
    from common.dataset import load_bundled_candles

    candles = load_bundled_candles().iloc[-4000:]
    sig = compute_signals(candles, exogenous=training_exogenous())
    return candles, sig.restricted(PRICE)


def publish(settings: Settings, candles: pd.DataFrame, sig: SignalArrays, bars: Sequence[int]) -> list[str]:
    """Answers, TickPlan and BarClosed of each bar's tick, as the strategies and the emitter send them."""
    p = EventProducer(settings, "test-publisher")
    ohlcv = candles[["open", "high", "low", "close", "volume"]].to_numpy(np.float64)
    times = [ts.to_pydatetime() for ts in pd.DatetimeIndex(candles.index)]
    ids = []
    for t in bars:
        when = times[t] + timedelta(hours=1)  # the tick at bar t's close
        tid = make_tick_id(SYMBOL, when)
        ids.append(tid)
        for k, name in enumerate(PRICE):
            if sig.present[t, k]:
                rec = Recommendation(
                    tick_id=tid, strategy=name, strategy_version="1.0.0", symbol=SYMBOL, timeframe="1h",
                    bar_close_time=when, target=TARGETS[int(sig.target[t, k])], event=SignalEvent.NONE,
                    confidence=0.5, horizon_bars=4, produced_at=when, indicators={},
                )  # fmt: skip
                p.send(settings.topic(RECOMMENDATIONS), rec, key=tid)
        due = [DueStrategy(n, "1.0.0", "1h") for k, n in enumerate(PRICE) if sig.present[t, k]]
        plan = TickPlan.create(SYMBOL, when, due, deadline=when + timedelta(seconds=30), published_at=when)
        p.send(settings.topic(TICKS), plan, key=tid)
        lo = t + 1 - MARK_CLOSES
        w = ohlcv[lo : t + 1]
        bar = BarClosed(
            tick_id=tid, symbol=SYMBOL, timeframe="1h", bar_open_time=times[t],
            open_time=tuple(times[lo : t + 1]), open=tuple(w[:, 0]), high=tuple(w[:, 1]),
            low=tuple(w[:, 2]), close=tuple(w[:, 3]), volume=tuple(w[:, 4]),
        )  # fmt: skip
        p.send(settings.topic(bars_topic("1h")), bar, key=tid)
    p.flush()
    return ids


def test_selected_combiner_decides_live_as_its_vectorized_backtest(own_db: Settings) -> None:
    settings = own_db
    candles, sig = real_inputs()
    ctx = build_context(candles, sig, _baseline_exposures(sig)["majority_vote"], np.full(len(sig), np.nan))
    vectorized = volmanaged_exposure(ctx, 0.3, 72)
    bars = list(range(len(sig) - 1 - TICKS_N, len(sig) - 1))  # the last bar is never held: left out
    engine = make_engine(settings.database_url.get_secret_value())
    exported = export(f"volmanaged:{KEY}", PRICE, engine=engine)
    assert exported.registered
    with session_scope(engine) as s:  # registered, not selected: selection is the operator's act
        row = s.get(Model, exported.model_id)
        assert row is not None and not row.selected and row.algo == "combiner:volmanaged"
    again = export(f"volmanaged:{KEY}", PRICE, engine=engine)
    assert (again.model_id, again.registered) == (exported.model_id, False)  # same artefact, same row

    # Live strategies the price ones; the selection is polled every tick.
    with running(settings, meta_settings(model_poll_s=0.0), live=PRICE):
        first = publish(settings, candles, sig, bars[:1])
        [d0] = wait_decisions(settings, 1)
        with session_scope(engine) as s:  # the operator selects it; the next tick's poll loads it
            s.execute(update(Model).where(Model.model_id == exported.model_id).values(selected=True))
        ids = first + publish(settings, candles, sig, bars[1:])
        rows = wait_decisions(settings, len(bars), timeout=120)
    engine.dispose()
    assert d0.model_id == "fallback:majority_vote"
    assert len(rows) == len(bars) and [r.tick_id for r in rows] == ids
    assert {r.model_id for r in rows[1:]} == {exported.model_id}
    assert not any(r.degraded for r in rows)
    live = np.array([r.target_exposure for r in rows[1:]])
    want = vectorized[bars[1:]]
    k = np.flatnonzero(live != want)
    assert k.size == 0, (
        f"first difference at tick {ids[1 + k[0]]}: live {live[k[0]]} vs vectorized {want[k[0]]}"
    )
    intents = read_intents(settings, len(bars))
    assert [i.intent_id for _, i in intents[1:]] == [make_intent_id(t, exported.model_id) for t in ids[1:]]
    assert np.array_equal([i.target_exposure for _, i in intents[1:]], want)
    assert len(set(want)) >= 3, "a window where the sizing moves (several grid levels)"
    engine = make_engine(settings.database_url.get_secret_value())
    with session_scope(engine) as s:
        assert s.scalars(select(Model.model_id).where(Model.selected)).all() == [exported.model_id]
        # an edited artefact (sha256 column updated to match, the fingerprint not) is refused
        doc = json.loads(exported.artifact)
        doc["params"]["target_vol"] = 3.0
        bad = json.dumps(doc).encode()
        s.execute(
            update(Model)
            .where(Model.model_id == exported.model_id)
            .values(artifact=bad, artifact_sha256=hashlib.sha256(bad).hexdigest())
        )
    choice = ModelManager(engine, meta_settings(), PRICE, step=0.25, max_exposure=1.0).current()
    engine.dispose()
    assert choice.model_id == "fallback:majority_vote" and choice.combiner is None
    assert f"model {exported.model_id} unusable" in choice.reason and "fingerprint" in choice.reason
