"""Combiner artefacts: research meta-policies (research candidates) as data the meta consumer runs.

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
  t``, all published by the close of ``t`` (no lookahead). The meta consumer holds the last
  :data:`meta_consumer.decide.BAR_CLOSES` (721) closes of a bar, so ``window`` must fit in that.
* ``ridge`` / ``logistic`` (ADR 0025): a fitted linear score over the research feature row
  (:func:`linear_feature_names`: each strategy's vote, their mean, the 24/168/720 h trailing log
  returns, the 168 h realized volatility, the last *published* funding rate), z-scored with the
  training mean/std stored in the artefact, minus a training centre (the logistic's median score),
  divided by the training score std, snapped. The row at bar ``t`` reads closes ``t-720 .. t``
  (721 closes), the answers applied by ``t`` and the funding rate published by the close of ``t``.
* ``metalabel`` (ADR 0025): the same row and score; the majority vote (as ``volmanaged``'s) is
  followed where ``sigmoid(score) > threshold`` and flat elsewhere (meta-labeling: the logistic
  decides whether to take the vote's side).
* ``imitation`` (ADR 0025): the same row; ``P(long) - P(short)`` of two logistics (fitted to the
  hindsight oracle's path on the training bars), snapped. A leg whose training labels were all
  equal is that constant probability (``const_long`` / ``const_short`` in [0, 1]; -1: fitted).
* ``hedge`` / ``dsr`` (ADR 0026): online learners whose state is carried from bar to bar.
* ``rl`` (ADR 0027): the RL recast's PPO actors (one per seed) on FeatureSpec v2
  (:mod:`common.combiner_rl`), its state (trailing records, held targets) carried as hedge's / dsr's.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt

from common.actions import majority_vote
from common.events import Target
from common.observation import TARGET_VALUES, window_std

if TYPE_CHECKING:
    from common.combiner_rl import RlPolicy

FORMAT = "btcmeta.combiner.v1"
LINEAR_KINDS = ("ridge", "logistic", "metalabel", "imitation")
#: Online learners (ADR 0026): their state evolves bar by bar and is carried in the decision state.
ONLINE_KINDS = ("hedge", "dsr")
#: The RL policy (ADR 0027): FeatureSpec v2 rows (``common.combiner_rl``), its state carried as the
#: online learners' is (the trailing records' cumulative P&L and vote history, each seed's held target).
RL_KIND = "rl"
KINDS = ("volmanaged", *LINEAR_KINDS, *ONLINE_KINDS, RL_KIND)
#: Trailing log-return horizons (hours) and the volatility window of the linear feature row.
RET_HORIZONS = (24, 168, 720)
VOL_WINDOW = 168
#: Closes the linear row reads at bar t: t - 720 .. t.
LINEAR_CLOSES = max(RET_HORIZONS) + 1
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


# --- the fitted linear kinds (ridge, logistic, metalabel, imitation): one feature row ------------


def linear_feature_names(strategies: Sequence[str]) -> tuple[str, ...]:
    """Column names of :func:`linear_features`, in order (the research ``Context.feature_names``)."""
    return (
        *[f"vote:{s}" for s in strategies],
        "vote_mean",
        *[f"ret_{k}h" for k in RET_HORIZONS],
        f"vol_{VOL_WINDOW}h",
        "funding_last",
    )


def linear_features(close: npt.ArrayLike, votes: npt.ArrayLike, funding_last: npt.ArrayLike) -> FloatArray:
    """Feature rows ``[m, S + 6]`` for bars ``0 .. m-1`` of a close series.

    ``votes[t, s]``: strategy ``s``'s target (-1/0/1) applied by bar ``t``; ``funding_last[t]``: the
    last funding rate published by the close of ``t`` (NaN: none yet, read as 0). Every operation is
    element-wise along the bars (the vote mean is a fixed-order sum, the trailing returns are
    differences of logs, the volatility is :func:`realized_vol`), so row ``t`` has the same bits
    whether ``close`` is the whole history or only its last :data:`LINEAR_CLOSES` closes, which is
    how the live decision computes it. Before bar ``k`` the ``ret_kh`` column is 0 and before bar
    ``168`` the volatility is 0 (the research convention; live, that is a cold start, flat).
    """
    c = np.asarray(close, dtype=np.float64)
    v = np.asarray(votes, dtype=np.float64).reshape(c.size, -1)
    f = np.asarray(funding_last, dtype=np.float64).reshape(c.size)
    total: FloatArray = np.zeros(c.size)
    for k in range(v.shape[1]):  # fixed order: the same sum for one row or for the history
        total = total + v[:, k]
    cols = [v, (total / v.shape[1])[:, None]]
    logp = np.log(c)
    for k in RET_HORIZONS:
        r = np.zeros(c.size)
        r[k:] = logp[k:] - logp[:-k]
        cols.append(r[:, None])
    cols.append(np.nan_to_num(realized_vol(simple_returns(c), VOL_WINDOW))[:, None])
    cols.append(np.nan_to_num(f)[:, None])
    out: FloatArray = np.hstack(cols)
    return out


def sigmoid(z: npt.ArrayLike) -> FloatArray:
    """Element-wise logistic function, clipped at +-50 (the research learners' ``_sigmoid``)."""
    out: FloatArray = 1.0 / (1.0 + np.exp(-np.clip(np.asarray(z, dtype=np.float64), -50, 50)))
    return out


def metalabel_path(
    vote: npt.ArrayLike, score: npt.ArrayLike, threshold: float, grid: float = 0.25
) -> FloatArray:
    """Follow the vote where ``sigmoid(score) > threshold``, flat elsewhere; snapped."""
    v = np.asarray(vote, dtype=np.float64)
    return snap(np.where(sigmoid(score) > threshold, v, 0.0) + 0.0, grid)


def imitation_path(x: npt.ArrayLike, legs: tuple[Linear | float, Linear | float]) -> FloatArray:
    """``P(long) - P(short)`` per row (unsnapped): a leg is a fitted logistic or a constant."""
    rows = np.asarray(x, dtype=np.float64)
    out: FloatArray = np.zeros(rows.shape[0])
    for sign, leg in ((1.0, legs[0]), (-1.0, legs[1])):
        p = np.full(rows.shape[0], leg) if isinstance(leg, float) else sigmoid(leg.raw_score(rows))
        out += sign * p
    return out


@dataclass(frozen=True, eq=False)
class Linear:
    """A fitted linear combiner: ``snap(((z(x) . beta + intercept) - center) / scale)``.

    ``mu`` / ``sd``: the training rows' feature mean and std (``sd`` 1 where a column is constant);
    ``beta``: one coefficient per feature then the intercept; ``center``: the training median score
    (logistic: a constant up-drift is not a view; ridge: 0); ``scale``: the training std of the
    centred score (a 1-sd signal is full size; 0 means no signal, flat).
    """

    features: tuple[str, ...]
    mu: FloatArray
    sd: FloatArray
    beta: FloatArray
    center: float
    scale: float

    def raw_score(self, x: npt.ArrayLike) -> FloatArray:
        """``z . beta + intercept`` per row, as a fixed-order sum of element-wise products.

        A matrix product (BLAS) may sum in another order for one row than for many; this one gives
        the same bits for a row whichever rows surround it.
        """
        z = (np.asarray(x, dtype=np.float64) - self.mu) / self.sd
        s = np.zeros(z.shape[0])
        for j in range(z.shape[1]):
            s = s + z[:, j] * self.beta[j]
        out: FloatArray = s + self.beta[-1]
        return out

    def exposure(self, x: npt.ArrayLike, grid: float = 0.25) -> FloatArray:
        """Exposure fractions of the rows: the centred score in training-score sds, snapped."""
        score = self.raw_score(x) - self.center
        if not self.scale > 0:
            return snap(np.zeros_like(score), grid)
        return snap(score / self.scale, grid)

    def to_params(self) -> dict[str, Any]:
        """The JSON-readable parameters stored in the artefact (floats round-trip exactly)."""
        return {
            "features": list(self.features),
            "mu": [float(v) for v in self.mu],
            "sd": [float(v) for v in self.sd],
            "beta": [float(v) for v in self.beta],
            "center": float(self.center),
            "scale": float(self.scale),
        }

    @classmethod
    def from_params(cls, p: Mapping[str, Any]) -> Linear:
        return cls(
            tuple(p["features"]),
            np.asarray(p["mu"], dtype=np.float64),
            np.asarray(p["sd"], dtype=np.float64),
            np.asarray(p["beta"], dtype=np.float64),
            float(p.get("center", 0.0)),
            float(p.get("scale", 0.0)),
        )


# --- the online learners (hedge, dsr): one per-bar step for research and live (ADR 0026) -------


def hedge_experts_row(targets: npt.ArrayLike) -> FloatArray:
    """One bar's expert targets ``[2S+1]``: each strategy, its negation, flat."""
    t = np.asarray(targets, dtype=np.float64)
    out: FloatArray = np.concatenate([t, -t, np.zeros(1)])
    return out


def hedge_step(
    logw: FloatArray, prev_experts: FloatArray, ret: float, eta: float, decay: float
) -> tuple[FloatArray, FloatArray]:
    """One Hedge update at the close of a bar: ``(logw, weights)`` after seeing its return ``ret``.

    The gain of each expert is what following it over the bar earned before costs
    (``prev_experts * ret``, the targets of the bar before); ``logw = (1 - decay) * logw + eta *
    gain``; the weights are the softmax of ``logw`` (shifted by its max: the same weights, no
    overflow). The research loop (``candidates.hedge_weights``) and the live decision call this.
    """
    logw = (1.0 - decay) * logw + eta * (prev_experts * ret)
    z = np.exp(logw - logw.max())
    w: FloatArray = z / z.sum()
    return logw, w


def hedge_mix(w: FloatArray, experts: FloatArray) -> float:
    """The weight-averaged expert target (unsnapped) of one bar, in one fixed summation."""
    return float(np.sum(w * experts))


@dataclass(frozen=True, eq=False)
class HedgeState:
    """What Hedge carries from one bar to the next: the log-weights and the bar's expert targets."""

    logw: FloatArray
    experts: FloatArray

    @classmethod
    def start(cls, n_strategies: int) -> HedgeState:
        """Before the first bar: equal log-weights (0), no previous targets (a zero gain)."""
        m = 2 * n_strategies + 1
        return cls(np.zeros(m), np.zeros(m))

    def to_params(self) -> dict[str, Any]:
        return {"logw": [float(v) for v in self.logw], "experts": [float(v) for v in self.experts]}

    @classmethod
    def from_params(cls, p: Mapping[str, Any]) -> HedgeState:
        return cls(np.asarray(p["logw"], dtype=np.float64), np.asarray(p["experts"], dtype=np.float64))


def hedge_update(
    st: HedgeState, targets: npt.ArrayLike, ret: float, eta: float, decay: float
) -> tuple[HedgeState, float]:
    """One bar: the new state and the (unsnapped) exposure decided at its close.

    ``targets``: each strategy's target applied by the bar (0: none); ``ret``: the bar's return.
    """
    ex = hedge_experts_row(targets)
    logw, w = hedge_step(st.logw, st.experts, ret, eta, decay)
    return HedgeState(logw, ex), hedge_mix(w, ex)


def dsr_step(a: float, b: float, r: float, eta: float) -> tuple[float, float, float, float]:
    """One differential-Sharpe update: ``(D_t, dD_t/dR_t, A_t, B_t)`` from ``A_{t-1}, B_{t-1}, R_t``.

    ``A``, ``B``: exponential moving first and second moments of the returns (rate ``eta``);
    ``D_t = (B dA - A dB / 2) / (B - A^2)^{3/2}`` with ``dA = R - A``, ``dB = R^2 - B`` (Moody &
    Saffell 2001, eq. 5); its derivative in ``R_t`` is ``(B - A R) / (B - A^2)^{3/2}``.
    """
    var = max(b - a * a, 1e-12)
    scale = var**1.5
    da, db = r - a, r * r - b
    return (b * da - 0.5 * a * db) / scale, (b - a * r) / scale, a + eta * da, b + eta * db


#: Rows before which the DSR trader's causal z-scores are 0 (the research ``causal_zscore``).
DSR_MIN_ROWS = 168
#: The EMA rate of the differential Sharpe ratio's moments (the research default).
DSR_ETA = 0.01


@dataclass(frozen=True, eq=False)
class DsrState:
    """Everything the Moody-Saffell trader carries from one bar to the next.

    ``w``: the trader's weights (features then bias); ``a`` / ``b``: the EMA moments of its returns;
    ``f1`` / ``f2``: its last two positions and ``g1`` / ``g2`` their gradients in ``w`` (kept from
    when they were set); ``s1`` / ``s2`` / ``count``: the expanding sums of the raw feature rows
    and their squares and how many rows they hold (the causal z-scores' statistics).
    """

    w: FloatArray
    a: float
    b: float
    f1: float
    f2: float
    g1: FloatArray
    g2: FloatArray
    s1: FloatArray
    s2: FloatArray
    count: int

    @classmethod
    def start(cls, w: FloatArray) -> DsrState:
        """The state before the first bar with initial weights ``w`` (features + bias)."""
        k = w.size
        return cls(w, 0.0, 1e-4, 0.0, 0.0, np.zeros(k), np.zeros(k), np.zeros(k - 1), np.zeros(k - 1), 0)

    def to_params(self) -> dict[str, Any]:
        """JSON-readable (floats round-trip exactly): what the artefact and the carry store."""
        return {
            "w": [float(v) for v in self.w],
            "a": float(self.a),
            "b": float(self.b),
            "f1": float(self.f1),
            "f2": float(self.f2),
            "g1": [float(v) for v in self.g1],
            "g2": [float(v) for v in self.g2],
            "s1": [float(v) for v in self.s1],
            "s2": [float(v) for v in self.s2],
            "count": int(self.count),
        }

    @classmethod
    def from_params(cls, p: Mapping[str, Any]) -> DsrState:
        def arr(key: str) -> FloatArray:
            return np.asarray(p[key], dtype=np.float64)

        return cls(
            arr("w"), float(p["a"]), float(p["b"]), float(p["f1"]), float(p["f2"]),
            arr("g1"), arr("g2"), arr("s1"), arr("s2"), int(p["count"]),
        )  # fmt: skip


def causal_z_row(s1: FloatArray, s2: FloatArray, count: int, x: FloatArray) -> FloatArray:
    """The expanding z-score of row ``x`` given the sums up to and including it (``count`` rows).

    Element for element the arithmetic of the research ``causal_zscore`` (cumulative sums divided
    by the row count, variance floored at 0, 0 where the std is <= 1e-12 or before
    :data:`DSR_MIN_ROWS` rows, clipped to +-5), so one row has the bits of the history's row.
    """
    mu = s1 / count
    var = np.maximum(s2 / count - mu * mu, 0.0)
    sd = np.sqrt(var)
    z = np.where(sd > 1e-12, (x - mu) / np.where(sd > 1e-12, sd, 1.0), 0.0)
    if count <= DSR_MIN_ROWS:
        z = np.zeros_like(z)
    out: FloatArray = np.clip(z, -5.0, 5.0)
    return out


def dsr_update(
    st: DsrState,
    x: FloatArray,
    ret: float,
    funding: float,
    cost_rate: float,
    rho: float,
    eta: float = DSR_ETA,
) -> DsrState:
    """One bar of the Moody-Saffell trader (decided at the close of the bar): the new state.

    ``x``: the bar's raw feature row (:func:`linear_features`); ``ret``: its return; ``funding``: the
    funding charged to a long over it; ``cost_rate``: fee + slippage per unit traded. The trader
    sees ``R = F_{t-1} ret - c |F_{t-1} - F_{t-2}| - F_{t-1} funding``, moves ``w`` along
    ``dD/dR * dR/dw``, then sets ``F_t = tanh(w . [z(x), 1])`` (``st.f1`` of the result).
    """
    s1 = st.s1 + x
    s2 = st.s2 + x * x
    count = st.count + 1
    xt = np.concatenate([causal_z_row(s1, s2, count, x), np.ones(1)])
    f1, f2 = st.f1, st.f2
    r = f1 * ret - cost_rate * abs(f1 - f2) - f1 * funding
    _, d_dr, a, b = dsr_step(st.a, st.b, r, eta)
    sgn = math.copysign(1.0, f1 - f2) if f1 != f2 else 0.0
    dr_df1 = ret - funding - cost_rate * sgn
    dr_df2 = cost_rate * sgn
    w = st.w + rho * d_dr * (dr_df1 * st.g1 + dr_df2 * st.g2)
    f = math.tanh(float(w @ xt))
    return DsrState(w, a, b, f, f1, (1.0 - f * f) * xt, st.g1, s1, s2, count)


# --- the artefact --------------------------------------------------------------------------


def _canonical(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()


def fingerprint(doc: Mapping[str, Any]) -> str:
    """sha256 over the canonical JSON of the artefact's content (everything but ``fingerprint``)."""
    return hashlib.sha256(_canonical({k: v for k, v in doc.items() if k != "fingerprint"})).hexdigest()


def _json_param(v: Any) -> Any:
    """Numbers as floats, lists element-wise (floats or names): what the artefact stores."""
    if isinstance(v, str):
        return v
    if isinstance(v, Sequence | np.ndarray):
        return [_json_param(x) for x in v]
    return float(v)


def export_combiner(
    kind: str,
    strategies: Sequence[str],
    params: Mapping[str, Any],
    *,
    grid: float = 0.25,
    provenance: Mapping[str, Any] | None = None,
) -> bytes:
    """Artefact bytes (canonical JSON with its fingerprint); refuses what :func:`parse` would refuse.

    ``params``: numbers (volmanaged), or for the linear kinds :meth:`Linear.to_params` plus ``lam``.
    """
    doc: dict[str, Any] = {
        "format": FORMAT,
        "kind": kind,
        "strategies": list(strategies),
        "params": {k: _json_param(v) for k, v in sorted(params.items())},
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
    **{
        k: "each strategy's vote (0 if it never answered), their mean, log(close) differences over "
        "24/168/720 h, the sample std of the last 168 hourly log returns (0 if unknown), the last "
        "funding rate published by the decision time (0 if none); closes t-720..t"
        for k in LINEAR_KINDS
    },
    "hedge": "each strategy's target (0 if it never answered), the bar's return close[t]/close[t-1]-1; "
    "state (log-weights, the previous bar's expert targets) carried from the artefact's last bar",
    RL_KIND: "FeatureSpec v2 (common.combiner_rl): votes, each strategy's trailing P&L and hit rate over "
    "24/168/720 h, vote mean, its absolute value, agreement with the majority vote, trend and realized "
    "volatility over 24/168/720 h, log(vol24/vol720), the last published funding rate (closes t-720..t); "
    "kept columns z-scored with the training statistics; each seed's actor under its held target, the "
    "seeds' mean snapped; state (cumulative P&L at t-719, the last 720 votes, each seed's held target) "
    "carried from the artefact's last bar",
    "dsr": "the linear row (closes t-720..t, votes, last published funding rate), the bar's return, "
    "the funding charged to a long over the bar; state (weights, EMA moments, last two positions and "
    "gradients, the z-scores' expanding sums) carried from the artefact's last bar",
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
    params: Mapping[str, Any]
    grid: float
    fingerprint: str
    #: The fitted linear model of the linear kinds (None for ``volmanaged``; imitation: its long leg).
    linear: Linear | None = None
    #: ``imitation``'s two legs (long, short): a fitted logistic or a constant probability.
    legs: tuple[Linear | float, Linear | float] | None = None
    #: ``rl``'s policy (kept features, training statistics, one actor per seed).
    rl: RlPolicy | None = None

    @property
    def online(self) -> bool:
        """Whether the decision carries state from bar to bar (``hedge`` / ``dsr`` / ``rl``)."""
        return self.kind in ONLINE_KINDS or self.kind == RL_KIND

    @property
    def window(self) -> int:
        """The longest price lookback in hours (volmanaged: its window; the linear kinds and dsr:
        720; hedge: 1, the bar's return)."""
        if self.kind == "hedge":
            return 1
        if self.linear is not None or self.kind in ("dsr", RL_KIND):
            return LINEAR_CLOSES - 1
        return int(self.params["window"])

    @property
    def closes_needed(self) -> int:
        """Closes the decision reads: the window's returns need one close before them."""
        return self.window + 1

    @property
    def reads_funding(self) -> bool:
        """Whether the decision reads the last published funding rate (the linear kinds, dsr, rl)."""
        return self.linear is not None or self.kind in ("dsr", RL_KIND)

    def initial_state(self) -> dict[str, Any]:
        """The learner state at the end of the artefact's training range (online kinds, rl)."""
        from common.combiner_rl import RL_STATE

        keys = _HEDGE_STATE if self.kind == "hedge" else RL_STATE if self.kind == RL_KIND else _DSR_STATE
        return {k: self.params[k] for k in keys}

    def step(
        self,
        state: Mapping[str, Any],
        targets: Mapping[str, Target],
        closes: Sequence[float],
        funding_last: float | None = None,
        funding_charge: float = 0.0,
    ) -> tuple[dict[str, Any], float]:
        """One bar of an online combiner: ``(state after the bar, exposure fraction)``.

        ``state``: :meth:`initial_state` or what the previous bar returned (JSON-readable, as the
        decision row stores it); ``targets`` / ``closes`` / ``funding_last``: as :meth:`fraction`;
        ``funding_charge``: the funding charged to a long over this bar (dsr's reward). The caller
        must have :attr:`closes_needed` closes (else the bar is not a learning step: see
        ``meta_consumer.decide``); the arithmetic is the research loop's (:func:`hedge_update`,
        :func:`dsr_update`), so the same bars give the research exposures bit for bit.
        """
        c = np.asarray(closes[-self.closes_needed :], dtype=np.float64)
        if c.size < self.closes_needed:
            raise CombinerError(f"{self.kind}: {c.size} closes of {self.closes_needed}")
        ret = float(simple_returns(c[-2:])[-1])
        votes = [TARGET_VALUES[targets[s]] if s in targets else 0 for s in self.strategies]
        p = self.params
        if self.rl is not None:
            from common.combiner_rl import RlState

            vote = majority_vote([targets[s] for s in self.strategies if s in targets], 1.0)
            rs, frac = self.rl.step(RlState.from_params(state), votes, c, vote, funding_last, self.grid)
            return rs.to_params(), frac
        if self.kind == "hedge":
            hs, mix = hedge_update(HedgeState.from_params(state), votes, ret, p["eta"], p["decay"])
            return hs.to_params(), float(snap([mix], self.grid)[0])
        n = c.size
        v = np.zeros((n, len(self.strategies)))
        v[-1] = votes
        funding = np.full(n, np.nan)
        funding[-1] = math.nan if funding_last is None else funding_last
        row = linear_features(c, v, funding)[-1]
        ds = dsr_update(
            DsrState.from_params(state), row, ret, funding_charge, p["cost_rate"], p["rho"], p["eta"]
        )
        return ds.to_params(), float(snap([ds.f1], self.grid)[0])

    def fraction(
        self, targets: Mapping[str, Target], closes: Sequence[float], funding_last: float | None = None
    ) -> float:
        """Target exposure as a fraction of the max, from the latest answers and the last closes.

        ``targets``: the latest applied answer of each strategy that has answered (absent ones do
        not vote); ``closes``: the decision timeframe's closes up to this tick's bar. Too few closes
        (a cold start) means unknown volatility, hence flat, as the backtest before ``window``.
        ``funding_last``: the last funding rate published by the decision time (None: none known,
        read as 0 as the research row reads NaN); only the linear kinds read it.
        """
        if self.linear is not None:
            return self._linear_fraction(targets, closes, funding_last)
        vote = majority_vote([targets[s] for s in self.strategies if s in targets], 1.0)
        c = np.asarray(closes[-self.closes_needed :], dtype=np.float64)
        rv = (
            float(realized_vol(simple_returns(c), self.window)[-1])
            if c.size == self.closes_needed
            else math.nan
        )
        p = self.params
        return float(volmanaged_path([vote], [rv], p["target_vol"], p["cap"], self.grid)[0])

    def _linear_fraction(
        self, targets: Mapping[str, Target], closes: Sequence[float], funding_last: float | None
    ) -> float:
        assert self.linear is not None
        n = self.closes_needed
        if len(closes) < n:  # the 720 h return is unknown: flat (a cold start, said by the caller)
            return 0.0
        c = np.asarray(closes[-n:], dtype=np.float64)
        votes = np.zeros((n, len(self.strategies)))
        votes[-1] = [TARGET_VALUES[targets[s]] if s in targets else 0 for s in self.strategies]
        funding = np.full(n, np.nan)
        funding[-1] = math.nan if funding_last is None else funding_last
        row = linear_features(c, votes, funding)[-1:]
        if self.legs is not None:
            return float(snap(imitation_path(row, self.legs), self.grid)[0])
        if self.kind == "metalabel":
            vote = majority_vote([targets[s] for s in self.strategies if s in targets], 1.0)
            score = self.linear.raw_score(row)
            return float(metalabel_path([vote], score, float(self.params["threshold"]), self.grid)[0])
        return float(self.linear.exposure(row, self.grid)[0])


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
            f"model {row.model_id}: {comb.kind} window {comb.window} needs {comb.closes_needed} closes, "
            f"the meta consumer carries {max_closes}"
        )
    return replace(comb, model_id=row.model_id)


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
    if kind == "imitation":
        legs = _check_imitation(params, strategies, model_id)
        lin = legs[0] if isinstance(legs[0], Linear) else _leg(params, "long")
        return Combiner(model_id, kind, tuple(strategies), params, float(grid), fp, lin, legs)
    if kind == RL_KIND:
        from common.combiner_rl import check_rl

        try:
            policy = check_rl(params, strategies)
        except ValueError as exc:
            raise CombinerError(f"model {model_id}: {exc}") from None
        return Combiner(model_id, kind, tuple(strategies), params, float(grid), fp, rl=policy)
    if kind in ONLINE_KINDS:
        _check_online(kind, params, strategies, model_id)
        return Combiner(model_id, kind, tuple(strategies), params, float(grid), fp)
    if kind in LINEAR_KINDS:
        lin = _check_linear(kind, params, strategies, model_id)
        return Combiner(model_id, kind, tuple(strategies), params, float(grid), fp, lin)
    if not isinstance(params, dict) or not all(isinstance(v, float | int) for v in params.values()):
        raise CombinerError(f"model {model_id}: params must map names to numbers")
    _check_params(kind, params, model_id)
    p = {k: float(v) for k, v in params.items()}
    return Combiner(model_id, kind, tuple(strategies), p, float(grid), fp)


def _check_linear(kind: str, params: Any, strategies: Sequence[str], model_id: str) -> Linear:
    """The linear parameters, checked: the feature list must be the one this code computes."""
    common = {"lam", "features", "mu", "sd", "beta"}
    want = common | ({"horizon", "threshold"} if kind == "metalabel" else {"center", "scale"})
    if not isinstance(params, dict) or set(params) != want:
        got = sorted(params) if isinstance(params, dict) else params
        raise CombinerError(f"model {model_id}: {kind} params {got}, expected {sorted(want)}")
    _check_row(params, strategies, model_id, {"mu": 0, "sd": 0, "beta": 1})
    for key in sorted(want - {"features", "mu", "sd", "beta"}):
        x = params[key]
        if not isinstance(x, float | int) or not math.isfinite(x):
            raise CombinerError(f"model {model_id}: {key} must be a finite number")
    if params.get("scale", 0.0) < 0:
        raise CombinerError(f"model {model_id}: scale must be >= 0")
    if kind == "metalabel" and not 0.0 <= params["threshold"] < 1.0:
        raise CombinerError(f"model {model_id}: threshold must be in [0, 1)")
    return Linear.from_params(params)


def _leg(params: Mapping[str, Any], side: str) -> Linear:
    return Linear(
        tuple(params["features"]),
        np.asarray(params["mu"], dtype=np.float64),
        np.asarray(params["sd"], dtype=np.float64),
        np.asarray(params[f"beta_{side}"], dtype=np.float64),
        0.0,
        0.0,
    )


def _check_imitation(
    params: Any, strategies: Sequence[str], model_id: str
) -> tuple[Linear | float, Linear | float]:
    """The two legs, checked: shared row and statistics, a fitted beta or a constant per leg."""
    want = {"lam", "features", "mu", "sd", "beta_long", "beta_short", "const_long", "const_short"}
    if not isinstance(params, dict) or set(params) != want:
        got = sorted(params) if isinstance(params, dict) else params
        raise CombinerError(f"model {model_id}: imitation params {got}, expected {sorted(want)}")
    _check_row(params, strategies, model_id, {"mu": 0, "sd": 0, "beta_long": 1, "beta_short": 1})
    legs: list[Linear | float] = []
    for side in ("long", "short"):
        c = params[f"const_{side}"]
        if not isinstance(c, float | int) or not (c == -1 or 0 <= c <= 1):
            raise CombinerError(f"model {model_id}: const_{side} must be -1 (fitted) or in [0, 1]")
        legs.append(_leg(params, side) if c == -1 else float(c))
    return legs[0], legs[1]


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


_HEDGE_STATE = ("logw", "experts")
_DSR_STATE = ("w", "a", "b", "f1", "f2", "g1", "g2", "s1", "s2", "count")


def _finite_list(v: Any, size: int | None = None) -> bool:
    """A JSON list of finite numbers (booleans refused), of ``size`` items when given."""
    return (
        isinstance(v, list)
        and (size is None or len(v) == size)
        and all(isinstance(x, float | int) and not isinstance(x, bool) and math.isfinite(x) for x in v)
    )


def _check_row(params: Any, strategies: Sequence[str], model_id: str, extra: Mapping[str, int]) -> None:
    """The artefact's feature list is this code's row for ``strategies`` (a reordered or renamed
    artefact is refused), each ``key`` of ``extra`` holds ``len(row) + extra[key]`` finite numbers
    (the intercept or bias is the +1), and a standardization ``sd``, where present, is > 0."""
    names = linear_feature_names(strategies)
    if params["features"] != list(names):
        raise CombinerError(
            f"model {model_id}: features {params['features']} are not this code's row {list(names)}"
        )
    for key, plus in extra.items():
        size = len(names) + plus
        if not _finite_list(params[key], size):
            raise CombinerError(f"model {model_id}: {key} must be {size} finite numbers")
    if "sd" in extra and not all(x > 0 for x in params["sd"]):
        raise CombinerError(f"model {model_id}: sd must be > 0")


def _finite(x: Any) -> bool:
    return isinstance(x, float | int) and not isinstance(x, bool) and math.isfinite(x)


def _check_online(kind: str, params: Any, strategies: Sequence[str], model_id: str) -> None:
    """An online learner's parameters and state at the end of its training range, checked."""
    if kind == "hedge":
        want = {"eta", "decay", *_HEDGE_STATE}
    else:
        want = {"rho", "seed", "eta", "cost_rate", "features", *_DSR_STATE}
    if not isinstance(params, dict) or set(params) != want:
        got = sorted(params) if isinstance(params, dict) else params
        raise CombinerError(f"model {model_id}: {kind} params {got}, expected {sorted(want)}")
    scalars = sorted(want - set(_HEDGE_STATE) - set(_DSR_STATE) - {"features"}) + (
        ["a", "b", "f1", "f2", "count"] if kind == "dsr" else []
    )
    for key in scalars:
        if not _finite(params[key]):
            raise CombinerError(f"model {model_id}: {key} must be a finite number")
    if kind == "hedge":
        m = 2 * len(strategies) + 1
        for key in _HEDGE_STATE:
            if not _finite_list(params[key], m):
                raise CombinerError(f"model {model_id}: {key} must be {m} finite numbers")
        if not params["eta"] > 0 or not 0 <= params["decay"] < 1:
            raise CombinerError(f"model {model_id}: eta must be > 0 and decay in [0, 1)")
        if any(x not in (-1, 0, 1) for x in params["experts"]):
            raise CombinerError(f"model {model_id}: experts are targets in -1, 0, 1")
        return
    _check_row(params, strategies, model_id, {"w": 1, "g1": 1, "g2": 1, "s1": 0, "s2": 0})
    if params["count"] != int(params["count"]) or params["count"] < 0:
        raise CombinerError(f"model {model_id}: count must be an integer >= 0")
    if not all(-1 <= params[k] <= 1 for k in ("f1", "f2")) or not params["b"] > 0:
        raise CombinerError(f"model {model_id}: positions must be in [-1, 1] and b > 0")
    if not params["rho"] > 0 or not params["eta"] > 0 or params["cost_rate"] < 0:
        raise CombinerError(f"model {model_id}: rho and eta must be > 0, cost_rate >= 0")
