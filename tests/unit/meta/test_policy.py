"""The numpy policy runtime: artifact round trip, refusals, and bit-exact forward passes."""

from __future__ import annotations

import hashlib
import itertools
import json
from types import SimpleNamespace

import numpy as np
import pytest

from common.actions import ACTIONS, apply_actions
from common.observation import FeatureSpec
from common.policy import PolicyError, export_policy, load_policy

SPEC = FeatureSpec(strategies=("a", "b", "c"))


def _layers(rng: np.random.Generator, sizes: list[int]) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(rng.normal(size=(i, o)), rng.normal(size=o)) for i, o in itertools.pairwise(sizes)]


def _row(artifact: bytes, spec: FeatureSpec = SPEC, model_id: str = "m1") -> SimpleNamespace:
    return SimpleNamespace(
        model_id=model_id,
        algo="ppo",
        artifact=artifact,
        artifact_sha256=hashlib.sha256(artifact).hexdigest(),
        feature_spec=json.loads(spec.to_json()),
    )


Layers = list[tuple[np.ndarray, np.ndarray]]


def _reference(x: np.ndarray, layers: Layers, acts: list[str]) -> list[list[float]]:
    """Plain-Python forward pass, same summation order: b + x0*w0 + x1*w1 + ..."""
    fns = {"tanh": np.tanh, "relu": lambda v: max(v, 0.0), "identity": lambda v: v}
    out = []
    for row in x.tolist():
        h = row
        for (w, b), act in zip(layers, acts, strict=True):
            nxt = []
            for j in range(w.shape[1]):
                s = float(b[j])
                for i in range(w.shape[0]):
                    s = s + h[i] * float(w[i, j])
                nxt.append(float(fns[act](s)))
            h = nxt
        out.append(h)
    return out


def test_forward_equals_independent_computation_bit_for_bit() -> None:
    rng = np.random.default_rng(7)
    layers = _layers(rng, [SPEC.dim, 16, 8, len(ACTIONS)])
    acts = ["tanh", "relu", "identity"]
    policy = load_policy(_row(export_policy(layers, acts, algo="ppo", spec=SPEC)))
    obs = rng.normal(size=(32, SPEC.dim)).astype(np.float32)
    got = policy.forward(obs)
    assert got.tolist() == _reference(obs.astype(np.float64), layers, acts)
    x = obs.astype(np.float64)
    h1 = np.tanh(x @ layers[0][0] + layers[0][1])
    h2 = np.maximum(h1 @ layers[1][0] + layers[1][1], 0.0)
    np.testing.assert_allclose(got, h2 @ layers[2][0] + layers[2][1], rtol=1e-9, atol=1e-12)
    assert policy.act(obs).tolist() == np.argmax(got, axis=1).tolist()


def test_single_row_equals_its_row_in_a_batch() -> None:
    """Live decides one row at a time, the backtest in batches: the bits must not depend on that."""
    rng = np.random.default_rng(11)
    policy = load_policy(
        _row(
            export_policy(
                _layers(rng, [SPEC.dim, 64, 64, 5]), ["tanh", "tanh", "identity"], algo="ppo", spec=SPEC
            )
        )
    )
    obs = rng.normal(size=(257, SPEC.dim))
    batch = policy.forward(obs)
    for i in (0, 1, 100, 256):
        assert policy.forward(obs[i : i + 1])[0].tobytes() == batch[i].tobytes()


def test_continuous_output_snaps_to_the_exposure_grid() -> None:
    spec = FeatureSpec(strategies=("a",))
    w = np.zeros((spec.dim, 1))
    w[0, 0] = 1.0  # output = tanh(target feature of strategy a)
    art = export_policy([(w, np.zeros(1))], ["tanh"], algo="sac", spec=spec, output="continuous")
    policy = load_policy(_row(art, spec), step=0.25, max_exposure=1.0)
    obs = np.zeros((3, spec.dim))
    obs[:, 0] = [np.arctanh(0.6), np.arctanh(-0.1), 5.0]
    assert policy.act(obs).tolist() == [0.5, 0.0, 1.0]
    assert policy.targets(obs, np.zeros(3)).tolist() == [0.5, 0.0, 1.0]


def test_discrete_targets_use_the_shared_action_grid() -> None:
    rng = np.random.default_rng(3)
    art = export_policy(_layers(rng, [SPEC.dim, 5]), ["identity"], algo="dqn", spec=SPEC)
    policy = load_policy(_row(art))
    obs = rng.normal(size=(10, SPEC.dim))
    exposure = np.full(10, 0.5)
    expected = apply_actions(policy.act(obs), exposure, 0.25, 1.0)
    assert policy.targets(obs, exposure).tolist() == expected.tolist()


@pytest.mark.parametrize("breakage", ["sha", "shape", "activation", "spec_column", "garbage"])
def test_broken_artifacts_are_refused_with_the_reason(breakage: str) -> None:
    rng = np.random.default_rng(5)
    art = export_policy(_layers(rng, [SPEC.dim, 5]), ["identity"], algo="ppo", spec=SPEC)
    row = _row(art)
    if breakage == "sha":
        row.artifact_sha256 = "0" * 64
    elif breakage == "shape":
        with pytest.raises(PolicyError, match="layer 0"):
            export_policy(_layers(rng, [SPEC.dim + 1, 5]), ["identity"], algo="ppo", spec=SPEC)
        return
    elif breakage == "activation":
        with pytest.raises(PolicyError, match="activation"):
            export_policy(_layers(rng, [SPEC.dim, 5]), ["swish"], algo="ppo", spec=SPEC)
        return
    elif breakage == "spec_column":
        row.feature_spec = {**row.feature_spec, "strategies": ["a", "b"]}
    else:
        row.artifact = b"not an npz"
        row.artifact_sha256 = hashlib.sha256(row.artifact).hexdigest()
    with pytest.raises(PolicyError, match="m1"):
        load_policy(row)
