"""Built-in strategies and the loader the registry's ``class_path`` goes through."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from strategy_consumers.strategies.base import RecommendationResult, Strategy

BUILTIN: dict[str, str] = {
    "volatility_system": "strategy_consumers.strategies.volatility_system:VolatilitySystem",
    "supertrend": "strategy_consumers.strategies.supertrend:Supertrend",
    "fsupertrend": "strategy_consumers.strategies.fsupertrend:FSupertrend",
    "ott": "strategy_consumers.strategies.ott:OTT",
    "bband_rsi": "strategy_consumers.strategies.bband_rsi:BbandRsi",
}


def load_strategy_class(class_path: str) -> type[Strategy]:
    """Resolve ``"package.module:Class"`` to a Strategy subclass; raise ValueError otherwise."""
    from strategy_consumers.strategies.base import Strategy

    module_name, sep, class_name = class_path.partition(":")
    if not sep or not module_name or not class_name:
        raise ValueError(f"class_path must look like 'package.module:Class', got {class_path!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import {module_name!r}: {exc}") from exc
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise ValueError(f"{class_path!r} is not a Strategy subclass")
    return cls


def builtin_strategy(name: str) -> Strategy:
    """Instantiate a built-in strategy with its default params; ValueError on an unknown name."""
    if name not in BUILTIN:
        raise ValueError(f"unknown strategy {name!r}; choose one of {', '.join(BUILTIN)}")
    return load_strategy_class(BUILTIN[name])()


def __getattr__(name: str) -> Any:
    """``Strategy`` and ``RecommendationResult`` on first use: importing the package (for BUILTIN,
    which the CLI's `--help` names) must not import numpy and pandas through ``base``."""
    if name in ("Strategy", "RecommendationResult"):
        from strategy_consumers.strategies import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["BUILTIN", "RecommendationResult", "Strategy", "builtin_strategy", "load_strategy_class"]
