"""A research combiner shipped live (ADR 0020): export, register, select, hot reload, decide.

The real meta consumer (in-process, real broker and database) is fed real data: the bundled
candles' bars (with the close window a BarClosed carries) and the price strategies' real answers,
tick by tick. Its intents must equal the research candidate's vectorized exposure path at every
tick, and the combiner must be picked up by the selected-row poll like any model.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select, update

from common.db.models import Model
from common.db.session import make_engine, session_scope
from common.signals import SignalArrays
from config import Settings
from meta_consumer.decide import MARK_CLOSES
from meta_consumer.models import ModelManager
from tests.integration.combiner_live import (
    PRICE,
    assert_live_is_vectorized,
    decide_selected_live,
    load_bundled_candles_slice,
)
from tests.integration.test_meta_consumer import meta_settings, own_db
from training.research.candidates import build_context, volmanaged_exposure
from training.research.export import export
from training.research.protocol import _baseline_exposures
from training.signals import compute_signals, training_exogenous

pytestmark = pytest.mark.integration
__all__ = ["own_db"]  # the fixture, re-used from the meta consumer's tests

KEY = '{"target_vol":0.3,"window":72}'
TICKS_N = 240


def real_inputs() -> tuple[pd.DataFrame, SignalArrays]:
    candles = load_bundled_candles_slice()
    sig = compute_signals(candles, exogenous=training_exogenous())
    return candles, sig.restricted(PRICE)


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
    d0, ids, rows = decide_selected_live(
        settings, engine, exported.model_id, candles, sig, bars, MARK_CLOSES, timeout=120
    )
    engine.dispose()
    assert d0.model_id == "fallback:majority_vote"
    assert len(rows) == len(bars) and [r.tick_id for r in rows] == ids
    assert {r.model_id for r in rows[1:]} == {exported.model_id}
    assert not any(r.degraded for r in rows)
    want = vectorized[bars[1:]]
    assert_live_is_vectorized(settings, exported.model_id, ids, rows, want)
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
