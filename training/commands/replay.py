"""``python -m training replay-backtest``: a deprecated alias of ``python -m ops replay-backtest``.

The topic-replay backtest runs the services (ops' job) and moved to ``ops.replay_backtest``. The
alias starts ``python -m ops replay-backtest`` in a child process with the same arguments rather
than importing ops: training never imports ops, so the two packages cannot grow a cycle
(tests/unit/test_layers.py). Kept for one release so scripts and notes keep working.
"""

from __future__ import annotations

import typer

from training.commands.app import app

DEPRECATION = (
    "[training] `python -m training replay-backtest` is deprecated and will be removed: "
    "use `python -m ops replay-backtest` (same options)"
)


@app.command(
    "replay-backtest",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def replay_backtest(ctx: typer.Context) -> None:
    """Deprecated alias of `python -m ops replay-backtest` (same options; it runs that command)."""
    import subprocess
    import sys

    typer.echo(DEPRECATION, err=True)
    raise typer.Exit(subprocess.call([sys.executable, "-m", "ops", "replay-backtest", *ctx.args]))
