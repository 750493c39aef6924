"""The exposure-target variant of the training env (numpy only, no torch).

Continuous agents (SAC, TD3) output one number in [-1, 1]. It means exactly what the live
``common.policy.Policy`` makes of a ``"continuous"`` artifact's output: the target
exposure as a fraction of ``max_exposure``, clipped, then snapped to the exposure grid with the
shared ``common.actions.apply_actions`` (HOLD on the wanted exposure). The env jumps straight to
that target, so a trained actor meets in training the same mapping it meets live.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from common.actions import apply_actions
from training.env import BtcPerpVecEnv


def continuous_targets(action: npt.ArrayLike, step: float, max_exposure: float) -> np.ndarray:
    """Grid target exposure for actor outputs in [-1, 1] (``Policy.act``'s continuous branch)."""
    wanted = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0) * max_exposure
    return apply_actions(np.zeros(wanted.shape, dtype=np.int64), wanted, step, max_exposure)


class ExposureTargetEnv(BtcPerpVecEnv):
    """``BtcPerpVecEnv`` whose action is a target exposure fraction in [-1, 1] instead of an index."""

    env_name = "BtcPerpTargetVecEnv-v1"
    if_discrete = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.action_dim = 1

    def next_exposure(self, action: np.ndarray) -> np.ndarray:
        return continuous_targets(action, self.step_size, self.max_exposure)
