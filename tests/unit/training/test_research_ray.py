"""The Ray backend of ``python -m training research`` (issue 16, ADR 0019): a local Ray instance
runs the same trials as the local process pool and writes the same log, byte for byte.

One Ray instance for the module (its start costs seconds), shut down at the end so the fork pool
of later tests does not fork a process that holds Ray's threads.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from tests.unit.training.test_research import _noise_market
from training.research.protocol import Settings, run_research

SETTINGS = Settings(purge=48, bootstrap_reps=50, quick=True)


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.mark.parametrize(
    "settings", [SETTINGS, replace(SETTINGS, search="optuna", optuna_trials=12)], ids=["grid", "optuna"]
)
def test_ray_tasks_give_the_pool_s_trials(local_ray: None, settings: Settings, tmp_path: Path) -> None:
    import ray

    candles, sig = _noise_market(3000, 3, seed=11)
    pool = run_research(candles, sig, None, tmp_path / "pool", settings, workers=2)
    on_ray = run_research(candles, sig, None, tmp_path / "ray", settings, workers=2, ray_address="local")
    assert on_ray["backend"] == "ray (local)" and pool["backend"] == "local process pool"
    assert on_ray["trials_run_now"] == pool["trials_run_now"] == pool["trials_logged"] > 0
    pool_log = (tmp_path / "pool" / "trials.jsonl").read_text()
    assert (tmp_path / "ray" / "trials.jsonl").read_text() == pool_log
    for k in ("sharpe", "sharpe_2x", "chosen_per_split", "search", "pbo", "dsr_selected"):
        assert on_ray[k] == pool[k], k
    # the instance the test started is used as it is, not shut down by the run
    assert ray.is_initialized()
