"""Command line for the strategy consumers.

``signals`` is a stable tooling contract (other tools parse its output): one row per input bar with
date, enter_long, exit_long, enter_short, exit_short (0/1) and target (1, -1, 0).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from common.cli import make_app
from strategy_consumers.strategies import BUILTIN, builtin_strategy

# Start-up imports only typer and the built-in names (for `--help`): numpy, pandas and the
# strategies are imported by the command that computes, so `--help` answers at once.

app = make_app("BTC strategy consumers.")


@app.callback()
def main() -> None:
    """BTC strategy consumers: batch signals now, the live runner later."""


@app.command()
def signals(
    strategy: Annotated[str, typer.Option("--strategy", help=f"One of: {', '.join(BUILTIN)}.")],
    input_path: Annotated[Path, typer.Option("--input", help="CSV: date,open,high,low,close,volume.")],
    output_path: Annotated[Path, typer.Option("--output", help="CSV to write.")],
) -> None:
    """Compute a strategy's signals and standalone target for every bar of a CSV."""
    import numpy as np
    import pandas as pd

    from common.dataset import read_ohlcv_csv
    from strategy_consumers.strategies.targets import SIGNAL_COLUMNS

    try:
        strat = builtin_strategy(strategy)
        # strict: every row must be a candle, oldest first (the output has one row per input bar)
        candles = read_ohlcv_csv(input_path, strict=True)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from exc
    out = strat.evaluate(candles)
    # The index is UTC after validation, so the offset is always +00:00 (same form as the input).
    result = pd.DataFrame({"date": candles.index.strftime("%Y-%m-%dT%H:%M:%S+00:00")})
    for col in SIGNAL_COLUMNS:
        result[col] = out[col].to_numpy(dtype=np.int8)
    result["target"] = out["target"].to_numpy(dtype=np.int8)
    result.to_csv(output_path, index=False)
    typer.echo(f"{strategy}: {len(result)} bars -> {output_path}")


# --------------------------------------------------------------------------------------------------
# Live runner: the lead adds the ``run <name>`` command here (Kafka consumer loop). Intentionally
# absent until then; nothing below this line pretends to run a strategy live.
# --------------------------------------------------------------------------------------------------


@app.command()
def run(name: Annotated[str, typer.Argument(help="Strategy name from strategies_registry.json.")]) -> None:
    """Run one strategy as a live service: consumer group strategy.<name> on its bars topic."""
    from strategy_consumers.service import run_service

    run_service(name)
