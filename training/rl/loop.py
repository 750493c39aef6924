"""Training loop: an ElegantRL agent on the vectorized BTC env, seeded, budgeted, checkpointed.

Why not ``elegantrl.train.run.train_agent``: it builds envs from ``env_class``/``env_args``,
evaluates through its ``Evaluator`` on a second env every ``eval_per_step`` (gym-style episodes,
printing and saving learning-curve images into ``cwd``, which it may ``rmtree``), stops on
``break_step`` only after an evaluation, and its multiprocessing variant spawns learner/worker/
evaluator processes. Here the budget is exact env steps, evaluation belongs to the walk-forward
(backtest on validation/test windows, never on training bars), and the 2-core machine gains nothing
from processes. So the loop is written here with ElegantRL's own pieces, as ``run.train_agent``
uses them: ``agent.explore_env`` -> ``ReplayBuffer.update`` (off-policy; random-action warm-up
first) or the rollout tuple (on-policy) -> ``agent.update_net``; gradients off while exploring.

``TorchVecEnv`` is the adapter to ElegantRL's vectorized-env convention: ``reset() -> states``
and ``step(action) -> (states, rewards, dones, info)``, all torch tensors, ``dones`` =
terminated | truncated (ElegantRL bootstraps neither; the env resets done sub-envs itself).

Reproducibility: all torch randomness (init, exploration, minibatches) comes from the global
generator seeded inside ``torch.random.fork_rng`` (the caller's RNG state is restored), the env
from ``numpy.random.default_rng(seed)``, one intra-op thread and
``torch.use_deterministic_algorithms(True)``; the same seed gives bit-identical weights.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from elegantrl.train.config import Config  # type: ignore[import-untyped]
from elegantrl.train.replay_buffer import ReplayBuffer  # type: ignore[import-untyped]
from tqdm import tqdm

from training.env import BtcPerpVecEnv
from training.ledger import CostModel
from training.market import Market
from training.rl.algos import SPECS, AlgoSpec
from training.rl.envs import ExposureTargetEnv
from training.rl.export import export_actor
from training.split import Window

CHECKPOINT_FORMAT = "btcmeta.elegantrl.v1"
#: The env-side scale of the differential Sharpe reward. The algos' own ``reward_scale`` (64) is
#: sized for hourly equity changes (std ~0.003 under random play on the bundled data); the floored
#: DSR has std ~0.9, so 1/256 brings what the networks see to the same order (~0.2).
DSR_REWARD_SCALE = 1.0 / 256.0


class TorchVecEnv:
    """ElegantRL's vectorized-env face on a numpy ``BtcPerpVecEnv`` (CPU tensors)."""

    def __init__(self, env: BtcPerpVecEnv) -> None:
        self.env = env
        self.env_name, self.num_envs, self.max_step = env.env_name, env.num_envs, env.max_step
        self.state_dim, self.action_dim, self.if_discrete = env.state_dim, env.action_dim, env.if_discrete
        self.episode_returns: list[float] = []
        self._ret = np.zeros(env.num_envs)

    def reset(self) -> torch.Tensor:
        obs, _ = self.env.reset()
        self._ret[:] = 0.0
        return torch.from_numpy(obs)

    def step(self, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        a = action.detach().reshape(self.num_envs).numpy()
        a = a if self.if_discrete else a.astype(np.float64)
        obs, reward, terminated, truncated, info = self.env.step(a)
        done = terminated | truncated
        self._ret += reward
        if done.any():
            self.episode_returns.extend(self._ret[done].tolist())
            self._ret[done] = 0.0
        return torch.from_numpy(obs), torch.from_numpy(reward), torch.from_numpy(done), info


def make_config(spec: AlgoSpec, env: TorchVecEnv, seed: int) -> Any:
    env_args = {
        "env_name": env.env_name,
        "num_envs": env.num_envs,
        "max_step": env.max_step,
        "state_dim": env.state_dim,
        "action_dim": env.action_dim,
        "if_discrete": env.if_discrete,
    }
    args = Config(agent_class=spec.agent_class, env_args=env_args)
    args.net_dims, args.gamma, args.reward_scale = spec.net_dims, spec.gamma, spec.reward_scale
    args.learning_rate, args.batch_size = spec.learning_rate, spec.batch_size
    args.horizon_len = spec.horizon_len
    args.repeat_times, args.buffer_size, args.random_seed = spec.repeat_times(), spec.buffer_rows, seed
    args.gpu_id, args.num_threads, args.state_value_tau = -1, 1, 0.0
    for key, value in spec.extra.items():
        setattr(args, key, value)
    return args


def build_agent(algo: str, state_dim: int, action_dim: int, num_envs: int, seed: int) -> Any:
    """A fresh agent (weights drawn from the current torch generator) with this algo's config."""
    spec = SPECS[algo]
    stub = type(
        "Stub",
        (),
        {
            "env_name": "BtcPerp",
            "num_envs": num_envs,
            "max_step": 720,
            "state_dim": state_dim,
            "action_dim": action_dim,
            "if_discrete": spec.discrete,
        },
    )
    args = make_config(spec, stub, seed)  # type: ignore[arg-type]
    return spec.agent_class(list(spec.net_dims), state_dim, action_dim, gpu_id=-1, args=args)


def run_training(
    algo: str,
    market: Market,
    train: Window,
    *,
    budget_steps: int,
    seed: int,
    out_dir: Path,
    step: float,
    max_exposure: float,
    costs: CostModel | None,
    progress: bool,
    max_episode_steps: int = 720,
    reward: str = "pnl",
) -> dict[str, Any]:
    """Train; write the checkpoint; return what ``TrainedAgent`` records (see ``training.rl``)."""
    spec = SPECS[algo]
    env_class = BtcPerpVecEnv if spec.discrete else ExposureTargetEnv
    with seeded_torch(seed):
        np_env = env_class(
            market,
            train,
            num_envs=spec.num_envs,
            max_step=max_episode_steps,
            seed=seed,
            costs=costs,
            step=step,
            max_exposure=max_exposure,
            reward=reward,  # type: ignore[arg-type]  # checked by the env
            reward_scale=1.0 if reward == "pnl" else DSR_REWARD_SCALE,
        )
        env = TorchVecEnv(np_env)
        agent = build_agent(algo, env.state_dim, env.action_dim, env.num_envs, seed)
        started = time.perf_counter()
        steps = train_loop(agent, spec, env, budget_steps, progress, f"{algo} seed {seed}")
        seconds = time.perf_counter() - started
    artifact = export_actor(algo, agent.act, market.spec)
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = out_dir / f"{algo}_seed{seed}.pt"
    state = _checkpoint(algo, agent, spec, seed, budget_steps, steps, env)
    torch.save({**state, "reward": reward}, checkpoint)
    (out_dir / f"{algo}_seed{seed}.npz").write_bytes(artifact)
    tail = env.episode_returns[-4 * env.num_envs :]
    return {
        "artifact": artifact,
        "checkpoint": checkpoint,
        "steps": steps,
        "seconds": seconds,
        "steps_per_second": steps / seconds if seconds > 0 else float("inf"),
        "agent_class": spec.agent_class.__name__,
        "episodes": len(env.episode_returns),
        "final_episode_return": float(np.mean(tail)) if tail else float("nan"),
    }


@contextmanager
def seeded_torch(seed: int) -> Iterator[None]:
    """Reproducible torch for one fit: one intra-op thread, deterministic algorithms, the global
    generator seeded inside ``fork_rng`` (the caller's RNG state and settings are restored)."""
    prev_threads, prev_det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            yield
    finally:
        torch.set_num_threads(prev_threads)
        torch.use_deterministic_algorithms(prev_det)


def train_loop(agent: Any, spec: AlgoSpec, env: Any, budget: int, progress: bool, label: str) -> int:
    """Explore / update until ``budget`` env steps; ``env`` has ElegantRL's vectorized-env face."""
    per_iter = spec.steps_per_iteration
    steps = 0
    torch.set_grad_enabled(False)
    try:
        agent.last_state = env.reset()
        buffer: Any
        if spec.off_policy:
            buffer = ReplayBuffer(
                max_size=spec.buffer_rows,
                state_dim=env.state_dim,
                action_dim=1 if spec.discrete else env.action_dim,
                gpu_id=-1,
                num_envs=env.num_envs,
                args=agent_args(agent),
            )
            warm = max(1, min(spec.warmup_horizons, budget // per_iter))
            buffer.update(agent.explore_env(env, spec.horizon_len * warm, if_random=True))
            steps += per_iter * warm
        with tqdm(
            total=budget,
            desc=label,
            unit="step",
            unit_scale=True,
            disable=not progress,
            initial=min(steps, budget),
        ) as bar:
            while steps < budget:
                items = agent.explore_env(env, spec.horizon_len)
                if spec.off_policy:
                    buffer.update(items)
                else:
                    buffer = items
                torch.set_grad_enabled(True)
                agent.update_net(buffer)
                torch.set_grad_enabled(False)
                steps += per_iter
                bar.update(min(per_iter, budget - bar.n))
    finally:
        torch.set_grad_enabled(True)
    return steps


def agent_args(agent: Any) -> Any:
    """ElegantRL's ReplayBuffer reads only PER settings from ``args``; PER is off here."""
    return type("Args", (), {"if_use_per": False})()


def _checkpoint(
    algo: str, agent: Any, spec: AlgoSpec, seed: int, budget: int, steps: int, env: TorchVecEnv
) -> dict[str, Any]:
    state: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "algo": algo,
        "agent_class": spec.agent_class.__name__,
        "seed": seed,
        "budget_steps": budget,
        "steps": steps,
        "state_dim": env.state_dim,
        "action_dim": env.action_dim,
        "num_envs": env.num_envs,
        "net_dims": list(spec.net_dims),
    }
    for name in sorted(agent.save_attr_names):
        state[name] = getattr(agent, name).state_dict()
    if hasattr(agent, "alpha_log"):  # SAC's temperature: not in ElegantRL's save_attr_names
        state["alpha_log"] = agent.alpha_log.detach().clone()
        state["alpha_optimizer"] = agent.alpha_optimizer.state_dict()
    return state


def load_checkpoint(path: Path) -> Any:
    """Rebuild the agent of a checkpoint (networks, targets, optimizers) without unpickling code."""
    ck = torch.load(path, map_location="cpu", weights_only=True)
    if ck.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a {CHECKPOINT_FORMAT} checkpoint")
    with torch.random.fork_rng(devices=[]):
        agent = build_agent(ck["algo"], ck["state_dim"], ck["action_dim"], ck["num_envs"], ck["seed"])
    for name in sorted(agent.save_attr_names):
        getattr(agent, name).load_state_dict(ck[name])
    if hasattr(agent, "alpha_log"):
        with torch.no_grad():
            agent.alpha_log.copy_(ck["alpha_log"])
        agent.alpha_optimizer.load_state_dict(ck["alpha_optimizer"])
    agent.algo = ck["algo"]
    return agent
