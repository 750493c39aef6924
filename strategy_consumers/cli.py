"""Command line for the strategy consumers.

``signals`` is a stable tooling contract (other tools parse its output): one row per input bar with
date, enter_long, exit_long, enter_short, exit_short (0/1) and target (1, -1, 0).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from strategy_consumers.strategies import BUILTIN, builtin_strategy

if TYPE_CHECKING:
    import pandas as pd

# Start-up imports only typer and the built-in names (for `--help`): numpy, pandas and the
# strategies are imported by the command that computes, so `--help` answers at once.

app = typer.Typer(add_completion=False, no_args_is_help=True, help="BTC strategy consumers.")


@app.callback()
def main() -> None:
    """BTC strategy consumers: batch signals now, the live runner later."""


class InputError(ValueError):
    """The input CSV breaks the ``signals`` contract."""


def read_candles(path: Path) -> pd.DataFrame:
    """Read and validate ``date,open,high,low,close,volume``: UTC, strictly increasing, numeric."""
    import numpy as np
    import pandas as pd

    from strategy_consumers.strategies.base import OHLCV_COLUMNS

    try:
        frame = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from exc
    missing = [c for c in ("date", *OHLCV_COLUMNS) if c not in frame.columns]
    if missing:
        raise InputError(f"{path}: missing columns {missing}")
    if frame.empty:
        raise InputError(f"{path}: no rows")
    try:
        dates = pd.to_datetime(frame["date"], utc=True)
    except (ValueError, TypeError) as exc:
        raise InputError(f"{path}: unparseable date: {exc}") from exc
    values = {}
    for col in OHLCV_COLUMNS:
        num = pd.to_numeric(frame[col], errors="coerce")
        bad = num.isna() | ~np.isfinite(num.to_numpy(dtype=float, na_value=np.nan))
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise InputError(
                f"{path}: column {col!r} is not numeric at line {row + 2}: {frame[col].iloc[row]!r}"
            )
        values[col] = num.to_numpy(dtype=np.float64)
    index = pd.DatetimeIndex(dates, name="date")
    if not index.is_monotonic_increasing or index.has_duplicates:
        raise InputError(f"{path}: dates must be strictly increasing (oldest first, no duplicates)")
    return pd.DataFrame(values, index=index)


@app.command()
def signals(
    strategy: Annotated[str, typer.Option("--strategy", help=f"One of: {', '.join(BUILTIN)}.")],
    input_path: Annotated[Path, typer.Option("--input", help="CSV: date,open,high,low,close,volume.")],
    output_path: Annotated[Path, typer.Option("--output", help="CSV to write.")],
) -> None:
    """Compute a strategy's signals and standalone target for every bar of a CSV."""
    import numpy as np
    import pandas as pd

    from strategy_consumers.strategies.targets import SIGNAL_COLUMNS

    try:
        strat = builtin_strategy(strategy)
        candles = read_candles(input_path)
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
