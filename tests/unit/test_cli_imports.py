"""Every service CLI starts without its runtime: importing ``<service>.cli`` loads no heavy library.

A CLI that imports pandas, SQLAlchemy models, confluent_kafka, ccxt or torch before parsing takes
seconds to print ``--help`` or "no such option" (``training.cli`` took 5 s and 1,596 modules);
the commands import what they run instead. This guards the imports, not the time (timings are
measured by bench/bench_cli_startup.py, never asserted): each check runs in a fresh interpreter,
because this test process has long since imported everything.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer

REPO = Path(__file__).resolve().parents[2]

CLI_MODULES = (
    "ops.cli",
    "producers.cli",
    "tick_emitter.cli",
    "strategy_consumers.cli",
    "meta_consumer.cli",
    "executor.cli",
    "bridge.cli",
    "training.cli",
)

#: None of these is imported by any CLI module at start-up (checked for every one of them): the
#: libraries named in issue 17 and the project's own heavy layers (settings, DB, Kafka, logging).
HEAVY = (
    "torch",
    "ccxt",
    "sklearn",
    "gymnasium",
    "matplotlib",
    "pandas",
    "numpy",
    "scipy",
    "fastapi",
    "uvicorn",
    "sqlalchemy",
    "confluent_kafka",
    "jsonschema",
    "structlog",
    "prometheus_client",
    "feedparser",
    "pydantic",
    "pydantic_settings",
    "config",
    "common.db.models",
)


def _loaded_after(statement: str) -> set[str]:
    """The module names in sys.modules after running ``statement`` in a fresh interpreter."""
    code = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_the_probe_sees_heavy_imports() -> None:
    """The probe itself works: a module known to import pandas and SQLAlchemy shows them."""
    loaded = _loaded_after("import producers.store")
    assert {"numpy", "sqlalchemy", "common.db.models"} <= loaded


@pytest.mark.parametrize("module", CLI_MODULES)
def test_cli_module_imports_no_heavy_library(module: str) -> None:
    loaded = _loaded_after(f"import {module}")
    assert module in loaded
    assert sorted(h for h in HEAVY if h in loaded) == []


def test_all_clis_together_stay_light() -> None:
    """Also in one process (tick_emitter.cli imports producers.cli; training.cli is the largest)."""
    loaded = _loaded_after("\n".join(f"import {m}" for m in CLI_MODULES))
    assert sorted(h for h in HEAVY if h in loaded) == []


def test_producers_source_names_match_the_sources() -> None:
    """producers.cli names the live sources in `poll --help` without importing producers.exogenous."""
    from producers import cli, exogenous

    assert cli.SOURCE_NAMES == exogenous.SOURCE_NAMES


def _options(app: typer.Typer, name: str) -> list[tuple[object, ...]]:
    """What `name --help` shows and parsing checks: each parameter's flags, help, default and type."""
    command = typer.main.get_command(app).commands[name]  # type: ignore[attr-defined]
    plain = (str, int, float, bool, type(None))
    params = [
        (
            p.name,
            tuple(p.opts),
            tuple(p.secondary_opts),
            p.required,
            p.default,
            p.help,
            str(p.type_descriptor.annotation),  # type: ignore[attr-defined]
            sorted(
                (k, v)
                for k, v in vars(p.type_descriptor.parameter_info).items()  # type: ignore[attr-defined]
                if isinstance(v, plain)
            ),
        )
        for p in command.params
    ]
    return [*params, ("help", command.help)]


def test_ops_replay_backtest_options_match_the_implementation() -> None:
    """ops.cli repeats replay-backtest's options (to register it without importing the module);
    they must stay the options and help of ops.replay_backtest.replay_backtest_cmd."""
    from ops.cli import app
    from ops.replay_backtest import replay_backtest_cmd

    implementation = typer.Typer()
    implementation.command("replay-backtest")(replay_backtest_cmd)
    # A one-command Typer app is the command itself; register a sibling so both have a group shape.
    implementation.command("unused")(lambda: None)
    assert _options(app, "replay-backtest") == _options(implementation, "replay-backtest")


def test_training_replay_backtest_is_a_deprecated_alias_of_ops() -> None:
    """The old command still answers (scripts keep working): it says where the command moved and
    runs ``python -m ops replay-backtest`` with the same arguments, exit status included."""
    helped = subprocess.run(
        [sys.executable, "-m", "training", "replay-backtest", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert helped.returncode == 0, helped.stderr
    assert "deprecated" in helped.stderr and "python -m ops replay-backtest" in helped.stderr
    assert "python -m ops replay-backtest" in helped.stdout and "--fallback" in helped.stdout
    wrong = subprocess.run(
        [sys.executable, "-m", "training", "replay-backtest", "--no-such-option"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert wrong.returncode == 2 and "No such option" in wrong.stderr
