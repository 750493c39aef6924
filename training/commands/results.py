"""The results database and the live model: ``runs``, ``leaderboard``, ``select``,
``publish-research``, ``report``, ``retrain-check``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from training.commands.app import app
from training.commands.common import ArtifactsOpt, LiveOpt, ResultsOpt, _db_error, _live_engine, _results

LEADERBOARD_COLS = (
    ("sharpe", "{:.2f}"),
    ("sortino", "{:.2f}"),
    ("total_return", "{:+.1%}"),
    ("cagr", "{:+.1%}"),
    ("max_drawdown", "{:.1%}"),
    ("calmar", "{:.2f}"),
    ("trades", "{:d}"),
)


@app.command()
def runs(results_db: ResultsOpt = None, limit: Annotated[int, typer.Option("--limit", min=1)] = 20) -> None:
    """List the newest runs of the results database."""
    db = _results(results_db)
    rows = db.runs(limit)
    if not rows:
        typer.echo("no runs yet")
    for r in rows:
        typer.echo(
            f"{r['run_id']}  {r['started_at']:%Y-%m-%d %H:%M}  {r['kind']:<8} {r['status']:<9} "
            f"{r['username']}@{r['host']}  seed={r['seed']}"
        )


@app.command()
def leaderboard(
    metric: Annotated[str, typer.Option("--metric", help="rank by this metric")] = "sharpe",
    window: Annotated[str, typer.Option("--window", help="train | validation | test")] = "test",
    run: Annotated[str, typer.Option("--run", help="run id, unique prefix, 'latest' or 'all'")] = "latest",
    results_db: ResultsOpt = None,
) -> None:
    """Print every candidate's metrics on a window; the best by --metric is marked with '*'."""
    from training.results import LOWER_IS_BETTER, ResultsError

    db = _results(results_db)
    try:
        run_id = None if run == "all" else db.run(run)["run_id"]
    except ResultsError as exc:
        raise typer.BadParameter(str(exc), param_hint="--run") from None
    rows = db.evaluations(run_id=run_id, window=window)
    if not rows:
        windows = sorted({r.window for r in db.evaluations(run_id=run_id)})
        raise typer.BadParameter(
            f"no evaluations on window {window!r} (windows: {', '.join(windows) or 'none'})",
            param_hint="--window",
        )
    if not any(isinstance(r.metrics.get(metric), int | float) for r in rows):
        known = sorted({k for r in rows for k in r.metrics})
        raise typer.BadParameter(
            f"unknown metric {metric!r}; known: {', '.join(known)}", param_hint="--metric"
        )
    sign = 1.0 if metric in LOWER_IS_BETTER else -1.0
    ranked = sorted(
        rows,
        key=lambda r: (
            sign * float(r.metrics[metric])
            if isinstance(r.metrics.get(metric), int | float)
            else float("inf")
        ),
    )
    best = ranked[0]
    chosen = db.latest_selection()
    cols = list(LEADERBOARD_COLS)
    if metric not in dict(cols):
        cols.insert(0, (metric, "{:.4g}"))
    width = max(len(r.candidate) for r in rows) + 2
    head = (
        f"  {'id':>6} {'run':<9}{'candidate'.ljust(width)}{'kind':<9}{'fold':>4}"
        + "".join(c.rjust(14) for c, _ in cols)
        + "  notes"
    )
    typer.echo(f"window {window}, ranked by {metric} ({'lower' if sign > 0 else 'higher'} is better)")
    typer.echo(head)
    typer.echo("-" * len(head))
    for r in ranked:
        notes = []
        if r.proposed:
            notes.append("proposed")
        if chosen and chosen["run_id"] == r.run_id and chosen["candidate"] == r.candidate:
            notes.append("selected")
        cells = "".join(_cell(r.metrics.get(c), f).rjust(14) for c, f in cols)
        mark = "*" if r is best else " "
        typer.echo(
            f"{mark} {r.id:>6} {r.run_id[:8]:<9}{r.candidate.ljust(width)}{r.kind:<9}"
            f"{r.fold:>4}{cells}  {', '.join(notes)}"
        )
    typer.echo(f"* best by {metric}: {best.candidate} (evaluation {best.id}, run {best.run_id})")


def _cell(value: object, fmt: str) -> str:
    if not isinstance(value, int | float):
        return "-"
    return fmt.format(int(value) if fmt == "{:d}" else float(value))


@app.command(name="select")
def select_cmd(
    model: Annotated[
        str,
        typer.Argument(
            help="<evaluation id> or <run>:<candidate>, run = id, unique prefix or 'latest' (e.g. latest:ppo)"
        ),
    ],
    results_db: ResultsOpt = None,
    database_url: LiveOpt = None,
    by: Annotated[str | None, typer.Option("--by", help="who selects (default: user@host)")] = None,
) -> None:
    """Upload a trained model to the live database and make it the selected one (hot-reloaded)."""
    from sqlalchemy.exc import SQLAlchemyError

    from training.results import who
    from training.results_live import SelectError, select_model

    db = _results(results_db)
    user, host = who()
    try:
        sel = select_model(db, model, _live_engine(database_url), selected_by=by or f"{user}@{host}")
    except SelectError as exc:
        raise typer.BadParameter(str(exc), param_hint="MODEL") from None
    except SQLAlchemyError as exc:
        raise typer.BadParameter(_db_error(exc), param_hint="--database-url") from None
    typer.echo(
        f"selected {sel.model_id} (sha256 {sel.sha256[:16]}..., strategies "
        f"{', '.join(sel.strategies)})" + (f"; replaces {sel.previous}" if sel.previous else "")
    )


@app.command(name="publish-research")
def publish_research_cmd(
    run: Annotated[
        str,
        typer.Argument(
            help="research run id (rs...), unique prefix or 'latest' (the newest run of any kind)"
        ),
    ],
    results_db: ResultsOpt = None,
    database_url: LiveOpt = None,
) -> None:
    """Copy a research run's baselines and candidates to the live DB: the bridge's leaderboard lists them."""
    from sqlalchemy.exc import SQLAlchemyError

    from training.results_live import SelectError, publish_research_live

    db = _results(results_db)
    try:
        pub = publish_research_live(db, run, _live_engine(database_url))
    except SelectError as exc:
        raise typer.BadParameter(str(exc), param_hint="RUN") from None
    except SQLAlchemyError as exc:
        raise typer.BadParameter(_db_error(exc), param_hint="--database-url") from None
    finally:
        db.close()
    typer.echo(publish_verdict(pub.run_id, pub.rows, pub.selected_passes))


def publish_verdict(run_id: str, rows: int, passes: bool) -> str:
    """The one line ``publish-research`` and ``research --publish-live`` print."""
    verdict = "selected is proposed" if passes else "selected is NOT proposed (it fails the gates)"
    return f"published research run {run_id} to the live leaderboard: {rows} rows; {verdict}"


@app.command()
def report(
    run: Annotated[str, typer.Option("--run", help="run id, unique prefix or 'latest'")] = "latest",
    out: Annotated[
        Path | None, typer.Option("--out", help="output folder (default: ARTIFACTS/runs/RUN/report)")
    ] = None,
    metric: Annotated[str, typer.Option("--metric")] = "sharpe",
    results_db: ResultsOpt = None,
    artifacts: ArtifactsOpt = None,
) -> None:
    """HTML report of a run: equity and drawdown per model and baseline, and the metrics table."""
    from training.report import build_report
    from training.results import ResultsError

    db = _results(results_db, artifacts)
    try:
        run_id = db.run(run)["run_id"]
    except ResultsError as exc:
        raise typer.BadParameter(str(exc), param_hint="--run") from None
    path = build_report(db, run_id, out or db.run_dir(run_id) / "report", metric=metric)
    typer.echo(f"report of run {run_id} -> {path}")


@app.command(name="retrain-check")
def retrain_check_cmd(
    database_url: LiveOpt = None,
    registry: Annotated[
        Path | None, typer.Option("--registry", help="strategies registry (default: BTCMETA_REGISTRY_PATH)")
    ] = None,
) -> None:
    """Exit 1 when the selected model's strategies differ from the registry's enabled ones (retrain)."""
    from sqlalchemy.exc import SQLAlchemyError

    from common.registry import RegistryError, load_registry
    from config import load_settings
    from training.results_live import retrain_check

    try:
        reg = load_registry(registry or load_settings().registry_path, import_classes=False)
    except RegistryError as exc:
        raise typer.BadParameter(str(exc), param_hint="--registry") from None
    live = tuple(s.name for s in reg.enabled)
    try:
        check = retrain_check(_live_engine(database_url), live)
    except SQLAlchemyError as exc:
        raise typer.BadParameter(_db_error(exc), param_hint="--database-url") from None
    typer.echo(("RETRAIN NEEDED: " if check.needed else "up to date: ") + check.reason)
    typer.echo(f"  model strategies:    {', '.join(check.model_strategies) or '-'}")
    typer.echo(f"  registry strategies: {', '.join(check.live_strategies)}")
    raise typer.Exit(1 if check.needed else 0)
