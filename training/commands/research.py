"""``research``: the nested-CPCV research run of issue 16 (non-RL combiners, gates, REPORT.md)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from training.commands.app import app
from training.commands.common import DataOpt, LiveOpt, ResultsOpt

if TYPE_CHECKING:
    import pandas as pd

    from common.signals import SignalArrays
    from training.research.export import FitData
    from training.research.funding import FundingEvents


@app.command()
def research(
    data: DataOpt = "bundled",
    exogenous: Annotated[
        Path | None,
        typer.Option(
            "--exogenous",
            help="folder of exogenous series (shared layout): the strategies' inputs and the real funding "
            "series (default: the configured exogenous.data_dir)",
        ),
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="run folder (trials, series; resumable)")] = Path(
        "out/research"
    ),
    report_dir: Annotated[Path, typer.Option("--report-dir", help="where REPORT.md and its PNGs go")] = Path(
        "docs/research"
    ),
    quick: Annotated[
        bool, typer.Option("--quick", help="a few configurations and bootstrap resamples (tests, smoke runs)")
    ] = False,
    last_bars: Annotated[
        int, typer.Option("--last-bars", min=0, help="use only the last N bars of the data (0 = all)")
    ] = 0,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers", min=1, help="local worker processes for the trials (default: min(2, cpus))"
        ),
    ] = None,
    search: Annotated[
        str,
        typer.Option(
            "--search",
            help="grid: rank the fixed grid on the inner folds; optuna: a seeded TPE study per outer split "
            "proposes the Hedge / vol-managed / ridge / logistic configurations (each a logged trial, "
            "counted in the DSR and the PBO matrix); the round-2 families keep their grid",
        ),
    ] = "grid",
    optuna_trials: Annotated[
        int, typer.Option("--optuna-trials", min=1, help="TPE proposals per outer split (--search optuna)")
    ] = 40,
    rl: Annotated[
        bool,
        typer.Option(
            "--rl",
            help="also run the RL recast: ElegantRL PPO on target exposures, rewarded over the majority "
            "vote, discount matched to 72 / 240 h, 5 seeds each plus their ensemble (every seed a logged "
            "trial); needs torch, ~4 s per fit, 375 fits per configuration family on the full data",
        ),
    ] = False,
    bootstrap_block: Annotated[
        str,
        typer.Option(
            "--bootstrap-block",
            help="the stationary bootstrap's mean block for the gates: 'auto' (Politis-White on the "
            "tested pooled OOS series, the longest column's estimate) or a fixed number of hours, e.g. 168",
        ),
    ] = "auto",
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray",
            help="run the trials as Ray tasks instead of local processes: 'local' (a private Ray with "
            "--workers CPUs), 'auto' (the cluster this machine belongs to) or a cluster address "
            "(ray://host:10001); the cluster's nodes must import this checkout. Same trials as the pool",
        ),
    ] = None,
    results_db: ResultsOpt = None,
    no_db: Annotated[
        bool, typer.Option("--no-db", help="do not write the trials and baselines to the results database")
    ] = False,
    publish_live: Annotated[
        bool,
        typer.Option(
            "--publish-live",
            help="also copy the pooled baselines and candidates to the live DB (the bridge's leaderboard); "
            "same as `python -m training publish-research RUN` afterwards",
        ),
    ] = False,
    database_url: LiveOpt = None,
) -> None:
    """Run every trial (resuming a run folder), the baselines and the gates; write REPORT.md."""
    import shlex
    import sys
    from dataclasses import replace

    from tqdm import tqdm

    from training.commands.common import _results
    from training.research.protocol import Settings, default_workers, run_research
    from training.research.report import write_report

    if search not in ("grid", "optuna"):  # before the data loads: a typo fails at once
        raise typer.BadParameter(f"{search!r}: grid or optuna", param_hint="--search")
    block = _parse_block(bootstrap_block)
    candles, sig, events, exogenous = _research_inputs(data, exogenous, last_bars)
    if events is None:
        typer.echo(
            f"warning: no funding series under {exogenous}; the constant default rate applies", err=True
        )
    if publish_live and no_db:
        raise typer.BadParameter("--publish-live copies the run from the results database: drop --no-db")
    settings = Settings(bootstrap_reps=100, purge=168, quick=True) if quick else Settings()
    settings = replace(settings, search=search, optuna_trials=optuna_trials, bootstrap_block=block, rl=rl)

    def bar(it, desc, total):  # type: ignore[no-untyped-def]
        return tqdm(it, desc=desc, total=total, file=sys.stderr)

    db = None if no_db else _results(results_db)
    try:
        summary = run_research(
            candles,
            sig,
            events,
            out,
            settings,
            progress=bar,
            workers=workers or default_workers(),
            results=db,
            ray_address=ray,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    finally:
        if db is not None:
            db.close()
    args = sys.argv[1:]
    if args[:1] == ["research"]:  # ``python -m training research ...``: the command is named once
        args = args[1:]
    path = write_report(out, report_dir, command="python -m training research " + shlex.join(args))
    verdict = (
        "PASSES the gates" if summary["selected_passes"] else "fails the gates: live keeps the majority vote"
    )
    typer.echo(
        f"selected Sharpe {summary['sharpe']['selected']:+.2f} vs majority vote "
        f"{summary['sharpe']['majority_vote']:+.2f}, PBO {summary['pbo']:.2f}: {verdict} -> {path}"
    )
    if "results_run_id" in summary:
        typer.echo(
            f"results database: run {summary['results_run_id']} "
            f"(python -m training leaderboard --run {summary['results_run_id']})"
        )
    if publish_live:  # after the report: a live DB that is down costs the publication, not the run
        _publish_live(results_db, str(summary["results_run_id"]), database_url)


def _parse_block(text: str) -> float | None:
    """``--bootstrap-block``: None for ``auto``, else a mean block of at least one hour."""
    if text.strip().lower() == "auto":
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value >= 1.0 or value == float("inf"):
        raise typer.BadParameter(
            f"{text!r}: 'auto' or a number of hours >= 1", param_hint="--bootstrap-block"
        )
    return value


def _publish_live(results_db: str | None, run_id: str, database_url: str | None) -> None:
    """``--publish-live``: the run's pooled rows into the live DB, once the report is written."""
    from sqlalchemy.exc import SQLAlchemyError

    from training.commands.common import _db_error, _live_engine, _results
    from training.commands.results import publish_verdict
    from training.results_live import SelectError, publish_research_live

    db = _results(results_db)
    try:
        pub = publish_research_live(db, run_id, _live_engine(database_url))
    except SelectError as exc:
        raise typer.BadParameter(str(exc)) from None
    except SQLAlchemyError as exc:
        raise typer.BadParameter(_db_error(exc), param_hint="--database-url") from None
    finally:
        db.close()
    typer.echo(publish_verdict(pub.run_id, pub.rows, pub.selected_passes))


@app.command("export-combiner")
def export_combiner_cmd(
    config: Annotated[
        str,
        typer.Argument(
            help="a research configuration by its trial-log key, e.g. "
            '\'volmanaged:{"target_vol":0.5,"window":168}\''
        ),
    ],
    out: Annotated[Path | None, typer.Option("--out", help="write the artefact (JSON) to this file")] = None,
    strategies: Annotated[
        str | None,
        typer.Option(
            "--strategies", help="comma-separated strategies it votes over (default: the registry's enabled)"
        ),
    ] = None,
    register: Annotated[
        bool,
        typer.Option(
            "--register", help="store it in the live models table, unselected (selecting stays a human act)"
        ),
    ] = False,
    model_id: Annotated[
        str | None,
        typer.Option("--model-id", help="models row id (default: combiner-FAMILY-<fingerprint[:12]>)"),
    ] = None,
    data: DataOpt = "bundled",
    exogenous: Annotated[
        Path | None,
        typer.Option(
            "--exogenous",
            help="fitted families: folder of exogenous series (the strategies' inputs and the funding "
            "series; default: the configured exogenous.data_dir)",
        ),
    ] = None,
    last_bars: Annotated[
        int,
        typer.Option(
            "--last-bars", min=0, help="fitted families: only the last N bars of the data (0 = all)"
        ),
    ] = 0,
    train_until: Annotated[
        str | None,
        typer.Option(
            "--train-until",
            help="fitted families (ridge, logistic, ...): fit on the bars opening at or before this UTC "
            "time (e.g. 2022-06-30T23:00); online ones (hedge, dsr): learn up to it; rl: fit on it and "
            "walk its greedy path up to it; default: every "
            "bar loaded (fitted: after the signals' warm-up)",
        ),
    ] = None,
    database_url: LiveOpt = None,
) -> None:
    """Export a research combiner as a live artefact the meta consumer runs (ADR 0020, 0025, 0026).

    The fitted families (ridge, logistic, ...) are fitted here on the research data (same loading as
    ``research``: --data, --exogenous, --last-bars) up to --train-until; the online ones (hedge,
    dsr) learn over it and store their final state; rl fits its PPO seeds with torch (training only)
    and stores their actors and the state after the last bar (ADR 0027); the artefact records the range.
    """
    from training.research.export import EXPORTABLE, ExportError, export, parse_key

    if out is None and not register:
        raise typer.BadParameter("give --out FILE, --register, or both")
    try:
        family = parse_key(config).family
    except ExportError as exc:
        raise typer.BadParameter(str(exc), param_hint="CONFIG") from None
    if strategies:
        names = [s.strip() for s in strategies.split(",") if s.strip()]
        source = "--strategies"
    else:
        from common.registry import RegistryError, load_registry
        from config import load_settings

        path = load_settings().registry_path
        try:
            names = [s.name for s in load_registry(path, import_classes=False).enabled]
        except (RegistryError, OSError) as exc:
            raise typer.BadParameter(str(exc)) from None
        source = f"registry {Path(path).name}"
    fit = None
    if family in EXPORTABLE and family != "volmanaged":  # fitted: load what ``research`` loads
        fit = _fit_data(data, exogenous, last_bars, train_until)
    engine = None
    if register:
        from training.commands.common import _live_engine

        engine = _live_engine(database_url)
    try:
        result = export(
            config,
            names,
            model_id=model_id,
            engine=engine,
            provenance={"strategies_from": source},
            data=fit,
        )
    except ExportError as exc:
        raise typer.BadParameter(str(exc), param_hint="CONFIG") from None
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(result.artifact)
        typer.echo(f"wrote {out} (sha256 {result.sha256})")
    typer.echo(f"combiner {result.model_id}: fingerprint {result.fingerprint}, {len(names)} strategies")
    if register:
        state = "registered, unselected" if result.registered else "already registered (same artefact)"
        typer.echo(f"models row {result.model_id}: {state}; select it to run it live")


def _fit_data(data: str, exogenous: Path | None, last_bars: int, train_until: str | None) -> FitData:
    """Candles, every registry strategy's signals and the funding series, as ``research`` loads them."""
    import pandas as pd

    from training.research.export import FitData

    until = None
    if train_until is not None:
        try:
            until = pd.Timestamp(train_until)
        except ValueError:
            raise typer.BadParameter(f"{train_until!r}: not a time", param_hint="--train-until") from None
        until = until.tz_localize("UTC") if until.tzinfo is None else until.tz_convert("UTC")
    candles, sig, events, _ = _research_inputs(data, exogenous, last_bars)
    return FitData(candles, sig, events, until)


def _research_inputs(
    data: str, exogenous: Path | None, last_bars: int
) -> tuple[pd.DataFrame, SignalArrays, FundingEvents | None, Path]:
    """Candles, every registry strategy's signals and the funding series (None without the
    folder), loaded once and alike for ``research`` and ``export-combiner``; bad input is a
    usage error. Returns the exogenous folder used too (the configured one by default)."""
    from training.data import InputError, load_candles
    from training.research.funding import load_funding
    from training.signals import compute_signals, training_exogenous

    try:
        candles = load_candles(data)
    except (InputError, OSError) as exc:
        raise typer.BadParameter(str(exc), param_hint="--data") from None
    if last_bars:
        candles = candles.iloc[-last_bars:]
    if exogenous is None:
        from config import load_settings

        exogenous = Path(load_settings().exogenous.data_dir)
    try:
        sig = compute_signals(candles, exogenous=training_exogenous(directory=exogenous))
        events = load_funding(exogenous) if exogenous.is_dir() else None
    except (OSError, ValueError) as exc:
        raise typer.BadParameter(str(exc)) from None
    return candles, sig, events, exogenous
