"""Triple supertrend, long only: all three buy layers up to enter, all three sell layers down to exit."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from strategy_consumers.strategies import indicators as ind
from strategy_consumers.strategies.base import Strategy, ohlcv_arrays
from strategy_consumers.strategies.stepping import Bar, Stepper, SupertrendLine, Tail, true_range

BUY_LAYERS: tuple[tuple[float, int], ...] = ((4, 8), (7, 9), (1, 8))
SELL_LAYERS: tuple[tuple[float, int], ...] = ((1, 16), (3, 18), (6, 18))
LAYER_COLUMNS = ("buy_1", "buy_2", "buy_3", "sell_1", "sell_2", "sell_3")


def supertrend_layers(df: pd.DataFrame) -> dict[str, np.ndarray]:
    """Direction (+1 up, -1 down, 0 undefined) of the six layers, shared with ``fsupertrend``."""
    _, h, lo, c, _ = ohlcv_arrays(df)
    return {
        col: ind.supertrend_direction(h, lo, c, mult, period)[1]
        for col, (mult, period) in zip(LAYER_COLUMNS, BUY_LAYERS + SELL_LAYERS, strict=True)
    }


class LayersStepper(Stepper):
    """The six supertrend layers bar by bar; subclasses add their entry and exit rules."""

    def __init__(self, strategy: Strategy) -> None:
        super().__init__(strategy)
        layers = BUY_LAYERS + SELL_LAYERS
        self.lines = [SupertrendLine(mult, period) for mult, period in layers]
        self.tr = Tail(max(period for _, period in layers))
        self.prev_close: float | None = None

    def layers(self, bar: Bar) -> dict[str, float]:
        _, _, h, lo, c, _ = bar
        self.tr.push(true_range(h, lo, self.prev_close))
        out = {
            col: float(line.push(h, lo, c, self.prev_close, self.tr))
            for col, line in zip(LAYER_COLUMNS, self.lines, strict=True)
        }
        self.prev_close = c
        return out

    def _push(self, bar: Bar) -> dict[str, float]:
        out = self.layers(bar)
        has_volume = bar[5] > 0
        out["enter_long"] = float(all(out[c] == 1 for c in LAYER_COLUMNS[:3]) and has_volume)
        out["exit_long"] = float(all(out[c] == -1 for c in LAYER_COLUMNS[3:]) and has_volume)
        out["enter_short"] = 0.0
        out["exit_short"] = 0.0
        return out


def all_equal(cols: Mapping[str, np.ndarray], names: tuple[str, ...], value: int) -> np.ndarray:
    """True where every array named in ``names`` equals ``value``."""
    return np.logical_and.reduce([cols[c] == value for c in names])


class Supertrend(Strategy):
    """Spot-style triple supertrend (long only)."""

    name = "supertrend"
    default_lookback_hours = 720
    warmup_bars = 450
    horizon_bars = 24
    indicator_columns = LAYER_COLUMNS

    def _signals(self, df: pd.DataFrame) -> dict[str, np.ndarray]:
        out = supertrend_layers(df)
        has_volume = df["volume"].to_numpy() > 0
        zero = np.zeros(len(df), dtype=bool)
        out["enter_long"] = all_equal(out, LAYER_COLUMNS[:3], 1) & has_volume
        out["exit_long"] = all_equal(out, LAYER_COLUMNS[3:], -1) & has_volume
        out["enter_short"] = zero
        out["exit_short"] = zero
        return out

    def stepper(self) -> Stepper:
        return LayersStepper(self)

    def _holding_confidence(self, cols: Mapping[str, np.ndarray], target: np.ndarray) -> np.ndarray:
        # Share of buy layers still agreeing with the long.
        return sum((cols[c] == 1).astype(float) for c in LAYER_COLUMNS[:3]) / 3.0
