"""The Optuna inner search of the research protocol (issue 16, ADR 0019): every proposal is a
logged trial, the sampler never sees the outer test bars, and a resumed run ends where an
uninterrupted one does."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.unit.training.test_research import _noise_market
from training.cli import app
from training.research.protocol import Settings, _run_shipped, _Task, prepare, run_research
from training.research.search import SEARCH_FAMILIES, fixed_configs

TRIALS = 12  # > TPE's 10 random start-up trials: the last ones follow the scores told
SETTINGS = Settings(purge=48, bootstrap_reps=50, quick=True, search="optuna", optuna_trials=TRIALS)


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "trials.jsonl").read_text().splitlines()]


def test_every_optuna_trial_is_logged_counted_and_in_the_pbo_matrix(tmp_path: Path) -> None:
    from training.results import ResultsDB

    candles, sig = _noise_market(3000, 3, seed=11)
    db = ResultsDB(f"sqlite:///{tmp_path / 'results.db'}", tmp_path / "artifacts")
    summary = run_research(candles, sig, None, tmp_path / "run", SETTINGS, workers=2, results=db)
    fixed = [c.key for c in fixed_configs(quick=True)]
    proposed = summary["search"]["proposed_per_split"]
    assert len(proposed) == 15 and all(len(p) == TRIALS for p in proposed)
    rows = _rows(tmp_path / "run")
    logged = {(r["split"], r["config"]) for r in rows}
    assert len(logged) == len(rows) == summary["trials_logged"]  # no trial logged twice
    # every proposal of every split's study, and every fixed configuration, is a logged trial
    expected = {(i, k) for i, keys in enumerate(proposed) for k in keys} | {
        (i, k) for i in range(15) for k in fixed
    }
    assert logged == expected
    # only the searched families are proposed, with parameters off the grid's
    assert {r["family"] for r in rows if r["config"] not in fixed} <= set(SEARCH_FAMILIES)
    # the DSR counts every distinct configuration tried on any split; the CSCV matrix holds a
    # column per proposal number beside the fixed configurations
    assert summary["trial_count_for_dsr"] == len({k for _, k in expected}) > len(fixed) + TRIALS
    assert summary["configs"] == fixed + [f"search:{j:03d}" for j in range(TRIALS)]
    # the choice per split is the best inner score among that split's own trials
    for i, key in enumerate(summary["chosen_per_split"]):
        mine = [r for r in rows if r["split"] == i]
        assert key == max(mine, key=lambda r: r["inner_sharpe"])["config"]
        assert key in fixed or key in proposed[i]
    # the results DB holds every trial once (window cpcv) and every column's pooled row
    run_id = summary["results_run_id"]
    cpcv = [r for r in db.evaluations(run_id=run_id) if r.window == "cpcv"]
    assert len(cpcv) == len(rows)
    test = {r.candidate for r in db.evaluations(run_id=run_id, window="test")}
    assert set(summary["configs"]) | {"selected"} <= test
    db.close()


def test_a_resumed_optuna_run_reproduces_the_uninterrupted_one(tmp_path: Path) -> None:
    candles, sig = _noise_market(3000, 3, seed=5)
    out = tmp_path / "run"
    full = run_research(candles, sig, None, out, SETTINGS)
    text = (out / "trials.jsonl").read_text()
    lines = text.splitlines(keepends=True)
    # interrupted after 40 % of the trials (mid-split): the rerun evaluates only the rest
    (out / "trials.jsonl").write_text("".join(lines[: len(lines) * 2 // 5]))
    resumed = run_research(candles, sig, None, out, SETTINGS)
    assert resumed["trials_run_now"] == len(lines) - len(lines) * 2 // 5
    assert (out / "trials.jsonl").read_text() == text  # byte for byte: same proposals, same order
    for k in ("sharpe", "chosen_per_split", "search", "pbo", "dsr_selected", "trial_count_for_dsr"):
        assert resumed[k] == full[k], k
    # and a complete log is replayed without evaluating anything
    again = run_research(candles, sig, None, out, SETTINGS)
    assert again["trials_run_now"] == 0 and again["sharpe"] == full["sharpe"]


def test_the_search_never_reads_the_outer_test_bars() -> None:
    """Poison the outer test bars' returns (a huge random funding charge on them only, which no
    candidate's exposure reads): the study proposes the same trials with the same inner scores,
    while the logged test returns change. The same poison on training bars moves the search, so
    the check can fail."""
    candles, sig = _noise_market(3000, 3, seed=11)
    job = prepare(candles, sig, None, SETTINGS).job
    split = 4
    sp = job.splits[split]
    # 16 > TPE's 10 random start-up trials: the last 6 proposals follow the scores told so far
    task = _Task(split, fixed_configs(quick=True), trials=16, seed=7)
    rng = np.random.default_rng(0)

    def poisoned(bars: np.ndarray) -> list:
        f = job.funding.copy()
        f[bars] = rng.normal(0.0, 0.05, bars.size)
        rows, keys = _run_shipped(replace(job, funding=f), task)
        return [keys, [(r["config"], r["inner_sharpes"], r["test_sharpe"]) for r, _, _ in rows]]

    clean_keys, clean = poisoned(np.array([], dtype=np.int64))
    test_keys, test = poisoned(sp.test)
    assert test_keys == clean_keys
    assert [(k, s) for k, s, _ in test] == [(k, s) for k, s, _ in clean]
    # the poison did arrive: the test Sharpe moves wherever the trial holds a position there
    moved = [a[2] != b[2] for a, b in zip(test, clean, strict=True)]
    assert sum(moved) >= len(moved) // 2, moved
    # a different sampler seed searches elsewhere (the seed is what makes a replay exact)
    assert _run_shipped(job, replace(task, seed=8))[1] != clean_keys
    train_keys, train = poisoned(sp.train[sp.train.size // 2 :])
    assert [(k, s) for k, s, _ in train] != [(k, s) for k, s, _ in clean]
    assert train_keys != clean_keys


def test_cli_rejects_an_unknown_search_before_loading_data() -> None:
    res = CliRunner().invoke(app, ["research", "--search", "random", "--data", "/nonexistent.csv"])
    assert res.exit_code != 0
    assert "grid or optuna" in res.output


@pytest.mark.parametrize("bad", [0, -3])
def test_cli_needs_at_least_one_optuna_trial(bad: int) -> None:
    res = CliRunner().invoke(app, ["research", "--search", "optuna", "--optuna-trials", str(bad)])
    assert res.exit_code != 0
