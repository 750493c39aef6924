"""A trained ElegantRL actor -> ``btcmeta.mlp.v1`` artifact, and the torch actor's greedy decision.

What is exported is the greedy (deterministic) path of each actor, layer by layer, as it is:

* ``ActorDiscretePPO`` (ppo, a2c): ``net`` (Linear-ReLU-Linear-ReLU-Linear), argmax = ``forward``;
* ``QNetTwin`` (dqn): ``net_state`` (Linear-ReLU-Linear) then ``net_val1`` (Linear): ``forward``
  returns these Q values, and ``value_re_norm`` is not applied there (it could not move an argmax);
* ``ActorSAC`` (sac): ``net_s`` (Linear-ReLU-Linear-ReLU) then the mean rows of ``net_a``, tanh;
* ``Actor`` (td3): ``net`` (Linear-ReLU-Linear-ReLU-Linear), tanh.

Every ElegantRL actor normalizes its input first, ``(s - state_avg) / state_std``. That affine map
is folded into the first layer: ``W' = W / std`` (per input), ``b' = b - W @ (avg / std)``, in
float64. (With ``state_value_tau = 0``, our default, ElegantRL never moves avg/std off 0/1, but
folding keeps the export right for any setting; a test perturbs them.)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from common.observation import FeatureSpec
from common.policy import export_policy
from training.rl.envs import continuous_targets

_ACTIVATION_NAMES: dict[type, str] = {nn.ReLU: "relu", nn.Tanh: "tanh", nn.Sigmoid: "sigmoid"}


def _dense_layers(*seqs: Any) -> list[list[Any]]:
    """``[W (out, in), b (out,), activation]`` for each Linear of the Sequentials, in order."""
    layers: list[list[Any]] = []
    for seq in seqs:
        for module in seq:
            if isinstance(module, nn.Linear):
                layers.append(
                    [
                        module.weight.detach().double().numpy().copy(),
                        module.bias.detach().double().numpy().copy(),
                        "identity",
                    ]
                )
            elif type(module) in _ACTIVATION_NAMES and layers and layers[-1][2] == "identity":
                layers[-1][2] = _ACTIVATION_NAMES[type(module)]
            else:
                raise TypeError(f"cannot export {module!r}")
    return layers


def actor_layers(algo: str, act: Any) -> tuple[list[list[Any]], str]:
    """The actor's greedy path as dense layers (normalization not yet folded) and the output kind."""
    if algo in ("ppo", "a2c"):
        return _dense_layers(act.net), "discrete"
    if algo == "dqn":
        return _dense_layers(act.net_state, act.net_val1), "discrete"
    if algo == "sac":
        layers = _dense_layers(act.net_s, act.net_a)
        layers[-1][0] = layers[-1][0][: act.action_dim]  # rows of the mean; the rest are log-stds
        layers[-1][1] = layers[-1][1][: act.action_dim]
        layers[-1][2] = "tanh"
        return layers, "continuous"
    if algo == "td3":
        layers = _dense_layers(act.net)
        layers[-1][2] = "tanh"
        return layers, "continuous"
    raise ValueError(f"unknown algo {algo!r}")


def folded_layers(algo: str, act: Any) -> tuple[list[tuple[np.ndarray, np.ndarray, str]], str]:
    """The actor's greedy path as ``common.policy`` layers (``w`` is (in, out), float64), input
    normalization folded into layer 0, and the output kind: what an artifact holds and runs."""
    layers, output = actor_layers(algo, act)
    avg = act.state_avg.detach().double().numpy()
    std = act.state_std.detach().double().numpy()
    w0, b0, _ = layers[0]
    layers[0][0] = w0 / std[None, :]
    layers[0][1] = b0 - w0 @ (avg / std)
    return [(w.T, b, a) for w, b, a in layers], output


def export_actor(algo: str, act: Any, spec: FeatureSpec) -> bytes:
    """Artifact bytes of the actor's greedy policy, input normalization folded into layer 0."""
    layers, output = folded_layers(algo, act)
    return export_policy(
        [(w, b) for w, b, _ in layers], [a for _, _, a in layers], algo=algo, spec=spec, output=output
    )


@torch.no_grad()
def torch_greedy(
    algo: str, act: Any, obs: np.ndarray, *, step: float = 0.25, max_exposure: float = 1.0
) -> np.ndarray:
    """The torch actor's own greedy decision: action indices, or grid target exposures."""
    state = torch.as_tensor(np.asarray(obs), dtype=torch.float32)
    if algo in ("ppo", "a2c"):
        return act(state).numpy().astype(np.int64)
    if algo == "dqn":
        return act(state).argmax(dim=1).numpy().astype(np.int64)
    return continuous_targets(act(state)[:, 0].numpy(), step, max_exposure)
