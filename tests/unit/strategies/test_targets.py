"""Property tests of the standalone target rule and its events."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from strategy_consumers.strategies import builtin_strategy
from strategy_consumers.strategies.targets import (
    ENTER_LONG,
    ENTER_SHORT,
    EXIT_LONG,
    EXIT_SHORT,
    NONE,
    SIGNAL_COLUMNS,
    compute_events,
    compute_target,
    event_of,
    transition,
)

signal_rows = st.lists(st.tuples(*[st.booleans()] * 4), min_size=0, max_size=300)


def _arrays(rows: list[tuple[bool, bool, bool, bool]]) -> list[np.ndarray]:
    arr = np.array(rows, dtype=np.int8).reshape(-1, 4)
    return [arr[:, k] for k in range(4)]


def _literal(rows: list[tuple[bool, bool, bool, bool]], initial: int = 0) -> list[int]:
    """The rule exactly as worded: exits first, then entries when flat."""
    state, out = initial, []
    for el, xl, es, xs in rows:
        if (state == 1 and xl) or (state == -1 and xs):
            state = 0
        if state == 0:
            if el and not es:
                state = 1
            elif es and not el:
                state = -1
        out.append(state)
    return out


@given(signal_rows, st.sampled_from([-1, 0, 1]))
def test_target_equals_literal_rule(rows, initial) -> None:
    target = compute_target(*_arrays(rows), initial=initial)
    assert target.dtype == np.int8
    assert target.tolist() == _literal(rows, initial)


@given(signal_rows)
def test_events_describe_target_changes(rows) -> None:
    target = compute_target(*_arrays(rows))
    events = compute_events(target)
    prev = [0, *target.tolist()][: len(target)]
    for p, t, e in zip(prev, target.tolist(), events.tolist(), strict=True):
        assert e == event_of(p, t)
        assert (e == NONE) == (p == t)
        if e in (ENTER_LONG, ENTER_SHORT):
            assert t == (1 if e == ENTER_LONG else -1)
        if e in (EXIT_LONG, EXIT_SHORT):
            assert t == 0 and p == (1 if e == EXIT_LONG else -1)


@given(signal_rows)
def test_long_only_signals_never_short(rows) -> None:
    el, xl, _, _ = _arrays(rows)
    zero = np.zeros_like(el)
    assert (compute_target(el, xl, zero, zero) >= 0).all()


@given(st.sampled_from([-1, 0, 1]), st.tuples(*[st.booleans()] * 4))
def test_transition_properties(state, bits) -> None:
    el, xl, es, xs = bits
    new = transition(state, el, xl, es, xs)
    if not any(bits):
        assert new == state
    if xl and xs and not el and not es:
        assert new == 0  # both exits, no entry: flat from anywhere
    if state == 1 and not xl:
        assert new == 1  # a long only ends on exit_long
    if state == -1 and not xs:
        assert new == -1


def test_one_bar_reversal_is_reported_as_the_new_entry() -> None:
    # long, then exit_long together with enter_short (volatility_system reverses like this)
    el = np.array([1, 0], dtype=np.int8)
    xl = np.array([0, 1], dtype=np.int8)
    es = np.array([0, 1], dtype=np.int8)
    xs = np.array([1, 0], dtype=np.int8)
    target = compute_target(el, xl, es, xs)
    assert target.tolist() == [1, -1]
    assert compute_events(target).tolist() == [ENTER_LONG, ENTER_SHORT]


@settings(max_examples=25, deadline=None)
@given(start=st.integers(min_value=0, max_value=30000), prev=st.sampled_from([-1, 0, 1]))
def test_recommend_with_carried_target_applies_one_transition(candles: pd.DataFrame, start, prev) -> None:
    strategy = builtin_strategy("fsupertrend")
    window = candles.iloc[start : start + strategy.bars_needed()]
    sig = strategy.signals(window).iloc[-1]
    expected = transition(prev, *(bool(sig[c]) for c in SIGNAL_COLUMNS))
    res = strategy.recommend(window, prev_target=prev)
    assert res.target == expected
    assert res.event == event_of(prev, expected)
