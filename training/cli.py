"""``python -m training <step>``: the offline training project, one command per step, and ``all``.

Data and features: ``download`` (candles from a CSV or CCXT), ``signals`` (strategy answers over
history -> .npz), ``features`` (market features normalized on the train window), ``split`` (print
the walk-forward windows). Training: ``train`` (ElegantRL agents on the train window, evaluated with
the baselines, recorded, best proposed), ``walkforward`` (folds -> report.json), ``baselines``.
Results (``training.results``): ``runs``, ``leaderboard``, ``report`` (HTML + PNGs), ``select``
(upload a model to the live ``models`` table and select it), ``retrain-check`` (exit 1 when the
registry changed), ``retrain`` (the scheduled entry point: train, evaluate, propose, never select).
``all`` runs every step once on one chronological split. ``replay-backtest`` (issue 9) replays the
data through the real services and compares with the vectorized backtest.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy import Engine
    from sqlalchemy.exc import SQLAlchemyError

    from training.results import ResultsDB
    from training.retrain import PipelineResult
    from training.signals import SignalArrays

# Start-up imports only typer: every command imports the training modules it runs (pandas,
# SQLAlchemy, gymnasium, torch, matplotlib, ccxt behind them), so `--help` and a mistyped option
# answer at once instead of after ~1,600 modules.

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Offline training of the BTC meta policy.")

DataOpt = Annotated[
    str, typer.Option("--data", help="candle CSV (date,open,high,low,close,volume) or 'bundled'")
]
Mode = Literal["expanding", "rolling"]


@app.callback()
def main() -> None:
    """Offline training of the BTC meta policy (torch-free steps)."""


def _load(data: str, exogenous: Path | None = None) -> tuple[pd.DataFrame, SignalArrays]:
    from training.data import InputError, load_candles
    from training.signals import compute_signals, training_exogenous

    try:
        candles = load_candles(data)
    except (InputError, OSError) as exc:
        raise typer.BadParameter(str(exc), param_hint="--data") from None
    try:
        return candles, compute_signals(candles, exogenous=training_exogenous(directory=exogenous))
    except (OSError, ValueError) as exc:  # an unreadable/mismatching series file, a bad registry entry
        raise typer.BadParameter(str(exc)) from None


def _position(index: pd.DatetimeIndex, when: str | None, default: int, hint: str) -> int:
    import pandas as pd

    if when is None:
        return default
    try:
        ts = pd.Timestamp(datetime.fromisoformat(when))
    except ValueError:
        raise typer.BadParameter(f"not an ISO date: {when!r}", param_hint=hint) from None
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return int(index.searchsorted(ts))


@app.command()
def signals(
    data: DataOpt = "bundled",
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            help="FILE.csv: each registered strategy's target "
            "(-1/0/1) per 1h bar, known at its close; "
            "otherwise the training arrays (.npz)",
        ),
    ] = Path("signals.npz"),
    exogenous: Annotated[
        Path | None,
        typer.Option(
            "--exogenous",
            help="folder of exogenous series (shared layout); without it: the "
            "configured exogenous.data_dir for .npz, none for .csv (strategies "
            "that read them then say 'no opinion', flat)",
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(
            "--until",
            help="ISO timestamp: cut every input at this time first (1h bars closed by "
            "then, observations published by then)",
        ),
    ] = None,
) -> None:
    """Run every enabled registry strategy over the history (.csv: target per 1h bar; .npz: arrays)."""
    if out.suffix.lower() != ".csv":
        if until is not None:
            raise typer.BadParameter("--until needs a .csv --out", param_hint="--out")
        _, sig = _load(data, exogenous)
        sig.save(out)
        typer.echo(
            f"{len(sig)} bars x {len(sig.strategies)} strategies ({', '.join(sig.strategies)}), "
            f"warm-up {sig.warmup} bars -> {out}"
        )
        return
    from training.data import InputError, load_candles
    from training.signals import parse_until, write_positions_csv  # the .csv path (issue 15)

    cut = None
    if until is not None:
        try:
            cut = parse_until(until)
        except ValueError:
            raise typer.BadParameter(f"not an ISO timestamp: {until!r}", param_hint="--until") from None
    if exogenous is not None and not exogenous.is_dir():
        raise typer.BadParameter(f"{exogenous} is not a folder", param_hint="--exogenous")
    try:
        candles = load_candles(data)
    except (InputError, OSError) as exc:
        raise typer.BadParameter(str(exc), param_hint="--data") from None
    try:
        table = write_positions_csv(candles, out, exogenous_dir=exogenous, until=cut)
    except (OSError, ValueError) as exc:  # an unreadable/mismatching series file, a bad registry entry
        raise typer.BadParameter(str(exc)) from None
    typer.echo(
        f"{len(table)} bars x {len(table.columns) - 1} strategies ({', '.join(table.columns[1:])}) -> {out}"
    )


@app.command()
def split(
    data: DataOpt = "bundled",
    folds: Annotated[int, typer.Option("--folds", min=1)] = 4,
    mode: Annotated[str, typer.Option("--mode", help="expanding | rolling")] = "expanding",
    embargo: Annotated[int, typer.Option("--embargo", min=0, help="bars between parts")] = 24,
) -> None:
    """Print the walk-forward train / validation / test windows (dates, bar counts)."""
    from training.split import walk_forward

    if mode not in ("expanding", "rolling"):
        raise typer.BadParameter("expanding or rolling", param_hint="--mode")
    candles, sig = _load(data)
    try:
        split_folds = walk_forward(
            len(candles),
            folds=folds,
            start=sig.warmup,
            mode=mode,  # type: ignore[arg-type]
            embargo=embargo,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--folds") from None
    for k, fold in enumerate(split_folds):
        parts = [
            f"{name} {sig.index[w.start]:%Y-%m-%d %H:%M}..{sig.index[w.end - 1]:%Y-%m-%d %H:%M} ({len(w)})"
            for name, w in (("train", fold.train), ("validation", fold.validation), ("test", fold.test))
        ]
        typer.echo(f"fold {k}: " + " | ".join(parts))


@app.command()
def baselines(
    data: DataOpt = "bundled",
    start: Annotated[str | None, typer.Option(help="ISO date (default: --last-days)")] = None,
    end: Annotated[str | None, typer.Option(help="ISO date, exclusive (default: data end)")] = None,
    last_days: Annotated[int, typer.Option("--last-days", min=1)] = 365,
    fit_days: Annotated[int, typer.Option(min=2, help="days before start for vol_scale")] = 365,
    json_out: Annotated[Path | None, typer.Option("--json", help="also write metrics here")] = None,
) -> None:
    """Evaluate every baseline on one window (default: the data's last year) and print a table."""
    import numpy as np
    import pandas as pd

    from training.backtest import evaluate, format_table, run_baselines
    from training.features import fit_stats
    from training.ledger import CostModel
    from training.market import Market
    from training.split import Window

    candles, sig = _load(data)
    idx = sig.index
    stop = _position(idx, end, len(idx), "--end")
    default_first = int(idx.searchsorted(idx[stop - 1] - pd.Timedelta(days=last_days)))
    first = _position(idx, start, default_first, "--start")
    first = max(first, sig.warmup)
    if stop - first < 2:
        raise typer.BadParameter("the window holds fewer than 2 bars after the strategies' warm-up")
    window = Window(first, stop)
    costs = CostModel()
    fit = Window(max(0, first - fit_days * 24), first) if first > 48 else Window(0, stop)
    close = candles["close"].to_numpy(np.float64)
    stats = fit_stats(close, fit, funding_rate_hourly=costs.funding_rate_hourly)
    market = Market.build(candles, sig, stats.spec(sig.strategies))
    results = evaluate(run_baselines(market, window, costs))
    typer.echo(
        f"window {idx[window.start]} .. {idx[window.end - 1]} ({len(window)} bars); taker fee "
        f"{costs.taker_fee:.4%}, slippage {costs.slippage_bps:g} bp, "
        f"funding {costs.funding_rate_hourly:.5%}/h"
    )
    typer.echo(format_table(results))
    if json_out is not None:
        json_out.write_text(json.dumps(results, indent=2, sort_keys=True))


AlgosOpt = Annotated[
    str,
    typer.Option(
        "--algos",
        help="comma-separated agents to train (ppo, a2c, dqn, sac, td3), or 'none' (baselines only)",
    ),
]


RewardOpt = Annotated[
    str,
    typer.Option(
        "--reward",
        help="training reward: pnl (equity change net of costs) or dsr (differential Sharpe "
        "ratio); every candidate is still chosen and scored on the same ledger metrics",
    ),
]


def _reward(text: str) -> str:
    from training.env import REWARDS

    if text not in REWARDS:
        raise typer.BadParameter(f"{text!r}: choose from {', '.join(REWARDS)}", param_hint="--reward")
    return text


def _algos(text: str) -> tuple[str, ...]:
    from training.rl import SUPPORTED

    names = tuple(dict.fromkeys(a.strip().lower() for a in text.split(",") if a.strip()))
    if names in ((), ("none",)):
        return ()
    unknown = [a for a in names if a not in SUPPORTED]
    if unknown:
        raise typer.BadParameter(
            f"unknown agent(s) {', '.join(unknown)}; choose from {', '.join(SUPPORTED)}", param_hint="--algos"
        )
    return names


@app.command()
def walkforward(
    data: DataOpt = "bundled",
    folds: Annotated[int, typer.Option("--folds", min=1)] = 4,
    budget_steps: Annotated[
        int, typer.Option("--budget-steps", min=0, help="env steps per agent and fold; 0 = baselines only")
    ] = 0,
    out: Annotated[Path, typer.Option(help="output directory")] = Path("out/walkforward"),
    algos: AlgosOpt = "ppo,a2c,dqn,sac",
    seed: Annotated[int, typer.Option("--seed")] = 0,
    mode: Annotated[str, typer.Option("--mode", help="expanding | rolling")] = "expanding",
    embargo: Annotated[int, typer.Option("--embargo", min=0)] = 24,
    reward: RewardOpt = "pnl",
) -> None:
    """Walk-forward folds: train agents per fold, select on validation, score on test; OUT/report.json."""
    from training.walkforward import run_walkforward

    if mode not in ("expanding", "rolling"):
        raise typer.BadParameter("expanding or rolling", param_hint="--mode")
    reward = _reward(reward)
    agents = _algos(algos) if budget_steps > 0 else ()
    candles, sig = _load(data)
    try:
        report = run_walkforward(
            candles,
            sig,
            folds=folds,
            budget_steps=budget_steps,
            mode=mode,  # type: ignore[arg-type]
            embargo=embargo,
            algos=agents,
            seed=seed,
            out_dir=out,
            progress=True,
            reward=reward,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2))
    for k, fold in enumerate(report["folds"]):
        sel = fold["results"][fold["selected"]]
        typer.echo(
            f"fold {k}: test {fold['test'][0][:10]}..{fold['test'][1][:10]} "
            f"selected {fold['selected']} "
            f"(test sharpe {sel['sharpe']:.2f}, return {sel['total_return']:+.1%})"
        )
    typer.echo(f"selected overall: {report['selected']} -> {out / 'report.json'}")


# ---------------------------------------------------------------------------------------------
# Results database, leaderboard, selection for live trading, report, retraining, data download.

ResultsOpt = Annotated[
    str | None,
    typer.Option(
        "--results-db",
        help="results database URL (default: BTCMETA_TRAINING__RESULTS_DATABASE_URL, a local SQLite file)",
    ),
]
ArtifactsOpt = Annotated[
    Path | None,
    typer.Option(
        "--artifacts", help="folder for model files and curves (default: BTCMETA_TRAINING__ARTIFACTS_DIR)"
    ),
]
LiveOpt = Annotated[
    str | None, typer.Option("--database-url", help="live database URL (default: BTCMETA_DATABASE_URL)")
]
LEADERBOARD_COLS = (
    ("sharpe", "{:.2f}"),
    ("sortino", "{:.2f}"),
    ("total_return", "{:+.1%}"),
    ("cagr", "{:+.1%}"),
    ("max_drawdown", "{:.1%}"),
    ("calmar", "{:.2f}"),
    ("trades", "{:d}"),
)


def _results(url: str | None, artifacts: Path | None = None) -> ResultsDB:
    from sqlalchemy.exc import SQLAlchemyError

    from training.results import ResultsDB

    try:
        return ResultsDB.open(url, artifacts)
    except SQLAlchemyError as exc:
        raise typer.BadParameter(
            f"cannot open the results database: {exc.__class__.__name__}: {str(exc).splitlines()[0]}",
            param_hint="--results-db",
        ) from None


def _db_error(exc: SQLAlchemyError) -> str:
    """The first line of a driver error (no SQL, no parameters), for a usage message."""
    return f"live database: {exc.__class__.__name__}: {str(getattr(exc, 'orig', exc)).splitlines()[0]}"


def _live_engine(url: str | None) -> Engine:
    from common.db.session import make_engine
    from config import load_settings

    return make_engine(url or load_settings().database_url.get_secret_value())


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


@app.command()
def retrain(
    data: DataOpt = "bundled",
    hook: Annotated[
        str | None,
        typer.Option(
            "--hook",
            help="custom train hook package.module:function (TrainContext -> trained "
            "models), instead of --algos",
        ),
    ] = None,
    algos: AlgosOpt = "ppo,a2c,dqn,sac",
    folds: Annotated[int, typer.Option("--folds", min=1)] = 1,
    last_days: Annotated[
        int | None, typer.Option("--last-days", min=30, help="use only the newest days of data")
    ] = None,
    budget_steps: Annotated[int, typer.Option("--budget-steps", min=0)] = 0,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    metric: Annotated[
        str, typer.Option("--metric", help="proposal rule: best mean validation metric")
    ] = "sharpe",
    mode: Annotated[str, typer.Option("--mode", help="expanding | rolling")] = "expanding",
    embargo: Annotated[int, typer.Option("--embargo", min=0)] = 24,
    with_report: Annotated[
        bool, typer.Option("--report/--no-report", help="also write the HTML report of the run")
    ] = True,
    reward: RewardOpt = "pnl",
    results_db: ResultsOpt = None,
    artifacts: ArtifactsOpt = None,
) -> None:
    """Scheduled retraining: train (hook), evaluate models and baselines, record a run, propose the best.

    Never selects: a person runs `select` after looking at the leaderboard or report.
    """
    import pandas as pd

    if mode not in ("expanding", "rolling"):
        raise typer.BadParameter("expanding or rolling", param_hint="--mode")
    candles, _ = _load_only(data)
    if last_days is not None:
        candles = candles[candles.index >= candles.index[-1] - pd.Timedelta(days=last_days)]
    _train_and_record(
        candles,
        data=data,
        hook=hook,
        algos=algos,
        folds=folds,
        budget_steps=budget_steps,
        seed=seed,
        metric=metric,
        mode=mode,
        embargo=embargo,
        with_report=with_report,
        results_db=results_db,
        artifacts=artifacts,
        kind="retrain",
        reward=reward,
        extra={"last_days": last_days},
    )


def _train_and_record(
    candles: pd.DataFrame,
    *,
    data: str,
    hook: str | None,
    algos: str,
    folds: int,
    budget_steps: int,
    seed: int,
    metric: str,
    mode: str,
    embargo: int,
    with_report: bool,
    results_db: str | None,
    artifacts: Path | None,
    kind: str,
    reward: str = "pnl",
    extra: dict[str, object] | None = None,
) -> tuple[ResultsDB, PipelineResult]:
    """Train (hook or agents), evaluate, record, propose, report: shared by train, retrain and all."""
    from training.pipeline import TrainHook, agents_hook, proposal_caution
    from training.report import build_report
    from training.retrain import load_hook, run_pipeline
    from training.signals import compute_signals, training_exogenous

    reward = _reward(reward)
    db = _results(results_db, artifacts)
    train_hook: TrainHook | None
    if hook:
        try:
            train_hook = load_hook(hook)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--hook") from None
        hook_name: str | None = hook
    else:
        agents = _algos(algos)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        where = db.artifacts_dir / "checkpoints" / f"{kind}-{stamp}"
        train_hook = agents_hook(agents, where, reward=reward) if agents else None
        hook_name = f"agents:{','.join(agents)}" if agents else None
    sig = compute_signals(candles, exogenous=training_exogenous())
    try:
        res = run_pipeline(
            db,
            candles,
            sig,
            hook=train_hook,
            hook_name=hook_name,
            folds=folds,
            mode=mode,  # type: ignore[arg-type]
            embargo=embargo,
            seed=seed,
            budget_steps=budget_steps,
            metric=metric,
            kind=kind,
            extra_config={"data": data, **({"reward": reward} if not hook else {}), **(extra or {})},
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(f"run {res.run_id}: {res.evaluations} evaluations of {len(res.candidates)} candidates")
    for o in res.overfitting:
        typer.echo(
            f"fold {o['fold']}: validation chose {o['chosen']}; probability of backtest overfitting "
            f"{o['pbo']:.0%} (CSCV, {o['splits']} splits); deflated Sharpe of the choice on "
            f"validation {o['deflated_sharpe_validation'][o['chosen']]:.2f}, on test "
            f"{o['deflated_sharpe_selected_test']:.2f} (P[true Sharpe > 0])"
        )
    if with_report:
        page = build_report(db, res.run_id, db.run_dir(res.run_id) / "report", metric=metric)
        typer.echo(f"report: {page}")
    if res.proposed is None:
        typer.echo("nothing proposed")
    elif res.proposed_kind == "model":
        typer.echo(
            f"proposed: {res.proposed} (best mean validation {metric}); to trade it: "
            f"python -m training select {res.run_id}:{res.proposed}"
        )
        caution = proposal_caution(res.proposed, res.overfitting, len(res.candidates))
        if caution:
            typer.echo(f"caution: {caution}")
    else:
        typer.echo(
            f"proposed: {res.proposed}, a baseline (best mean validation {metric}): no trained model "
            "beat it, nothing to select"
        )
    return db, res


@app.command()
def train(
    data: DataOpt = "bundled",
    algos: AlgosOpt = "ppo,a2c,dqn,sac",
    budget_steps: Annotated[
        int,
        typer.Option(
            "--budget-steps",
            min=0,
            help="env steps per agent; 0 = each agent's default (training.rl.DEFAULT_BUDGETS)",
        ),
    ] = 0,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    folds: Annotated[int, typer.Option("--folds", min=1)] = 1,
    metric: Annotated[str, typer.Option("--metric")] = "sharpe",
    embargo: Annotated[int, typer.Option("--embargo", min=0)] = 24,
    with_report: Annotated[bool, typer.Option("--report/--no-report")] = True,
    reward: RewardOpt = "pnl",
    results_db: ResultsOpt = None,
    artifacts: ArtifactsOpt = None,
) -> None:
    """Train agents on the train window, evaluate with the baselines, record the run, propose the best."""
    candles, _ = _load_only(data)
    _train_and_record(
        candles,
        data=data,
        hook=None,
        algos=algos,
        folds=folds,
        budget_steps=budget_steps,
        seed=seed,
        metric=metric,
        mode="expanding",
        embargo=embargo,
        with_report=with_report,
        results_db=results_db,
        artifacts=artifacts,
        kind="manual",
        reward=reward,
    )


@app.command(name="all")
def all_steps(
    data: DataOpt = "bundled",
    out: Annotated[Path, typer.Option("--out", help="working folder")] = Path("out/training"),
    algos: AlgosOpt = "ppo,a2c,dqn,sac",
    budget_steps: Annotated[
        int, typer.Option("--budget-steps", min=0, help="env steps per agent; 0 = each agent's default")
    ] = 0,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    metric: Annotated[str, typer.Option("--metric")] = "sharpe",
    reward: RewardOpt = "pnl",
    results_db: ResultsOpt = None,
) -> None:
    """Every step once: data, signals, features, split, train, evaluate, record, leaderboard, report."""
    from training.data import load_candles
    from training.report import build_report

    out.mkdir(parents=True, exist_ok=True)
    csv = out / "candles.csv"
    typer.echo(f"[1/7] data: {data} -> {csv}")
    if data == "bundled":
        frame = load_candles(None)
        frame.reset_index()[["date", "open", "high", "low", "close", "volume"]].to_csv(csv, index=False)
    else:
        download(
            out=csv,
            csv=Path(data),
            exchange=None,
            symbol="BTC/USD:USD",
            since=None,
            until=None,
            base_url=None,
        )
    typer.echo("[2/7] signals")
    signals(data=str(csv), out=out / "signals.npz")
    typer.echo("[3/7] features (normalized on the train window)")
    features(data=str(csv), out=out / "features.npz", train_fraction=0.6, vol_window=24)
    typer.echo("[4/7] split")
    split(data=str(csv), folds=1, mode="expanding", embargo=24)
    typer.echo("[5/7] train and evaluate (validation chooses, test only reports)")
    candles = load_candles(csv)
    db, res = _train_and_record(
        candles,
        data=str(csv),
        hook=None,
        algos=algos,
        folds=1,
        budget_steps=budget_steps,
        seed=seed,
        metric=metric,
        mode="expanding",
        embargo=24,
        with_report=False,
        results_db=results_db,
        artifacts=out,
        kind="all",
        reward=reward,
    )
    typer.echo(f"[6/7] leaderboard (test window, by {metric})")
    leaderboard(metric=metric, window="test", run=res.run_id, results_db=results_db or db.url)
    typer.echo("[7/7] report")
    page = build_report(db, res.run_id, out / "report", metric=metric)
    typer.echo(f"report: {page}")


def _load_only(data: str) -> tuple[pd.DataFrame, None]:
    from training.data import InputError, load_candles

    try:
        return load_candles(data), None
    except (InputError, OSError) as exc:
        raise typer.BadParameter(str(exc), param_hint="--data") from None


@app.command()
def download(
    out: Annotated[Path, typer.Option("--out", help="CSV to write (date,open,high,low,close,volume)")],
    csv: Annotated[Path | None, typer.Option("--csv", help="import this CSV offline (validated)")] = None,
    exchange: Annotated[
        str | None, typer.Option("--exchange", help="CCXT exchange id, e.g. krakenfutures")
    ] = None,
    symbol: Annotated[str, typer.Option("--symbol")] = "BTC/USD:USD",
    since: Annotated[
        str | None, typer.Option("--since", help="ISO date (default: 365 days before --until)")
    ] = None,
    until: Annotated[str | None, typer.Option("--until", help="ISO date (default: now)")] = None,
    base_url: Annotated[
        str | None,
        typer.Option("--base-url", help="exchange API root (a local stand-in); krakenfutures only"),
    ] = None,
) -> None:
    """Hourly candles into the project's CSV format: from a CSV file, or from an exchange through CCXT."""
    from common.dataset import read_ohlcv_csv
    from training.data import InputError

    if (csv is None) == (exchange is None):
        raise typer.BadParameter("give exactly one of --csv PATH or --exchange ID")
    if csv is not None:
        try:
            frame = read_ohlcv_csv(csv, strict=True)
        except (InputError, OSError) as exc:
            raise typer.BadParameter(str(exc), param_hint="--csv") from None
        out.parent.mkdir(parents=True, exist_ok=True)
        frame.reset_index()[["date", "open", "high", "low", "close", "volume"]].to_csv(out, index=False)
    else:
        from common.ccxt_history import download_csv
        from common.kraken import api_urls

        assert exchange is not None
        stop = _utc(until, "--until") or datetime.now(UTC)
        start = _utc(since, "--since") or stop - timedelta(days=365)
        if start >= stop:
            raise typer.BadParameter("--since must be before --until", param_hint="--since")
        options: dict[str, object] = {}
        if base_url:
            if exchange != "krakenfutures":
                raise typer.BadParameter(
                    "--base-url is supported for krakenfutures only", param_hint="--base-url"
                )
            options["urls"] = {"api": api_urls(base_url)}
        try:
            download_csv(
                out, exchange=exchange, symbol=symbol, since=start, until=stop, client_options=options
            )
        except AttributeError:
            raise typer.BadParameter(f"unknown CCXT exchange {exchange!r}", param_hint="--exchange") from None
        try:
            frame = read_ohlcv_csv(out, strict=True)
        except InputError as exc:
            raise typer.BadParameter(
                f"the exchange returned unusable candles: {exc}", param_hint="--exchange"
            ) from None
    typer.echo(f"{len(frame)} bars {frame.index[0]} .. {frame.index[-1]} -> {out}")


def _utc(when: str | None, hint: str) -> datetime | None:
    if when is None:
        return None
    try:
        ts = datetime.fromisoformat(when)
    except ValueError:
        raise typer.BadParameter(f"not an ISO date: {when!r}", param_hint=hint) from None
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


@app.command()
def features(
    data: DataOpt = "bundled",
    out: Annotated[Path, typer.Option("--out", help="output .npz")] = Path("features.npz"),
    train_fraction: Annotated[float, typer.Option("--train-fraction", min=0.1, max=0.9)] = 0.6,
    vol_window: Annotated[int, typer.Option("--vol-window", min=2)] = 24,
) -> None:
    """Market features normalized with statistics fitted on the train window (first --train-fraction)."""
    import numpy as np

    from training.features import fit_stats, market_features
    from training.split import time_split

    candles, sig = _load(data)
    try:
        fold = time_split(
            len(candles),
            start=sig.warmup,
            train=train_fraction,
            validation=min(0.2, (1 - train_fraction) / 2),
        )
        stats = fit_stats(candles["close"].to_numpy(np.float64), fold.train, vol_window=vol_window)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--data") from None
    feats = market_features(candles["close"].to_numpy(np.float64), stats)
    arrays: dict[str, np.ndarray] = {
        "index": sig.index.asi8,
        "stats": np.array(json.dumps(asdict(stats))),
        "train": np.array([fold.train.start, fold.train.end]),
        **feats,
    }
    np.savez_compressed(out, **arrays)  # type: ignore[arg-type]
    typer.echo(
        f"{len(candles)} bars; fitted on train bars {fold.train.start}..{fold.train.end - 1} "
        f"(vol_scale {stats.vol_scale:.5f}); {', '.join(feats)} -> {out}"
    )


# Backtest by topic replay (issue 9) lives in training.replay_backtest; its options are repeated
# here so that registering the command does not import that module (pandas, SQLAlchemy, the
# policy). tests/unit/test_cli_imports.py checks that both declare the same options and help.
@app.command("replay-backtest")
def replay_backtest(
    out: Annotated[Path, typer.Option("--out", help="Folder for CSVs, comparison.json/md and service logs.")],
    start: Annotated[
        str | None, typer.Option("--from", help="First tick (ISO, UTC); default: --days before the end.")
    ] = None,
    end: Annotated[
        str | None, typer.Option("--to", help="Last tick, inclusive (ISO, UTC); default: last bar's close.")
    ] = None,
    days: Annotated[int, typer.Option(min=1, help="Window length when --from is not given.")] = 90,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            exists=True,
            dir_okay=False,
            help="Candle CSV to import first (default: the bundled data).",
        ),
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="models.model_id to run (pinned, not selected).")
    ] = None,
    fallback: Annotated[bool, typer.Option("--fallback", help="Run the majority-vote fallback.")] = False,
    live_risk_limits: Annotated[bool, typer.Option(help="Keep the configured daily loss cap.")] = False,
    timeout: Annotated[float, typer.Option(help="Give up after this many seconds.")] = 3600.0,
) -> None:
    """Backtest by topic replay through every service, compared tick by tick with the vectorized one."""
    from training.replay_backtest import replay_backtest_cmd

    replay_backtest_cmd(
        out=out,
        start=start,
        end=end,
        days=days,
        data=data,
        model=model,
        fallback=fallback,
        live_risk_limits=live_risk_limits,
        timeout=timeout,
    )
