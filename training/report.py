"""The HTML report of one run: equity and drawdown per model and baseline, and the metrics table.

Built from the results database plus the local curve files (``.npz`` per evaluation, path
recorded), so it can be rebuilt later without re-running anything. One equity PNG and one
drawdown PNG per (window, fold); matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

import html
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from training.results import LOWER_IS_BETTER, EvaluationRow, ResultsDB, safe_name

COLUMNS = (
    ("total_return", "{:+.1%}"),
    ("cagr", "{:+.1%}"),
    ("sharpe", "{:.2f}"),
    ("sortino", "{:.2f}"),
    ("calmar", "{:.2f}"),
    ("max_drawdown", "{:.1%}"),
    ("win_rate", "{:.0%}"),
    ("trades", "{:d}"),
    ("time_in_market", "{:.0%}"),
)


def _fmt(value: Any, fmt: str) -> str:
    if value is None:
        return "-"
    try:
        return fmt.format(int(value) if fmt == "{:d}" else float(value))
    except (TypeError, ValueError):
        return html.escape(str(value))


def best_by(rows: list[EvaluationRow], metric: str) -> EvaluationRow | None:
    scored = [r for r in rows if isinstance(r.metrics.get(metric), int | float)]
    if not scored:
        return None
    sign = 1.0 if metric in LOWER_IS_BETTER else -1.0
    return min(scored, key=lambda r: sign * float(r.metrics[metric]))


def _plot(
    groups: list[tuple[str, pd.DatetimeIndex | np.ndarray, np.ndarray]],
    title: str,
    ylabel: str,
    path: Path,
    *,
    log: bool = False,
    models: frozenset[str] = frozenset(),
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 5))
    for name, x, y in groups:  # models bold, single-strategy baselines dotted
        model = name in models
        style = ":" if name.startswith(("single:", "flat")) and not model else "-"
        ax.plot(x, y, style, linewidth=2.2 if model else 1.2 if style == "-" else 0.9, label=name)
    if log:
        ax.set_yscale("log")
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def build_report(results: ResultsDB, run_ref: str, out_dir: Path, *, metric: str = "sharpe") -> Path:
    """Write ``out_dir/report.html`` and its PNGs for run ``run_ref``; returns the HTML path."""
    run = results.run(run_ref)
    rows = results.evaluations(run_id=run["run_id"])
    out_dir.mkdir(parents=True, exist_ok=True)
    groups: dict[tuple[str, int], list[EvaluationRow]] = defaultdict(list)
    for r in rows:
        groups[(r.window, r.fold)].append(r)
    order = {"train": 0, "validation": 1, "test": 2}
    sections = []
    missing: list[str] = []
    for (window, fold), evs in sorted(
        groups.items(), key=lambda kv: (kv[0][1], order.get(kv[0][0], 9), kv[0][0])
    ):
        equity, drawdown = [], []
        for r in evs:
            if not r.curve_path or not Path(r.curve_path).is_file():
                missing.append(
                    f"{r.candidate} ({window}, fold {fold}): {r.curve_path or 'no curve recorded'}"
                )
                continue
            z = results.load_curve(r.curve_path)
            x = pd.to_datetime(z["time"], utc=True) if bool(z["has_time"]) else z["time"]
            eq = z["equity"]
            equity.append((r.candidate, x, eq))
            drawdown.append((r.candidate, x, eq / np.maximum.accumulate(eq) - 1.0))
        stem = f"{safe_name(window)}_fold{fold}"
        models = frozenset(r.candidate for r in evs if r.kind == "model")
        images = []
        if equity:
            _plot(
                equity,
                f"Equity, {window} window, fold {fold} (start = 1.0, log scale)",
                "equity",
                out_dir / f"equity_{stem}.png",
                log=True,
                models=models,
            )
            _plot(
                drawdown,
                f"Drawdown, {window} window, fold {fold}",
                "drawdown from peak",
                out_dir / f"drawdown_{stem}.png",
                models=models,
            )
            images = [f"equity_{stem}.png", f"drawdown_{stem}.png"]
        sections.append(_section(window, fold, evs, images, metric))
    doc = _page(run, sections, missing, metric)
    path = out_dir / "report.html"
    path.write_text(doc, encoding="utf-8")
    return path


def _section(window: str, fold: int, evs: list[EvaluationRow], images: list[str], metric: str) -> str:
    best = best_by(evs, metric)
    head = "".join(f"<th>{c}</th>" for c, _ in COLUMNS)
    body = []
    for r in sorted(evs, key=lambda e: (e.kind != "model", e.candidate)):
        marks = []
        if best is not None and r.id == best.id:
            marks.append(f"best {metric}")
        if r.proposed:
            marks.append("proposed")
        cls = ' class="best"' if best is not None and r.id == best.id else ""
        cells = "".join(f"<td>{_fmt(r.metrics.get(c), f)}</td>" for c, f in COLUMNS)
        body.append(
            f"<tr{cls}><td>{r.id}</td><td>{html.escape(r.candidate)}</td><td>{r.kind}</td>{cells}"
            f"<td>{html.escape(', '.join(marks))}</td></tr>"
        )
    imgs = "".join(f'<img src="{html.escape(i)}" alt="{html.escape(i)}">' for i in images)
    return (
        f"<h2>{html.escape(window)} window, fold {fold}</h2>\n<table><tr><th>id</th><th>candidate</th>"
        f"<th>kind</th>{head}<th></th></tr>\n" + "\n".join(body) + f"\n</table>\n{imgs}\n"
    )


def _page(run: dict[str, Any], sections: list[str], missing: list[str], metric: str) -> str:
    info = {
        k: run.get(k)
        for k in (
            "run_id",
            "kind",
            "status",
            "username",
            "host",
            "started_at",
            "finished_at",
            "git_commit",
            "data_fingerprint",
            "seed",
        )
    }
    meta = "".join(f"<tr><th>{k}</th><td>{html.escape(str(v))}</td></tr>" for k, v in info.items())
    warn = (
        (
            "<p class=warn>Curves missing (files stay on the machine that trained): "
            + html.escape("; ".join(missing))
            + "</p>"
        )
        if missing
        else ""
    )
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Training run {html.escape(run["run_id"])}</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}} th{{background:#f3f3f3}}
tr.best td{{font-weight:bold;background:#eef8ee}} img{{max-width:100%;display:block;margin:0.5em 0}}
.warn{{color:#a00}}</style></head><body>
<h1>Training run {html.escape(run["run_id"])}</h1>
<table>{meta}</table>
<p>Metrics per window (net of taker fee, slippage and funding). Bold: best {html.escape(metric)} in the
window. <em>proposed</em>: best mean validation score of the run (never selected automatically).</p>
{warn}
{"".join(sections)}
</body></html>
"""
