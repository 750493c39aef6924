"""Shared fixtures: the bundled real dataset, loaded once per session."""

from __future__ import annotations

import pandas as pd
import pytest

from common.dataset import load_bundled_candles


@pytest.fixture(scope="session")
def candles() -> pd.DataFrame:
    return load_bundled_candles()
