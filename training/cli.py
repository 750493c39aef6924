"""``python -m training <step>``: the offline steps that exist in this build.

Steps: ``signals`` (strategy answers over history -> .npz), ``split`` (print the walk-forward
windows), ``baselines`` (every baseline on one window, as a table), ``walkforward`` (folds ->
report.json). Agent training, the results DB, leaderboard/select and the HTML report come later;
their commands are deliberately absent rather than stubbed.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import pandas as pd
import typer

from training.backtest import evaluate, format_table, run_baselines
from training.data import InputError, load_candles
from training.features import fit_stats
from training.ledger import CostModel
from training.market import Market
from training.signals import SignalArrays, compute_signals
from training.split import Window, walk_forward
from training.walkforward import run_walkforward

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Offline training of the BTC meta policy.")

DataOpt = Annotated[str, typer.Option("--data", help="candle CSV (date,open,high,low,close,volume) "
                                                    "or 'bundled'")]
Mode = Literal["expanding", "rolling"]


@app.callback()
def main() -> None:
    """Offline training of the BTC meta policy (torch-free steps)."""


def _load(data: str) -> tuple[pd.DataFrame, SignalArrays]:
    try:
        candles = load_candles(data)
    except (InputError, OSError) as exc:
        raise typer.BadParameter(str(exc), param_hint="--data") from None
    return candles, compute_signals(candles)


def _position(index: pd.DatetimeIndex, when: str | None, default: int, hint: str) -> int:
    if when is None:
        return default
    try:
        ts = pd.Timestamp(datetime.fromisoformat(when))
    except ValueError:
        raise typer.BadParameter(f"not an ISO date: {when!r}", param_hint=hint) from None
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return int(index.searchsorted(ts))


@app.command()
def signals(data: DataOpt = "bundled",
            out: Annotated[Path, typer.Option("--out", help="output .npz")] = Path("signals.npz")) -> None:
    """Run every enabled registry strategy over the history; write target/event/confidence/age/present."""
    _, sig = _load(data)
    sig.save(out)
    typer.echo(f"{len(sig)} bars x {len(sig.strategies)} strategies ({', '.join(sig.strategies)}), "
               f"warm-up {sig.warmup} bars -> {out}")


@app.command()
def split(data: DataOpt = "bundled",
          folds: Annotated[int, typer.Option("--folds", min=1)] = 4,
          mode: Annotated[str, typer.Option("--mode", help="expanding | rolling")] = "expanding",
          embargo: Annotated[int, typer.Option("--embargo", min=0, help="bars between parts")] = 24) -> None:
    """Print the walk-forward train / validation / test windows (dates, bar counts)."""
    if mode not in ("expanding", "rolling"):
        raise typer.BadParameter("expanding or rolling", param_hint="--mode")
    candles, sig = _load(data)
    try:
        split_folds = walk_forward(len(candles), folds=folds, start=sig.warmup, mode=mode,  # type: ignore[arg-type]
                                   embargo=embargo)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--folds") from None
    for k, fold in enumerate(split_folds):
        parts = [f"{name} {sig.index[w.start]:%Y-%m-%d %H:%M}..{sig.index[w.end - 1]:%Y-%m-%d %H:%M} "
                 f"({len(w)})"
                 for name, w in (("train", fold.train), ("validation", fold.validation), ("test", fold.test))]
        typer.echo(f"fold {k}: " + " | ".join(parts))


@app.command()
def baselines(data: DataOpt = "bundled",
              start: Annotated[str | None, typer.Option(help="ISO date (default: --last-days)")] = None,
              end: Annotated[str | None, typer.Option(help="ISO date, exclusive (default: data end)")] = None,
              last_days: Annotated[int, typer.Option("--last-days", min=1)] = 365,
              fit_days: Annotated[int, typer.Option(min=2, help="days before start for vol_scale")] = 365,
              json_out: Annotated[Path | None, typer.Option("--json", help="also write metrics here")] = None,
              ) -> None:
    """Evaluate every baseline on one window (default: the data's last year) and print a table."""
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
    typer.echo(f"window {idx[window.start]} .. {idx[window.end - 1]} ({len(window)} bars); taker fee "
               f"{costs.taker_fee:.4%}, slippage {costs.slippage_bps:g} bp, "
               f"funding {costs.funding_rate_hourly:.5%}/h")
    typer.echo(format_table(results))
    if json_out is not None:
        json_out.write_text(json.dumps(results, indent=2, sort_keys=True))


@app.command()
def walkforward(data: DataOpt = "bundled",
                folds: Annotated[int, typer.Option("--folds", min=1)] = 4,
                budget_steps: Annotated[int, typer.Option("--budget-steps", min=0,
                                                          help="agent training budget per fold (recorded; "
                                                               "no agents in this build)")] = 0,
                out: Annotated[Path, typer.Option(help="output directory")] = Path("out/walkforward"),
                mode: Annotated[str, typer.Option("--mode", help="expanding | rolling")] = "expanding",
                embargo: Annotated[int, typer.Option("--embargo", min=0)] = 24) -> None:
    """Walk-forward folds: select on validation, score on test; writes OUT/report.json."""
    if mode not in ("expanding", "rolling"):
        raise typer.BadParameter("expanding or rolling", param_hint="--mode")
    candles, sig = _load(data)
    try:
        report = run_walkforward(candles, sig, folds=folds, budget_steps=budget_steps, mode=mode,  # type: ignore[arg-type]
                                 embargo=embargo)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2))
    for k, fold in enumerate(report["folds"]):
        sel = fold["results"][fold["selected"]]
        typer.echo(f"fold {k}: test {fold['test'][0][:10]}..{fold['test'][1][:10]} "
                   f"selected {fold['selected']} "
                   f"(test sharpe {sel['sharpe']:.2f}, return {sel['total_return']:+.1%})")
    typer.echo(f"selected overall: {report['selected']} -> {out / 'report.json'}")
