"""Peak resident memory (RSS) of every service process a benchmark starts, against issue 17's targets.

Why a sampler and not ``resource.getrusage``: ``RUSAGE_CHILDREN`` gives one number, the largest
peak among all reaped descendants, not one per service; and the services are started and reaped
deep inside ``ops.supervisor`` (``Popen.wait``), which a benchmark must not change. The kernel
keeps each process's own high-water mark, ``VmHWM`` in ``/proc/<pid>/status`` (Linux): it only
grows, so the last value read before the process exits is its peak, minus at most what it grew in
the final sampling interval (the services are stopped by SIGTERM after the run, when they no
longer allocate). The sampler walks the whole process tree under the benchmark (``PPid``), so a
child that a service spawns itself is found too and charged to that service. RSS includes shared
pages (the interpreter, libraries), which is what a container's memory limit counts as well.

The parsing, naming and target logic is pure (unit-tested); :class:`RssSampler` does the reading.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

#: Issue 17: "a strategy process < 150 MB, the meta consumer < 300 MB" (MB = 10^6 bytes here:
#: the issue states no unit base; MiB would make the targets ~5 % looser).
TARGETS_MB: dict[str, float] = {"strategy": 150.0, "meta_consumer": 300.0}


def parse_status(text: str) -> dict[str, str]:
    """``/proc/<pid>/status`` as ``{field: value}`` (``"VmHWM": "123456 kB"``)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def kb_field_mb(fields: dict[str, str], key: str) -> float | None:
    """A ``kB`` field of a parsed status in MB (10^6 bytes); None when absent (a kernel thread,
    a zombie: those have no ``VmHWM``)."""
    value = fields.get(key)
    if value is None:
        return None
    number, _, unit = value.partition(" ")
    if unit.strip() != "kB":
        raise ValueError(f"{key}: unexpected unit in {value!r}")
    return int(number) * 1024 / 1e6


def service_label(argv: list[str]) -> str | None:
    """The service a ``python -m <module> <command> [name]`` command line runs, as the supervisor
    names it (``strategy.<name>``, ``meta_consumer``, ``executor``, ``tick_emitter.replay``); None
    for anything that is not ``python -m``."""
    if "-m" not in argv:
        return None
    rest = argv[argv.index("-m") + 1 :]
    if not rest:
        return None
    module, args = rest[0], rest[1:]
    if module == "strategy_consumers" and len(args) >= 2 and args[0] == "run":
        return f"strategy.{args[1]}"
    if module == "tick_emitter" and args[:1] == ["replay"]:
        return "tick_emitter.replay"
    if module in ("meta_consumer", "executor") and args[:1] == ["run"]:
        return module
    return f"{module} {args[0]}" if args else module


def target_mb(service: str) -> float | None:
    """Issue 17's RSS target for a service; None where the issue sets none."""
    if service.startswith("strategy."):
        return TARGETS_MB["strategy"]
    return TARGETS_MB.get(service)


@dataclass
class Peak:
    """One service's peak: its own process's high-water mark, plus its descendants' (if any)."""

    own_mb: float
    children_mb: float = 0.0
    children: int = 0

    @property
    def total_mb(self) -> float:
        """Own peak plus the children's peaks: exact without children; with children an upper
        bound (their peaks need not have coincided)."""
        return self.own_mb + self.children_mb


def rss_table(peaks: dict[str, Peak]) -> list[str]:
    """Markdown table: service, peak RSS (MB and MiB), target, met / not met (judged in MB, the
    stricter reading); strategies first, by name."""
    if not peaks:
        return []
    order = sorted(peaks, key=lambda s: (not s.startswith("strategy."), s))
    lines = [
        "| service (own process) | peak RSS (VmHWM), MB | MiB | target (issue 17), MB | met |",
        "|---|---:|---:|---:|---|",
    ]
    for service in order:
        peak = peaks[service]
        target = target_mb(service)
        value = f"{peak.total_mb:,.0f}"
        if peak.children:
            value += f" (incl. {peak.children} child process(es), {peak.children_mb:,.0f})"
        verdict = "-" if target is None else ("met" if peak.total_mb < target else "**not met**")
        mib = peak.total_mb * 1e6 / 2**20
        shown = "-" if target is None else f"< {target:,.0f}"
        lines.append(f"| {service} | {value} | {mib:,.0f} | {shown} | {verdict} |")
    strategies = [p.total_mb for s, p in peaks.items() if s.startswith("strategy.")]
    if strategies:
        limit = TARGETS_MB["strategy"]
        over = sum(1 for v in strategies if v >= limit)  # same verdict as each row: met is < limit
        lines.append(
            f"| **{len(strategies)} strategy processes** | min {min(strategies):,.0f} / max "
            f"{max(strategies):,.0f} / sum {sum(strategies):,.0f} | "
            f"min {min(strategies) / 1.048576:,.0f} / max {max(strategies) / 1.048576:,.0f} | "
            f"< {limit:,.0f} each | "
            f"{'met' if not over else f'**not met** ({over} over)'} |"
        )
    return [*lines, ""]


def _read(pid: int, name: str) -> str | None:
    try:
        return Path(f"/proc/{pid}/{name}").read_text()
    except OSError:  # gone between listing and reading, or not ours to read
        return None


@dataclass
class RssSampler:
    """Background thread: every ``interval`` s, every process under ``root`` and its ``VmHWM``.

    Use as a context manager around the code that starts and stops the services; then
    :meth:`peaks` gives one :class:`Peak` per service (top-level ``python -m`` child)."""

    root: int = field(default_factory=os.getpid)
    interval: float = 0.2
    _hwm: dict[int, float] = field(default_factory=dict, init=False)
    _owner: dict[int, int] = field(default_factory=dict, init=False)  # pid -> top-level child
    _label: dict[int, str | None] = field(default_factory=dict, init=False)
    _stop: threading.Event = field(default_factory=threading.Event, init=False)
    _thread: threading.Thread | None = field(default=None, init=False)

    def sample(self) -> None:
        """One pass over /proc: record the high-water mark of every descendant of ``root``."""
        parent: dict[int, int] = {}
        status: dict[int, dict[str, str]] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            text = _read(int(entry), "status")
            if text is None:
                continue
            fields = parse_status(text)
            try:
                parent[int(entry)] = int(fields.get("PPid", "0"))
            except ValueError:
                continue
            status[int(entry)] = fields
        for pid, fields in status.items():
            chain = [pid]  # walk up to root; the first pid below root is the service
            while chain[-1] in parent and parent[chain[-1]] not in (self.root, 0, 1):
                chain.append(parent[chain[-1]])
            if parent.get(chain[-1]) != self.root:
                continue
            top = chain[-1]
            self._owner[pid] = top
            if top not in self._label:
                cmdline = _read(top, "cmdline")
                self._label[top] = None if cmdline is None else service_label(cmdline.split("\0")[:-1])
            hwm = kb_field_mb(fields, "VmHWM")
            if hwm is not None:
                self._hwm[pid] = max(hwm, self._hwm.get(pid, 0.0))

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> RssSampler:
        self.sample()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def peaks(self) -> dict[str, Peak]:
        """One :class:`Peak` per labelled service (a service started twice keeps its larger peak)."""
        out: dict[str, Peak] = {}
        for top, label in self._label.items():
            if label is None or top not in self._hwm:
                continue
            kids = [p for p, o in self._owner.items() if o == top and p != top and p in self._hwm]
            peak = Peak(self._hwm[top], sum(self._hwm[p] for p in kids), len(kids))
            if label not in out or peak.total_mb > out[label].total_mb:
                out[label] = peak
        return out
