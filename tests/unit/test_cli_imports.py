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
    "optuna",
    "ray",
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


@pytest.mark.parametrize("module", ["ops", "executor", "training"])
def test_help_and_usage_errors_print_plainly_without_rich(module: str) -> None:
    """``common.cli.make_app`` turns typer's rich help off: rendering it imported ~170 modules and
    cost ~0.25 s of every ``--help`` (bench_cli_startup). The help and a usage error still say
    what they must (usage, the options, the bad option and exit status 2)."""
    code = (
        "import sys\n"
        f"from {module}.cli import app\n"
        "try:\n    app()\nexcept SystemExit as e:\n    code = e.code\n"
        "print('RICH' if any(m == 'rich' or m.startswith('rich.') for m in sys.modules) else 'PLAIN', code)\n"
    )
    for argv, status in ((["--help"], 0), (["--no-such-option"], 2)):
        done = subprocess.run(
            [sys.executable, "-c", code, *argv],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.stdout.splitlines()[-1] == f"PLAIN {status}", (
            argv,
            done.stdout[-300:],
            done.stderr[-300:],
        )
        shown = done.stdout + done.stderr
        assert "Usage:" in shown
        assert ("--help" in shown) if status == 0 else ("No such option: --no-such-option" in shown)


def test_producers_source_names_match_the_sources() -> None:
    """producers.cli names the live sources in `poll --help` without importing producers.exogenous."""
    from producers import cli, exogenous

    assert cli.SOURCE_NAMES == exogenous.SOURCE_NAMES


def test_ops_replay_backtest_passes_every_option_to_the_implementation() -> None:
    """ops.cli declares replay-backtest's options (once: registering the command imports nothing
    heavy) and hands each one by keyword to ops.replay_backtest.replay_backtest_cmd, whose
    parameters are plain and required: an option added on one side only fails here, not in a
    user's run."""
    import inspect

    from ops.cli import app
    from ops.replay_backtest import replay_backtest_cmd

    command = typer.main.get_command(app).commands["replay-backtest"]  # type: ignore[attr-defined]
    declared = [p.name for p in command.params]
    implementation = inspect.signature(replay_backtest_cmd).parameters.values()
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in implementation)
    assert all(p.default is inspect.Parameter.empty for p in implementation)  # no second default
    assert sorted(declared) == sorted(p.name for p in implementation)
    assert {"--out", "--from", "--to", "--model", "--fallback"} <= {
        flag for p in command.params for flag in p.opts
    }


def test_training_replay_backtest_is_a_deprecated_alias_of_ops() -> None:
    """The old command still answers (scripts keep working): it says where the command moved and
    runs ``python -m ops replay-backtest`` with the same arguments, exit status included, so both
    accept the same options (the same --help, word for word)."""
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
    ops_help = subprocess.run(
        [sys.executable, "-m", "ops", "replay-backtest", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ops_help.returncode == 0 and helped.stdout == ops_help.stdout
    wrong = subprocess.run(
        [sys.executable, "-m", "training", "replay-backtest", "--no-such-option"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert wrong.returncode == 2 and "No such option" in wrong.stderr
