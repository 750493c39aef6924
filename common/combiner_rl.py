"""The RL combiner's FeatureSpec v2 row and greedy step, one implementation for research and live.

ADR 0024 defines the ``rl`` research family's state (FeatureSpec v2) over the whole history;
ADR 0027 ships it. Both sides call :func:`rl_rows`, so a row computed live from the last
:data:`RL_ROWS` bars has the bits the research computed over the whole history:

* the per-strategy trailing P&L is a difference of *sequential* cumulative sums (``np.cumsum``
  along the bars adds row after row), so the window's cumulative sums started from the carried
  cumulative P&L of its first bar (``cum0``) are, bar for bar, the whole history's;
* the hit-rate counts, vote mean and agreement are sums of small integers (exact in any order);
* trends are differences of logs, the volatilities :func:`common.combiner.realized_vol` (fixed-order
  window sums), the regime and funding element-wise.

:func:`rl_step` is one bar of the shipped policy: the row, the training z-scores (clipped, through
float32 as the research's ``standardized``), each seed's actor (``common.policy.dense``: a
fixed-order product) under that seed's held target, argmax, and the seeds' mean snapped to the
grid. What a bar hands to the next (:class:`RlState`) is the cumulative P&L at the next window's
first bar, the last ``RL_ROWS - 1`` bars' votes and each seed's held target index.

numpy only: the meta consumer imports this (torch never).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from common.combiner import _finite_list, realized_vol, simple_returns, snap
from common.observation import last_window_std
from common.policy import ACTIVATIONS, dense

FloatArray = npt.NDArray[np.float64]
#: The action set: target exposures (fractions of the maximum position), ADR 0024.
RL_TARGETS = (-1.0, -0.5, 0.0, 0.5, 1.0)
#: Trailing windows (hours) of FeatureSpec v2.
RL_WINDOWS = (24, 168, 720)
#: Bars one live row reads: ``t - 720 .. t`` (the 720 h trend, volatility and trailing records).
RL_ROWS = max(RL_WINDOWS) + 1
#: How a vote is stored in the carried history (one character per bar and strategy).
_VOTE_BYTES = np.frombuffer(b"-0+", dtype=np.uint8)  # vote -1, 0, 1 -> its character
_BYTE_VOTES = np.full(256, np.nan)
_BYTE_VOTES[_VOTE_BYTES] = (-1.0, 0.0, 1.0)

Layer = tuple[FloatArray, FloatArray, str]


def rl_feature_names(strategies: Sequence[str]) -> tuple[str, ...]:
    """Column names of :func:`rl_rows`, in order (the research ``features_v2`` names)."""
    names = [f"vote:{s}" for s in strategies]
    for k in RL_WINDOWS:
        names += [f"pnl_{k}h:{s}" for s in strategies]
        names += [f"hit_{k}h:{s}" for s in strategies]
    names += ["majority", "vote_mean", "vote_abs_mean", "agreement"]
    names += [f"trend_{k}h" for k in RL_WINDOWS] + [f"vol_{k}h" for k in RL_WINDOWS]
    return (*names, "vol_regime", "funding_last")


def _trailing(x: FloatArray, k: int, first: FloatArray) -> tuple[FloatArray, FloatArray]:
    """``(sum over rows t-k+1 .. t, the cumulative sums)``, row 0 standing for ``first``.

    The cumulative sum at row 0 is ``first`` (the history's cumulative value at that bar; 0 for the
    whole history, whose row 0 has nothing held) and each later row adds its ``x`` in order; the
    trailing sum is the difference of two cumulative sums (fewer rows before row ``k``).
    """
    c = np.cumsum(np.vstack([first[None, :], x[1:]]), axis=0)
    out = c.copy()
    out[k:] -= c[:-k]
    return out, c


def _vol(r: FloatArray, k: int, last_only: bool) -> FloatArray:
    """:func:`realized_vol` of every row, or of the last row only (NaN above it)."""
    if not last_only or r.size <= k:
        return realized_vol(r, k)
    out = np.full(r.size, np.nan)
    out[-1] = last_window_std(np.log1p(r[-k:]), k, ddof=1)  # realized_vol's value at the last row
    return out


def rl_rows(
    close: npt.ArrayLike,
    ret: npt.ArrayLike,
    votes: npt.ArrayLike,
    majority: npt.ArrayLike,
    funding_last: npt.ArrayLike,
    cum0: npt.ArrayLike | None = None,
    *,
    last_only: bool = False,
) -> tuple[FloatArray, FloatArray]:
    """FeatureSpec v2 rows ``[m, F]`` of ``m`` consecutive bars, and the cumulative P&L ``[m, S]``.

    ``votes[t, s]``: strategy ``s``'s target applied by bar ``t`` (-1/0/1); ``ret[t]``: bar ``t``'s
    return (``ret[0]`` is not read); ``majority[t]``: the majority-vote exposure; ``funding_last[t]``:
    the last published funding rate (NaN read as 0); ``cum0``: each strategy's cumulative P&L at
    bar 0 of these rows (None: 0, the whole history from its first bar). A strategy's P&L at ``t``
    is its target of ``t - 1`` times ``ret[t]``; every value at ``t`` is known at its close.

    Row ``t`` is complete where ``t >= 720`` (or from the history's first bar): the whole history
    gives the research's rows, the last :data:`RL_ROWS` bars with their ``cum0`` give the last row
    with the same bits (module doc). ``last_only``: only the last row is wanted (the live step), so
    the volatilities are computed for it alone (:func:`common.observation.last_window_std`: the
    same additions in the same order, the same bits; ~2.7 ms less per step).
    """
    c = np.asarray(close, dtype=np.float64)
    r = np.asarray(ret, dtype=np.float64).reshape(c.size)
    tg = np.asarray(votes, dtype=np.float64).reshape(c.size, -1)
    n, n_s = tg.shape
    first = np.zeros(n_s) if cum0 is None else np.asarray(cum0, dtype=np.float64).reshape(n_s)
    held = np.vstack([np.zeros((1, n_s)), tg[:-1]])  # each strategy's target over bar t
    sret = held * r[:, None]
    in_pos = (held != 0).astype(np.float64)
    won = (sret > 0).astype(np.float64)
    cols: list[FloatArray] = [tg]
    cum: FloatArray = np.zeros((n, n_s))
    zeros = np.zeros(n_s)
    for k in RL_WINDOWS:
        pnl, cum = _trailing(sret, k, first)
        cols.append(pnl)
        bets = _trailing(in_pos, k, zeros)[0]
        hits = _trailing(won, k, zeros)[0]
        with np.errstate(invalid="ignore", divide="ignore"):
            cols.append(np.where(bets > 0, hits / np.maximum(bets, 1.0), 0.5))
    vote_mean = tg.mean(axis=1)
    maj = np.asarray(majority, dtype=np.float64).reshape(n)
    side = np.sign(maj)
    active = (tg != 0).sum(axis=1)
    agree = np.where(active > 0, (np.sign(tg) == side[:, None]).sum(axis=1) / np.maximum(active, 1), 0.0)
    logp = np.log(c)
    trend = [np.concatenate([np.zeros(k), logp[k:] - logp[:-k]])[:n] for k in RL_WINDOWS]
    vol = {k: np.nan_to_num(_vol(r, k, last_only)) for k in RL_WINDOWS}
    with np.errstate(invalid="ignore", divide="ignore"):
        regime = np.where((vol[24] > 0) & (vol[720] > 0), np.log(vol[24] / vol[720]), 0.0)
    funding = np.nan_to_num(np.asarray(funding_last, dtype=np.float64).reshape(n))
    extra = [maj, vote_mean, np.abs(vote_mean), agree, *trend, *vol.values(), regime, funding]
    cols.append(np.column_stack(extra))
    x = np.hstack(cols)
    out: FloatArray = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
    return out, cum


def zscores(x: npt.ArrayLike, keep: npt.ArrayLike, mu: FloatArray, sd: FloatArray) -> FloatArray:
    """The research's ``standardized`` on given statistics: kept columns, z, clip +-5, float32."""
    z = (np.asarray(x, dtype=np.float64)[..., np.asarray(keep, dtype=np.int64)] - mu) / sd
    out: FloatArray = np.clip(z, -5.0, 5.0).astype(np.float32).astype(np.float64)
    return out


def actor_forward(layers: Sequence[Layer], x: FloatArray) -> FloatArray:
    """The actor's outputs for a batch, with the live policy's arithmetic (``common.policy``)."""
    for w, b, act in layers:
        x = ACTIVATIONS[act](dense(x, w, b))
    return x


def greedy_choices(layers: Sequence[Layer], z: FloatArray, held: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """Argmax action per row of ``z`` given each row's held target index (one-hot appended)."""
    h = np.asarray(held, dtype=np.int64).reshape(z.shape[0])
    s = np.zeros((z.shape[0], z.shape[1] + len(RL_TARGETS)))
    s[:, : z.shape[1]] = z
    s[np.arange(z.shape[0]), z.shape[1] + h] = 1.0
    out: npt.NDArray[np.int64] = np.argmax(actor_forward(layers, s), axis=1).astype(np.int64)
    return out


def ensemble_fraction(held: Sequence[int], grid: float = 0.25) -> float:
    """The seeds' mean target snapped to the grid (one seed: its target), as the research."""
    return float(snap([np.mean([RL_TARGETS[i] for i in held])], grid)[0])


def encode_votes(votes: npt.ArrayLike) -> list[str]:
    """``[m, S]`` votes as one string per strategy (``-``, ``0``, ``+`` per bar): a compact carry."""
    v = np.asarray(votes, dtype=np.float64)
    if not np.isin(v, (-1.0, 0.0, 1.0)).all():
        raise ValueError("votes are targets in -1, 0, 1")
    idx = (v + 1.0).astype(np.int64)
    return [_VOTE_BYTES[idx[:, j]].tobytes().decode("ascii") for j in range(v.shape[1])]


def decode_votes(strings: Sequence[str]) -> FloatArray:
    """:func:`encode_votes` back to ``[m, S]`` floats."""
    if not strings:
        return np.zeros((0, 0))
    raw = [np.frombuffer(s.encode("ascii"), dtype=np.uint8) for s in strings]
    out: FloatArray = np.column_stack([_BYTE_VOTES[b] for b in raw])
    if np.isnan(out).any():
        raise ValueError("votes are characters in '-0+'")
    return out


@dataclass(frozen=True, eq=False)
class RlState:
    """What one bar of the RL policy hands to the next (JSON-readable via :meth:`to_params`).

    ``cum``: each strategy's cumulative P&L at the first bar of the next window (``t - 719``);
    ``votes``: the votes of bars ``t - 719 .. t`` (``[720, S]``); ``held``: each seed's target index
    decided at ``t`` (its held target at ``t + 1``).
    """

    cum: FloatArray
    votes: FloatArray
    held: tuple[int, ...]

    def to_params(self) -> dict[str, Any]:
        return {
            "cum": [float(v) for v in self.cum],
            "votes": encode_votes(self.votes),
            "held": [float(h) for h in self.held],
        }

    @classmethod
    def from_params(cls, p: Mapping[str, Any]) -> RlState:
        return cls(
            np.asarray(p["cum"], dtype=np.float64),
            decode_votes(p["votes"]),
            tuple(int(h) for h in p["held"]),
        )


@dataclass(frozen=True, eq=False)
class RlPolicy:
    """A shipped RL policy: kept feature columns, their training statistics, one actor per seed."""

    keep: npt.NDArray[np.int64]
    mu: FloatArray
    sd: FloatArray
    actors: tuple[tuple[Layer, ...], ...]

    def step(
        self,
        st: RlState,
        votes: npt.ArrayLike,
        closes: npt.ArrayLike,
        majority: float,
        funding_last: float | None,
        grid: float = 0.25,
    ) -> tuple[RlState, float]:
        """One bar: ``(state after it, exposure fraction decided at its close)``.

        ``votes``: each strategy's target applied by the bar; ``closes``: the last :data:`RL_ROWS`
        closes (bars ``t - 720 .. t``); ``majority``: the majority-vote exposure; ``funding_last``:
        the last published rate (None: none, 0).
        """
        c = np.asarray(closes, dtype=np.float64)
        if c.size != RL_ROWS:
            raise ValueError(f"rl: {c.size} closes, the row reads {RL_ROWS}")
        tg = np.vstack([st.votes, np.asarray(votes, dtype=np.float64).reshape(1, -1)])
        maj = np.zeros(RL_ROWS)
        maj[-1] = majority
        fund = np.zeros(RL_ROWS)
        fund[-1] = 0.0 if funding_last is None else funding_last
        x, cum = rl_rows(c, simple_returns(c), tg, maj, fund, st.cum, last_only=True)
        z = zscores(x[-1:], self.keep, self.mu, self.sd)
        held = tuple(int(greedy_choices(a, z, [h])[0]) for a, h in zip(self.actors, st.held, strict=True))
        return RlState(cum[1], tg[1:], held), ensemble_fraction(held, grid)


# --- the artefact (kind ``rl``): parameters, checked ------------------------------------------

#: What the ``rl`` artefact's ``params`` hold; the last three are the state live continues from.
RL_PARAMS = ("horizon", "steps", "seeds", "features", "mu", "sd", "actors", "cum", "votes", "held")
RL_STATE = ("cum", "votes", "held")


def _layers(doc: Any, width: int, where: str) -> tuple[Layer, ...]:
    """One actor's layers ``[[w (in x out), b (out), activation], ...]``, checked for shape."""
    if not isinstance(doc, list) or not doc:
        raise ValueError(f"{where}: a non-empty list of layers")
    out: list[Layer] = []
    for k, layer in enumerate(doc):
        if not isinstance(layer, list) or len(layer) != 3 or layer[2] not in ACTIVATIONS:
            raise ValueError(f"{where} layer {k}: [w, b, activation in {sorted(ACTIVATIONS)}]")
        w, b = layer[0], layer[1]
        if not isinstance(w, list) or len(w) != width or not w or not _finite_list(w[0]):
            raise ValueError(f"{where} layer {k}: w must have {width} rows of finite numbers")
        cols = len(w[0])
        if not all(_finite_list(row, cols) for row in w) or not _finite_list(b, cols) or cols == 0:
            raise ValueError(f"{where} layer {k}: w rows and b must be {cols} finite numbers")
        out.append((np.asarray(w, dtype=np.float64), np.asarray(b, dtype=np.float64), str(layer[2])))
        width = cols
    if width != len(RL_TARGETS):
        raise ValueError(f"{where}: output width {width}, the policy chooses among {len(RL_TARGETS)}")
    return tuple(out)


def check_rl(params: Any, strategies: Sequence[str]) -> RlPolicy:
    """The ``rl`` parameters, checked (raises ValueError with the reason; the loader wraps it).

    The kept features must be a subsequence of this code's row for ``strategies`` (a renamed or
    reordered artefact is refused), ``mu`` / ``sd`` one finite number per kept feature (``sd`` >
    1e-12), each seed's actor reads the kept features plus the held target one-hot and outputs one
    score per target, and the state holds one cumulative P&L and one 720-bar vote history per
    strategy and one held target index per seed.
    """
    if not isinstance(params, dict) or set(params) != set(RL_PARAMS):
        got = sorted(params) if isinstance(params, dict) else params
        raise ValueError(f"rl params {got}, expected {sorted(RL_PARAMS)}")
    names = rl_feature_names(strategies)
    feats = params["features"]
    if not isinstance(feats, list) or not feats or not all(isinstance(f, str) for f in feats):
        raise ValueError("features must be a non-empty list of names")
    keep = [names.index(f) if f in names else -1 for f in feats]
    if -1 in keep or keep != sorted(set(keep)):
        raise ValueError(f"features {feats} are not columns of this code's row {list(names)} in its order")
    f = len(feats)
    for key in ("mu", "sd"):
        if not _finite_list(params[key], f):
            raise ValueError(f"{key} must be {f} finite numbers")
    if not all(x > 1e-12 for x in params["sd"]):
        raise ValueError("sd must be > 1e-12 (constant columns are dropped, not kept)")
    for key in ("horizon", "steps"):
        x = params[key]
        if not isinstance(x, float | int) or isinstance(x, bool) or not np.isfinite(x) or x <= 0:
            raise ValueError(f"{key} must be a number > 0")
    actors_doc = params["actors"]
    if not isinstance(actors_doc, list) or not actors_doc:
        raise ValueError("actors must be a non-empty list (one per seed)")
    actors = tuple(_layers(a, f + len(RL_TARGETS), f"actor {i}") for i, a in enumerate(actors_doc))
    k = len(actors)
    if not _finite_list(params["seeds"], k):
        raise ValueError(f"seeds must be {k} numbers (one per actor)")
    n_s = len(strategies)
    if not _finite_list(params["cum"], n_s):
        raise ValueError(f"cum must be {n_s} finite numbers")
    votes = params["votes"]
    if (
        not isinstance(votes, list)
        or len(votes) != n_s
        or not all(isinstance(v, str) and len(v) == RL_ROWS - 1 and set(v) <= set("-0+") for v in votes)
    ):
        raise ValueError(f"votes must be {n_s} strings of {RL_ROWS - 1} characters in '-0+'")
    held = params["held"]
    if not _finite_list(held, k) or not all(h == int(h) and 0 <= h < len(RL_TARGETS) for h in held):
        raise ValueError(f"held must be {k} target indices in 0..{len(RL_TARGETS) - 1}")
    return RlPolicy(
        np.asarray(keep, dtype=np.int64),
        np.asarray(params["mu"], dtype=np.float64),
        np.asarray(params["sd"], dtype=np.float64),
        actors,
    )


def rl_params(
    *,
    horizon: float,
    steps: int,
    seeds: Sequence[int],
    names: Sequence[str],
    keep: npt.ArrayLike,
    mu: npt.ArrayLike,
    sd: npt.ArrayLike,
    actors: Sequence[Sequence[Layer]],
    state: RlState,
) -> dict[str, Any]:
    """The artefact's ``params`` from a fit (what :func:`check_rl` accepts)."""
    kept = [names[int(i)] for i in np.asarray(keep, dtype=np.int64)]
    f64 = np.float64
    docs = [[[np.asarray(w, f64).tolist(), np.asarray(b, f64).tolist(), a] for w, b, a in x] for x in actors]
    return {
        "horizon": float(horizon),
        "steps": float(steps),
        "seeds": [float(s) for s in seeds],
        "features": kept,
        "mu": [float(v) for v in np.asarray(mu, dtype=np.float64)],
        "sd": [float(v) for v in np.asarray(sd, dtype=np.float64)],
        "actors": docs,
        **state.to_params(),
    }
