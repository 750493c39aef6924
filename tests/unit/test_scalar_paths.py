"""The one-tick float paths of the meta consumer equal the array definitions bit for bit.

The live decision builds one observation, one P&L and one entry price per tick; those now run on
Python floats (``observation_row``, ``unrealized_pnl_scalar``, ``next_entry_price_scalar``,
``isclose``) instead of numpy arrays of one element. Training and the parity checks use the array
versions, so any bit of difference would break live == training. These properties compare them
over generated inputs with the awkward values included (NaN, inf, -0.0, zero, huge, tiny).
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from common.actions import isclose
from common.observation import FeatureSpec, build_observations, observation_row
from common.pnl import unrealized_pnl, unrealized_pnl_scalar
from common.portfolio import next_entry_price, next_entry_price_scalar

awkward = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1.0, -1.0, 0.25, -0.25, 1e-12, 1e300, 20_000.0, math.nan, math.inf]),
)
exposures = st.one_of(st.sampled_from([0.0, -0.0, 0.25, -0.25, 0.5, -0.5, 1.0, -1.0]), awkward)
prices = st.one_of(st.floats(min_value=1.0, max_value=1e6), awkward)


def same(a: float, b: float) -> bool:
    """Bit equality (NaN equals NaN; 0.0 and -0.0 differ)."""
    return np.float64(a).tobytes() == np.float64(b).tobytes() or (math.isnan(a) and math.isnan(b))


@given(exposures, st.one_of(st.none(), prices), st.one_of(st.none(), prices), st.booleans())
@settings(max_examples=400)
def test_scalar_pnl_equals_array_pnl(q: float, p0: float | None, mark: float | None, relative: bool) -> None:
    expected = float(
        unrealized_pnl(q, np.nan if p0 is None else p0, np.nan if mark is None else mark, relative=relative)
    )
    assert same(unrealized_pnl_scalar(q, p0, mark, relative=relative), expected)


@given(exposures, prices, exposures, prices)
@settings(max_examples=400)
def test_scalar_entry_price_equals_array(e: float, p0: float, n: float, p: float) -> None:
    assert same(next_entry_price_scalar(e, p0, n, p), float(next_entry_price(e, p0, n, p)))


@given(awkward, awkward)
@settings(max_examples=400)
def test_isclose_equals_numpy(a: float, b: float) -> None:
    assert isclose(a, b) == bool(np.isclose(a, b))


strategy_inputs = st.tuples(
    st.sampled_from([-1, 0, 1]),
    st.integers(0, 4),
    st.one_of(st.floats(0.0, 1.0), awkward),
    st.one_of(st.integers(0, 100).map(float), awkward),
    st.booleans(),
)


@given(
    st.lists(strategy_inputs, min_size=1, max_size=6),
    exposures,
    st.one_of(st.floats(-3.0, 3.0), awkward),
    st.one_of(st.floats(0.0, 0.2), awkward),
    st.sampled_from([(24, 0.01), (12, 0.004), (1, 1.0)]),
)
@settings(max_examples=400)
def test_observation_row_equals_batch_builder(
    rows: list[tuple[int, int, float, float, bool]],
    exposure: float,
    pnl: float,
    vol: float,
    scales: tuple[int, float],
) -> None:
    spec = FeatureSpec(
        strategies=tuple(f"s{i}" for i in range(len(rows))), max_age_ticks=scales[0], vol_scale=scales[1]
    )
    t, ev, conf, age, pres = (list(col) for col in zip(*rows, strict=True))
    batch = build_observations(
        spec,
        targets=[t],
        events=[ev],
        confidence=[conf],
        age=[age],
        present=[pres],
        exposure=[exposure],
        unrealized_pnl=[pnl],
        volatility=[vol],
    )
    row = observation_row(
        spec,
        targets=t,
        events=ev,
        confidence=conf,
        age=age,
        present=pres,
        exposure=exposure,
        unrealized_pnl=pnl,
        volatility=vol,
    )
    assert row.dtype == batch.dtype == np.float32 and row.shape == batch.shape == (1, spec.dim)
    assert row.tobytes() == batch.tobytes()
