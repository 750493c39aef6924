"""The meta policy's action set and how each action moves exposure.

Shared by the meta consumer (live), the training environment and the baselines, so a model
trained offline means the same thing when it runs live. Exposure is a signed fraction of the
maximum position (+1 = max long, -1 = max short) kept on a grid of ``step``.

INCREASE moves one step toward max long and DECREASE one step toward max short (so a policy can
reach every grid point, short side included); FLAT goes to 0; REVERSE flips the sign; HOLD keeps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from common.events import IntentAction, Target

#: Policy output index -> action. The order is part of every trained model's contract.
ACTIONS: tuple[IntentAction, ...] = (
    IntentAction.HOLD,
    IntentAction.INCREASE,
    IntentAction.DECREASE,
    IntentAction.FLAT,
    IntentAction.REVERSE,
)
ACTION_INDEX = {a: i for i, a in enumerate(ACTIONS)}

FloatArray = npt.NDArray[np.float64]


def _on_grid(exposure: FloatArray, step: float, max_exposure: float) -> FloatArray:
    """Snap to the step grid and clip, so repeated steps never accumulate float drift."""
    snapped = np.round(exposure / step) * step
    return np.clip(snapped, -max_exposure, max_exposure) + 0.0  # + 0.0 turns -0.0 into 0.0


def apply_actions(
    actions: npt.ArrayLike, exposure: npt.ArrayLike, step: float, max_exposure: float
) -> FloatArray:
    """New exposure after each action (vectorized over any shape; used by the training env)."""
    a = np.asarray(actions, dtype=np.int64)
    e = np.asarray(exposure, dtype=np.float64)
    if np.any((a < 0) | (a >= len(ACTIONS))):
        raise ValueError(f"action index outside 0..{len(ACTIONS) - 1}")
    new = np.select(
        [a == 0, a == 1, a == 2, a == 3, a == 4],
        [e, e + step, e - step, np.zeros_like(e), -e],
    )
    return _on_grid(new, step, max_exposure)


def apply_action(action: IntentAction, exposure: float, step: float, max_exposure: float) -> float:
    """Scalar form for the live path; same arithmetic as :func:`apply_actions`."""
    return float(apply_actions(ACTION_INDEX[action], exposure, step, max_exposure))


def isclose(a: float, b: float) -> bool:
    """``np.isclose(a, b)`` (rtol 1e-5, atol 1e-8) for two floats, without numpy's per-call cost."""
    a, b = float(a), float(b)
    if math.isfinite(a) and math.isfinite(b):
        return abs(a - b) <= 1e-8 + 1e-5 * abs(b)
    return a == b


def label_for(current: float, target: float) -> IntentAction:
    """The action that names a move from ``current`` to ``target`` (rule-based fallbacks jump directly)."""
    if isclose(target, current):
        return IntentAction.HOLD
    if isclose(target, 0.0):
        return IntentAction.FLAT
    if not isclose(current, 0.0) and isclose(target, -current):
        return IntentAction.REVERSE
    return IntentAction.INCREASE if target > current else IntentAction.DECREASE


def majority_vote(targets: Sequence[Target], max_exposure: float) -> float:
    """Fallback policy: the plurality of the strategies' targets; ties and no votes mean flat.

    When in doubt, do not trade: a tie between long and short (or flat winning) gives 0 exposure.
    """
    longs = sum(t is Target.LONG for t in targets)
    shorts = sum(t is Target.SHORT for t in targets)
    flats = len(targets) - longs - shorts
    if longs > max(shorts, flats):
        return max_exposure
    if shorts > max(longs, flats):
        return -max_exposure
    return 0.0
