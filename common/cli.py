"""One way to build a service's command line, so every ``python -m <service>`` starts and fails alike.

Plain help and errors (``rich_markup_mode=None``): typer renders ``--help`` and usage errors with
rich when it is installed, and importing that renderer costs ~0.25 s of every ``--help`` (0.10 s
against 0.33 s for a two-command app on an idle 2-core machine), which put subcommand help over
the 1 s target of issue 17 under load. Click's formatter prints the same usage, options and
defaults. No pretty exceptions either: a crashing service's traceback lands in its log as plain
Python text (greppable next to the JSON lines), not as a box drawing with source excerpts.
"""

from __future__ import annotations

from typing import Any

import typer


def make_app(help: str, **options: Any) -> typer.Typer:
    """A typer app (or sub-app) with the project's defaults; ``options`` override them."""
    settings: dict[str, Any] = {
        "no_args_is_help": True,
        "add_completion": False,
        "rich_markup_mode": None,
        "pretty_exceptions_enable": False,
    }
    return typer.Typer(help=help, **(settings | options))
