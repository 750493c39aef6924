"""Policy artifacts and their numpy runtime: live inference without torch, identical to the backtest.

It lives in ``common`` because it is the contract between two sides that must not import each
other: the training engine writes and backtests these artifacts, the meta consumer runs them.

Artifact format ``btcmeta.mlp.v1`` (what the training engine exports, stored in ``models.artifact``):
an ``.npz`` (``numpy.savez``, no pickles) holding

* ``header``: a 0-d string array with JSON ``{"format", "algo", "feature_spec", "activations",
  "output", "actions"}``; ``output`` is ``"discrete"`` (argmax over ``actions``, which must equal
  ``common.actions.ACTIONS`` by name and order) or ``"continuous"`` (one output in [-1, 1]: target
  exposure as a fraction of the max, snapped to the nearest point of the exposure grid);
* ``w0, b0, w1, b1, ...``: dense layers, ``w`` of shape (in, out) (a torch ``Linear.weight`` is
  (out, in): the exporter transposes), ``b`` of shape (out,), one activation name per layer
  (``tanh``, ``relu``, ``sigmoid``, ``identity``).

Why a hand-written forward pass: BLAS picks different kernels for one row than for a batch, so
``x @ W`` can differ in the last bit between the live tick and the vectorized backtest. Here each
output is accumulated input by input in a fixed order with element-wise float64 operations, so a
row gives the same bits alone or inside any batch. It is greedy and deterministic (no sampling).
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from common.actions import ACTIONS, apply_actions
from common.observation import FeatureSpec

FORMAT = "btcmeta.mlp.v1"
FloatArray = npt.NDArray[np.float64]

ACTIVATIONS: dict[str, Callable[[FloatArray], FloatArray]] = {
    "identity": lambda x: x,
    "tanh": np.tanh,
    "relu": lambda x: np.maximum(x, 0.0),
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
}


class PolicyError(ValueError):
    """The artifact cannot be run (wrong format, shapes, checksum or action mapping)."""


class ModelRow(Protocol):
    """What :func:`load_policy` needs from a ``models`` row (the ORM object or any look-alike)."""

    model_id: str
    algo: str
    artifact: bytes
    artifact_sha256: str
    feature_spec: dict[str, Any]


def dense(x: FloatArray, w: FloatArray, b: FloatArray) -> FloatArray:
    """``x @ w + b`` with a fixed, batch-independent summation order (see the module doc)."""
    out = np.empty((x.shape[0], w.shape[1]), dtype=np.float64)
    out[:] = b
    for i in range(w.shape[0]):
        out += x[:, i : i + 1] * w[i]
    return out


@dataclass(frozen=True)
class Policy:
    """A loaded MLP policy; ``act`` is the one function live and backtest both call."""

    model_id: str
    algo: str
    spec: FeatureSpec
    output: str
    layers: tuple[tuple[FloatArray, FloatArray, str], ...]
    step: float = 0.25
    max_exposure: float = 1.0

    def forward(self, obs: npt.ArrayLike) -> FloatArray:
        x = np.asarray(obs, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.spec.dim:
            raise PolicyError(f"observation must have shape (batch, {self.spec.dim}), got {x.shape}")
        for w, b, activation in self.layers:
            x = ACTIVATIONS[activation](dense(x, w, b))
        return x

    def act(self, obs: npt.ArrayLike) -> npt.NDArray[Any]:
        """Discrete: action indices into ``ACTIONS`` (int64). Continuous: grid target exposures."""
        y = self.forward(obs)
        if self.output == "discrete":
            indices: npt.NDArray[np.int64] = np.argmax(y, axis=1).astype(np.int64)
            return indices
        wanted = np.clip(y[:, 0], -1.0, 1.0) * self.max_exposure
        return apply_actions(np.zeros(wanted.shape, dtype=np.int64), wanted, self.step, self.max_exposure)

    def targets(self, obs: npt.ArrayLike, exposure: npt.ArrayLike) -> FloatArray:
        """Target exposure for each row, whichever the output kind (what the portfolio moves to)."""
        out = self.act(obs)
        if self.output == "discrete":
            return apply_actions(out, exposure, self.step, self.max_exposure)
        return np.asarray(out, dtype=np.float64)


def export_policy(
    layers: Sequence[tuple[npt.ArrayLike, npt.ArrayLike]],
    activations: Sequence[str],
    *,
    algo: str,
    spec: FeatureSpec,
    output: str = "discrete",
) -> bytes:
    """Artifact bytes in the ``btcmeta.mlp.v1`` format (used by the training engine and tests)."""
    header = {
        "format": FORMAT,
        "algo": algo,
        "feature_spec": json.loads(spec.to_json()),
        "activations": list(activations),
        "output": output,
        "actions": [a.value for a in ACTIONS],
    }
    arrays: dict[str, Any] = {"header": np.array(json.dumps(header, sort_keys=True))}
    for k, (w, b) in enumerate(layers):
        arrays[f"w{k}"] = np.asarray(w, dtype=np.float64)
        arrays[f"b{k}"] = np.asarray(b, dtype=np.float64)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    data = buf.getvalue()
    _parse(data, "<export>")  # refuse to write what could not be loaded back
    return data


def load_policy(row: ModelRow, *, step: float = 0.25, max_exposure: float = 1.0) -> Policy:
    """Check and load a ``models`` row's artifact; raises :class:`PolicyError` with the reason."""
    digest = hashlib.sha256(row.artifact).hexdigest()
    if row.artifact_sha256 and digest != row.artifact_sha256:
        raise PolicyError(f"model {row.model_id}: artifact sha256 {digest} != recorded {row.artifact_sha256}")
    spec, output, layers = _parse(row.artifact, row.model_id)
    if row.feature_spec and _spec_from(row.feature_spec) != spec:
        raise PolicyError(f"model {row.model_id}: feature_spec column differs from the artifact header")
    return Policy(row.model_id, row.algo, spec, output, layers, step, max_exposure)


def _spec_from(data: dict[str, Any]) -> FeatureSpec:
    return FeatureSpec.from_json(json.dumps(data))


def _parse(
    data: bytes, model_id: str
) -> tuple[FeatureSpec, str, tuple[tuple[FloatArray, FloatArray, str], ...]]:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        header = json.loads(str(arrays.pop("header")))
        spec = _spec_from(header["feature_spec"])
        activations = list(header["activations"])
        output = header["output"]
        fmt = header["format"]
    except PolicyError:
        raise
    except Exception as exc:
        raise PolicyError(f"model {model_id}: unreadable artifact ({type(exc).__name__}: {exc})") from None
    if fmt != FORMAT:
        raise PolicyError(f"model {model_id}: artifact format {fmt!r}, expected {FORMAT!r}")
    if output == "discrete" and header.get("actions") != [a.value for a in ACTIONS]:
        raise PolicyError(f"model {model_id}: action mapping {header.get('actions')} is not {list(ACTIONS)}")
    if output not in ("discrete", "continuous"):
        raise PolicyError(f"model {model_id}: output {output!r} is neither 'discrete' nor 'continuous'")
    layers = []
    width = spec.dim
    for k, activation in enumerate(activations):
        w, b = arrays.get(f"w{k}"), arrays.get(f"b{k}")
        if w is None or b is None or w.ndim != 2 or b.shape != (w.shape[1],) or w.shape[0] != width:
            raise PolicyError(f"model {model_id}: layer {k} missing or shaped wrong (input width {width})")
        if activation not in ACTIVATIONS:
            raise PolicyError(f"model {model_id}: unknown activation {activation!r} in layer {k}")
        layers.append((w.astype(np.float64), b.astype(np.float64), activation))
        width = w.shape[1]
    if f"w{len(activations)}" in arrays or not layers:
        raise PolicyError(f"model {model_id}: layer count does not match the activations list")
    if width != (len(ACTIONS) if output == "discrete" else 1):
        raise PolicyError(f"model {model_id}: output width {width} does not fit a {output} policy")
    return spec, output, tuple(layers)
