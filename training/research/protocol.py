"""The nested CPCV protocol: every trial run and logged, the procedure's choice, baselines, gates.

One *trial* is (configuration, seed, outer split): its inner-fold score (training part only) and
its outer test returns at 1x and 2x costs. Trials are written to ``OUT/trials.jsonl`` (one row
each, what the report reads) with their returns under ``OUT/trials/``; a rerun skips the trials
already there (resumable). Choices, all on training data of the outer split only:

* ``selected`` (the procedure): the configuration with the best mean inner-fold Sharpe;
* ``ex_ante_best_single``: the strategy with the best Sharpe on the outer training bars.

Out-of-sample series: the test blocks assemble into C(N-1, k-1) paths (``cpcv.paths``); the
*pooled* series is the per-bar mean over paths (one series aligned in time with the baselines, as
the bootstrap needs). Gates for "selected" (issue 16): pooled Sharpe above majority vote, equal
weight, buy & hold, flat and the ex-ante best single, each with a Reality-Check p < 0.05 corrected
over every configuration tried; PBO (CSCV over the configurations' pooled series) <= 0.25; and
the same exposures re-costed at 2x fees, slippage and funding still ahead of every benchmark.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from common.signals import SignalArrays
from training.metrics import cscv_logits
from training.research import cpcv
from training.research.candidates import (
    Config,
    Context,
    build_context,
    default_grid,
    exposure,
    hedge_exposure,
    net_returns,
    open_gaps,
    rl_grid,
)
from training.research.funding import BarFunding, FundingEvents, bar_funding
from training.research.learners import oracle_path
from training.research.search import SEARCH_FAMILIES
from training.research.stats import (
    block_lengths,
    bootstrap_sharpes,
    reality_check,
    sharpe_cols,
    spa_test,
)

if TYPE_CHECKING:
    from training.ledger import CostModel
    from training.results import ResultsDB

GATE_BENCHMARKS = ("majority_vote", "equal_weight", "buy_and_hold", "flat", "ex_ante_best_single")


@dataclass(frozen=True)
class Settings:
    groups: int = 6
    test_groups: int = 2
    purge: int = 720  # the longest feature lookback of the candidates (720 h)
    embargo_fraction: float = 0.01
    bootstrap_reps: int = 500
    bootstrap_block: float | None = None  # mean block (h); None: Politis-White on the tested series
    cscv_blocks: int = 10
    alpha: float = 0.05
    max_pbo: float = 0.25
    quick: bool = False
    search: str = "grid"  # "grid" | "optuna": how the inner choice's candidates are found (ADR 0019)
    optuna_trials: int = 40  # TPE proposals per outer split (search = "optuna")
    search_seed: int = 0  # the samplers' seed (split i's study: search_seed * 1000 + i)
    rl: bool = False  # add the RL recast's grid (``candidates.rl_grid``; torch, ~4 s per fit)


def _baseline_exposures(signals: SignalArrays) -> dict[str, np.ndarray]:
    from training.baselines import baseline_exposure, baseline_names
    from training.split import Window

    n = len(signals)
    out = {}
    for name in baseline_names(signals.strategies):
        e = baseline_exposure(name, signals, Window(0, n))
        out[name] = np.concatenate([e, [0.0]])
    return out


def funding_known(index: pd.DatetimeIndex, events: FundingEvents | None) -> np.ndarray:
    """The last funding rate published by the close of each bar (NaN before the first)."""
    n = len(index)
    if events is None or len(events) == 0:
        return np.full(n, np.nan)
    close_ns = pd.DatetimeIndex(index).asi8 + 3_600_000_000_000
    order = np.argsort(events.published_ns, kind="stable")
    pos = np.searchsorted(events.published_ns[order], close_ns, side="right") - 1
    return np.where(pos >= 0, events.rate[order][np.maximum(pos, 0)], np.nan)


def _bootstrap_block(
    pooled: np.ndarray, tested: list[int], names: list[str], settings: Settings
) -> dict[str, Any]:
    """The stationary bootstrap's mean block for the gates, and how it was chosen (for the summary).

    ``settings.bootstrap_block`` set: that fixed mean. None: Politis-White on the pooled OOS series
    the gates test (every configuration tried, the selected series, the gate benchmarks), the
    largest per-column estimate, as ``stats.optimal_block_length`` argues: the resamples are shared,
    so the most persistent tested series sets the block. Computed on the evaluated bars only, which
    is what is resampled; the block changes the p-values, never a trial, so it stays out of the
    trial log's fingerprint.
    """
    if settings.bootstrap_block is not None:
        return {"mean_block": float(settings.bootstrap_block), "method": "fixed"}
    cols = sorted(set(tested))
    per_col = block_lengths(pooled[:, cols])
    top = int(np.argmax(per_col))
    return {
        "mean_block": float(per_col[top]),
        "method": "politis-white",
        "longest_column": names[cols[top]],
        "median_column_block": float(np.median(per_col)),
        "columns": len(cols),
    }


def _sharpe_on(r: np.ndarray, bars: np.ndarray) -> float:
    return float(sharpe_cols(r[bars][:, None])[0])


def _trial_path(out: Path, split: int, key: str) -> Path:
    return out / "trials" / f"s{split:02d}" / (hashlib.sha256(key.encode()).hexdigest()[:16] + ".npz")


class TrialLog:
    """``trials.jsonl`` + per-trial return files; knows which trials are done (resume)."""

    def __init__(self, out: Path, fingerprint: str) -> None:
        self.out = out
        self.path = out / "trials.jsonl"
        stamp = out / "trials" / "fingerprint.txt"
        if stamp.exists() and stamp.read_text().strip() != fingerprint:
            raise ValueError(
                f"{out} holds trials of other data or settings; pass a fresh --out (or delete it)"
            )
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text(fingerprint)
        self.rows: dict[tuple[int, str], dict[str, Any]] = {}
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                if line.strip():
                    row = json.loads(line)
                    if _trial_path(out, row["split"], row["config"]).exists():
                        self.rows[(row["split"], row["config"])] = row

    def done(self, split: int, key: str) -> bool:
        return (split, key) in self.rows

    def add(self, row: dict[str, Any], r1: np.ndarray, r2: np.ndarray) -> None:
        p = _trial_path(self.out, row["split"], row["config"])
        p.parent.mkdir(parents=True, exist_ok=True)
        np.savez(p, r1=r1, r2=r2)
        with self.path.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
        self.rows[(row["split"], row["config"])] = row

    def returns(self, split: int, key: str) -> tuple[np.ndarray, np.ndarray]:
        with np.load(_trial_path(self.out, split, key)) as z:
            return z["r1"], z["r2"]


def assemble(
    per_split: list[np.ndarray],
    splits: list[cpcv.Split],
    path_map: list[list[int]],
    bounds: list[tuple[int, int]],
) -> np.ndarray:
    """[P, T] path series from per-split test returns (each aligned with ``splits[i].test``)."""
    start = bounds[0][0]
    t = bounds[-1][1] - start
    out = np.zeros((len(path_map), t))
    for p, row in enumerate(path_map):
        for g, i in enumerate(row):
            a, b = bounds[g]
            pos = np.searchsorted(splits[i].test, np.arange(a, b))
            out[p, a - start : b - start] = per_split[i][pos]
    return out


@dataclass(frozen=True)
class _Job:
    """What a trial needs; module-global in forked workers (inherited, never pickled)."""

    ctx: Context
    splits: list[cpcv.Split]
    bounds: list[tuple[int, int]]
    purge: int
    embargo: int
    cost_rate: float
    funding: np.ndarray
    fixed: dict[str, np.ndarray]
    gap: np.ndarray | None = None

    def ret(self, e: np.ndarray, mult: float = 1.0) -> np.ndarray:
        return net_returns(e, self.ctx.ret, self.funding, self.cost_rate, mult, self.gap)


_JOB: _Job | None = None

#: one trial's log row and its outer test returns at 1x and 2x costs
TrialOut = tuple[dict[str, Any], np.ndarray, np.ndarray]


@dataclass(frozen=True)
class _Task:
    """One outer split's work: the listed grid configurations, then (``trials`` > 0) its search.

    ``logged``: inner score of each trial of this split already in the log, so a replayed search
    is told the logged score instead of evaluating the trial again (resume).
    """

    split: int
    configs: list[Config]
    trials: int = 0
    seed: int = 0
    logged: dict[str, float] = field(default_factory=dict)


def _evaluate(job: _Job, i: int, inner: list[cpcv.Split], cfg: Config) -> TrialOut:
    """One trial: inner-fold scores (outer training bars only) and the outer test returns."""
    sp = job.splits[i]
    if cfg.fitted:
        scores = [_sharpe_on(job.ret(exposure(cfg, job.ctx, js.train)), js.test) for js in inner]
        e = exposure(cfg, job.ctx, sp.train)
    else:
        # online: one causal pass over the whole series (precomputed for the grid's configurations)
        e = job.fixed[cfg.key] if cfg.key in job.fixed else exposure(cfg, job.ctx)
        r_in = job.ret(e)
        scores = [_sharpe_on(r_in, js.test) for js in inner]
    r1, r2 = job.ret(e)[sp.test], job.ret(e, 2.0)[sp.test]
    row = {
        "split": i,
        "test_groups": list(sp.test_groups),
        "config": cfg.key,
        "family": cfg.family,
        "params": dict(cfg.params),
        "seed": int(cfg.params.get("seed", 0)),
        "inner_sharpes": scores,
        "inner_sharpe": float(np.mean(scores)),
        "test_sharpe": float(sharpe_cols(r1[:, None])[0]),
        "test_sharpe_2x": float(sharpe_cols(r2[:, None])[0]),
        "test_return": float(np.prod(1 + r1) - 1),
        "test_bars": int(sp.test.size),
    }
    return row, r1, r2


def _run_task(task: _Task) -> tuple[list[TrialOut], list[str]]:
    """A split's new trials (grid ones first, then the search's in proposal order) and the keys
    its search proposed, in order (empty without a search)."""
    job = _JOB
    if job is None:
        raise RuntimeError("no research job in this process")
    i = task.split
    inner = cpcv.inner_splits(job.splits[i], len(job.ctx), job.bounds, job.purge, job.embargo)
    out = [_evaluate(job, i, inner, cfg) for cfg in task.configs]
    if not task.trials:
        return out, []
    from training.research.search import run_study

    scores = dict(task.logged)

    def score(cfg: Config) -> float:
        # the sampler's only view of the data: the mean inner-fold Sharpe (training bars only);
        # the outer test returns computed alongside go to the log, never back to the sampler
        if cfg.key not in scores:
            row, r1, r2 = _evaluate(job, i, inner, cfg)
            out.append((row, r1, r2))
            scores[cfg.key] = row["inner_sharpe"]
        return scores[cfg.key]

    proposed = run_study(task.trials, task.seed, score)
    return out, [c.key for c in proposed]


def _run_shipped(job: _Job, task: _Task) -> tuple[list[TrialOut], list[str]]:
    """A Ray task: the job arrives from the object store (``ray.put`` once) instead of by fork."""
    global _JOB
    _JOB = job
    try:
        return _run_task(task)
    finally:
        _JOB = None


def _map_trials(
    job: _Job, todo: list[_Task], workers: int, ray_address: str | None = None
) -> Iterator[tuple[list[TrialOut], list[str]]]:
    """Results per task in ``todo`` order, whatever the worker count or backend (so the log is
    identical).

    One task per outer split; a local process pool (fork: the workers inherit the context instead
    of receiving it pickled) when ``workers > 1``; Ray tasks when ``ray_address`` is given.
    """
    if ray_address:
        yield from _map_ray(job, todo, workers, ray_address)
        return
    global _JOB
    _JOB = job
    try:
        if workers <= 1 or len(todo) <= 1:
            yield from map(_run_task, todo)
            return
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(min(workers, len(todo)), mp_context=mp.get_context("fork")) as pool:
            yield from pool.map(_run_task, todo)
    finally:
        _JOB = None


def _map_ray(
    job: _Job, todo: list[_Task], workers: int, address: str
) -> Iterator[tuple[list[TrialOut], list[str]]]:
    """The tasks on Ray (imported here only): the job is put in the object store once and every
    task reads it from there; results are collected in ``todo`` order, as the pool yields them.

    ``address``: ``local`` starts a private local Ray with ``workers`` CPUs (shut down after),
    ``auto`` joins the cluster this machine belongs to, anything else is a cluster address
    (``ray://host:10001`` or ``host:6379``); its nodes must import this checkout's ``training``
    package. A Ray already initialized in this process (a test, a notebook) is used as it is.
    """
    import ray

    own = not ray.is_initialized()
    if own:
        if address == "local":
            ray.init(address="local", num_cpus=workers, include_dashboard=False)
        else:
            ray.init(address=address)
    try:
        ref = ray.put(job)
        remote = ray.remote(num_cpus=1)(_run_shipped)
        pending = [remote.remote(ref, task) for task in todo]
        for fut in pending:
            yield ray.get(fut)
    finally:
        if own:
            ray.shutdown()


@dataclass(frozen=True)
class Prepared:
    """What a run computes once before any trial: the shared job, baselines, funding and costs."""

    job: _Job
    base: dict[str, np.ndarray]
    fund: BarFunding
    costs: CostModel


def prepare(
    candles: pd.DataFrame, signals: SignalArrays, events: FundingEvents | None, settings: Settings
) -> Prepared:
    """Costs (configured fill price, ADR 0017), funding by settlement, baselines, the candidates'
    context and the CPCV splits: everything a trial reads (``fixed`` still empty)."""
    from config import DEFAULT_FUNDING_RATE_HOURLY, FillPrice
    from training.ledger import CostModel

    n = len(signals)
    start = signals.warmup
    costs = CostModel.configured()
    # the configured fill price (ADR 0017), as in every other backtest: next_open by default
    gap = open_gaps(candles) if costs.fill_price == FillPrice.NEXT_OPEN else None
    fund: BarFunding = bar_funding(signals.index, events, DEFAULT_FUNDING_RATE_HOURLY)
    base = _baseline_exposures(signals)
    ctx: Context = build_context(
        candles,
        signals,
        base["majority_vote"],
        funding_known(signals.index, events),
        fund.per_bar,
        costs.cost_rate,
    )
    ctx = replace(ctx, gap=gap)  # the RL env books its steps exactly as net_returns does
    embargo = max(1, int(settings.embargo_fraction * (n - start)))
    splits = cpcv.cpcv_splits(
        n,
        groups=settings.groups,
        test_groups=settings.test_groups,
        start=start,
        purge=settings.purge,
        embargo=embargo,
    )
    bounds = cpcv.group_bounds(n, settings.groups, start)
    job = _Job(ctx, splits, bounds, settings.purge, embargo, costs.cost_rate, fund.per_bar, {}, gap)
    return Prepared(job, base, fund, costs)


def default_workers() -> int:
    """min(2, cpus): the default size of the local process pool."""
    import os

    return max(1, min(2, os.cpu_count() or 1))


def run_research(
    candles: pd.DataFrame,
    signals: SignalArrays,
    events: FundingEvents | None,
    out: Path,
    settings: Settings = Settings(),
    progress: Callable[[Iterable[Any], str, int], Iterable[Any]] | None = None,
    workers: int = 1,
    results: ResultsDB | None = None,
    ray_address: str | None = None,
) -> dict[str, Any]:
    """Run (or resume) every trial, then the choices, baselines and gates -> ``OUT/summary.json``.

    ``workers``: trials of different outer splits run in that many local processes (the log is the
    same for any count). ``ray_address``: run them as Ray tasks instead (``local``, ``auto`` or a
    cluster address; same log). ``results``: also write every trial, baseline and the oracle bound
    to this results database (``training.research.publish``). ``settings.search``: ``grid`` ranks
    the grid on the inner folds; ``optuna`` lets a seeded TPE study per outer split propose the
    searched families' configurations (``training.research.search``), each a logged trial.
    """
    import time

    from config import DEFAULT_FUNDING_RATE_HOURLY
    from training.metrics import deflated_sharpe

    t0 = time.monotonic()
    bar = progress or (lambda it, _desc, _total: it)
    out.mkdir(parents=True, exist_ok=True)
    n = len(signals)
    start = signals.warmup
    prep = prepare(candles, signals, events, settings)
    costs, fund, base, ctx, gap = prep.costs, prep.fund, prep.base, prep.job.ctx, prep.job.gap
    splits, bounds, embargo = prep.job.splits, prep.job.bounds, prep.job.embargo
    path_map = cpcv.paths(splits, settings.groups)
    optuna = settings.search == "optuna"
    if settings.search not in ("grid", "optuna"):
        raise ValueError(f"unknown search {settings.search!r}: grid or optuna")
    if optuna:
        from training.research.search import fixed_configs, split_seed

        grid = fixed_configs(settings.quick)  # the round-2 families; the search proposes the rest
    else:
        grid = default_grid(settings.quick)
    if settings.rl:
        grid = grid + rl_grid(settings.quick)

    def ret(e: np.ndarray, mult: float = 1.0) -> np.ndarray:
        return net_returns(e, ctx.ret, fund.per_bar, costs.cost_rate, mult, gap)

    fp = hashlib.sha256()
    fp.update(np.ascontiguousarray(ctx.close).tobytes())
    fp.update(np.ascontiguousarray(signals.target).tobytes())
    fp.update(np.ascontiguousarray(fund.per_bar).tobytes())
    fp.update(b"gap:" + (np.ascontiguousarray(gap).tobytes() if gap is not None else b"signal_close"))
    fp.update(f"cost:{costs.cost_rate!r}".encode())
    split_keys = ("groups", "test_groups", "purge", "embargo_fraction")  # what a trial depends on
    fp.update(json.dumps({k: asdict(settings)[k] for k in split_keys}, sort_keys=True).encode())
    fingerprint = fp.hexdigest()
    log = TrialLog(out, fingerprint)
    todo = [_Task(i, [c for c in grid if not log.done(i, c.key)]) for i in range(len(splits))]
    if optuna:  # every split replays its study (cheap for logged trials), so every split is a task
        todo = [
            _Task(
                t.split,
                t.configs,
                settings.optuna_trials,
                split_seed(settings.search_seed, t.split),
                {k: float(r["inner_sharpe"]) for (i, k), r in log.rows.items() if i == t.split},
            )
            for t in todo
        ]
    else:
        todo = [t for t in todo if t.configs]
    run_now = 0
    proposed: dict[int, list[str]] = {}
    if todo:
        # online grid configurations once, here, before any worker forks (they inherit the result)
        needed = {c.key: c for t in todo for c in t.configs if not c.fitted}
        fixed = {k: exposure(c, ctx) for k, c in bar(list(needed.items()), "online candidates", len(needed))}
        job = replace(prep.job, fixed=fixed)
        tasks = _map_trials(job, todo, workers, ray_address)
        for task, (rows, keys) in zip(todo, bar(tasks, "CPCV splits (trials)", len(todo)), strict=True):
            proposed[task.split] = keys
            run_now += len(rows)
            for row, r1, r2 in rows:
                log.add(row, r1, r2)

    # the columns the choice ranks and CSCV / the corrections see: name -> trial key per split
    columns = {c.key: [c.key] * len(splits) for c in grid}
    if optuna:  # ``search:j`` = the j-th proposal of each split's own study
        for j in range(settings.optuna_trials):
            columns[f"search:{j:03d}"] = [proposed[i][j] for i in range(len(splits))]
    used = list(dict.fromkeys((i, keys[i]) for keys in columns.values() for i in range(len(splits))))
    distinct = len({k for _, k in used})

    # --- the procedure's choices per split (training data only) --------------------------------
    singles = [f"single:{s}" for s in signals.strategies]
    base_r1 = {k: ret(v) for k, v in base.items()}
    base_r2 = {k: ret(v, 2.0) for k, v in base.items()}
    chosen: list[str] = []
    ex_ante: list[str] = []
    for i, sp in enumerate(splits):
        best = max(columns, key=lambda c: log.rows[(i, columns[c][i])]["inner_sharpe"])
        chosen.append(columns[best][i])
        ex_ante.append(max(singles, key=lambda s: _sharpe_on(base_r1[s], sp.train)))

    def paths_of(getter: Callable[[int], np.ndarray]) -> np.ndarray:
        return assemble([getter(i) for i in range(len(splits))], splits, path_map, bounds)

    ev = slice(start, bounds[-1][1])
    series1: dict[str, np.ndarray] = {}  # name -> [P, T]
    series2: dict[str, np.ndarray] = {}
    p_count = len(path_map)
    for k in base:
        series1[k] = np.broadcast_to(base_r1[k][ev], (p_count, n - start))
        series2[k] = np.broadcast_to(base_r2[k][ev], (p_count, n - start))
    for which, dst in enumerate((series1, series2)):
        mult = 1.0 + which

        def ex_ante_r(i: int, m: float = mult) -> np.ndarray:
            return ret(base[ex_ante[i]], m)[splits[i].test]

        def trial_r(i: int, keys: list[str] | None = None, w: int = which) -> np.ndarray:
            return log.returns(i, (chosen if keys is None else keys)[i])[w]

        dst["ex_ante_best_single"] = paths_of(ex_ante_r)
        dst["selected"] = paths_of(trial_r)
        for name, keys in columns.items():
            dst[name] = paths_of(functools.partial(trial_r, keys=keys))

    names = list(series1)
    pooled1 = np.column_stack([series1[k].mean(axis=0) for k in names])
    pooled2 = np.column_stack([series2[k].mean(axis=0) for k in names])
    col = {k: j for j, k in enumerate(names)}
    point1, point2 = sharpe_cols(pooled1), sharpe_cols(pooled2)
    tried = np.array([col[c] for c in columns] + [col["selected"]])
    block = _bootstrap_block(pooled1, [*tried.tolist(), *(col[b] for b in GATE_BENCHMARKS)], names, settings)
    boot1 = bootstrap_sharpes(pooled1, reps=settings.bootstrap_reps, block=block["mean_block"])
    sel = col["selected"]

    gates: dict[str, Any] = {}
    for b in GATE_BENCHMARKS:
        rc = reality_check(point1, boot1, col[b], tried, sel)
        rc.update(spa_test(point1, boot1, col[b], tried, sel, n_obs=pooled1.shape[0]))
        rc["benchmark_sharpe"] = float(point1[col[b]])
        rc["ahead"] = bool(point1[sel] > point1[col[b]])
        rc["significant"] = bool(rc["p_corrected"] < settings.alpha)
        rc["ahead_2x"] = bool(point2[sel] > point2[col[b]])
        gates[b] = rc
    cfg_cols = [col[c] for c in columns]
    logits = cscv_logits(pooled1[:, cfg_cols], settings.cscv_blocks) if len(cfg_cols) >= 2 else np.array([])
    pbo = float(np.mean(logits <= 0)) if logits.size else float("nan")
    per_period = point1[cfg_cols] / math.sqrt(24 * 365)
    dsr = deflated_sharpe(
        pooled1[:, sel],
        trials=distinct,  # every configuration tried on any split (each search trial counts)
        sharpe_variance=float(np.var(per_period, ddof=1)) if len(cfg_cols) > 1 else 0.0,
    )
    passed = (
        all(g["ahead"] and g["significant"] and g["ahead_2x"] for g in gates.values())
        and pbo <= settings.max_pbo
    )
    lo, hi = np.percentile(boot1, [2.5, 97.5], axis=0)
    hindsight = max(singles, key=lambda s: point1[col[s]])

    # the hindsight DP oracle over the evaluated bars: an upper bound, not a candidate
    o_e = np.zeros(n)
    o_e[ev] = oracle_path(ctx.ret[ev], fund.per_bar[ev], costs.cost_rate)[0]
    o1, o2 = ret(o_e)[ev], ret(o_e, 2.0)[ev]
    oracle = {
        "sharpe": float(sharpe_cols(o1[:, None])[0]),
        "sharpe_2x": float(sharpe_cols(o2[:, None])[0]),
        "total_return": float(np.prod(1 + o1) - 1),
        "mean_abs_exposure": float(np.abs(o_e[ev]).mean()),
        "turnover_per_year": float(np.abs(np.diff(o_e[ev])).sum() / (n - start) * 24 * 365),
    }

    # Hedge weights over time for the Hedge configuration chosen most often (or the first)
    hedge_keys = list(dict.fromkeys(k for i, k in used if log.rows[(i, k)]["family"] == "hedge"))
    hedge_plot = None
    if hedge_keys:
        hk = max(hedge_keys, key=chosen.count)  # first among equals: grid order / proposal order
        hp = log.rows[next((i, k) for i, k in used if k == hk)]["params"]
        _, w = hedge_exposure(ctx, float(hp["eta"]), float(hp["decay"]))
        s = len(signals.strategies)
        net_w = w[:, :s] - w[:, s : 2 * s]
        np.savez(out / "hedge_weights.npz", net=net_w[start:], flat=w[start:, -1], config=hk)
        hedge_plot = hk

    arrays: dict[str, Any] = {
        "names": np.array(names),
        "pooled1": pooled1,
        "pooled2": pooled2,
        "logits": logits,
        "index_ns": signals.index.asi8[start:],
    }
    for j, k in enumerate(names):
        if k in ("selected", "majority_vote", "buy_and_hold", "ex_ante_best_single", "equal_weight"):
            arrays[f"paths_{j}"] = series1[k]
    np.savez(out / "series.npz", **arrays)
    path_sharpes = {k: sharpe_cols(series1[k].T).tolist() for k in names}
    summary = {
        "data": {
            "bars": n,
            "first": signals.index[0].isoformat(),
            "last": signals.index[-1].isoformat(),
            "evaluated_from": signals.index[start].isoformat(),
            "warmup_bars": start,
            "strategies": list(signals.strategies),
        },
        "settings": asdict(settings),
        "bootstrap": block,
        "embargo_bars": embargo,
        "splits": len(splits),
        "paths": p_count,
        "costs": {
            "taker_fee": costs.taker_fee,
            "slippage_bps": costs.slippage_bps,
            "fill_price": str(costs.fill_price),
            "funding_source": fund.source,
            "funding_covered_share": float(fund.covered[start:].mean()),
            "funding_fallback_hourly": DEFAULT_FUNDING_RATE_HOURLY,
            "funding_mean_per_8h": float(
                fund.per_bar[start:][fund.covered[start:]].sum() / max(1, fund.covered[start:].sum()) * 8
            ),
        },
        "configs": list(columns),
        "search": {
            "method": settings.search,
            "trials_per_split": settings.optuna_trials if optuna else 0,
            "sampler": "optuna TPESampler(seed=search_seed * 1000 + split)" if optuna else None,
            "families": list(SEARCH_FAMILIES) if optuna else [],
            "proposed_per_split": [proposed[i] for i in range(len(splits))] if optuna else [],
        },
        "trials_logged": len(used),
        "trial_count_for_dsr": distinct,
        "chosen_per_split": chosen,
        "ex_ante_per_split": ex_ante,
        "hindsight_best_single": hindsight,
        "sharpe": {k: float(point1[col[k]]) for k in names},
        "sharpe_2x": {k: float(point2[col[k]]) for k in names},
        "sharpe_ci95": {k: [float(lo[col[k]]), float(hi[col[k]])] for k in names},
        "total_return": {k: float(np.prod(1 + pooled1[:, col[k]]) - 1) for k in names},
        "path_sharpes": path_sharpes,
        "gates": gates,
        "pbo": pbo,
        "dsr_selected": dsr,
        "selected_passes": passed,
        "oracle": oracle,
        "fingerprint": fingerprint,
        "workers": workers,
        "backend": f"ray ({ray_address})" if ray_address else "local process pool",
        "trials_run_now": run_now,
        "hedge_weights_config": hedge_plot,
    }
    summary["wall_seconds"] = time.monotonic() - t0  # before publishing: the DB write is not the run
    if results is not None:
        from training.research.publish import publish

        trials = [log.rows[ik] for ik in sorted(used, key=lambda ik: ik[0])]
        summary["results_run_id"] = publish(results, summary, trials, {k: pooled1[:, col[k]] for k in names})
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
