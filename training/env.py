"""Vectorized BTC perpetual environment: ``num_envs`` episodes stepped at once with numpy.

Interface (ElegantRL / Gymnasium vector style): ``reset() -> (state, info)``,
``step(action) -> (state, reward, terminated, truncated, info)``; attributes ``env_name``,
``num_envs``, ``max_step``, ``state_dim``, ``action_dim``, ``if_discrete``. Actions are indices
into ``common.actions.ACTIONS`` (hold, increase, decrease, flat, reverse), applied with the live
``apply_actions`` on the exposure grid (``step``, ``max_exposure``: the meta consumer's settings).

Execution model (training.ledger, the same as the backtest and the executor's paper venue):
the decision at bar t's close uses the observation at t; the new exposure is held over bar t+1 and
earns ``p[t+1]/p[t] - 1``, ``p`` the fill prices of the cost model's ``fill_price``
(``common.fills.decision_prices`` over the bars up to the window's end: ``open[t+1]`` by default,
the window's last bar at its close, exactly as ``training.ledger.simulate`` on that window); cost
``|Δexposure| * (taker_fee + slippage)``; funding ``exposure * rate * hours``. Reward ``"pnl"``:
equity change net of costs (equity starts at 1.0), times ``reward_scale``; ``"dsr"``: Moody &
Saffell's differential Sharpe ratio of the net return.

The observation comes from ``Market.observe`` (``common.observation.build_observations``) and the
entry price from ``common.portfolio.next_entry_price``, the functions the live meta consumer
calls. Episodes start at seeded random bars of ``window`` and last ``max_step`` steps (truncated);
an env whose equity reaches 0 terminates. Done envs are reset at once (auto-reset); their last
observation is in ``info["final_observation"]``.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from common.actions import ACTIONS, apply_actions
from common.fills import decision_prices
from common.portfolio import next_entry_price
from training.ledger import CostModel, step_terms
from training.market import Market
from training.split import Window

#: The rewards this env can pay (module doc); the training CLI offers exactly these.
REWARDS: tuple[str, ...] = ("pnl", "dsr")


class BtcPerpVecEnv:
    env_name = "BtcPerpVecEnv-v1"
    if_discrete = True

    def __init__(
        self,
        market: Market,
        window: Window,
        *,
        num_envs: int = 1,
        max_step: int = 720,
        seed: int = 0,
        costs: CostModel | None = None,
        step: float = 0.25,
        max_exposure: float = 1.0,
        reward: Literal["pnl", "dsr"] = "pnl",
        reward_scale: float = 1.0,
        dsr_eta: float = 0.01,
        random_start: bool = True,
    ) -> None:
        if window.end > len(market):
            raise ValueError(f"window {window} beyond the {len(market)} bars of the market")
        if reward not in REWARDS:
            raise ValueError(f"reward must be one of {', '.join(REWARDS)}, got {reward!r}")
        self.market, self.window, self.num_envs = market, window, int(num_envs)
        self.max_step = int(min(max_step, len(window) - 1))
        if self.max_step < 1:
            raise ValueError("window needs at least 2 bars")
        self.costs = costs or CostModel.configured()
        self.step_size, self.max_exposure = step, max_exposure
        self.reward_kind, self.reward_scale, self.dsr_eta = reward, reward_scale, dsr_eta
        self.random_start = random_start
        self.state_dim = market.spec.dim
        self.action_dim = len(ACTIONS)
        self.rng = np.random.default_rng(seed)
        # return earned over bar t+1, indexed by t; prices cut at the window's end so its last bar
        # ends at its close (no next open inside the window), as in the backtest's ledger
        p = decision_prices(market.open[: window.end], market.close[: window.end], self.costs.fill_price)
        self._ret = np.zeros(len(market))
        self._ret[: len(p) - 1] = p[1:] / p[:-1] - 1.0
        self._hours = np.append(market.hours[1:], 0.0)
        n = self.num_envs
        self.t: np.ndarray = np.zeros(n, dtype=np.int64)
        self.steps: np.ndarray = np.zeros(n, dtype=np.int64)
        self.exposure: np.ndarray = np.zeros(n)
        self.entry: np.ndarray = np.full(n, np.nan)
        self.equity: np.ndarray = np.ones(n)
        self._a: np.ndarray = np.zeros(n)  # differential Sharpe: EMA of returns
        self._b: np.ndarray = np.zeros(n)  # ... and of squared returns
        # Variance floor of the differential Sharpe ratio: the hourly variance of holding one
        # exposure step, from the env's own window (no bar after it). Without it the ratio divides
        # by a near-zero EMA variance after a flat stretch or at an episode's start and spikes to
        # 10^4, which swamps every other reward an agent sees.
        in_window = self._ret[window.start : window.end - 1]  # the last bar's return lies past the window
        self.dsr_var_floor = max(float((step * np.std(in_window)) ** 2), 1e-12)

    def _starts(self, k: int) -> np.ndarray:
        last = self.window.end - 1 - self.max_step  # an episode needs max_step bars after its start
        if not self.random_start or last <= self.window.start:
            return np.full(k, self.window.start, dtype=np.int64)
        return self.rng.integers(self.window.start, last + 1, size=k)

    def _reset_envs(self, mask: np.ndarray) -> None:
        k = int(mask.sum())
        self.t[mask] = self._starts(k)
        self.steps[mask] = 0
        self.exposure[mask] = 0.0
        self.entry[mask] = np.nan
        self.equity[mask] = 1.0
        self._a[mask] = 0.0
        self._b[mask] = 0.0

    def reset(self, *, seed: int | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self._reset_envs(np.ones(self.num_envs, dtype=bool))
        return self.market.observe(self.t, self.exposure, self.entry), {"t": self.t.copy()}

    def step(self, action: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        a = np.asarray(action).reshape(self.num_envs)
        t = self.t
        new = self.next_exposure(a)
        self.entry = next_entry_price(self.exposure, self.entry, new, self.market.close[t])
        gross, fees, funding, net = step_terms(self.exposure, new, self._ret[t], self._hours[t], self.costs)
        pnl = self.equity * net
        self.equity = self.equity + pnl
        self.exposure = new
        self.t = t + 1
        self.steps += 1
        reward = pnl if self.reward_kind == "pnl" else self._dsr(net)
        terminated = self.equity <= 0.0
        truncated = (self.steps >= self.max_step) & ~terminated
        obs = self.market.observe(self.t, self.exposure, self.entry)
        info: dict[str, Any] = {
            "equity": self.equity.copy(),
            "exposure": new.copy(),
            "fees": fees,
            "funding": funding,
            "gross": gross,
            "t": self.t.copy(),
        }
        done = terminated | truncated
        if done.any():
            info["final_observation"] = obs[done].copy()
            info["done_mask"] = done
            self._reset_envs(done)
            obs[done] = self.market.observe(self.t[done], self.exposure[done], self.entry[done])
        return obs, (reward * self.reward_scale).astype(np.float32), terminated, truncated, info

    def next_exposure(self, action: np.ndarray) -> np.ndarray:
        """Exposure after ``action`` (indices into ``ACTIONS``); a subclass may read actions otherwise."""
        return apply_actions(action, self.exposure, self.step_size, self.max_exposure)

    def _dsr(self, r: np.ndarray) -> np.ndarray:
        """Differential Sharpe ratio (Moody & Saffell 2001) with EMA rate ``dsr_eta``, its variance
        floored at ``dsr_var_floor``."""
        da, db = r - self._a, r * r - self._b
        var = np.maximum(self._b - self._a * self._a, self.dsr_var_floor)
        d = (self._b * da - 0.5 * self._a * db) / np.power(var, 1.5)
        self._a = self._a + self.dsr_eta * da
        self._b = self._b + self.dsr_eta * db
        return d
