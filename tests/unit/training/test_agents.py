"""ElegantRL agents: each trains, is reproducible, exports a live policy that acts as the torch actor.

Budgets are tiny (one or a few iterations): these tests check the machinery (seeds, export,
checkpoints, the action mappings), not trading quality.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from common.actions import ACTIONS
from common.policy import export_policy, load_policy
from training.backtest import policy_exposure
from training.env import BtcPerpVecEnv
from training.market import Market
from training.rl import ALGOS, SUPPORTED, TrainedAgent, train_agent
from training.rl.envs import ExposureTargetEnv, continuous_targets
from training.rl.export import export_actor, torch_greedy
from training.rl.loop import build_agent, load_checkpoint
from training.split import Window

TRAIN = Window(5_000, 9_000)
LATER = Window(9_000, 11_000)
BUDGET = {"ppo": 4_096, "a2c": 4_096, "dqn": 6_144, "sac": 4_096, "td3": 4_096}
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def trained(market: Market, tmp_path_factory: pytest.TempPathFactory) -> dict[str, TrainedAgent]:
    out = tmp_path_factory.mktemp("agents")
    return {
        a: train_agent(a, market, TRAIN, budget_steps=BUDGET[a], seed=7, out_dir=out, progress=False)
        for a in SUPPORTED
    }


def _observations(market: Market, n: int = 1500, seed: int = 0) -> np.ndarray:
    """Real observations at later bars, with portfolios of random grid exposure and entry price."""
    rng = np.random.default_rng(seed)
    t = rng.integers(LATER.start, LATER.end, size=n)
    exposure = rng.integers(-4, 5, size=n) * 0.25
    entry = np.where(exposure != 0, market.close[t] * rng.uniform(0.9, 1.1, size=n), np.nan)
    return market.observe(t, exposure, entry)


def _load(art: bytes, algo: str):  # type: ignore[no-untyped-def]
    row = type(
        "Row", (), {"model_id": "m", "algo": algo, "artifact": art, "artifact_sha256": "", "feature_spec": {}}
    )()
    return load_policy(row)


@torch.no_grad()
def _torch_output(algo: str, actor: torch.nn.Module, obs: np.ndarray) -> np.ndarray:
    """The raw output the artifact reproduces: logits, Q values, or the tanh mean action."""
    s = torch.as_tensor(obs)
    if algo in ("ppo", "a2c"):
        return actor.net(actor.state_norm(s)).numpy()  # type: ignore[operator]
    return actor(s)[:, : 1 if algo in ("sac", "td3") else None].numpy()


def _spread(algo: str, actor: torch.nn.Module, obs: np.ndarray) -> torch.nn.Module:
    """Make decisions vary (tiny budgets leave actors near their flat start): give the last layer
    seeded random weights scaled so each output varies by about 2 over ``obs`` and centred on 0, so
    a continuous actor's tanh covers [-1, 1] on both sides of flat and a discrete one's argmax moves
    between actions. Fitted to the hidden features the real observations produce, so it holds
    whatever the observation's width (the number of registered strategies)."""
    last = {"sac": "net_a", "dqn": "net_val1"}.get(algo, "net")
    layer = getattr(actor, last)[-1]
    seen: list[torch.Tensor] = []
    hook = layer.register_forward_hook(lambda _m, inputs, _out: seen.append(inputs[0].detach()))
    with torch.no_grad():
        actor(torch.as_tensor(obs))
    hook.remove()
    hidden = seen[0]
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        weight = torch.randn(layer.weight.shape, generator=gen, dtype=layer.weight.dtype)
        pre = hidden @ weight.T
        weight = weight / pre.std(dim=0).clamp_min(1e-6)[:, None] * 2.0
        layer.weight.copy_(weight)
        layer.bias.copy_(-(hidden @ weight.T).mean(dim=0))
    return actor


def test_services_and_env_import_without_torch() -> None:
    live = [
        "common",
        "meta_consumer",
        "meta_consumer.service",
        "common.policy",
        "executor",
        "executor.service",
        "tick_emitter",
        "strategy_consumers",
        "bridge",
        "producers",
        "training",
        "training.env",
        "training.market",
        "training.backtest",
        "training.rl",
        "training.rl.envs",
    ]
    code = (
        "import importlib, sys\n"
        f"for m in {live!r}: importlib.import_module(m)\n"
        "print('torch' in sys.modules)\n"
        "import training.rl.loop\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]  # the second line proves the check can see torch


def test_every_algo_trains_exports_and_checkpoints(trained: dict[str, TrainedAgent], market: Market) -> None:
    assert set(ALGOS) == {"ppo", "a2c", "dqn", "sac"} and set(ALGOS) < set(SUPPORTED)
    classes = {
        "ppo": "DiscretePPO",
        "a2c": "DiscreteA2C",
        "dqn": "AgentDoubleDQN",
        "sac": "AgentSAC",
        "td3": "AgentTD3",
    }
    for algo, agent in trained.items():
        assert (agent.algo, agent.seed, agent.budget_steps, agent.agent_class) == (
            algo,
            7,
            BUDGET[algo],
            classes[algo],
        )
        assert agent.steps >= agent.budget_steps and agent.steps_per_second > 0
        assert agent.spec == market.spec
        policy = agent.policy()
        assert policy.output == ("continuous" if algo in ("sac", "td3") else "discrete")
        assert agent.checkpoint.is_file()
        assert agent.checkpoint.with_suffix(".npz").read_bytes() == agent.artifact
        # The checkpoint holds the trained weights: exporting it again gives the same artifact.
        restored = load_checkpoint(agent.checkpoint)
        assert export_actor(algo, restored.act, market.spec) == agent.artifact
        # Training moved the weights away from the seed's initialization.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(7)
            fresh = build_agent(
                algo, market.spec.dim, 1 if algo in ("sac", "td3") else len(ACTIONS), restored.num_envs, 7
            )
        assert export_actor(algo, fresh.act, market.spec) != agent.artifact


@pytest.mark.parametrize("algo", SUPPORTED)
def test_exported_policy_acts_as_the_torch_actor(
    trained: dict[str, TrainedAgent], market: Market, algo: str
) -> None:
    agent = trained[algo]
    actor = load_checkpoint(agent.checkpoint).act
    obs = _observations(market)
    got, want = agent.policy().act(obs), torch_greedy(algo, actor, obs)
    assert np.array_equal(got, want)
    np.testing.assert_allclose(
        agent.policy().forward(obs), _torch_output(algo, actor, obs), rtol=1e-4, atol=1e-5
    )
    spread = _spread(algo, actor, obs)
    policy = _load(export_actor(algo, spread, market.spec), algo)
    want = torch_greedy(algo, spread, obs)
    assert np.array_equal(policy.act(obs), want)
    assert len(np.unique(want)) >= (3 if algo in ("sac", "td3") else 2)  # a constant decision proves little


@pytest.mark.parametrize("algo", ["ppo", "dqn", "sac"])
def test_state_normalization_is_folded_into_the_first_layer(
    trained: dict[str, TrainedAgent], market: Market, algo: str
) -> None:
    actor = load_checkpoint(trained[algo].checkpoint).act
    rng = np.random.default_rng(1)
    with torch.no_grad():
        actor.state_avg.copy_(torch.as_tensor(rng.normal(0, 1.0, market.spec.dim), dtype=torch.float32))
        actor.state_std.copy_(torch.as_tensor(rng.uniform(0.2, 5.0, market.spec.dim), dtype=torch.float32))
    obs = _observations(market, seed=2)
    art = export_actor(algo, _spread(algo, actor, obs), market.spec)
    assert art != trained[algo].artifact
    policy = _load(art, algo)
    assert np.array_equal(policy.act(obs), torch_greedy(algo, actor, obs))
    np.testing.assert_allclose(policy.forward(obs), _torch_output(algo, actor, obs), rtol=1e-4, atol=1e-5)


def test_same_seed_same_bits_other_seed_other_bits(
    trained: dict[str, TrainedAgent], market: Market, tmp_path: Path
) -> None:
    for algo in ("ppo", "sac"):
        again = train_agent(
            algo, market, TRAIN, budget_steps=BUDGET[algo], seed=7, out_dir=tmp_path / "a", progress=False
        )
        assert again.artifact == trained[algo].artifact
        a = torch.load(again.checkpoint, weights_only=True)["act"]
        b = torch.load(trained[algo].checkpoint, weights_only=True)["act"]
        assert all(torch.equal(a[k], b[k]) for k in a)
        other = train_agent(
            algo, market, TRAIN, budget_steps=BUDGET[algo], seed=8, out_dir=tmp_path / "b", progress=False
        )
        assert other.artifact != again.artifact
        # Same artifact -> the same evaluation, bar for bar.
        assert np.array_equal(
            policy_exposure(again.policy(), market, Window(9_000, 9_400)),
            policy_exposure(trained[algo].policy(), market, Window(9_000, 9_400)),
        )


def test_continuous_output_maps_like_the_live_policy(market: Market) -> None:
    values = np.array(
        [-1.7, -1.0, -0.876, -0.874, -0.3, -0.1, 0.0, 0.12, 0.125, 0.126, 0.37, 0.62, 0.99, 2.0]
    )
    layers = [(np.zeros((market.spec.dim, 1)), np.zeros(1))]
    for max_exposure, step in ((1.0, 0.25), (0.5, 0.1)):
        live = []
        for v in values:  # a constant policy whose output is v
            art = export_policy(
                [(layers[0][0], np.array([v]))], ["identity"], algo="t", spec=market.spec, output="continuous"
            )
            row = type(
                "Row",
                (),
                {"model_id": "m", "algo": "t", "artifact": art, "artifact_sha256": "", "feature_spec": {}},
            )()
            policy = load_policy(row, step=step, max_exposure=max_exposure)
            live.append(policy.act(np.zeros((1, market.spec.dim)))[0])
        assert np.array_equal(continuous_targets(values, step, max_exposure), np.array(live))
    assert continuous_targets(values, 0.25, 1.0).tolist() == [
        -1.0,
        -1.0,
        -1.0,
        -0.75,
        -0.25,
        0.0,
        0.0,
        0.0,
        0.0,
        0.25,
        0.25,
        0.5,
        1.0,
        1.0,
    ]


def test_target_env_jumps_to_the_target(market: Market) -> None:
    env = ExposureTargetEnv(market, TRAIN, num_envs=3, max_step=50, seed=0)
    assert (env.action_dim, env.if_discrete) == (1, False)
    env.reset()
    _, _, _, _, info = env.step(np.array([[0.8], [-0.4], [0.05]]))
    assert info["exposure"].tolist() == [0.75, -0.5, 0.0]
    _, _, _, _, info = env.step(np.array([[-1.0], [1.0], [0.5]]))
    assert info["exposure"].tolist() == [-1.0, 1.0, 0.5]  # straight to the target, not one grid step


@pytest.mark.parametrize("algo", ["ppo", "td3"])
def test_live_backtest_reproduces_the_torch_actor_in_its_env(
    trained: dict[str, TrainedAgent], market: Market, algo: str
) -> None:
    """The exported policy run bar by bar as live == the torch actor stepping its training env."""
    window = Window(9_000, 9_300)
    actor = _spread(algo, load_checkpoint(trained[algo].checkpoint).act, _observations(market))
    policy = _load(export_actor(algo, actor, market.spec), algo)
    env_class = ExposureTargetEnv if algo == "td3" else BtcPerpVecEnv
    env = env_class(market, window, num_envs=1, max_step=len(window) - 1, random_start=False)
    obs, _ = env.reset()
    path = []
    for _ in range(len(window) - 1):
        action = torch_greedy(algo, actor, obs)
        if algo == "td3":  # the env takes the raw actor output; torch_greedy returns its grid target
            with torch.no_grad():
                action = actor(torch.as_tensor(obs)).numpy()
        obs, _, _, _, info = env.step(action)
        path.append(info["exposure"][0])
    assert len(set(path)) >= 3  # the path trades: the comparison below is not flat against flat
    assert np.array_equal(policy_exposure(policy, market, window), np.array(path))


def test_unknown_algo_and_empty_budget_refused(market: Market, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown algo"):
        train_agent("ddpg", market, TRAIN, budget_steps=10, seed=0, out_dir=tmp_path)
    with pytest.raises(ValueError, match="budget_steps"):
        train_agent("ppo", market, TRAIN, budget_steps=0, seed=0, out_dir=tmp_path)
    with pytest.raises(ValueError, match="unknown reward"):
        train_agent("ppo", market, TRAIN, budget_steps=10, seed=0, out_dir=tmp_path, reward="sortino")


def test_differential_sharpe_reward_trains_another_policy(
    trained: dict[str, TrainedAgent], market: Market, tmp_path: Path
) -> None:
    """``reward="dsr"`` reaches the env: same algo, seed and budget, other weights; it is recorded."""
    dsr = train_agent(
        "a2c",
        market,
        TRAIN,
        budget_steps=BUDGET["a2c"],
        seed=7,
        out_dir=tmp_path,
        progress=False,
        reward="dsr",
    )
    assert (dsr.reward, trained["a2c"].reward) == ("dsr", "pnl")
    assert dsr.artifact != trained["a2c"].artifact
    assert torch.load(dsr.checkpoint, weights_only=True)["reward"] == "dsr"


def test_training_reads_no_bar_after_the_window(market: Market, tmp_path: Path) -> None:
    """Scrambling every bar from ``TRAIN.end`` on (prices, volatility, strategy answers) changes nothing."""
    rng = np.random.default_rng(3)
    cut = TRAIN.end
    close, vol = market.close.copy(), market.volatility.copy()
    close[cut:] = close[cut:] * rng.uniform(0.5, 1.5, size=len(close) - cut)
    vol[cut:] = rng.uniform(0.0, 1.0, size=len(vol) - cut)
    target = market.signals.target.copy()
    target[cut:] = rng.integers(-1, 2, size=target[cut:].shape)
    scrambled = dataclasses.replace(
        market, close=close, volatility=vol, signals=dataclasses.replace(market.signals, target=target)
    )
    runs = [
        train_agent(
            algo, m, TRAIN, budget_steps=2_048, seed=3, out_dir=tmp_path / f"{algo}{k}", progress=False
        )
        for k, m in enumerate((market, scrambled))
        for algo in ("a2c", "td3")
    ]
    assert runs[0].artifact == runs[2].artifact and runs[1].artifact == runs[3].artifact
    # ... while the same scrambling inside the window does change the result.
    close_in = market.close.copy()
    close_in[TRAIN.start : cut] = close_in[TRAIN.start : cut] * rng.uniform(0.9, 1.1, size=cut - TRAIN.start)
    inside = train_agent(
        "a2c",
        dataclasses.replace(market, close=close_in),
        TRAIN,
        budget_steps=2_048,
        seed=3,
        out_dir=tmp_path / "inside",
        progress=False,
    )
    assert inside.artifact != runs[0].artifact
