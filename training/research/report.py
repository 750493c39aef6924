"""``docs/research/REPORT.md`` and its PNGs, from ``summary.json`` and the series the run saved.

Plain words first: whether the procedure's choice passed the gates, and if not, that live keeps
the majority vote. Then the tables (baselines, candidates, gates) and the plots a person would look
at: OOS equity per CPCV path, Sharpe across paths, the PBO logit histogram, bootstrap intervals,
and the Hedge weights over time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

BENCH_ORDER = ("buy_and_hold", "flat", "majority_vote", "equal_weight", "ex_ante_best_single")


_FILL_TEXT = {
    "next_open": "the next bar's open (the price after the decision bar closes)",
    "signal_close": "the decision bar's close",
}


def _plots(run: Path, dest: Path, summary: dict[str, Any]) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    z = np.load(run / "series.npz", allow_pickle=False)
    names = [str(x) for x in z["names"]]
    col = {k: j for j, k in enumerate(names)}
    when = pd.to_datetime(z["index_ns"], utc=True)
    made: list[tuple[str, str]] = []

    fig, ax = plt.subplots(figsize=(10, 4.5))
    sel_paths = z[f"paths_{col['selected']}"]
    for p in range(sel_paths.shape[0]):
        ax.plot(
            when,
            np.cumprod(1 + sel_paths[p]),
            lw=0.8,
            color="tab:blue",
            alpha=0.6,
            label="selected (per path)" if p == 0 else None,
        )
    for k, c in (("majority_vote", "tab:orange"), ("buy_and_hold", "grey"), ("equal_weight", "tab:green")):
        ax.plot(when, np.cumprod(1 + z["pooled1"][:, col[k]]), lw=1.0, color=c, label=k)
    ax.set_yscale("log")
    ax.set_title("Out-of-sample equity per CPCV path (net of fees, slippage, real funding)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(dest / "equity_paths.png", dpi=110)
    plt.close(fig)
    made.append(("equity_paths.png", "OOS equity per CPCV path"))

    ps = summary["path_sharpes"]
    shown = ["selected", "ex_ante_best_single", "majority_vote", "equal_weight", "buy_and_hold"] + summary[
        "configs"
    ]
    fig, ax = plt.subplots(figsize=(10, max(4, 0.28 * len(shown))))
    ax.boxplot([ps[k] for k in shown], orientation="horizontal", tick_labels=shown)
    ax.axvline(0, color="k", lw=0.5)
    ax.set_xlabel("annualized Sharpe on each CPCV path")
    ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    fig.savefig(dest / "sharpe_paths.png", dpi=110)
    plt.close(fig)
    made.append(("sharpe_paths.png", "Sharpe distribution across CPCV paths"))

    if z["logits"].size:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.hist(z["logits"], bins=30, color="tab:purple")
        ax.axvline(0, color="k", lw=0.8)
        ax.set_title(f"CSCV logits of the IS winner's OOS rank (PBO = {summary['pbo']:.2f})")
        fig.tight_layout()
        fig.savefig(dest / "pbo_logits.png", dpi=110)
        plt.close(fig)
        made.append(("pbo_logits.png", "PBO logit histogram"))

    ci = summary["sharpe_ci95"]
    order = sorted(ci, key=lambda k: summary["sharpe"][k])
    fig, ax = plt.subplots(figsize=(10, max(4, 0.22 * len(order))))
    y = np.arange(len(order))
    pt = [summary["sharpe"][k] for k in order]
    ax.errorbar(
        pt,
        y,
        xerr=[
            [p - ci[k][0] for p, k in zip(pt, order, strict=True)],
            [ci[k][1] - p for p, k in zip(pt, order, strict=True)],
        ],
        fmt="o",
        ms=3,
    )
    ax.set_yticks(y, order, fontsize=6)
    ax.axvline(0, color="k", lw=0.5)
    ax.set_xlabel("pooled OOS Sharpe, 95 % stationary-bootstrap interval")
    fig.tight_layout()
    fig.savefig(dest / "bootstrap_intervals.png", dpi=110)
    plt.close(fig)
    made.append(("bootstrap_intervals.png", "Bootstrap intervals of the pooled Sharpe"))

    hw = run / "hedge_weights.npz"
    if hw.exists():
        h = np.load(hw)
        fig, ax = plt.subplots(figsize=(10, 4.5))
        for j, s in enumerate(summary["data"]["strategies"]):
            ax.plot(when, h["net"][:, j], lw=0.7, label=s)
        ax.plot(when, h["flat"], lw=1.0, color="k", label="flat")
        ax.set_title(f"Hedge net weight per strategy (w - w_negated), {h['config']}")
        ax.legend(fontsize=6, ncol=4)
        fig.tight_layout()
        fig.savefig(dest / "hedge_weights.png", dpi=110)
        plt.close(fig)
        made.append(("hedge_weights.png", "Hedge weights over time"))
    return made


def _failures(summary: dict[str, Any]) -> str:
    """One sentence naming every gate the selected series missed (or that it missed none)."""
    missed = []
    for b in BENCH_ORDER:
        r = summary["gates"][b]
        if not r["ahead"]:
            missed.append(f"not ahead of {b}")
        elif not r["significant"]:
            missed.append(f"ahead of {b} but not significantly (corrected p {r['p_corrected']:.2f})")
        if not r["ahead_2x"]:
            missed.append(f"behind {b} at 2x costs")
    if summary["pbo"] > summary["settings"]["max_pbo"]:
        missed.append(f"PBO {summary['pbo']:.2f} above {summary['settings']['max_pbo']}")
    return "Gates missed: " + "; ".join(missed) + "." if missed else "Every gate is met."


def _seed_spread(summary: dict[str, Any]) -> str:
    """How far the random seed alone moves a family's pooled Sharpe (configurations equal but for it)."""
    groups: dict[str, list[tuple[int, float]]] = {}
    for key in summary["configs"]:
        family, _, params = key.partition(":")
        if not params.startswith("{"):  # ``search:j``: a search column, not one configuration
            continue
        p = json.loads(params)
        if "seed" in p:
            seed = int(p.pop("seed"))
            groups.setdefault(f"{family}:{json.dumps(p, sort_keys=True)}", []).append(
                (seed, summary["sharpe"][key])
            )
    if not groups:
        return ""
    parts = [
        f"`{g}` {min(v for _, v in sv):+.2f}..{max(v for _, v in sv):+.2f} over seeds "
        + ", ".join(str(s) for s, _ in sorted(sv))
        for g, sv in groups.items()
    ]
    return (
        "Seed spread (pooled OOS Sharpe of the same configuration under different random seeds): "
        + "; ".join(parts)
        + ". A spread this size is what choosing a seed on inner folds can buy by luck; each seed "
        "counts as a trial in the corrections."
    )


def _ran_rl(summary: dict[str, Any]) -> bool:
    return any(k.startswith("rl:") for k in summary["configs"])


def _rl_text(summary: dict[str, Any]) -> str:
    """The RL recast's line in the method list, with each horizon's seeds against their ensemble."""
    if not _ran_rl(summary):
        return ""
    per: dict[float, dict[str, Any]] = {}
    for key in summary["configs"]:
        if not key.startswith("rl:"):
            continue
        p = json.loads(key.partition(":")[2])
        slot = per.setdefault(float(p["horizon"]), {"seeds": []})
        if "seeds" in p:
            slot["ensemble"] = summary["sharpe"][key]
        else:
            slot["seeds"].append(summary["sharpe"][key])
    parts = []
    for h, v in sorted(per.items()):
        seeds = v["seeds"]
        ens = f", ensemble {v['ensemble']:+.2f}" if "ensemble" in v else ""
        spread = f"seeds {min(seeds):+.2f}..{max(seeds):+.2f}" if seeds else "no single seeds"
        parts.append(f"horizon {h:.0f} h (gamma {1 - 1 / h:.4f}): {spread}{ens}")
    return (
        "* RL recast (`--rl`, ADR 0024): ElegantRL discrete PPO choosing a target exposure in "
        "{-1, -0.5, 0, 0.5, 1}, rewarded with its net return minus the majority vote's on the same bar, "
        "discount matched to a holding horizon, FeatureSpec v2 (votes, per-strategy trailing P&L and hit "
        "rate over 24/168/720 h, agreement, volatility regime, trend, funding; constant columns dropped), "
        "fitted on the training bars of each fold; every seed is a logged trial and so is the seeds' "
        "ensemble (mean of their greedy paths, snapped). Pooled OOS Sharpe: " + "; ".join(parts) + "."
    )


def _count_text(summary: dict[str, Any]) -> str:
    """What the DSR's trial count counts (grid: the grid; optuna: every configuration tried)."""
    if summary.get("search", {}).get("method") == "optuna":
        return "distinct configurations tried on any split (every Optuna trial, plus the fixed grid)"
    return "configurations x seeds"


def _block_text(summary: dict[str, Any]) -> str:
    """The bootstrap's mean block and how it was chosen; a summary from before the automatic
    choice only has the fixed setting."""
    b = summary.get("bootstrap") or {
        "mean_block": summary["settings"]["bootstrap_block"],
        "method": "fixed",
    }
    if b["method"] != "politis-white":
        return f"mean block {b['mean_block']:g} h (fixed)"
    return (
        f"mean block {b['mean_block']:.0f} h (Politis-White: the longest of the {b['columns']} tested "
        f"series' estimates, `{b['longest_column']}`; their median {b['median_column_block']:.0f} h)"
    )


def _search_line(summary: dict[str, Any]) -> str:
    """How the inner choice's candidates were found, and where the trials ran (ADR 0019)."""
    where = summary.get("backend", "local process pool")
    srch = summary.get("search", {})
    if srch.get("method") != "optuna":
        return f"* Inner search: the fixed grid, every configuration on every split; trials ran on: {where}."
    return (
        f"* Inner search: Optuna TPE, {srch['trials_per_split']} proposals per outer split over "
        f"{', '.join(srch['families'])} (seeded per split, scored on that split's inner folds only; "
        "the round-2 families keep their grid). Column `search:j` is the j-th proposal of each "
        f"split's study, an out-of-sample series like a grid configuration; trials ran on: {where}."
    )


def _oracle_line(summary: dict[str, Any]) -> str:
    o = summary.get("oracle")
    if not o:
        return ""
    return (
        f"Upper bound (not a candidate): the hindsight DP oracle on the 0.25 exposure grid after fees, "
        f"slippage and funding reaches Sharpe {o['sharpe']:+.1f} ({o['sharpe_2x']:+.1f} at 2x costs), "
        f"equity x{1 + o['total_return']:.3g}, mean |exposure| {o['mean_abs_exposure']:.2f}, "
        f"turnover {o['turnover_per_year']:.0f} units/year: the room between it and every honest "
        "method is foresight, not fitting."
    )


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _f(x: float) -> str:
    return f"{x:+.2f}"


def write_report(run: Path, dest: Path, *, command: str = "") -> Path:
    """REPORT.md (+ PNGs) in ``dest`` from the run folder ``run``; returns the report's path."""
    summary = json.loads((run / "summary.json").read_text())
    dest.mkdir(parents=True, exist_ok=True)
    plots = _plots(run, dest, summary)
    s, s2, ci, ret = summary["sharpe"], summary["sharpe_2x"], summary["sharpe_ci95"], summary["total_return"]
    g = summary["gates"]
    passed = summary["selected_passes"]
    from collections import Counter

    chosen = Counter(summary["chosen_per_split"]).most_common()
    d, st, co = summary["data"], summary["settings"], summary["costs"]
    best = summary["hindsight_best_single"]
    sel_ci = f"{ci['selected'][0]:+.2f}..{ci['selected'][1]:+.2f}"
    lines = [
        "# Meta-policy research: "
        + ("non-RL candidates and the RL recast" if _ran_rl(summary) else "non-RL candidates")
        + " (issue 16)",
        "",
        f"Command: `{command}`" if command else "",
        "",
        "## Verdict",
        "",
        (
            "**The procedure's choice PASSED every gate** and may be proposed (not shipped by this run)."
            if passed
            else "**No candidate is selected: the procedure's choice fails the gates. "
            "Live keeps the majority vote.** The candidates stay on the leaderboard below; none is proposed."
        ),
        "",
        f"Selected (pooled OOS) Sharpe {_f(s['selected'])} (95 % CI {sel_ci}), "
        f"majority vote {_f(s['majority_vote'])}, equal weight {_f(s['equal_weight'])}, "
        f"buy & hold {_f(s['buy_and_hold'])}, ex-ante best single {_f(s['ex_ante_best_single'])}, "
        f"hindsight-best single `{best}` {_f(s[best])}. PBO {summary['pbo']:.2f}; deflated Sharpe of "
        f"the selected series {summary['dsr_selected']:.3f} with {summary['trial_count_for_dsr']} "
        "configurations tried.",
        "",
        _failures(summary),
        "",
        _oracle_line(summary),
        "",
        "## Data and protocol",
        "",
        f"* Bars: {d['bars']} hourly, {d['first'][:16]} .. {d['last'][:16]}; evaluated from "
        f"{d['evaluated_from'][:16]} (strategies' warm-up {d['warmup_bars']} bars).",
        f"* Strategies ({len(d['strategies'])}): {', '.join(d['strategies'])}.",
        f"* CPCV: {st['groups']} groups, {st['test_groups']} held out -> {summary['splits']} splits, "
        f"{summary['paths']} paths; purge {st['purge']} bars each side of a test group, embargo "
        f"{summary['embargo_bars']} bars after it. Inner folds (choice of the configuration, ex-ante best "
        "single) use the outer training groups only, each held out once, purged the same way.",
        f"* Trials logged: {summary['trials_logged']} (configuration x seed x outer split; only the "
        "Moody-Saffell trader is random, its seed is part of its configuration), in `trials.jsonl` of "
        "the run folder. DSR trial count = "
        f"{_count_text(summary)} = {summary['trial_count_for_dsr']}; PBO by CSCV ({st['cscv_blocks']} "
        "blocks) over the configurations' pooled OOS series.",
        _search_line(summary),
        f"* Costs: taker fee {co['taker_fee']:.4%}, slippage {co['slippage_bps']:g} bp per fill, fills at "
        f"{_FILL_TEXT.get(co.get('fill_price', 'signal_close'), co.get('fill_price'))} (ADR 0017), funding "
        f"from {co['funding_source']} on the exposure held at each settlement, each charged at the latest "
        f"rate published by then ({co['funding_covered_share']:.1%} of evaluated bars covered; mean "
        f"{co['funding_mean_per_8h']:.2e} per 8h; elsewhere the constant "
        f"{co['funding_fallback_hourly']:.2e}/h). Stress: the same exposures at 2x fees, slippage, funding.",
        "* CPCV fits the ridge / logistic candidates on groups after a test group too (purge and embargo "
        "keep their inputs apart); the chronological view is `python -m training walkforward`. Hedge, "
        "the volatility-managed vote and the Moody-Saffell trader are online (causal): each is computed "
        "once over the whole series and only its hyper-parameters (and the trader's seed) are chosen.",
        f"* Significance: White's Reality Check on Sharpe differences, stationary bootstrap "
        f"({st['bootstrap_reps']} resamples, {_block_text(summary)}), corrected over every "
        "configuration tried plus the selected series; Hansen's SPA on the same resamples beside it. A "
        "p-value from R resamples carries a Monte-Carlo error of about sqrt(p(1-p)/R) (0.01 at p = 0.05, "
        "R = 500): a p near 0.05 is a coin toss.",
        "* Families: Hedge (exponentiated gradient over strategies, negations, flat), volatility-managed "
        "vote, ridge / L2-logistic on votes + features; round 2: meta-labeling (L2-logistic deciding when "
        "to follow the vote, labels purged to training bars), Moody-Saffell direct reinforcement on the "
        "differential Sharpe ratio (online tanh trader, 3 seeds per step size, each seed a logged trial), "
        "imitation of the DP oracle (long / short logistics fitted to the oracle path of the training "
        "bars only). The DP oracle itself is an upper bound, not a candidate.",
        _rl_text(summary),
        f"* This invocation: {summary.get('wall_seconds', float('nan')):.0f} s wall, "
        f"{summary.get('trials_run_now', '?')} trials run (the rest reused from the run folder), "
        f"{summary.get('workers', 1)} local worker process(es); "
        + (
            f"results database run `{summary['results_run_id']}` holds every trial (window `cpcv`), "
            "the pooled rows (window `test`) and the oracle bound (window `upper_bound`): "
            f"`python -m training leaderboard --run {summary['results_run_id']}`."
            if summary.get("results_run_id")
            else "not written to the results database (--no-db)."
        ),
        "",
        "## Gates for the selected series",
        "",
        "| benchmark | its Sharpe | selected - it | ahead | p (RC, corrected) | p (SPA) | p (single) "
        "| ahead at 2x costs |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for b in BENCH_ORDER:
        r = g[b]
        spa = f"{r['p_spa']:.3f}" if "p_spa" in r else "-"
        lines.append(
            f"| {b} | {_f(r['benchmark_sharpe'])} | {_f(r['sharpe_diff'])} | {_yes(r['ahead'])} | "
            f"{r['p_corrected']:.3f} | {spa} | {r['p_single']:.3f} | {_yes(r['ahead_2x'])} |"
        )
    lines += [
        f"| PBO <= {summary['settings']['max_pbo']} | | | | {summary['pbo']:.2f} | | | |",
        "",
        "The gate reads White's RC p (the stricter of the two); Hansen's SPA (studentized, consistent "
        "recentring: candidates far below the benchmark do not dilute it) is shown beside it.",
        "",
        "Configuration chosen per outer split (inner folds): "
        + ", ".join(f"`{k}` x{c}" for k, c in chosen)
        + ". Ex-ante best single per split: "
        + ", ".join(f"`{k}` x{c}" for k, c in Counter(summary["ex_ante_per_split"]).most_common())
        + ".",
        "",
        _seed_spread(summary),
        "",
        "## Leaderboard (pooled OOS over all paths)",
        "",
        "| name | Sharpe | 95 % CI | Sharpe at 2x costs | total return | median path Sharpe |",
        "|---|---|---|---|---|---|",
    ]
    for k in sorted(s, key=lambda k: -s[k]):
        lines.append(
            f"| `{k}` | {_f(s[k])} | {ci[k][0]:+.2f}..{ci[k][1]:+.2f} | {_f(s2[k])} | {ret[k]:+.1%} | "
            f"{np.median(summary['path_sharpes'][k]):+.2f} |"
        )
    lines += ["", "## Plots", ""]
    lines += [f"### {title}\n\n![{title}]({name})\n" for name, title in plots]
    lines += [
        "## Not done in this round",
        "",
        *(
            []
            if _ran_rl(summary)
            else ["* This run left out the RL recast (`--rl`: ElegantRL PPO on target exposures, ADR 0024)."]
        ),
        "* Selecting a combiner live: every family, `rl` included, exports (`python -m training "
        "export-combiner`, ADR 0020, 0025, 0026, 0027); nothing passed the gates, so none is selected.",
        "",
    ]
    path = dest / "REPORT.md"
    path.write_text("\n".join(lines))
    return path
