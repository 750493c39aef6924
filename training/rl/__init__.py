"""ElegantRL agents for the meta policy: train on a window, export the live artifact.

Public API (torch is imported only when :func:`train_agent` runs, never by importing this package):

* ``ALGOS``: the default agents (``ppo``, ``a2c``, ``dqn``, ``sac``); ``SUPPORTED`` adds ``td3``.
* :func:`train_agent`: train one agent on the bars of ``train`` only (the env's window), with a
  fixed seed and a budget in env steps; writes ``OUT/<algo>_seed<seed>.pt`` (torch state dicts,
  loadable with ``weights_only=True``) and ``OUT/<algo>_seed<seed>.npz`` (the artifact) and
  returns a :class:`TrainedAgent`.
* :data:`DEFAULT_BUDGETS`: env steps per algo that train the four defaults in about 8 minutes on
  2 shared cores (measured throughput in ``docs/decisions/0011-elegantrl-and-finrl.md``).

Modules: ``algos`` (ElegantRL agent classes and hyper-parameters), ``envs`` (exposure-target env,
numpy only), ``loop`` (adapter env, training loop, checkpoints), ``export`` (actor -> artifact).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from common.observation import FeatureSpec
from common.policy import Policy, load_policy
from training.env import REWARDS
from training.ledger import CostModel
from training.market import Market
from training.split import Window

ALGOS: tuple[str, ...] = ("ppo", "a2c", "dqn", "sac")
SUPPORTED: tuple[str, ...] = (*ALGOS, "td3")
#: Env steps per algo: about 2 minutes each on the shared 2-core machine (see the ADR 0011 table).
DEFAULT_BUDGETS: dict[str, int] = {
    "ppo": 1_500_000,
    "a2c": 2_500_000,
    "dqn": 1_500_000,
    "sac": 500_000,
    "td3": 1_500_000,
}


@dataclass(frozen=True)
class TrainedAgent:
    """One trained agent: the live artifact plus what produced it."""

    algo: str
    seed: int
    budget_steps: int
    steps: int
    artifact: bytes = field(repr=False)
    spec: FeatureSpec = field(repr=False)
    checkpoint: Path
    steps_per_second: float
    seconds: float
    agent_class: str
    step: float = 0.25
    max_exposure: float = 1.0
    final_episode_return: float = float("nan")
    reward: str = "pnl"

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.artifact).hexdigest()

    @property
    def model_id(self) -> str:
        return f"{self.algo}-s{self.seed}-{self.sha256[:12]}"

    def policy(self) -> Policy:
        """The artifact loaded by the live loader (``common.policy.load_policy``)."""
        row = SimpleNamespace(
            model_id=self.model_id,
            algo=self.algo,
            artifact=self.artifact,
            artifact_sha256=self.sha256,
            feature_spec=json.loads(self.spec.to_json()),
        )
        return load_policy(row, step=self.step, max_exposure=self.max_exposure)


def train_agent(
    algo: str,
    market: Market,
    train: Window,
    *,
    budget_steps: int,
    seed: int,
    out_dir: Path,
    step: float = 0.25,
    max_exposure: float = 1.0,
    costs: CostModel | None = None,
    progress: bool = True,
    reward: str = "pnl",
) -> TrainedAgent:
    """Train ``algo`` on ``train``'s bars for at least ``budget_steps`` env steps (whole iterations).

    ``reward``: ``"pnl"`` (equity change net of costs) or ``"dsr"`` (differential Sharpe ratio), see
    ``training.env``. Either way the agent is scored afterwards on the same ledger metrics.

    Deterministic: the same arguments give bit-identical weights and artifact bytes.
    """
    if algo not in SUPPORTED:
        raise ValueError(f"unknown algo {algo!r}; choose from {', '.join(SUPPORTED)}")
    if budget_steps < 1:
        raise ValueError("budget_steps must be >= 1")
    if reward not in REWARDS:
        raise ValueError(f"unknown reward {reward!r}; choose from {', '.join(REWARDS)}")
    from training.rl.loop import run_training  # torch and ElegantRL load here, not on import

    out: dict[str, Any] = run_training(
        algo,
        market,
        train,
        budget_steps=budget_steps,
        seed=seed,
        out_dir=Path(out_dir),
        step=step,
        max_exposure=max_exposure,
        costs=costs,
        progress=progress,
        reward=reward,
    )
    return TrainedAgent(
        algo=algo,
        seed=seed,
        budget_steps=budget_steps,
        steps=out["steps"],
        artifact=out["artifact"],
        spec=market.spec,
        checkpoint=out["checkpoint"],
        steps_per_second=out["steps_per_second"],
        seconds=out["seconds"],
        agent_class=out["agent_class"],
        step=step,
        max_exposure=max_exposure,
        final_episode_return=out["final_episode_return"],
        reward=reward,
    )
