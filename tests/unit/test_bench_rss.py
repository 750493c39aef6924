"""The pure part of bench/rss.py: reading /proc/<pid>/status, naming services, judging targets.

The replay benchmark reports issue 17's memory targets from these functions; a wrong unit, a
strategy mistaken for another service or a verdict on the wrong side of the limit would report a
target as met that is not.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[2] / "bench" / "rss.py"
_SPEC = importlib.util.spec_from_file_location("bench_rss", _PATH)
assert _SPEC is not None and _SPEC.loader is not None
rss = importlib.util.module_from_spec(_SPEC)
sys.modules["bench_rss"] = rss
_SPEC.loader.exec_module(rss)

# A real /proc/<pid>/status (Linux 6.x, a strategy consumer), shortened in the middle.
STATUS = """Name:\tpython
Umask:\t0022
State:\tS (sleeping)
Tgid:\t41873
Ngid:\t0
Pid:\t41873
PPid:\t41790
TracerPid:\t0
VmPeak:\t 1712344 kB
VmSize:\t 1650120 kB
VmLck:\t       0 kB
VmPin:\t       0 kB
VmHWM:\t  161432 kB
VmRSS:\t  148020 kB
RssAnon:\t   98124 kB
RssFile:\t   49896 kB
RssShmem:\t       0 kB
Threads:\t7
voluntary_ctxt_switches:\t2961
nonvoluntary_ctxt_switches:\t417
"""


def test_status_fields_and_high_water_mark_in_mb() -> None:
    fields = rss.parse_status(STATUS)
    assert fields["PPid"] == "41790"
    assert fields["State"] == "S (sleeping)"
    # 161,432 kB of 1,024 bytes = 165.3 MB, the peak, not the current VmRSS (151.6 MB)
    assert rss.kb_field_mb(fields, "VmHWM") == pytest.approx(165.306368)
    assert rss.kb_field_mb(fields, "VmRSS") == pytest.approx(151.57248)


def test_a_zombie_without_memory_fields_has_no_peak_and_a_wrong_unit_is_refused() -> None:
    assert rss.kb_field_mb(rss.parse_status("Name:\tpython\nState:\tZ (zombie)\n"), "VmHWM") is None
    with pytest.raises(ValueError, match="unit"):
        rss.kb_field_mb({"VmHWM": "161432 MB"}, "VmHWM")


def test_service_labels_match_the_supervisor_names() -> None:
    py = "/repo/.venv/bin/python"
    assert rss.service_label([py, "-m", "strategy_consumers", "run", "supertrend"]) == "strategy.supertrend"
    assert rss.service_label([py, "-m", "meta_consumer", "run"]) == "meta_consumer"
    assert rss.service_label([py, "-m", "executor", "run"]) == "executor"
    assert rss.service_label([py, "-m", "tick_emitter", "replay", "--start", "x"]) == "tick_emitter.replay"
    assert rss.service_label([py, "-m", "ops", "import-candles"]) == "ops import-candles"
    assert rss.service_label([py, "script.py"]) is None


def test_a_value_above_target_is_not_met_and_one_below_is() -> None:
    lines = rss.rss_table(
        {
            "meta_consumer": rss.Peak(310.0),
            "strategy.a": rss.Peak(149.0),
            "strategy.b": rss.Peak(120.0, children_mb=40.0, children=1),  # 160 with its child
            "strategy.c": rss.Peak(150.0),  # at the limit: the issue says "< 150"
            "executor": rss.Peak(400.0),
        }
    )
    rows = {line.split(" | ")[0].lstrip("| "): line for line in lines if line.startswith("| ")}
    assert rows["strategy.a"].endswith("| 149 | 142 | < 150 | met |")
    assert "160 (incl. 1 child" in rows["strategy.b"] and rows["strategy.b"].endswith("**not met** |")
    assert rows["meta_consumer"].endswith("| 310 | 296 | < 300 | **not met** |")  # 296 MiB: still over 300 MB
    assert rows["executor"].endswith("| - | - |")  # the issue sets no target for it
    assert rows["strategy.c"].endswith("| < 150 | **not met** |")
    assert rows["**3 strategy processes**"].endswith("**not met** (2 over) |")
    # strategies first, then the other services by name
    assert [line.split(" | ")[0] for line in lines[2:7]] == [
        "| strategy.a",
        "| strategy.b",
        "| strategy.c",
        "| executor",
        "| meta_consumer",
    ]


def test_sampler_charges_a_grandchild_to_its_service() -> None:
    # a "service" that holds ~60 MB, then starts a child that holds ~40 MB, both long enough to be sampled
    child = "import time; b = bytearray(40_000_000); time.sleep(1.0)"
    code = (
        "import subprocess, sys, time; a = bytearray(60_000_000); time.sleep(0.5); "
        f"subprocess.run([sys.executable, '-c', {child!r}])"
    )
    with rss.RssSampler(interval=0.05) as sampler:
        subprocess.run([sys.executable, "-c", code, "-m", "executor", "run"], check=True)
        time.sleep(0.1)
    peak = sampler.peaks()["executor"]
    assert peak.children == 1
    assert peak.own_mb > 60 and peak.children_mb > 40
    assert sampler.root == os.getpid()
