"""freqtrade strategy for bench/bench_peers.py: trades the project's own strategy targets.

freqtrade loads this file from the bench's temporary ``user_data/strategies``. The signals come from
the project's strategy code (``BENCH_PEERS_STRATEGY``, a registry name, with the registry's
parameters), so freqtrade and the project cannot disagree on the strategy, only on execution:
freqtrade acts on a candle's signal at the next candle's open. ROI, stop-loss and trailing are
disabled: only the strategy's exit closes a trade.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from freqtrade.strategy import IStrategy
from pandas import DataFrame

sys.path.insert(0, os.environ["BENCH_PEERS_REPO"])

from common.registry import load_registry


class ProjectTargets(IStrategy):
    """Long while the project's strategy targets LONG."""

    INTERFACE_VERSION = 3
    timeframe = "1h"
    minimal_roi: dict[str, Any] = {"0": 1e9}  # noqa: RUF012 (freqtrade reads class attributes)
    stoploss = -1.0
    trailing_stop = False
    use_exit_signal = True
    exit_profit_only = False
    ignore_roi_if_entry_signal = True
    startup_candle_count = 0
    can_short = False
    process_only_new_candles = True

    def populate_indicators(self, dataframe: DataFrame, metadata: dict[str, Any]) -> DataFrame:
        name = os.environ["BENCH_PEERS_STRATEGY"]
        spec = next(s for s in load_registry().enabled if s.name == name)
        strategy = spec.load_class()(
            params=dict(spec.params), lookback_hours=spec.lookback_hours, version=spec.version
        )
        frame = dataframe.set_index("date")[["open", "high", "low", "close", "volume"]]
        dataframe["target"] = strategy.evaluate(frame)["target"].to_numpy()
        return dataframe

    def populate_entry_trend(self, dataframe: DataFrame, metadata: dict[str, Any]) -> DataFrame:
        dataframe["enter_long"] = (dataframe["target"] == 1).astype(int)
        return dataframe

    def populate_exit_trend(self, dataframe: DataFrame, metadata: dict[str, Any]) -> DataFrame:
        dataframe["exit_long"] = (dataframe["target"] == 0).astype(int)
        return dataframe


__all__ = ["ProjectTargets"]
