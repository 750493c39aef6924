"""Wall time of ``python -m training all`` on the bundled real dataset (target: under 15 minutes).

Runs the real command as a subprocess with the default agents and budgets (``training.rl``), into
a throw-away folder and SQLite results file, and writes ``bench/results/training_all.md`` with the
machine, date, load average, the time of each step (from the command's own progress lines) and
the run's leaderboard as printed.

    .venv/bin/python bench/bench_training_all.py [--budget-steps N] [--algos ppo,a2c,dqn,sac]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "results" / "training_all.md"
TARGET_S = 15 * 60


def machine() -> str:
    load = os.getloadavg()
    return (
        f"{platform.system()} {platform.machine()}, nproc={os.cpu_count()}, "
        f"Python {platform.python_version()}, load average at start {load[0]:.1f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget-steps", type=int, default=0, help="0 = each agent's default budget")
    ap.add_argument("--algos", default="ppo,a2c,dqn,sac")
    args = ap.parse_args()
    started_at = datetime.now(UTC)
    head = machine()
    with tempfile.TemporaryDirectory(prefix="bench-all-") as tmp:
        cmd = [
            sys.executable,
            "-m",
            "training",
            "all",
            "--out",
            tmp,
            "--algos",
            args.algos,
            "--budget-steps",
            str(args.budget_steps),
            "--results-db",
            f"sqlite:///{tmp}/results.db",
        ]
        env = {**os.environ, "TQDM_DISABLE": "1"}
        t0 = time.perf_counter()
        marks: list[tuple[str, float]] = []
        lines: list[str] = []
        with subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        ) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:
                print(line, end="", flush=True)
                lines.append(line.rstrip())
                if line.startswith("[") and "/7]" in line[:6]:
                    marks.append((line.strip(), time.perf_counter() - t0))
        total = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"training all failed with exit code {proc.returncode}")
    load_end = os.getloadavg()[0]
    steps = []
    for k, (label, at) in enumerate(marks):
        end = marks[k + 1][1] if k + 1 < len(marks) else total
        steps.append(f"| {label} | {end - at:,.1f} |")
    board = [ln for ln in lines if ln.startswith(("*", " ", "-", "window")) and "|" not in ln]
    verdict = "met" if total < TARGET_S else "**not met**"
    text = "\n".join(
        [
            "# training_all",
            "",
            f"Date: {started_at:%Y-%m-%d %H:%M} UTC  ",
            f"Machine: {head}, {load_end:.1f} at the end  ",
            f"Command: `python -m training all --algos {args.algos} --budget-steps {args.budget_steps}` "
            "(0 = default budgets of training.rl.DEFAULT_BUDGETS) on the bundled real BTC/USD 1h data "
            "(37,387 bars), one chronological split.  ",
            f"Wall time: **{total:,.0f} s ({total / 60:.1f} min)**; target under 15 min: {verdict}.",
            "",
            "| step | seconds |",
            "|---|---:|",
            *steps,
            "",
            "Leaderboard of that run (test window; the proposal was made on validation only):",
            "",
            "```",
            *board,
            "```",
            "",
        ]
    )
    OUT.write_text(text)
    print(f"\n{total:,.0f} s -> {OUT}")


if __name__ == "__main__":
    main()
