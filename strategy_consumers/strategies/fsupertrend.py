"""Triple supertrend for futures: the same six layers, trading both sides."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from strategy_consumers.strategies.base import Strategy
from strategy_consumers.strategies.stepping import Bar, Stepper
from strategy_consumers.strategies.supertrend import (
    LAYER_COLUMNS,
    LayersStepper,
    all_equal,
    supertrend_layers,
)


class FSupertrendStepper(LayersStepper):
    def _push(self, bar: Bar) -> dict[str, float]:
        out = self.layers(bar)
        has_volume = bar[5] > 0
        out["enter_long"] = float(all(out[c] == 1 for c in LAYER_COLUMNS[:3]) and has_volume)
        out["enter_short"] = float(all(out[c] == -1 for c in LAYER_COLUMNS[3:]) and has_volume)
        out["exit_long"] = float(out["sell_2"] == -1)
        out["exit_short"] = float(out["buy_2"] == 1)
        return out


class FSupertrend(Strategy):
    """Long on all buy layers up, short on all sell layers down; exits on the middle layers alone."""

    name = "fsupertrend"
    default_lookback_hours = 720
    warmup_bars = 450
    horizon_bars = 24
    indicator_columns = LAYER_COLUMNS

    def _signals(self, df: pd.DataFrame) -> dict[str, np.ndarray]:
        out = supertrend_layers(df)
        has_volume = df["volume"].to_numpy() > 0
        out["enter_long"] = all_equal(out, LAYER_COLUMNS[:3], 1) & has_volume
        out["enter_short"] = all_equal(out, LAYER_COLUMNS[3:], -1) & has_volume
        out["exit_long"] = out["sell_2"] == -1
        out["exit_short"] = out["buy_2"] == 1
        return out

    def stepper(self) -> Stepper:
        return FSupertrendStepper(self)

    def _holding_confidence(self, cols: Mapping[str, np.ndarray], target: np.ndarray) -> np.ndarray:
        # Share of the entry-side layers still agreeing with the position.
        buy_up = sum((cols[c] == 1).astype(float) for c in LAYER_COLUMNS[:3]) / 3.0
        sell_down = sum((cols[c] == -1).astype(float) for c in LAYER_COLUMNS[3:]) / 3.0
        return np.where(target > 0, buy_up, sell_down)
