"""The ``python -m training`` Typer app; the command modules register on it (see ``training.cli``)."""

from __future__ import annotations

from common.cli import make_app

# Start-up imports only typer: every command imports the training modules it runs (pandas,
# SQLAlchemy, gymnasium, torch, matplotlib, ccxt behind them), so `--help` and a mistyped option
# answer at once instead of after ~1,600 modules.

app = make_app("Offline training of the BTC meta policy.")


@app.callback()
def main() -> None:
    """Offline training of the BTC meta policy (torch-free steps)."""
