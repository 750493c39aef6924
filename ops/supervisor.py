"""Start the pipeline's services as separate processes and stop them cleanly.

Used by the demo and by topic-replay backtests: each service runs exactly as in production
(`python -m <service> ...`), configured only through environment variables, with its log in a
file of the run's folder so a failure can be read afterwards.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from common.logging import get_logger

log = get_logger(__name__)
REPO = Path(__file__).resolve().parent.parent


_TICKS_PER_S = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu_seconds(pid: int) -> float | None:
    """utime + stime of a running process from /proc (Linux); None where that is not readable."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": state is field 3
    return (int(fields[11]) + int(fields[12])) / _TICKS_PER_S


def machine_busy_seconds() -> float | None:
    """CPU seconds the whole machine spent not idle since boot, summed over cores (Linux)."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
    except OSError:
        return None
    values = [int(v) for v in first[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return (sum(values[:8]) - idle) / _TICKS_PER_S


@dataclass
class ServiceProcess:
    name: str
    argv: list[str]
    proc: subprocess.Popen[bytes] | None = None
    log_file: IO[bytes] | None = field(default=None, repr=False)


class Supervisor:
    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self._env = os.environ | {"PYTHONPATH": str(REPO)} | env
        self._log_dir = log_dir
        self._services: list[ServiceProcess] = []
        self._cpu: dict[str, float] = {}
        log_dir.mkdir(parents=True, exist_ok=True)

    def start(self, name: str, *args: str) -> ServiceProcess:
        svc = ServiceProcess(name, [sys.executable, "-m", *args])
        svc.log_file = (self._log_dir / f"{name}.log").open("wb")
        svc.proc = subprocess.Popen(
            svc.argv, cwd=REPO, env=self._env, stdout=svc.log_file, stderr=subprocess.STDOUT
        )
        self._services.append(svc)
        log.info("service_started", service=name, pid=svc.proc.pid)
        return svc

    def sample_cpu(self) -> None:
        """Remember each running service's CPU time (user + system); called while they run, since
        an exited child's counters are gone once it is reaped."""
        for svc in self._services:
            if svc.proc is not None and svc.proc.poll() is None:
                seconds = process_cpu_seconds(svc.proc.pid)
                if seconds is not None:
                    self._cpu[svc.name] = seconds

    def cpu_seconds(self) -> dict[str, float]:
        """Latest CPU seconds per service (for a finished job: as of its last sample)."""
        return dict(self._cpu)

    def exited(self, name: str) -> bool:
        """True once ``name`` finished with exit code 0 (a job such as a replay); raises if it failed."""
        self.sample_cpu()
        for svc in self._services:
            if svc.name == name and svc.proc is not None:
                code = svc.proc.poll()
                if code not in (None, 0):
                    self.check_alive()
                return code == 0
        raise KeyError(name)

    def check_alive(self, allow_exited: set[str] | frozenset[str] = frozenset()) -> None:
        """Raise if a service died: a pipeline with a dead stage would wait forever."""
        for svc in self._services:
            assert svc.proc is not None
            code = svc.proc.poll()
            if code == 0 and svc.name in allow_exited:
                continue
            if code is not None:
                tail = (self._log_dir / f"{svc.name}.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"service {svc.name} exited with {code}; log tail:\n{tail}")

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM everyone (graceful: finish the message in hand, commit), then SIGKILL stragglers."""
        for svc in self._services:
            if svc.proc is not None and svc.proc.poll() is None:
                svc.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for svc in self._services:
            if svc.proc is None:
                continue
            try:
                svc.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("service_killed", service=svc.name)
                svc.proc.kill()
                svc.proc.wait()
            if svc.log_file is not None:
                svc.log_file.close()
        self._services.clear()

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
