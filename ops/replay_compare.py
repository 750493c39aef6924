"""The vectorized side of a topic-replay backtest, and the comparison with what the pipeline did.

Two independent computations of the same window (docs/decisions/0013-replay-backtest-identity.md):

* **Decisions**: the training engine's bar-by-bar policy loop (``training.backtest`` /
  ``training.baselines``: ``Market.observe`` -> policy or majority vote -> ``apply_actions``), run
  over the full stored history. Compared with the meta consumer's ``decisions`` rows tick by tick:
  action and target exposure must be *identical* (no tolerance), and so must the observation.
* **Execution, in the executor's units** (BTC and USD, not fractions of equity): a vectorized
  simulation of the paper venue written here from its documented model, not by calling the
  executor: target position ``target_exposure * max_position_btc``, moves split into legs of at
  most ``max_order_btc`` (whole 0.0001 BTC lots), each leg filled at the venue price of the tick
  under the configured fill model (``common.fills.venue_price_at``: by default the open of the
  first candle at/after the tick, else the last close) with fixed adverse slippage, taker fee on the slipped
  price; funding every full hour after the first fill on the position held before that hour's
  tick. Compared with the executor's fills, funding, equity curve and final book within
  floating-point tolerance (``RTOL``/``ATOL_*``): only the order of float additions differs.

``training.ledger`` (fractions of equity, compounding) is *not* what is compared: it re-sizes
with equity while the executor trades a fixed BTC size per unit of exposure.

A combiner artefact (``common.combiner``, ADR 0020) is compared the same way; its decisions come
from the research candidate's exposure path (``training.research.candidates``, computed over the
whole stored history) with the meta consumer's cold-start rule applied per tick: flat wherever the
BarClosed window the consumer holds has fewer than ``window + 1`` closes (:func:`closes_seen`).
A fitted linear combiner (``ridge`` / ``logistic``, ADR 0025) is the artefact's own arithmetic on
the research feature rows over the whole history, with the funding rate last published by each
tick as the stored exogenous rows give it (what the consumer reads), and the same cold-start rule
(721 closes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from common.actions import ACTIONS, apply_actions, label_for
from common.combiner import Combiner, imitation_path, metalabel_path, snap
from common.events import Target
from common.fills import venue_price_at
from common.observation import FeatureSpec
from common.policy import Policy
from common.portfolio import next_entry_price
from common.signals import SignalArrays
from config import FillPrice
from meta_consumer.decide import BAR_CLOSES
from training.backtest import policy_exposure
from training.baselines import baseline_exposure
from training.market import Market
from training.research.candidates import GRID, Context, build_context, volmanaged_exposure
from training.split import Window

LOT = 0.0001
RTOL = 1e-9
ATOL_USD = 1e-6
ATOL_BTC = 1e-9
_TARGETS = {1: Target.LONG, 0: Target.FLAT, -1: Target.SHORT}
HOUR_NS = 3_600_000_000_000


@dataclass(frozen=True)
class ExecutionModel:
    """The executor's sizing and the paper venue's costs (``config`` and ``executor.runner`` values)."""

    max_position_btc: float
    max_order_btc: float
    taker_fee: float
    slippage_bps: float
    funding_rate_hourly: float
    max_exposure: float = 1.0


@dataclass
class Prices:
    """Stored candles as arrays: what the paper venue prices from (``CandlePriceFeed``), under the
    same fill-price model (``config.ExchangeSettings.fill_price``)."""

    open_ns: np.ndarray
    open: np.ndarray
    close: np.ndarray
    fill_price: FillPrice = FillPrice.NEXT_OPEN

    def at(self, when_ns: np.ndarray) -> np.ndarray:
        """The venue's price at each time (``next_open``: open of the first candle at/after it, else
        the last close before it); ``ValueError`` when there are no candles at all."""
        return venue_price_at(self.open_ns, self.open, self.close, when_ns, self.fill_price)


# ---------------------------------------------------------------------------------------- decisions


def decision_bars(market: Market, start: datetime, end: datetime) -> np.ndarray:
    """Bar positions decided by the ticks in ``[start, end]``: the bar closing at each tick."""
    opens = market.index
    lo = opens.searchsorted(pd.Timestamp(start) - pd.Timedelta(hours=1), side="left")
    hi = opens.searchsorted(pd.Timestamp(end) - pd.Timedelta(hours=1), side="right")
    return np.arange(lo, hi)


def closes_seen(index: pd.DatetimeIndex, bars: np.ndarray, window_bars: int) -> np.ndarray:
    """Closes the meta consumer holds when it decides each bar's tick.

    The tick emitter's BarClosed of the decision timeframe carries the stored candles opening in
    ``[tick - window_bars h, tick)`` (complete bins only: a gap shortens it, never fills it), and
    the consumer keeps the last :data:`BAR_CLOSES` of them (``meta_consumer.bars``).
    ``window_bars``: the longest window of the strategies due on that timeframe (0: none is due,
    so no BarClosed and no closes).
    """
    opens = pd.DatetimeIndex(index).asi8
    tick = opens[bars] + HOUR_NS
    lo = np.searchsorted(opens, tick - window_bars * HOUR_NS, side="left")
    hi = np.searchsorted(opens, tick, side="left")
    return np.minimum(hi - lo, BAR_CLOSES)


def combiner_fractions(
    candles: pd.DataFrame,
    signals: SignalArrays,
    comb: Combiner,
    bars: np.ndarray,
    seen: np.ndarray,
    funding_last: np.ndarray | None = None,
    funding_charge: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(fractions of the max exposure at ``bars``, cold-start mask) of a combiner, vectorized.

    The exposure path is the research candidate's (``candidates.volmanaged_exposure`` on the
    research ``Context``: the majority vote of the answered strategies scaled by the realized
    volatility over the whole history). Where the consumer would hold fewer than
    ``comb.closes_needed`` closes (``seen``), the live rule is flat (ADR 0020, cold start): applied
    here too, and counted, so a difference it causes is neither hidden nor invented.

    A linear combiner's path is ``comb.linear.exposure`` on the research feature rows
    (``candidates.build_context``), with ``funding_last[t]`` the rate last published by the close of
    bar ``t`` (``training.research.protocol.funding_known``; None: none, as an empty store).

    An online combiner (``hedge`` / ``dsr``, ADR 0026) is the research loop seeded from the
    artefact's state at the first of ``bars`` (the replay's first decided tick) and stepped at each
    of ``bars`` in order, on the research context's targets, returns and feature rows;
    ``funding_charge[t]``: the funding charged over the hour closing at bar ``t``'s close (dsr's
    reward, :func:`hourly_funding_charge`). Where the consumer holds fewer closes than a step reads
    it does not learn and holds its last fraction (flat before the first step): the same here, and
    those bars are the cold mask. The ``rl`` policy (ADR 0027) is stepped the same way
    (:func:`_rl_fractions`).
    """
    if comb.online:
        return _online_fractions(candles, signals, comb, bars, seen, funding_last, funding_charge)
    if comb.kind not in ("volmanaged", "ridge", "logistic", "metalabel", "imitation"):
        raise ValueError(f"combiner kind {comb.kind!r}: no vectorized path here")
    if comb.grid != GRID:
        raise ValueError(f"combiner grid {comb.grid}: the research path snaps to {GRID}")
    sig = signals.restricted(comb.strategies)
    n = len(sig)
    majority = baseline_exposure("majority_vote", sig, Window(0, n + 1), max_exposure=1.0)
    fund = np.full(n, np.nan) if funding_last is None else np.asarray(funding_last, dtype=np.float64)
    ctx = build_context(candles, sig, majority, fund)
    if comb.legs is not None:  # imitation: P(long) - P(short)
        path = snap(imitation_path(ctx.features, comb.legs), comb.grid)
    elif comb.kind == "metalabel" and comb.linear is not None:  # the vote, where the logistic says so
        score = comb.linear.raw_score(ctx.features)
        path = metalabel_path(majority, score, float(comb.params["threshold"]), comb.grid)
    elif comb.linear is not None:
        path = comb.linear.exposure(ctx.features, comb.grid)
    else:
        p = comb.params
        path = volmanaged_exposure(ctx, p["target_vol"], comb.window, p["cap"])
    cold = np.asarray(seen) < comb.closes_needed
    return np.where(cold, 0.0, path[bars]), cold


def _online_fractions(
    candles: pd.DataFrame,
    signals: SignalArrays,
    comb: Combiner,
    bars: np.ndarray,
    seen: np.ndarray,
    funding_last: np.ndarray | None,
    funding_charge: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    from common.combiner import DsrState, HedgeState, dsr_update, hedge_update

    sig = signals.restricted(comb.strategies)
    n = len(sig)
    fund = np.full(n, np.nan) if funding_last is None else np.asarray(funding_last, dtype=np.float64)
    charge = np.zeros(n) if funding_charge is None else np.asarray(funding_charge, dtype=np.float64)
    ctx = build_context(candles, sig, np.zeros(n), fund)
    p = comb.params
    cold = np.asarray(seen) < comb.closes_needed
    out = np.zeros(len(bars))
    if comb.rl is not None:
        return _rl_fractions(ctx, sig, comb, bars, cold, fund), cold
    held = 0.0
    hs = HedgeState.from_params(comb.initial_state()) if comb.kind == "hedge" else None
    ds = DsrState.from_params(comb.initial_state()) if comb.kind == "dsr" else None
    for k, t in enumerate(bars):
        if not cold[k]:
            if hs is not None:
                hs, mix = hedge_update(hs, ctx.targets[t], float(ctx.ret[t]), p["eta"], p["decay"])
                held = float(snap(np.array([mix]), comb.grid)[0])
            elif ds is not None:
                ds = dsr_update(
                    ds,
                    ctx.features[t],
                    float(ctx.ret[t]),
                    float(charge[t]),
                    p["cost_rate"],
                    p["rho"],
                    p["eta"],
                )
                held = float(snap(np.array([ds.f1]), comb.grid)[0])
        out[k] = held
    return out, cold


def _rl_fractions(
    ctx: Context, sig: SignalArrays, comb: Combiner, bars: np.ndarray, cold: np.ndarray, fund: np.ndarray
) -> np.ndarray:
    """The ``rl`` policy (ADR 0027) seeded from the artefact's state at the first of ``bars`` and
    stepped at each bar where the consumer has the 721 closes its row reads, on the research
    context's closes (the last 721 stored closes up to the bar, as the BarClosed window holds them),
    targets, majority vote and published funding rate; held (flat before any step) elsewhere."""
    from common.combiner_rl import RL_ROWS, RlState

    assert comb.rl is not None
    majority = baseline_exposure("majority_vote", sig, Window(0, len(sig) + 1), max_exposure=1.0)
    st = RlState.from_params(comb.initial_state())
    out = np.zeros(len(bars))
    held = 0.0
    for k, t in enumerate(bars):
        if not cold[k]:
            if t + 1 < RL_ROWS:
                raise ValueError(f"bar {t}: the candles hold fewer than {RL_ROWS} closes up to it")
            f = None if np.isnan(fund[t]) else float(fund[t])
            c = ctx.close[t + 1 - RL_ROWS : t + 1]
            st, held = comb.rl.step(st, ctx.targets[t], c, float(majority[t]), f, comb.grid)
        out[k] = held
    return out


def hourly_funding_charge(index: pd.DatetimeIndex, events: object, default_hourly: float) -> np.ndarray:
    """Per bar of ``index``: the research's funding charge of the *hour* closing at that bar's close.

    What the live dsr reads (``meta_consumer.store.funding_charge``: settlements in ``(close - 1 h,
    close]``): the research's ``bar_funding`` on the hourly grid, read at the stored bars. It equals
    ``bar_funding(index)`` except at a bar after missing hours, whose research charge also
    covers the missing hours' settlements (ADR 0026).
    """
    from training.research.funding import bar_funding

    opens = pd.DatetimeIndex(index)
    grid = pd.date_range(opens[0], opens[-1], freq="1h")
    per_hour = bar_funding(grid, events, default_hourly).per_bar  # type: ignore[arg-type]
    return np.asarray(per_hour[grid.searchsorted(opens)], dtype=np.float64)


def vectorized_decisions(
    market: Market,
    bars: np.ndarray,
    policy: Policy | None,
    *,
    step: float,
    max_exposure: float,
    fractions: np.ndarray | None = None,
) -> tuple[pd.DataFrame, np.ndarray]:
    """(decisions per tick, observations [n, dim]) for a policy, a combiner or the fallback.

    The loop is ``training.backtest.policy_exposure``'s, keeping the action too; its exposures are
    then checked against ``policy_exposure`` / ``baseline_exposure`` themselves, so this is the
    training engine's backtest and not a second implementation of it. ``fractions``: a combiner's
    exposures at ``bars`` (:func:`combiner_fractions`, fractions of the max, as the live decision
    scales them); then ``policy`` is ignored.
    """
    n = len(bars)
    exposure: np.ndarray = np.zeros(1)
    entry: np.ndarray = np.full(1, np.nan)
    actions: list[str] = []
    current = np.empty(n)
    target = np.empty(n)
    obs_rows = np.empty((n, market.spec.dim), dtype=np.float32)
    for k, t in enumerate(bars):
        obs = market.observe(np.array([t]), exposure, entry)
        obs_rows[k] = obs[0]
        if fractions is not None:
            new = np.array([float(fractions[k]) * max_exposure])
            action = label_for(float(exposure[0]), float(new[0]))
        elif policy is None:
            new = np.array(
                [
                    baseline_exposure(
                        "majority_vote", market.signals, Window(int(t), int(t) + 2), max_exposure=max_exposure
                    )[0]
                ]
            )
            action = label_for(float(exposure[0]), float(new[0]))
        elif policy.output == "discrete":
            index = policy.act(obs)
            new = apply_actions(index, exposure, step, max_exposure)
            action = ACTIONS[int(index[0])]
        else:
            new = np.asarray(policy.act(obs), dtype=np.float64)
            action = label_for(float(exposure[0]), float(new[0]))
        current[k], target[k] = exposure[0], new[0]
        actions.append(action.value)
        entry = next_entry_price(exposure, entry, new, market.close[t : t + 1])
        exposure = new
    if n and fractions is None:  # a combiner's path is the research engine's already
        window = Window(int(bars[0]), int(bars[-1]) + 2)
        engine_path = (
            policy_exposure(policy, market, window)
            if policy is not None
            else baseline_exposure("majority_vote", market.signals, window, max_exposure=max_exposure)
        )
        if not np.array_equal(engine_path[:n], target):
            k = int(np.flatnonzero(engine_path[:n] != target)[0])
            raise AssertionError(f"training.backtest disagrees with the decision loop at bar {bars[k]}")
    ticks = market.index[bars] + pd.Timedelta(hours=1)
    frame = pd.DataFrame(
        {"tick_time": ticks, "action": actions, "current_exposure": current, "target_exposure": target}
    )
    return frame, obs_rows


# ---------------------------------------------------------------------------------------- execution


def _legs(delta: float, max_order: float) -> list[float]:
    """Signed legs of at most ``max_order`` BTC in whole lots (the magnitude rounded down to a lot)."""
    lots = math.floor(abs(delta) / LOT + 1e-9)
    per = max(1, math.floor(max_order / LOT + 1e-9))
    out = []
    while lots > 0:
        take = min(lots, per)
        out.append(math.copysign(round(take * LOT, 8), delta))
        lots -= take
    return out


def simulate_execution(
    decisions: pd.DataFrame, prices: Prices, model: ExecutionModel
) -> dict[str, pd.DataFrame]:
    """Fills, funding and the per-tick equity curve the paper venue should produce (USD, BTC)."""
    ticks = pd.DatetimeIndex(decisions["tick_time"])
    tick_ns = ticks.asi8
    px = prices.at(tick_ns)
    slip = model.slippage_bps / 10_000.0
    targets = np.round(
        np.clip(decisions["target_exposure"].to_numpy(), -model.max_exposure, model.max_exposure)
        * model.max_position_btc,
        8,
    )
    fills: list[tuple[Any, ...]] = []
    position_after = np.empty(len(ticks))
    pos = 0.0
    for k in range(len(ticks)):
        for leg, qty in enumerate(_legs(targets[k] - pos, model.max_order_btc)):
            price = px[k] * (1.0 + slip) if qty > 0 else px[k] * (1.0 - slip)
            fills.append(
                (
                    ticks[k],
                    leg,
                    "buy" if qty > 0 else "sell",
                    abs(qty),
                    price,
                    abs(qty) * price * model.taker_fee,
                )
            )
            pos = round(pos + qty, 8)
        position_after[k] = pos
    fill_df = pd.DataFrame(fills, columns=["tick_time", "leg", "side", "quantity", "price", "fee"])
    funding = _funding(tick_ns, position_after, fill_df, prices, model)
    equity = equity_curve(ticks, fill_df, funding, prices)
    return {"fills": fill_df, "funding": funding, "equity": equity}


def _funding(
    tick_ns: np.ndarray,
    position_after: np.ndarray,
    fills: pd.DataFrame,
    prices: Prices,
    model: ExecutionModel,
) -> pd.DataFrame:
    """Every full hour after the first fill's tick up to the last tick; the position before that hour.

    The executor settles funding at each tick *before* placing that tick's orders, so the position
    charged at hour ``h`` is the one after the last tick strictly before ``h``.
    """
    cols = ["funding_time", "position", "price", "amount"]
    if fills.empty:
        return pd.DataFrame(columns=cols)
    first = pd.Timestamp(fills["tick_time"].iloc[0]).value
    # integer arithmetic: np.arange on int64 nanoseconds sizes itself in float64 and can drop the last hour
    count = (int(tick_ns[-1]) - first) // HOUR_NS
    hours = first + HOUR_NS * np.arange(1, count + 1, dtype=np.int64)
    before = np.searchsorted(tick_ns, hours, side="left") - 1
    position = position_after[before]
    price = np.where(position != 0.0, prices.at(hours), 0.0)
    amount = -position * price * model.funding_rate_hourly
    return pd.DataFrame(
        {
            "funding_time": pd.to_datetime(hours, utc=True),
            "position": position,
            "price": price,
            "amount": amount,
        }
    )


def equity_curve(
    ticks: pd.DatetimeIndex, fills: pd.DataFrame, funding: pd.DataFrame, prices: Prices
) -> pd.DataFrame:
    """USD PnL after each tick: trade cash flows, fees and funding so far, plus position x mark.

    The mark is what the executor marks at (the venue price at the tick). Used on both sides: on the
    simulation and on the executor's own fill and funding rows.
    """
    tick_ns = ticks.asi8
    sign = np.where(fills["side"].to_numpy() == "buy", 1.0, -1.0)
    qty = sign * fills["quantity"].to_numpy(dtype=np.float64)
    at = np.searchsorted(tick_ns, pd.DatetimeIndex(fills["tick_time"]).asi8, side="left")
    pos_delta = np.bincount(at, weights=qty, minlength=len(ticks))
    cash_delta = np.bincount(
        at,
        weights=-qty * fills["price"].to_numpy(dtype=np.float64) - fills["fee"].to_numpy(dtype=np.float64),
        minlength=len(ticks),
    )
    if not funding.empty:
        fat = np.searchsorted(tick_ns, pd.DatetimeIndex(funding["funding_time"]).asi8, side="left")
        cash_delta += np.bincount(
            fat, weights=funding["amount"].to_numpy(dtype=np.float64), minlength=len(ticks)
        )
    position = np.round(np.cumsum(pos_delta), 8)
    cash = np.cumsum(cash_delta)
    mark = prices.at(tick_ns)
    return pd.DataFrame(
        {
            "tick_time": ticks,
            "position": position,
            "cash": cash,
            "mark": mark,
            "equity": cash + position * mark,
        }
    )


# ---------------------------------------------------------------------------------------- comparison


class NothingToCompare(ValueError):
    """Neither side decided a tick in the window: an empty comparison would read as "identical"."""


@dataclass
class Difference:
    what: str
    tick_time: str
    replay: dict[str, Any]
    vectorized: dict[str, Any]


@dataclass
class Comparison:
    ticks: int
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)
    first: list[Difference] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return all(c["differences"] == 0 for c in self.checks.values())

    def first_difference(self) -> Difference | None:
        return min(self.first, key=lambda d: d.tick_time) if self.first else None

    def to_dict(self) -> dict[str, Any]:
        first = self.first_difference()
        return {
            "identical": self.identical,
            "ticks": self.ticks,
            "checks": self.checks,
            "first_difference": None if first is None else first.__dict__,
            "first_difference_per_check": [d.__dict__ for d in self.first],
            "tolerance": {"rtol": RTOL, "atol_usd": ATOL_USD, "atol_btc": ATOL_BTC},
        }

    def to_markdown(self, title: str) -> str:
        lines = [
            f"# {title}",
            "",
            f"**{'IDENTICAL' if self.identical else 'DIFFERENT'}** over "
            f"{self.ticks:,} ticks (decisions exact; fills and PnL within rtol {RTOL:g}, "
            f"atol {ATOL_USD:g} USD / {ATOL_BTC:g} BTC)",
            "",
            "| check | compared | differences | max abs diff |",
            "|---|---:|---:|---:|",
        ]
        for name, c in self.checks.items():
            lines.append(
                f"| {name} | {c['compared']:,} | {c['differences']:,} | {c.get('max_abs_diff', 0):.3g} |"
            )
        first = self.first_difference()
        if first is not None:
            lines += [
                "",
                f"## First difference: {first.what} at tick {first.tick_time}",
                "",
                "| field | replay (pipeline) | vectorized |",
                "|---|---|---|",
            ]
            for key in sorted(set(first.replay) | set(first.vectorized)):
                lines.append(f"| {key} | {first.replay.get(key)} | {first.vectorized.get(key)} |")
        return "\n".join(lines) + "\n"


def _iso(ts: Any) -> str:
    return pd.Timestamp(ts).tz_convert(UTC).isoformat()


def _close(a: np.ndarray, b: np.ndarray, atol: float) -> np.ndarray:
    return np.abs(a - b) <= atol + RTOL * np.maximum(np.abs(a), np.abs(b))


def _numeric_check(
    cmp: Comparison, name: str, keys: pd.Series, rep: pd.DataFrame, vec: pd.DataFrame, cols: dict[str, float]
) -> None:
    """Rows aligned by position; every numeric column within tolerance, the rest equal."""
    n = max(len(rep), len(vec))
    bad = np.zeros(n, dtype=bool)
    if len(rep) != len(vec):
        bad[min(len(rep), len(vec)) :] = True
    m = min(len(rep), len(vec))
    worst = 0.0
    for col in rep.columns:
        a, b = rep[col].to_numpy()[:m], vec[col].to_numpy()[:m]
        if col in cols:
            a, b = a.astype(np.float64), b.astype(np.float64)
            bad[:m] |= ~_close(a, b, cols[col])
            if m:
                worst = max(worst, float(np.max(np.abs(a - b))))
        else:
            bad[:m] |= np.asarray([str(x) != str(y) for x, y in zip(a, b, strict=True)], dtype=bool)
    cmp.checks[name] = {"compared": n, "differences": int(bad.sum()), "max_abs_diff": worst}
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        row = lambda f: {c: (f[c].iloc[k] if c != "tick_time" else _iso(f[c].iloc[k])) for c in f.columns}  # noqa: E731
        cmp.first.append(
            Difference(
                name,
                _iso(keys.iloc[min(k, len(keys) - 1)]),
                row(rep) if k < len(rep) else {"missing": True},
                row(vec) if k < len(vec) else {"missing": True},
            )
        )


def compare(
    replay: dict[str, pd.DataFrame],
    vec_decisions: pd.DataFrame,
    vec_obs: np.ndarray,
    spec: FeatureSpec,
    sim: dict[str, pd.DataFrame],
    book: dict[str, float],
    decided_by: str | None = None,
) -> Comparison:
    """Tick-by-tick comparison; every check records its count of differences and its first one.

    ``decided_by``: the model id every pipeline decision must carry (a model the meta consumer
    refused is run by its fallback, whose decisions can coincide with the model's for a while).
    Raises :class:`NothingToCompare` when both sides are empty: zero ticks compared is not a pass.
    """
    rd = replay["decisions"]
    if len(vec_decisions) == 0 and len(rd) == 0:
        raise NothingToCompare(
            "nothing to compare: neither the pipeline nor the vectorized backtest decided a tick in "
            "the window (are the window's candles imported? does it end after the first bar closes?)"
        )
    cmp = Comparison(ticks=len(vec_decisions))
    # decisions: exact
    merged = vec_decisions.merge(rd, on="tick_time", how="outer", suffixes=("_vec", "_rep"), indicator=True)
    merged = merged.sort_values("tick_time").reset_index(drop=True)
    names = spec.feature_names()
    vec_pos = {t: i for i, t in enumerate(pd.DatetimeIndex(vec_decisions["tick_time"]).asi8)}
    bad = (
        (merged["_merge"] != "both")
        | (merged["action_vec"] != merged["action_rep"])
        | (merged["target_exposure_vec"] != merged["target_exposure_rep"])
        | (merged["current_exposure_vec"] != merged["current_exposure_rep"])
        | pd.Series([d is not False and d != 0 for d in merged["degraded"]], index=merged.index)
    )
    obs_bad = np.zeros(len(merged), dtype=bool)
    for i, (t, feats) in enumerate(
        zip(pd.DatetimeIndex(merged["tick_time"]).asi8, merged["features"], strict=True)
    ):
        k = vec_pos.get(int(t))
        if k is None or not isinstance(feats, dict):
            obs_bad[i] = True
            continue
        obs_bad[i] = any(np.float32(feats.get(n, np.nan)) != vec_obs[k, j] for j, n in enumerate(names))
    cmp.checks["decisions (action, target exposure)"] = {
        "compared": len(merged),
        "differences": int(bad.sum()),
    }
    cmp.checks["observations"] = {"compared": len(merged), "differences": int(obs_bad.sum())}
    for label, mask in (("decisions (action, target exposure)", bad.to_numpy()), ("observations", obs_bad)):
        if mask.any():
            i = int(np.flatnonzero(mask)[0])
            r = merged.iloc[i]
            k = vec_pos.get(int(pd.Timestamp(r["tick_time"]).value))
            rep_obs = r["features"] if isinstance(r["features"], dict) else {}
            vec_obs_d = {n: float(vec_obs[k, j]) for j, n in enumerate(names)} if k is not None else {}
            cmp.first.append(
                Difference(
                    label,
                    _iso(r["tick_time"]),
                    {
                        "present": r["_merge"] != "left_only",
                        "action": r.get("action_rep"),
                        "current_exposure": r.get("current_exposure_rep"),
                        "target_exposure": r.get("target_exposure_rep"),
                        "degraded": r.get("degraded"),
                        "observation": rep_obs,
                    },
                    {
                        "present": r["_merge"] != "right_only",
                        "action": r.get("action_vec"),
                        "current_exposure": r.get("current_exposure_vec"),
                        "target_exposure": r.get("target_exposure_vec"),
                        "observation": vec_obs_d,
                    },
                )
            )
    if decided_by is not None:
        other = (rd["model_id"] != decided_by).to_numpy()
        cmp.checks["decided by the model"] = {"compared": len(rd), "differences": int(other.sum())}
        if other.any():
            i = int(np.flatnonzero(other)[0])
            cmp.first.append(
                Difference(
                    "decided by the model",
                    _iso(rd["tick_time"].iloc[i]),
                    {"model_id": rd["model_id"].iloc[i]},
                    {"model_id": decided_by},
                )
            )
    # fills, funding, equity: within tolerance
    rf, vf = replay["fills"], sim["fills"]
    _numeric_check(
        cmp,
        "fills",
        vf["tick_time"] if len(vf) >= len(rf) else rf["tick_time"],
        rf,
        vf,
        {"quantity": ATOL_BTC, "price": ATOL_USD, "fee": ATOL_USD, "leg": 0.0},
    )
    rfu, vfu = replay["funding"], sim["funding"]
    _numeric_check(
        cmp,
        "funding",
        vfu["funding_time"] if len(vfu) >= len(rfu) else rfu["funding_time"],
        rfu,
        vfu,
        {"position": ATOL_BTC, "price": ATOL_USD, "amount": ATOL_USD},
    )
    req, veq = replay["equity"], sim["equity"]
    _numeric_check(
        cmp,
        "equity curve",
        veq["tick_time"],
        req,
        veq,
        {"position": ATOL_BTC, "cash": ATOL_USD, "mark": ATOL_USD, "equity": ATOL_USD},
    )
    # the executor's own book (average-cost realized + unrealized, fee and funding totals)
    last = sim["equity"].iloc[-1] if len(sim["equity"]) else None
    if last is not None:
        want = {
            "position": float(last["position"]),
            "pnl": float(last["equity"]),
            "fees": float(sim["fills"]["fee"].sum()),
            "funding": float(sim["funding"]["amount"].sum()),
        }
        diffs = {k: abs(book.get(k, np.nan) - v) for k, v in want.items()}
        bad_keys = [
            k
            for k, d in diffs.items()
            if not d <= (ATOL_BTC if k == "position" else ATOL_USD) + RTOL * abs(want[k]) * 10
        ]
        cmp.checks["executor book at the end"] = {
            "compared": len(want),
            "differences": len(bad_keys),
            "max_abs_diff": max(diffs.values()),
        }
        if bad_keys:
            cmp.first.append(
                Difference(
                    "executor book at the end", _iso(last["tick_time"]), {k: book.get(k) for k in want}, want
                )
            )
    return cmp
