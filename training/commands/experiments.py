"""Data and experiment commands: ``signals``, ``split``, ``baselines``, ``walkforward``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from training.commands.app import app
from training.commands.common import AlgosOpt, DataOpt, RewardOpt, _algos, _load, _position, _reward


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
    costs = CostModel.configured()
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
