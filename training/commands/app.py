"""The ``python -m training`` Typer app; the command modules register on it (see ``training.cli``)."""

from __future__ import annotations

import typer

# Start-up imports only typer: every command imports the training modules it runs (pandas,
# SQLAlchemy, gymnasium, torch, matplotlib, ccxt behind them), so `--help` and a mistyped option
# answer at once instead of after ~1,600 modules.

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Offline training of the BTC meta policy.")


@app.callback()
def main() -> None:
    """Offline training of the BTC meta policy (torch-free steps)."""
