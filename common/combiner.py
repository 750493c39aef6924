"""Combiner artefacts: non-RL meta-policies (research candidates) as data the meta consumer runs.

It lives in ``common`` for the same reason as :mod:`common.policy`: the training side writes and
backtests these artefacts, the meta consumer runs them, and neither may import the other. The
vectorized research path (``training.research.candidates``) calls the same functions as the live
decision, so a tick decided live gives the bits the backtest scored (ADR 0020).

Format ``btcmeta.combiner.v1`` (stored in ``models.artifact``): canonical JSON (sorted keys, no
whitespace, UTF-8) of ``{"format", "kind", "strategies", "params", "grid", "inputs",
"provenance", "fingerprint"}``. ``fingerprint`` is the sha256 of the canonical JSON of every
other key, so two exports of the same combiner are byte-identical and any edit that is not a
re-export is refused. Runtime is numpy only (no torch, no scikit-learn).

Kinds:

* ``volmanaged``: the majority vote of ``strategies`` (only those that have answered vote, as the
  live fallback) scaled by ``target_vol / realized_vol`` capped at ``cap``, snapped to ``grid``
  and clipped to [-1, 1] (fractions of the max exposure). ``realized_vol`` at bar ``t`` is the
  sample std of the ``window`` hourly log returns ending at ``t``: it reads closes ``t-window ..
  t``, all published by the close of ``t`` (no lookahead). The meta consumer carries the last
  :data:`meta_consumer.decide.MARK_CLOSES` closes, so ``window`` must fit in that.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from common.actions import majority_vote
from common.events import Target
from common.observation import window_std

FORMAT = "btcmeta.combiner.v1"
KINDS = ("volmanaged",)
HOURS_PER_YEAR = 24 * 365
FloatArray = npt.NDArray[np.float64]


class CombinerError(ValueError):
    """The artefact cannot run here (format, fingerprint, parameters or the live inputs)."""


class ModelRow(Protocol):
    """What :func:`load_combiner` reads from a ``models`` row (the ORM object or a look-alike)."""

    @property
    def model_id(self) -> str: ...
    @property
    def artifact(self) -> bytes: ...
    @property
    def artifact_sha256(self) -> str: ...
    @property
    def feature_spec(self) -> dict[str, Any] | None: ...


# --- the shared arithmetic (vectorized path and live decision call these) --------------------


def snap(e: npt.ArrayLike, grid: float = 0.25) -> FloatArray:
    """Nearest grid point in [-1, 1] (``+ 0.0`` turns -0.0 into 0.0, as the research ledger does)."""
    out: FloatArray = np.clip(np.round(np.asarray(e, dtype=np.float64) / grid) * grid, -1.0, 1.0) + 0.0
    return out


def simple_returns(close: npt.ArrayLike) -> FloatArray:
    """``ret[t] = close[t] / close[t-1] - 1`` with ``ret[0] = 0`` (the research context's returns)."""
    c = np.asarray(close, dtype=np.float64)
    ret = np.zeros_like(c)
    ret[1:] = c[1:] / c[:-1] - 1.0
    return ret


def realized_vol(ret: npt.ArrayLike, window: int) -> FloatArray:
    """Sample std (ddof 1) of ``log1p(ret)`` over bars ``t-window+1 .. t``; NaN while ``t < window``.

    ``ret[0]`` is a placeholder (no previous close), so the first value is at ``t = window``. The
    fixed-order sums of :func:`common.observation.window_std`: the value at ``t`` has the same bits
    over the whole history (backtest) or over the last ``window + 1`` closes only (a live tick).
    """
    lr = np.log1p(np.asarray(ret, dtype=np.float64))
    out = np.full(lr.shape, np.nan)
    if window < 2:
        raise ValueError("realized_vol: window >= 2")
    std = window_std(lr[1:], window, ddof=1)  # values for t = window .. size-1
    if std.size:
        out[window:] = std
    return out


def volmanaged_path(
    vote: npt.ArrayLike, rv: npt.ArrayLike, target_vol: float, cap: float = 1.0, grid: float = 0.25
) -> FloatArray:
    """Exposure fractions: ``vote * min(cap, hourly target / rv)`` snapped; 0 where ``rv`` is unknown."""
    r = np.asarray(rv, dtype=np.float64)
    target = target_vol / np.sqrt(HOURS_PER_YEAR)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(np.isfinite(r) & (r > 0), np.minimum(cap, target / r), 0.0)
    return snap(np.asarray(vote, dtype=np.float64) * scale, grid)


# --- the artefact --------------------------------------------------------------------------


def _canonical(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()


def fingerprint(doc: Mapping[str, Any]) -> str:
    """sha256 over the canonical JSON of the artefact's content (everything but ``fingerprint``)."""
    return hashlib.sha256(_canonical({k: v for k, v in doc.items() if k != "fingerprint"})).hexdigest()


def export_combiner(
    kind: str,
    strategies: Sequence[str],
    params: Mapping[str, float],
    *,
    grid: float = 0.25,
    provenance: Mapping[str, Any] | None = None,
) -> bytes:
    """Artefact bytes (canonical JSON with its fingerprint); refuses what :func:`parse` would refuse."""
    doc: dict[str, Any] = {
        "format": FORMAT,
        "kind": kind,
        "strategies": list(strategies),
        "params": {k: float(v) for k, v in sorted(params.items())},
        "grid": float(grid),
        "inputs": _INPUTS.get(kind, ""),
        "provenance": dict(provenance or {}),
    }
    doc["fingerprint"] = fingerprint(doc)
    data = _canonical(doc)
    parse(data, "<export>")
    return data


_INPUTS = {
    "volmanaged": "majority vote of the strategies that answered; sample std of the last `window` hourly "
    "log returns (closes t-window..t)",
}


def is_combiner_artifact(data: bytes) -> bool:
    """Whether ``data`` is JSON (a combiner) rather than an ``.npz`` MLP policy (a zip: ``PK``)."""
    return data.lstrip()[:1] == b"{"


@dataclass(frozen=True)
class Combiner:
    """A loaded combiner; :meth:`decide` is the live decision, :func:`volmanaged_path` its backtest."""

    model_id: str
    kind: str
    strategies: tuple[str, ...]
    params: Mapping[str, float]
    grid: float
    fingerprint: str

    @property
    def window(self) -> int:
        return int(self.params["window"])

    @property
    def closes_needed(self) -> int:
        """Closes the decision reads: the window's returns need one close before them."""
        return self.window + 1

    def fraction(self, targets: Mapping[str, Target], closes: Sequence[float]) -> float:
        """Target exposure as a fraction of the max, from the latest answers and the last closes.

        ``targets``: the latest applied answer of each strategy that has answered (absent ones do
        not vote); ``closes``: the decision timeframe's closes up to this tick's bar. Too few closes
        (a cold start) means unknown volatility, hence flat, as the backtest before ``window``.
        """
        vote = majority_vote([targets[s] for s in self.strategies if s in targets], 1.0)
        c = np.asarray(closes[-self.closes_needed :], dtype=np.float64)
        rv = (
            float(realized_vol(simple_returns(c), self.window)[-1])
            if c.size == self.closes_needed
            else math.nan
        )
        p = self.params
        return float(volmanaged_path([vote], [rv], p["target_vol"], p["cap"], self.grid)[0])


def load_combiner(
    row: ModelRow, *, step: float = 0.25, max_exposure: float = 1.0, max_closes: int | None = None
) -> Combiner:
    """Check and load a ``models`` row's combiner; raises :class:`CombinerError` with the reason.

    ``step`` / ``max_exposure``: the consumer's exposure grid, which must be the artefact's grid
    (the backtest scored that grid); ``max_closes``: the closes the consumer carries per tick.
    """
    digest = hashlib.sha256(row.artifact).hexdigest()
    if row.artifact_sha256 and digest != row.artifact_sha256:
        raise CombinerError(
            f"model {row.model_id}: artifact sha256 {digest} != recorded {row.artifact_sha256}"
        )
    comb = parse(row.artifact, row.model_id)
    spec_strategies = tuple((row.feature_spec or {}).get("strategies") or ())
    if spec_strategies and spec_strategies != comb.strategies:
        raise CombinerError(
            f"model {row.model_id}: feature_spec strategies {list(spec_strategies)} differ from the "
            f"artefact's {list(comb.strategies)}"
        )
    if not math.isclose(comb.grid * max_exposure, step, rel_tol=0, abs_tol=1e-12):
        raise CombinerError(
            f"model {row.model_id}: the artefact snaps to a {comb.grid} grid of the max exposure, "
            f"this consumer steps {step} of {max_exposure}"
        )
    if max_closes is not None and comb.closes_needed > max_closes:
        raise CombinerError(
            f"model {row.model_id}: window {comb.window} needs {comb.closes_needed} closes, "
            f"the meta consumer carries {max_closes}"
        )
    return Combiner(row.model_id, comb.kind, comb.strategies, comb.params, comb.grid, comb.fingerprint)


def parse(data: bytes, model_id: str) -> Combiner:
    """The artefact's content, validated (format, fingerprint, kind, strategies, parameters)."""
    try:
        doc = json.loads(data.decode("utf-8"))
        if not isinstance(doc, dict):
            raise TypeError("not a JSON object")
        fmt, kind, fp = doc["format"], doc["kind"], doc["fingerprint"]
        strategies, params, grid = doc["strategies"], doc["params"], doc["grid"]
        content = fingerprint(doc)
    except Exception as exc:
        raise CombinerError(f"model {model_id}: unreadable combiner ({type(exc).__name__}: {exc})") from None
    if fmt != FORMAT:
        raise CombinerError(f"model {model_id}: artifact format {fmt!r}, expected {FORMAT!r}")
    if fp != content:
        raise CombinerError(f"model {model_id}: fingerprint {fp} does not match the content ({content})")
    if kind not in KINDS:
        raise CombinerError(f"model {model_id}: combiner kind {kind!r} is not one of {list(KINDS)}")
    if (
        not isinstance(strategies, list)
        or not strategies
        or not all(isinstance(s, str) and s for s in strategies)
        or len(set(strategies)) != len(strategies)
    ):
        raise CombinerError(f"model {model_id}: strategies must be a non-empty list of unique names")
    if not isinstance(grid, float | int) or not 0 < grid <= 1:
        raise CombinerError(f"model {model_id}: grid {grid!r} is not in (0, 1]")
    if not isinstance(params, dict) or not all(isinstance(v, float | int) for v in params.values()):
        raise CombinerError(f"model {model_id}: params must map names to numbers")
    _check_params(kind, params, model_id)
    p = {k: float(v) for k, v in params.items()}
    return Combiner(model_id, kind, tuple(strategies), p, float(grid), fp)


def _check_params(kind: str, params: Mapping[str, float], model_id: str) -> None:
    if kind == "volmanaged":
        want = {"target_vol", "window", "cap"}
        if set(params) != want:
            raise CombinerError(
                f"model {model_id}: volmanaged params {sorted(params)}, expected {sorted(want)}"
            )
        if not params["target_vol"] > 0 or not params["cap"] > 0:
            raise CombinerError(f"model {model_id}: target_vol and cap must be > 0")
        w = params["window"]
        if w != int(w) or w < 2:
            raise CombinerError(f"model {model_id}: window {w!r} must be an integer >= 2")
