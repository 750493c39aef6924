"""The ElegantRL agents trained here, their hyper-parameters, and two fixes to ElegantRL 0.3.6.

Each algorithm is an ElegantRL agent class (networks from ``elegantrl.agents.net``, its own
``explore_env`` and ``update_net``) plus an :class:`AlgoSpec` of hyper-parameters:

* ``ppo``: ``AgentDiscretePPO`` (``ActorDiscretePPO`` + ``CriticPPO``), clipped surrogate + GAE;
* ``a2c``: the same discrete actor/critic with ``AgentA2C.update_net`` (advantage policy gradient
  without the trust region);
* ``dqn``: ``AgentDoubleDQN`` (``QNetTwin``: shared trunk, twin Q heads, min of the twins as target);
* ``sac``: ``AgentSAC`` (``ActorSAC`` + ``CriticTwin``) on one continuous output, the target exposure;
* ``td3``: ``AgentTD3`` (``Actor`` + ``CriticTwin``), same continuous output.

Fixes (ElegantRL 0.3.6, checked against its source): ``AgentDiscretePPO.explore_vec_env`` stores a
``(num_envs,)`` action into a ``(num_envs, 1)`` slot, which raises for any ``num_envs > 1``, and
then unsqueezes the action tensor once more; :class:`DiscretePPO` stores ``action.unsqueeze(1)`` and
returns ``(horizon, num_envs, 1)`` as ``get_logprob_entropy`` expects. ``AgentDiscreteA2C``
inherits from ``AgentDiscretePPO`` and so runs PPO's clipped update; :class:`DiscreteA2C` uses
``AgentA2C.update_net``, the actual A2C objective, with the discrete actor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from elegantrl.agents import AgentDiscretePPO, AgentDoubleDQN, AgentSAC, AgentTD3  # type: ignore[import-untyped]
from elegantrl.agents.AgentA2C import AgentA2C  # type: ignore[import-untyped]


class DiscretePPO(AgentDiscretePPO):  # type: ignore[misc]
    """``AgentDiscretePPO`` with a working vectorized rollout (see the module doc)."""

    def explore_vec_env(
        self, env: Any, horizon_len: int, if_random: bool = False
    ) -> tuple[torch.Tensor, ...]:
        n, dev = self.num_envs, self.device
        states = torch.zeros((horizon_len, n, self.state_dim), dtype=torch.float32, device=dev)
        actions = torch.zeros((horizon_len, n, 1), dtype=torch.float32, device=dev)
        logprobs = torch.zeros((horizon_len, n), dtype=torch.float32, device=dev)
        rewards = torch.zeros((horizon_len, n), dtype=torch.float32, device=dev)
        dones = torch.zeros((horizon_len, n), dtype=torch.bool, device=dev)
        state = self.last_state  # type: ignore[has-type]  # set by the training loop (untyped base)
        for t in range(horizon_len):
            action, logprob = self.act.get_action(state)
            states[t] = state
            state, reward, done, _ = env.step(self.act.convert_action_for_env(action))
            actions[t] = action.unsqueeze(1)
            logprobs[t] = logprob
            rewards[t] = reward
            dones[t] = done
        self.last_state = state
        rewards *= self.reward_scale
        return states, actions, logprobs, rewards, 1.0 - dones.float()


class DiscreteA2C(DiscretePPO):
    """A2C on the discrete actor: ElegantRL's ``AgentA2C`` objective (see the module doc)."""

    update_net = AgentA2C.update_net


@dataclass(frozen=True)
class AlgoSpec:
    """How one algorithm is built and fed: ElegantRL ``Config`` fields plus rollout shape.

    ``num_envs`` x ``horizon_len`` env steps are collected per iteration. On-policy agents then run
    ``epochs`` passes of minibatches over them; off-policy agents run ``updates_per_step`` gradient
    steps per vector step (ElegantRL's ``repeat_times``) on a replay buffer of ``buffer_rows``
    vector steps, after ``warmup_horizons`` horizons of random actions.
    """

    agent_class: type
    discrete: bool
    off_policy: bool
    num_envs: int
    horizon_len: int
    batch_size: int
    learning_rate: float
    epochs: int = 1
    updates_per_step: float = 0.5
    buffer_rows: int = 4096
    warmup_horizons: int = 2
    net_dims: tuple[int, ...] = (64, 64)
    gamma: float = 0.99
    reward_scale: float = 64.0
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def steps_per_iteration(self) -> int:
        return self.num_envs * self.horizon_len

    def repeat_times(self) -> float:
        """ElegantRL's ``repeat_times`` giving ``epochs`` passes (on-policy) or the update ratio."""
        if self.off_policy:
            return self.updates_per_step
        return float(self.epochs * self.num_envs)


_ON: dict[str, Any] = {
    "discrete": True,
    "off_policy": False,
    "num_envs": 64,
    "horizon_len": 256,
    "batch_size": 512,
}
_OFF: dict[str, Any] = {"off_policy": True, "num_envs": 32, "horizon_len": 32, "batch_size": 256}

SPECS: dict[str, AlgoSpec] = {
    "ppo": AlgoSpec(
        DiscretePPO,
        learning_rate=3e-4,
        epochs=2,
        extra={"ratio_clip": 0.2, "lambda_gae_adv": 0.95, "lambda_entropy": 0.01},
        **_ON,
    ),
    "a2c": AlgoSpec(DiscreteA2C, learning_rate=3e-4, epochs=1, extra={"lambda_gae_adv": 0.95}, **_ON),
    "dqn": AlgoSpec(AgentDoubleDQN, discrete=True, learning_rate=3e-4, extra={"explore_rate": 0.2}, **_OFF),
    "sac": AlgoSpec(AgentSAC, discrete=False, learning_rate=3e-4, **_OFF),
    "td3": AlgoSpec(
        AgentTD3,
        discrete=False,
        learning_rate=3e-4,
        extra={"explore_noise_std": 0.1, "policy_noise_std": 0.15},
        **_OFF,
    ),
}
