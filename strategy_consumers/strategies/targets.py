"""The standalone ``target`` rule: the position a strategy would hold from its own signals alone.

Rule, per bar: exits first (long & exit_long -> flat, short & exit_short -> flat), then entries when
flat (enter_long alone -> long, enter_short alone -> short, both -> stay flat). No ROI, no stoploss.

Each bar's four signals form a 4-bit code; the rule becomes a 16 x 3 transition table, so the
recursion is one list lookup per signalled bar; quiet bars are forward filled (a few ms for
37k bars without numba).

Events describe the change of target on a bar. A one-bar reversal can happen (long & exit_long &
enter_short -> flat -> short, which volatility_system does on every reversal); it is reported as the
entry of the new side (ENTER_SHORT / ENTER_LONG), because the consumer acts on the new target and the
exit is implied. An exit and re-entry of the same side on one bar leaves target unchanged: NONE.
"""

from __future__ import annotations

import numpy as np

ENTER_LONG = "ENTER_LONG"
EXIT_LONG = "EXIT_LONG"
ENTER_SHORT = "ENTER_SHORT"
EXIT_SHORT = "EXIT_SHORT"
NONE = "NONE"
EVENTS = (NONE, ENTER_LONG, EXIT_LONG, ENTER_SHORT, EXIT_SHORT)

SIGNAL_COLUMNS = ("enter_long", "exit_long", "enter_short", "exit_short")


def _entry(enter_long: bool, enter_short: bool) -> int:
    if enter_long and not enter_short:
        return 1
    if enter_short and not enter_long:
        return -1
    return 0


def transition(state: int, enter_long: bool, exit_long: bool, enter_short: bool, exit_short: bool) -> int:
    """One step of the target rule; the reference the table below is built from."""
    if (state == 1 and exit_long) or (state == -1 and exit_short):
        state = 0
    if state == 0:
        state = _entry(enter_long, enter_short)
    return state


def _build_table() -> list[int]:
    # Index: code * 3 + (state + 1), code = el | xl << 1 | es << 2 | xs << 3.
    table = [0] * 48
    for code in range(16):
        bits = [bool(code >> k & 1) for k in range(4)]
        for state in (-1, 0, 1):
            table[code * 3 + state + 1] = transition(state, *bits)
    return table


_TABLE = _build_table()


def signal_codes(
    enter_long: np.ndarray, exit_long: np.ndarray, enter_short: np.ndarray, exit_short: np.ndarray
) -> np.ndarray:
    """Pack the four 0/1 signal arrays into one 4-bit code per bar."""
    return (
        (enter_long != 0).astype(np.int64)
        | (exit_long != 0).astype(np.int64) << 1
        | (enter_short != 0).astype(np.int64) << 2
        | (exit_short != 0).astype(np.int64) << 3
    )


def compute_target(
    enter_long: np.ndarray,
    exit_long: np.ndarray,
    enter_short: np.ndarray,
    exit_short: np.ndarray,
    initial: int = 0,
) -> np.ndarray:
    """Target (int8: 1 long, -1 short, 0 flat) after each bar, starting from ``initial`` before bar 0."""
    codes = signal_codes(enter_long, exit_long, enter_short, exit_short)
    # Bars without any signal keep the state, so only signalled bars go through the Python loop
    # and the result is forward filled from them.
    active = np.flatnonzero(codes)
    table = _TABLE
    states = [0] * len(active)
    s = initial
    for i, c in enumerate((codes[active] * 3 + 1).tolist()):
        s = table[c + s]
        states[i] = s
    pos = np.zeros(len(codes), dtype=np.int64)
    pos[active] = np.arange(1, len(active) + 1)
    filled = np.maximum.accumulate(pos) if len(codes) else pos
    return np.asarray([initial, *states], dtype=np.int8)[filled]


def event_of(previous: int, current: int) -> str:
    """Name the change of target from ``previous`` to ``current`` (see module docstring)."""
    if previous == current:
        return NONE
    if current == 1:
        return ENTER_LONG
    if current == -1:
        return ENTER_SHORT
    return EXIT_LONG if previous == 1 else EXIT_SHORT


def compute_events(target: np.ndarray, initial: int = 0) -> np.ndarray:
    """Event name per bar (object array), vectorized over ``target``."""
    target = np.asarray(target, dtype=np.int8)
    prev = np.concatenate([[initial], target[:-1]]).astype(np.int8)[: len(target)]
    out = np.full(len(target), NONE, dtype=object)
    changed = prev != target
    out[changed & (target == 1)] = ENTER_LONG
    out[changed & (target == -1)] = ENTER_SHORT
    out[changed & (target == 0) & (prev == 1)] = EXIT_LONG
    out[changed & (target == 0) & (prev == -1)] = EXIT_SHORT
    return out
