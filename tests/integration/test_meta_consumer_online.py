"""The online combiners (``hedge``, ``dsr``) shipped live (ADR 0026): export, register, select, decide.

The real meta consumer (in-process, real broker and database, the real funding series stored in
the exogenous table) is fed real data tick by tick, as in ``test_meta_consumer_linear``. The
combiner learned on the bars before the replayed window; it is registered unselected, selected
after the first tick, and every intent must equal the vectorized path: the research loop
(``common.combiner.hedge_update`` / ``learners.dsr_run``) seeded from the artefact's state at the
first tick the combiner decides, over the research context of the same bars.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine

from common import combiner
from common.combiner import LINEAR_CLOSES, Combiner, load_combiner
from common.db.models import Decision, Model
from common.db.session import make_engine, session_scope
from common.signals import SignalArrays
from config import DEFAULT_FUNDING_RATE_HOURLY, Settings, load_settings
from meta_consumer import store
from meta_consumer.decide import BAR_CLOSES, MARK_CLOSES
from tests.integration.combiner_live import (
    PRICE,
    assert_live_is_vectorized,
    decide_selected_live,
    load_bundled_candles_slice,
    store_funding,
)
from tests.integration.test_meta_consumer import own_db
from training.ledger import CostModel
from training.research import learners
from training.research.candidates import build_context, snap
from training.research.export import Exported, FitData, _Row, export, parse_key
from training.research.funding import FundingEvents, bar_funding, load_funding
from training.research.protocol import _baseline_exposures, funding_known
from training.signals import compute_signals, training_exogenous

pytestmark = pytest.mark.integration
__all__ = ["own_db"]

TICKS_N = 200


def test_funding_charge_read_live_is_the_research_per_bar_funding(own_db: Settings) -> None:
    """``store.funding_charge`` at a tick == ``funding.bar_funding`` at that bar (the dsr reward).

    Hourly ticks over windows of 3 days every ~60 days from 2016-06 to 2023-12 (both sides of the
    BitMEX/Binance splice; every hour of the 8 h settlement cycles, settlement and not).
    """
    exo = Path(load_settings().exogenous.data_dir)
    engine = make_engine(own_db.database_url.get_secret_value())
    store_funding(engine)
    opens = pd.date_range("2016-05-01", "2023-12-31 23:00", freq="1h", tz="UTC")
    want = bar_funding(opens, load_funding(exo), DEFAULT_FUNDING_RATE_HOURLY).per_bar
    picks = [i for start in range(800, len(opens) - 72, 1440) for i in range(start, start + 72)]
    t0 = time.perf_counter()
    got = [
        store.funding_charge(
            engine, opens[i].to_pydatetime() + timedelta(hours=1), DEFAULT_FUNDING_RATE_HOURLY
        )
        for i in picks
    ]
    per_ms = (time.perf_counter() - t0) / len(picks) * 1e3
    engine.dispose()
    assert np.array_equal(np.array(got), want[picks])
    assert np.count_nonzero(np.array(got)) > len(picks) // 10  # settlements hit: not all zero
    print(f"funding_charge: {len(picks)} reads, {per_ms:.2f} ms each (engine, incl. checkout)")


def _exported_before_the_replay(
    settings: Settings, key: str
) -> tuple[pd.DataFrame, SignalArrays, FundingEvents, list[int], Engine, Exported, Combiner]:
    """The real inputs, the replayed bars (the last TICKS_N but the very last), the real funding
    stored, and ``key`` exported on the bars before the replay only: registered, not selected, and
    loaded as the meta consumer loads it. (candles, sig, events, bars, engine, exported, combiner)"""
    candles = load_bundled_candles_slice()
    sig_all = compute_signals(candles, exogenous=training_exogenous())
    sig = sig_all.restricted(PRICE)
    events = load_funding(Path(load_settings().exogenous.data_dir))
    n = len(sig)
    bars = list(range(n - 1 - TICKS_N, n - 1))
    until = pd.Timestamp(sig.index[bars[0] - 1])  # learned on the bars before the replay only
    engine = make_engine(settings.database_url.get_secret_value())
    store_funding(engine)
    exported = export(key, PRICE, engine=engine, data=FitData(candles, sig_all, events, until))
    with session_scope(engine) as s:
        row = s.get(Model, exported.model_id)
        assert row is not None and not row.selected and row.algo == f"combiner:{parse_key(key).family}"
    comb = load_combiner(_Row(exported.model_id, exported.artifact, exported.sha256))
    return candles, sig, events, bars, engine, exported, comb


def _assert_online_rows(
    d0: Decision, ids: list[str], rows: list[Decision], model_id: str, comb: Combiner
) -> None:
    """The fallback decided the first tick (no online state), the selected combiner every later one
    (none degraded, no reason), and the last row carries its state at the last tick."""
    assert d0.model_id == "fallback:majority_vote" and "online" not in d0.observation["state"]
    assert [r.tick_id for r in rows] == ids and {r.model_id for r in rows[1:]} == {model_id}
    assert not any(r.degraded for r in rows) and all(r.observation["reason"] == "" for r in rows[1:])
    last = rows[-1].observation
    assert last["state"]["online"]["model"] == comb.fingerprint and last["state"]["online"]["bar"] == ids[-1]


@pytest.mark.parametrize("key", ['hedge:{"decay":0.0,"eta":20.0}', 'dsr:{"rho":0.01,"seed":1}'])
def test_selected_online_combiner_decides_live_as_its_vectorized_path(own_db: Settings, key: str) -> None:
    settings = own_db
    config = parse_key(key)
    candles, sig, events, bars, engine, exported, comb = _exported_before_the_replay(settings, key)
    per_bar = bar_funding(sig.index, events, DEFAULT_FUNDING_RATE_HOURLY).per_bar
    ctx = build_context(
        candles.loc[sig.index], sig, _baseline_exposures(sig)["majority_vote"],
        funding_known(sig.index, events), per_bar, CostModel.configured().cost_rate,
    )  # fmt: skip
    # the vectorized path, seeded from the artefact's state at the first tick the combiner decides
    go = bars[1:]
    if config.family == "hedge":
        st = combiner.HedgeState.from_params(comb.initial_state())
        mix = []
        for t in go:
            st, m = combiner.hedge_update(st, ctx.targets[t], float(ctx.ret[t]), 20.0, 0.0)
            mix.append(m)
        want = snap(np.array(mix))
    else:
        ds = combiner.DsrState.from_params(comb.initial_state())
        pos, _ = learners.dsr_run(
            ctx.features[go], ctx.ret[go], per_bar[go], comb.params["cost_rate"], rho=0.01, state=ds
        )
        want = snap(pos)

    d0, ids, rows = decide_selected_live(
        settings, engine, exported.model_id, candles, sig, bars, BAR_CLOSES, timeout=180
    )
    engine.dispose()
    _assert_online_rows(d0, ids, rows, exported.model_id, comb)
    assert len(set(want.tolist())) >= 3, "a window where the learner moves the book"
    assert_live_is_vectorized(settings, exported.model_id, ids, rows, want)
    closes = LINEAR_CLOSES if config.family == "dsr" else MARK_CLOSES
    assert all(len(r.observation["state"]["mark"]["closes"]) == closes for r in rows[1:])
    if config.family == "dsr":
        assert [r.observation["funding_charge"] for r in rows[1:]] == [float(per_bar[t]) for t in go]
    size = [len(json.dumps(r.observation)) for r in (d0, rows[-1])]
    print(f"{config.family}: decision row observation JSON {size[0]} bytes (fallback), {size[1]} bytes")


def test_selected_rl_combiner_decides_live_as_its_vectorized_path(own_db: Settings) -> None:
    """The rl policy (ADR 0027): PPO seeds fitted by ``export`` on the bars before the window,
    registered unselected, selected after the first tick; every intent == the vectorized side
    (``ops.replay_compare.combiner_fractions``: the artefact's state stepped over the research
    context), its state (cumulative P&L, vote history, held targets) carried in every row."""
    from ops.replay_compare import combiner_fractions

    settings = own_db
    key = 'rl:{"horizon":168.0,"seeds":2,"steps":8192}'
    candles, sig, events, bars, engine, exported, comb = _exported_before_the_replay(settings, key)
    go = np.array(bars[1:])
    want, cold = combiner_fractions(
        candles.loc[sig.index], sig, comb, go, np.full(go.size, 10_000), funding_known(sig.index, events)
    )
    assert not cold.any()

    d0, ids, rows = decide_selected_live(
        settings, engine, exported.model_id, candles, sig, bars, BAR_CLOSES, timeout=180
    )
    engine.dispose()
    _assert_online_rows(d0, ids, rows, exported.model_id, comb)
    assert len(set(want.tolist())) >= 2, "a window where the policy moves the book"
    assert_live_is_vectorized(settings, exported.model_id, ids, rows, want)
    last = rows[-1].observation
    assert set(last["state"]["online"]["state"]) == {"cum", "votes", "held"}
    assert all(len(r.observation["state"]["mark"]["closes"]) == LINEAR_CLOSES for r in rows[1:])
    size = [len(json.dumps(r.observation)) for r in (d0, rows[-1])]
    state = len(json.dumps(last["state"]["online"]))
    print(f"rl: decision row observation JSON {size[0]} bytes (fallback), {size[1]} bytes (rl state {state})")
