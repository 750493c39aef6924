"""``load_strategy_class`` and the BUILTIN map the registry's class paths go through."""

from __future__ import annotations

import pytest

from strategy_consumers.strategies import BUILTIN, Strategy, builtin_strategy, load_strategy_class


def test_builtin_class_paths_resolve_to_one_strategy_each() -> None:
    for name, path in BUILTIN.items():
        cls = load_strategy_class(path)
        assert issubclass(cls, Strategy)
        assert cls.name == name
        assert path.startswith(f"strategy_consumers.strategies.{name}:")
        strategy = cls(params={}, lookback_hours=cls.default_lookback_hours, version="1.0.0")
        assert strategy.version == "1.0.0" and strategy.timeframe == "1h"
        assert strategy.bars_needed() == cls.default_lookback_hours


@pytest.mark.parametrize(
    "path",
    [
        "nocolon",
        "strategy_consumers.strategies.ott:",
        "no.such.module:X",
        "strategy_consumers.strategies.ott:np",
    ],
)
def test_bad_class_paths_raise_value_error(path: str) -> None:
    with pytest.raises(ValueError):
        load_strategy_class(path)


def test_unknown_builtin_name() -> None:
    with pytest.raises(ValueError, match="unknown strategy"):
        builtin_strategy("nope")
