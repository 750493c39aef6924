"""Real-data feed and read-back shared by the meta consumer's combiner tests (ADR 0020, 0025..0027).

``test_meta_consumer_combiner``, ``_linear`` and ``_online`` all feed the real meta consumer
(in-process, real broker and database) the bundled candles' bars and the price strategies' real
answers tick by tick, select the exported combiner after the first tick, and compare every intent
with the research side's vectorized path. The service helpers (``running``, ``wait_decisions``,
``read_intents``) stay in ``test_meta_consumer``; this module only adds the real-data part.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import Engine, update

from common.db.models import Decision, Model
from common.db.session import session_scope
from common.events import BarClosed, DueStrategy, Recommendation, SignalEvent, Target, TickPlan
from common.exogenous.catalog import get_series
from common.exogenous.files import load_dir
from common.exogenous.store import store_frame, sync_catalog
from common.ids import make_intent_id, make_tick_id
from common.kafka.producer import EventProducer
from common.kafka.topics import RECOMMENDATIONS, TICKS, bars_topic
from common.signals import SignalArrays
from config import Settings, load_settings
from tests.integration.test_meta_consumer import meta_settings, read_intents, running, wait_decisions
from training.research.funding import SERIES

SYMBOL = "BTC/USD:USD"
PRICE = ("volatility_system", "supertrend", "fsupertrend", "ott", "bband_rsi", "ma_trend", "vwap_reversion")
TARGETS = {1: Target.LONG, 0: Target.FLAT, -1: Target.SHORT}


def load_bundled_candles_slice() -> pd.DataFrame:
    """The last 4,000 real hours of the bundled candles."""
    from common.dataset import load_bundled_candles

    return load_bundled_candles().iloc[-4000:]


def store_funding(engine: Engine) -> dict[str, pd.DataFrame]:
    """The real funding series stored as the exogenous loader stores them; the frames stored."""
    frames = load_dir(Path(load_settings().exogenous.data_dir), SERIES)
    sync_catalog(engine, [get_series(s) for s in SERIES])
    for name in SERIES:
        store_frame(engine, get_series(name), frames[name], "test")
    return frames


def publish(
    settings: Settings, candles: pd.DataFrame, sig: SignalArrays, bars: Sequence[int], closes: int
) -> list[str]:
    """Answers, TickPlan and BarClosed (``closes`` closes) of each bar's tick, as the strategies and
    the emitter send them."""
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
        lo = t + 1 - closes
        w = ohlcv[lo : t + 1]
        bar = BarClosed(
            tick_id=tid, symbol=SYMBOL, timeframe="1h", bar_open_time=times[t],
            open_time=tuple(times[lo : t + 1]), open=tuple(w[:, 0]), high=tuple(w[:, 1]),
            low=tuple(w[:, 2]), close=tuple(w[:, 3]), volume=tuple(w[:, 4]),
        )  # fmt: skip
        p.send(settings.topic(bars_topic("1h")), bar, key=tid)
    p.flush()
    return ids


def decide_selected_live(
    settings: Settings,
    engine: Engine,
    model_id: str,
    candles: pd.DataFrame,
    sig: SignalArrays,
    bars: Sequence[int],
    closes: int,
    timeout: float,
) -> tuple[Decision, list[str], list[Decision]]:
    """The service live on the price strategies, the selection polled every tick: the first bar's tick
    decided before ``model_id`` is selected (the operator's act), the rest after, picked up by the
    next tick's poll. Returns (the first decision, every tick id published, the decision rows)."""
    with running(settings, meta_settings(model_poll_s=0.0), live=PRICE):
        first = publish(settings, candles, sig, bars[:1], closes)
        [d0] = wait_decisions(settings, 1)
        with session_scope(engine) as s:  # the operator selects it; the next tick's poll loads it
            s.execute(update(Model).where(Model.model_id == model_id).values(selected=True))
        ids = first + publish(settings, candles, sig, bars[1:], closes)
        rows = wait_decisions(settings, len(bars), timeout=timeout)
    return d0, ids, rows


def assert_live_is_vectorized(
    settings: Settings, model_id: str, ids: list[str], rows: list[Decision], want: np.ndarray
) -> None:
    """Every decision after the first (the selected model's) and every intent == ``want``."""
    live = np.array([r.target_exposure for r in rows[1:]])
    k = np.flatnonzero(live != want)
    assert k.size == 0, (
        f"first difference at tick {ids[1 + k[0]]}: live {live[k[0]]} vs vectorized {want[k[0]]}"
    )
    intents = read_intents(settings, len(ids))
    assert [i.intent_id for _, i in intents[1:]] == [make_intent_id(t, model_id) for t in ids[1:]]
    assert np.array_equal([i.target_exposure for _, i in intents[1:]], want)
