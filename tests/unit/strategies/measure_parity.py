"""Measure live-vs-history parity on the real dataset, in parallel (numbers for ADR 0004).

Not a test module (pytest does not collect it); run it directly:

    .venv/bin/python -m tests.unit.strategies.measure_parity --procs 2 [--step 1] [names...]

It reports, per strategy: the every-bar window check (cold window path and warm carried-target path),
how many bars a frame needs before its signals / indicator bits stop depending on where it starts,
and the longest stretch the target recursion needs, once signals are exact, to coalesce.
"""

from __future__ import annotations

import argparse
import json
import time
from multiprocessing import Pool

import numpy as np

from common.dataset import load_bundled_candles
from strategy_consumers.strategies import BUILTIN, builtin_strategy
from strategy_consumers.strategies.targets import _TABLE, SIGNAL_COLUMNS, signal_codes
from tests.unit.strategies.parity import check_windows


def window_chunk(args: tuple[str, int, int, int]) -> dict:
    name, offset, stride, step = args
    df = load_bundled_candles()
    rep = check_windows(builtin_strategy(name), df, range(offset * step, len(df), stride * step))
    return {
        "checked": rep.checked,
        "signal": rep.signal_mismatch,
        "cold": rep.cold_target_mismatch,
        "warm": rep.warm_target_mismatch,
        "conf": rep.confidence_mismatch,
        "rel": rep.max_indicator_rel,
        "bits": rep.indicator_bits_differ,
    }


def _convergence_chunk(args: tuple[str, int, int, int, int]) -> tuple[int, int]:
    """Longest prefix (bars) over which a frame starting at s differs from the history."""
    name, offset, stride, conv_step, span = args
    df = load_bundled_candles()
    strategy = builtin_strategy(name)
    full = strategy.signals(df)
    sig = full[list(SIGNAL_COLUMNS)].to_numpy()
    ind = full[list(strategy.indicator_columns)].to_numpy()
    worst_sig = worst_bits = 0
    for s in range(offset * conv_step, len(df) - span, stride * conv_step):
        part = strategy.signals(df.iloc[s : s + span])
        bad = np.flatnonzero((part[list(SIGNAL_COLUMNS)].to_numpy() != sig[s : s + span]).any(axis=1))
        if bad.size:
            worst_sig = max(worst_sig, int(bad[-1]) + 1)
        a, b = part[list(strategy.indicator_columns)].to_numpy(), ind[s : s + span]
        differ = ~((a == b) | (np.isnan(a) & np.isnan(b)))
        bad = np.flatnonzero(differ.any(axis=1))
        if bad.size:
            worst_bits = max(worst_bits, int(bad[-1]) + 1)
    return worst_sig, worst_bits


def coalescence(name: str) -> dict:
    """From every start s (flat, after warm-up), bars until the target equals the history's."""
    df = load_bundled_candles()
    strategy = builtin_strategy(name)
    ev = strategy.evaluate(df)
    full = ev["target"].to_numpy().tolist()
    codes = (signal_codes(*[ev[c].to_numpy() for c in SIGNAL_COLUMNS]) * 3 + 1).tolist()
    n, worst, unfinished = len(full), 0, 0
    for s in range(strategy.warmup_bars, n):
        x, i = 0, s
        while i < n:
            x = _TABLE[codes[i] + x]
            if x == full[i]:
                break
            i += 1
        if i == n:
            unfinished += 1  # data ran out first: only starts near the end of the dataset
        else:
            worst = max(worst, i - s)
    return {"max_coalescence_bars": worst, "starts_without_coalescence_before_data_end": unfinished}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("names", nargs="*", default=list(BUILTIN))
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--step", type=int, default=1, help="check every step-th bar (1 = every bar)")
    ap.add_argument("--conv-step", type=int, default=10, help="stride of start bars in the warm-up scan")
    ap.add_argument("--span", type=int, default=3000, help="frame length in the warm-up scan")
    ap.add_argument("--skip-windows", action="store_true")
    args = ap.parse_args()
    results = {}
    with Pool(args.procs) as pool:
        for name in args.names:
            t0 = time.perf_counter()
            strategy = builtin_strategy(name)
            row: dict = {
                "lookback_hours": strategy.lookback_hours,
                "warmup_bars": strategy.warmup_bars,
                **coalescence(name),
            }
            conv = pool.map(
                _convergence_chunk,
                [(name, k, args.procs, args.conv_step, args.span) for k in range(args.procs)],
            )
            row["signals_converge_within"] = max(c[0] for c in conv)
            row["indicator_bits_converge_within"] = max(c[1] for c in conv)
            if not args.skip_windows:
                parts = pool.map(window_chunk, [(name, k, args.procs, args.step) for k in range(args.procs)])
                row["windows_checked"] = sum(p["checked"] for p in parts)
                for key in ("signal", "cold", "warm", "conf"):
                    bad = sorted(b for p in parts for b in p[key])
                    row[f"{key}_mismatches"] = len(bad)
                    row[f"{key}_first_bars"] = bad[:5]
                row["max_indicator_rel_diff"] = max(p["rel"] for p in parts)
                row["indicator_values_not_bit_equal"] = sum(p["bits"] for p in parts)
            row["seconds"] = round(time.perf_counter() - t0, 1)
            results[name] = row
            print(json.dumps({name: row}), flush=True)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
