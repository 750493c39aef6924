"""CLI start-up: wall time and imported modules of ``python -m <service> --help``, fresh processes.

Run: ``.venv/bin/python bench/bench_cli_startup.py [--repeat N]`` (about a minute at N=5). Every
service's top-level ``--help`` and a few subcommands' are run N times, each in a new interpreter
(nothing cached in memory; the OS file cache is warm after the first run, as it is for an operator
typing commands). Target: ``--help`` < 1 s each. Writes ``bench/results/cli_startup.md`` and
rebuilds docs/BENCHMARKS.md (``bench/collect.py``). ``--baseline DIR`` also runs the same commands
in another checkout (e.g. ``git worktree add /tmp/before <rev>``) with this interpreter, for a
before/after table.

Why it matters: a service whose CLI imports its whole runtime (pandas, SQLAlchemy models,
confluent_kafka, ccxt, torch) before parsing takes seconds to say "no such option"; the CLIs now
import only typer at start and each command imports what it runs. Two floors are measured next to
them: the bare interpreter, and a one-command typer app rendering its help (typer builds help with
rich, and a subcommand's ``--help`` goes through typer's pydantic-based option coercion: both are
the library's cost, paid by any typer CLI). The module count comes from a separate, untimed run of
the same command that prints ``len(sys.modules)`` at exit.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "results" / "cli_startup.md"
TARGET_S = 1.0

#: (label, argv after ``python``): every service's entry point, then subcommands whose commands
#: need the heaviest libraries when they run (so their help is where an eager import would show).
COMMANDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    *(
        (f"{pkg} --help", ("-m", pkg, "--help"))
        for pkg in (
            "ops",
            "producers",
            "tick_emitter",
            "strategy_consumers",
            "meta_consumer",
            "executor",
            "bridge",
            "training",
        )
    ),
    ("producers init --help", ("-m", "producers", "init", "--help")),
    ("tick_emitter replay --help", ("-m", "tick_emitter", "replay", "--help")),
    ("executor run --help", ("-m", "executor", "run", "--help")),
    ("training train --help", ("-m", "training", "train", "--help")),
    ("ops replay-backtest --help", ("-m", "ops", "replay-backtest", "--help")),
)

_TYPER_FLOOR = (
    "import typer\n"
    "app = typer.Typer(add_completion=False)\n"
    "@app.command()\n"
    "def one(n: int = typer.Option(1, help='a number')) -> None:\n"
    "    '''One command.'''\n"
    "app()\n"
)
_TYPER_GROUP_FLOOR = (
    "import typer\n"
    "app = typer.Typer(add_completion=False)\n"
    "@app.command()\n"
    "def one(n: int = typer.Option(1, help='a number')) -> None:\n"
    "    '''One command.'''\n"
    "@app.command()\n"
    "def two() -> None:\n"
    "    '''Another.'''\n"
    "app()\n"
)
FLOORS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("floor: python -c pass", ("-c", "pass")),
    ("floor: one-command typer app --help", ("-c", _TYPER_FLOOR, "--help")),
    # A subcommand's --help also coerces the group's own --help value through typer's pydantic
    # adapters (typer 0.29), ~100 more modules: the floor for every `<service> <command> --help`.
    ("floor: two-command typer app, one --help", ("-c", _TYPER_GROUP_FLOOR, "one", "--help")),
)

#: Libraries a CLI must not load to print its help (reported per command when one is loaded).
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
    "elegantrl",
    "feedparser",
    "config",
    "pydantic_settings",
)

# Runs argv as ``python <argv>`` would (``-m`` module or ``-c`` code) and reports, at exit, how many
# modules were loaded and which of HEAVY; a SystemExit from the CLI still reaches the atexit hook.
_COUNTER = (
    "import atexit, runpy, sys\n"
    "HEAVY = {heavy!r}\n"
    "def _report():\n"
    "    sys.stderr.write('\\nMODULES %d %s\\n' % (len(sys.modules),\n"
    "                     ','.join(h for h in HEAVY if h in sys.modules) or '-'))\n"
    "atexit.register(_report)\n"
    "argv = {argv!r}\n"
    "if argv[0] == '-m':\n"
    "    sys.argv = [argv[1], *argv[2:]]\n"
    "    runpy.run_module(argv[1], run_name='__main__', alter_sys=True)\n"
    "else:\n"
    "    sys.argv = ['-c', *argv[2:]]\n"
    "    exec(compile(argv[1], '<string>', 'exec'), {{'__name__': '__main__'}})\n"
)


def _env() -> dict[str, str]:
    # A fixed width so the help rendered does not depend on the terminal running the bench.
    return {**os.environ, "COLUMNS": "120"}


def time_once(argv: tuple[str, ...], tree: Path = REPO) -> float:
    """Wall seconds of one ``python <argv>`` in a fresh process; a non-zero exit stops the bench."""
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, *argv], cwd=tree, env=_env(), capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"`python {' '.join(argv[:3])}...` exited {done.returncode}:\n{done.stderr[-2000:]}")
    return elapsed


def count_modules(argv: tuple[str, ...], tree: Path = REPO) -> tuple[int, str]:
    """(modules in sys.modules at exit, heavy libraries among them) for ``python <argv>``."""
    code = _COUNTER.format(heavy=HEAVY, argv=argv)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tree, env=_env(), capture_output=True, text=True, check=False
    )
    for line in reversed(done.stderr.splitlines()):
        if line.startswith("MODULES "):
            _, count, heavy = line.split(" ", 2)
            return int(count), heavy
    raise SystemExit(f"no module count from `python {' '.join(argv[:3])}...`:\n{done.stderr[-2000:]}")


def measure(argv: tuple[str, ...], repeat: int, tree: Path = REPO) -> tuple[float, float, int, str]:
    """(median s, max s, modules, heavy loaded) of ``python <argv>`` run in ``tree``."""
    time_once(argv, tree)  # warm the OS file cache and the bytecode cache; not counted
    times = [time_once(argv, tree) for _ in range(repeat)]
    modules, heavy = count_modules(argv, tree)
    return statistics.median(times), max(times), modules, heavy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=5, help="fresh processes per command (default 5)")
    parser.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="another checkout (e.g. a git worktree of an older revision) to compare with",
    )
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.baseline is not None and not (args.baseline / "training" / "cli.py").is_file():
        parser.error(f"--baseline {args.baseline}: not a checkout of this project")

    load_start = os.getloadavg()[0]
    rows: list[str] = []
    missed: list[str] = []
    for label, argv in (*FLOORS, *COMMANDS):
        median, worst, modules, heavy = measure(argv, args.repeat)
        floor = label.startswith("floor:")
        verdict = "" if floor else ("yes" if median < TARGET_S else "**no**")
        if not floor and median >= TARGET_S:
            missed.append(label)
        before = ""
        if args.baseline is not None:
            if floor:
                before = " | | |"
            else:
                b_median, _, b_modules, _ = measure(argv, args.repeat, args.baseline)
                before = f" | {b_median:.2f} | {b_modules:,} |"
        name = f"`{label.removeprefix('floor: ')}`" + (" (floor)" if floor else "")
        rows.append(f"| {name} | {median:.2f} | {worst:.2f} | {modules:,} | {heavy} | {verdict}{before}")
        if not before:
            rows[-1] += " |"
        print(rows[-1], flush=True)
    load_end = os.getloadavg()[0]

    machine = subprocess.run(["uname", "-srmo"], capture_output=True, text=True, check=False).stdout.strip()
    head = "| command | median s | max s | modules | heavy loaded | < 1 s |"
    rule = "|---|---:|---:|---:|---|---|"
    baseline_note = ""
    if args.baseline is not None:
        rev = subprocess.run(
            ["git", "-C", str(args.baseline), "log", "-1", "--format=%h (%s)"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()[:120] or str(args.baseline)
        head += " before: median s | before: modules |"
        rule += "---:|---:|"
        baseline_note = (
            f" Before: the same commands in a checkout of {rev}, same "
            f"interpreter and repeats, interleaved with the new ones."
        )
    text = (
        "# bench_cli_startup\n\n"
        f"Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  \n"
        f"Machine: {machine}, nproc={os.cpu_count()}, Python {platform.python_version()}, "
        f"load average {load_start:.1f} at start, {load_end:.1f} at end (shared)  \n"
        f"Each command {args.repeat} times, each time a fresh `python` process (after one untimed "
        f"warm-up run); wall time from spawn to exit. Modules: `len(sys.modules)` at exit of one more "
        f"run; heavy: which of {', '.join(HEAVY)} were loaded. Target: `--help` < {TARGET_S:g} s."
        f"{baseline_note}\n\n"
        f"{head}\n{rule}\n" + "\n".join(rows) + "\n"
    )
    OUT.write_text(text)
    sys.path.insert(0, str(REPO / "bench"))
    import collect  # bench/collect.py: rebuilds docs/BENCHMARKS.md from bench/results/*.md

    collect.main()
    print(f"\n{OUT.relative_to(REPO)} written; docs/BENCHMARKS.md rebuilt")
    if missed:
        print(f"target missed (median >= {TARGET_S:g} s): {', '.join(missed)}")


if __name__ == "__main__":
    main()
