"""A research run's trials and baselines into the results database (``training.results``).

Why the results DB and not only ``trials.jsonl``: the leaderboard (``python -m training
leaderboard``) reads it, so research candidates sit beside the baselines with the same metric
columns, and a team sharing one PostgreSQL sees each other's research runs. ``trials.jsonl`` stays
the run folder's resumable log; the DB copy is rewritten from it after every run.

Layout, all under one run id derived from the run's fingerprint (data + split settings), so a rerun
replaces its rows instead of adding a run:

* window ``test``, fold 0: each baseline, each candidate configuration, ``ex_ante_best_single`` and
  ``selected`` (the procedure's choice) on the pooled OOS series (``sharpe``, ``sharpe_2x``,
  ``total_return``, ``max_drawdown``, the bootstrap interval, the median path Sharpe). ``selected``
  is marked *proposed* only when it passed every gate; otherwise nothing is.
* window ``cpcv``, fold = outer split: every trial (configuration x seed x split) with its inner
  score and its test metrics, the full trial matrix the deflated Sharpe and PBO count.
* window ``upper_bound``: the hindsight DP oracle (kind ``bound``), beside and never ranked with them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from training.results import ResultsDB

BASELINE_NAMES_EXTRA = ("ex_ante_best_single",)


def research_run_id(fingerprint: str) -> str:
    """The results-DB run id of a research run: stable across reruns on the same data and splits.

    ``rs`` + the fingerprint's hex: the leaderboard's 8-character run column still tells runs apart,
    and ``runs`` shows its kind (``research``)."""
    return "rs" + fingerprint[:30]


def _max_drawdown(r: np.ndarray) -> float:
    eq = np.cumprod(1 + r)
    return float(np.max(1 - eq / np.maximum.accumulate(eq))) if eq.size else 0.0


def research_rows(
    summary: Mapping[str, Any], trials: Sequence[Mapping[str, Any]], pooled: Mapping[str, np.ndarray]
) -> list[dict[str, Any]]:
    """The evaluation rows of a run (see the module doc). ``pooled``: name -> pooled OOS returns."""
    configs = set(summary["configs"])
    rows: list[dict[str, Any]] = []
    for name, sharpe in summary["sharpe"].items():
        lo, hi = summary["sharpe_ci95"][name]
        metrics = {
            "sharpe": sharpe,
            "sharpe_2x": summary["sharpe_2x"][name],
            "total_return": summary["total_return"][name],
            "max_drawdown": _max_drawdown(pooled[name]),
            "sharpe_ci95_lo": lo,
            "sharpe_ci95_hi": hi,
            "median_path_sharpe": float(np.median(summary["path_sharpes"][name])),
        }
        params: dict[str, Any] = {}
        if name == "selected":
            metrics["passes_gates"] = bool(summary["selected_passes"])
            params = {"chosen_per_split": list(summary["chosen_per_split"])}
        elif name == "ex_ante_best_single":
            params = {"chosen_per_split": list(summary["ex_ante_per_split"])}
        kind = "candidate" if name in configs or name == "selected" else "baseline"
        rows.append(
            {
                "candidate": name,
                "kind": kind,
                "algo": name.split(":", 1)[0] if kind == "candidate" else None,
                "window": "test",
                "fold": 0,
                "metrics": metrics,
                "params": params,
                "proposed": name == "selected" and bool(summary["selected_passes"]),
            }
        )
    for t in trials:
        rows.append(
            {
                "candidate": t["config"],
                "kind": "candidate",
                "algo": t["family"],
                "window": "cpcv",
                "fold": int(t["split"]),
                "metrics": {
                    "sharpe": t["test_sharpe"],
                    "sharpe_2x": t["test_sharpe_2x"],
                    "total_return": t["test_return"],
                    "inner_sharpe": t["inner_sharpe"],
                    "test_bars": t["test_bars"],
                    "seed": t["seed"],
                },
                "params": {**t["params"], "test_groups": t["test_groups"]},
            }
        )
    o = summary.get("oracle")
    if o:
        rows.append(
            {
                "candidate": "dp_oracle",
                "kind": "bound",
                "window": "upper_bound",
                "fold": 0,
                "metrics": dict(o),
            }
        )
    return rows


def publish(
    db: ResultsDB,
    summary: Mapping[str, Any],
    trials: Sequence[Mapping[str, Any]],
    pooled: Mapping[str, np.ndarray],
) -> str:
    """Write the run to ``db`` (replacing its earlier copy); returns the run id."""
    run_id = research_run_id(str(summary["fingerprint"]))
    config = {
        "research": True,
        "settings": summary["settings"],
        "configs": summary["configs"],
        "trials_logged": summary["trials_logged"],
        "selected_passes": summary["selected_passes"],
        "data": summary["data"],
    }
    db.put_research(
        run_id,
        research_rows(summary, trials, pooled),
        config=config,
        data_fingerprint=str(summary["fingerprint"]),
    )
    return run_id
