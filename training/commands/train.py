"""Training runs recorded in the results database: ``retrain`` (scheduled), ``train``, ``all``."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from training.commands.app import app
from training.commands.common import (
    AlgosOpt,
    ArtifactsOpt,
    DataOpt,
    ResultsOpt,
    RewardOpt,
    _algos,
    _results,
    _reward,
)

if TYPE_CHECKING:
    import pandas as pd

    from training.results import ResultsDB
    from training.retrain import PipelineResult


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
    # The other steps' commands, imported here: importing them at the top would register their
    # modules' commands before this one and change the order ``--help`` lists them in.
    from training.commands.data import download, features
    from training.commands.experiments import signals, split
    from training.commands.results import leaderboard
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
