"""Fixtures: the bundled real candles and their strategy signals, computed once per session."""

from __future__ import annotations

import hashlib
import itertools
import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from common.actions import ACTIONS
from common.dataset import load_bundled_candles
from common.policy import Policy, export_policy, load_policy
from training.features import fit_stats
from training.market import Market
from training.signals import SignalArrays, compute_signals, training_exogenous
from training.split import Window


@pytest.fixture(scope="session")
def real_candles() -> pd.DataFrame:
    return load_bundled_candles()


@pytest.fixture(scope="session")
def real_exogenous() -> dict[str, pd.DataFrame]:
    """The shared exogenous series the registered strategies read (real data)."""
    exo = training_exogenous()
    assert exo, "the shared exogenous folder is missing"
    return exo


@pytest.fixture(scope="session")
def real_signals(real_candles: pd.DataFrame, real_exogenous: dict[str, pd.DataFrame]) -> SignalArrays:
    return compute_signals(real_candles, exogenous=real_exogenous)


@pytest.fixture(scope="session")
def market(real_candles: pd.DataFrame, real_signals: SignalArrays) -> Market:
    stats = fit_stats(real_candles["close"].to_numpy(), Window(real_signals.warmup, 20_000))
    return Market.build(real_candles, real_signals, stats.spec(real_signals.strategies))


def random_policy(market: Market, seed: int = 3) -> Policy:
    """A small random MLP in the live artifact format (what a trained agent will export)."""
    rng = np.random.default_rng(seed)
    sizes = [market.spec.dim, 16, len(ACTIONS)]
    layers = [(rng.normal(size=(i, o)), rng.normal(size=o)) for i, o in itertools.pairwise(sizes)]
    art = export_policy(layers, ["tanh", "identity"], algo="test", spec=market.spec)
    row = SimpleNamespace(
        model_id="m-test",
        algo="test",
        artifact=art,
        artifact_sha256=hashlib.sha256(art).hexdigest(),
        feature_spec=json.loads(market.spec.to_json()),
    )
    return load_policy(row)
