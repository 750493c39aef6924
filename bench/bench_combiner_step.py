"""The meta consumer's ``decide_tick`` per combiner kind, timed tick by tick on the real candles.

Run: ``.venv/bin/python bench/bench_combiner_step.py [--ticks 600] [--hours 5000] [--label TEXT]``
(no Postgres or Kafka needed). Appends one row per kind to ``bench/results/combiner_step.md``.

What it does: the last ``--hours`` bundled real hourly candles, every registry strategy's answers
(``training.signals.compute_signals``) restricted to the seven price strategies (:data:`PRICE`),
the real funding series. For each kind one artefact is exported with the project's own
``training.research.export.export`` trained up to the cut (the bar ``--ticks`` before the end), loaded
as the service loads it (``common.combiner.load_combiner``, ``max_closes=BAR_CLOSES``), then
``meta_consumer.decide.decide_tick`` is called once per tick over the ``--ticks`` hours after the
cut, fed as the live service feeds it: the answers, the BarClosed's last ``BAR_CLOSES`` closes, the
last published funding rate and the funding charged over the bar (read by ``dsr``). Only
``decide_tick`` is on the clock (not building the inputs, not JSON encoding). The carry size is the
JSON of the last tick's carry (what every decision row stores), in bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from bench.machine import cpu_model  # noqa: E402
from common.combiner import load_combiner  # noqa: E402
from common.dataset import load_bundled_candles  # noqa: E402
from common.observation import FeatureSpec  # noqa: E402
from common.signals import SignalArrays  # noqa: E402
from config import DEFAULT_FUNDING_RATE_HOURLY, FallbackMode, load_settings  # noqa: E402
from meta_consumer.decide import BAR_CLOSES, Carry, Choice, TickInput, decide_tick, signals_tick_input  # noqa: E402
from training.research.export import FitData, export  # noqa: E402
from training.research.funding import bar_funding, load_funding  # noqa: E402
from training.research.protocol import funding_known  # noqa: E402
from training.signals import compute_signals, training_exogenous  # noqa: E402

PRICE = ("volatility_system", "supertrend", "fsupertrend", "ott", "bband_rsi", "ma_trend", "vwap_reversion")
#: kind -> research key exported (None: no combiner, the majority-vote fallback).
KINDS: dict[str, str | None] = {
    "fallback": None,
    "volmanaged": 'volmanaged:{"target_vol":0.3,"window":72}',
    "ridge": 'ridge:{"lam":0.01}',
    "hedge": 'hedge:{"decay":0.0,"eta":1.0}',
    "dsr": 'dsr:{"rho":0.001,"seed":0}',
    "rl": 'rl:{"horizon":168.0,"seeds":2,"steps":8192}',
}
OUT = REPO / "bench" / "results" / "combiner_step.md"
HEADER = """# Meta consumer: `decide_tick` per combiner kind (bench_combiner_step)

`bench/bench_combiner_step.py`: one artefact per combiner kind exported by
`training.research.export.export` on the bundled real hourly candles, trained up to a cut, loaded
with `common.combiner.load_combiner`; then `meta_consumer.decide.decide_tick` alone, tick by tick
over the hours after the cut, fed as the live service feeds it (answers, the BarClosed's last
{bar_closes} closes, funding last published and charged). Seven price strategies: {strategies}.
Milliseconds per tick; *carry*: the JSON of the last tick's carry (stored in every decision row),
bytes. Keys: {keys}. Shared 2-core dev machine: compare rows of one run.

"""
COLUMNS = ("date", "machine", "load", "code", "kind", "ticks", "median ms", "p95 ms", "carry bytes")

Real = tuple[pd.DataFrame, SignalArrays, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class Row:
    """What ``load_combiner`` reads from a ``models`` row."""

    model_id: str
    artifact: bytes
    artifact_sha256: str
    feature_spec: dict[str, Any] | None


def choice(kind: str, art: bytes | None) -> Choice:
    spec = FeatureSpec(strategies=PRICE)
    if art is None:
        return Choice("fallback", spec, None, FallbackMode.MAJORITY_VOTE)
    row = Row(f"bench-{kind}", art, hashlib.sha256(art).hexdigest(), json.loads(spec.to_json()))
    comb = load_combiner(row, max_closes=BAR_CLOSES)
    return Choice(row.model_id, spec, None, FallbackMode.MAJORITY_VOTE, combiner=comb)


def tick_input(real: Real, t: int) -> TickInput:
    """What the meta consumer is fed at bar ``t``'s tick."""
    candles, sig, fund, charge = real
    when = pd.Timestamp(sig.index[t]).to_pydatetime() + timedelta(hours=1)
    return signals_tick_input(
        candles["close"].to_numpy(np.float64),
        sig,
        t,
        when,
        funding_last=float(fund[t]),
        funding_charge=float(charge[t]),
        offset=t,
    )


def run(real: Real, ch: Choice, start: int, stop: int) -> tuple[list[float], int]:
    """``decide_tick`` over bars ``start .. stop-1``: ms per tick, last carry's JSON bytes."""
    ticks = [tick_input(real, t) for t in range(start, stop)]
    carry = Carry()
    ms: list[float] = []
    for tick in ticks:
        t0 = time.perf_counter()
        out = decide_tick(tick, carry, ch, PRICE, step=0.25, max_exposure=1.0)
        ms.append((time.perf_counter() - t0) * 1000)
        carry = out.carry
    return ms, len(json.dumps(carry.to_dict(), separators=(",", ":")).encode())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ticks", type=int, default=600, help="ticks timed after the cut (default 600)")
    ap.add_argument("--hours", type=int, default=5000, help="real hours read (signals warm up on 2,880)")
    ap.add_argument("--kinds", default=",".join(KINDS), help="comma-separated kinds (default: all)")
    ap.add_argument("--label", default="current", help="what code was measured (goes in the table)")
    args = ap.parse_args()
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        ap.error(f"unknown kinds {unknown}; known: {', '.join(KINDS)}")
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    candles = load_bundled_candles().iloc[-args.hours :]
    sig_all = compute_signals(candles, exogenous=training_exogenous())
    events = load_funding(Path(load_settings().exogenous.data_dir))
    sig = sig_all.restricted(PRICE)
    real: Real = (
        candles,
        sig,
        funding_known(sig.index, events),
        bar_funding(sig.index, events, DEFAULT_FUNDING_RATE_HOURLY).per_bar,
    )
    cut = len(sig.index) - args.ticks
    if cut <= 0:
        ap.error(f"--ticks {args.ticks} leaves no training bars in --hours {args.hours}")
    data = replace(FitData(candles, sig_all, events), train_until=pd.Timestamp(sig.index[cut - 1]))
    ready_s = time.perf_counter() - t0
    print(f"inputs ready in {ready_s:.1f} s; cut at bar {cut} ({sig.index[cut]})", flush=True)
    rows = []
    for kind in kinds:
        key = KINDS[kind]
        t1 = time.perf_counter()
        art = None if key is None else export(key, PRICE, data=data).artifact
        fit_s = time.perf_counter() - t1
        ms, carry_bytes = run(real, choice(kind, art), cut, len(sig.index))
        med = statistics.median(ms)
        p95 = statistics.quantiles(ms, n=20)[18]
        print(f"{kind:>10}: median {med:.3f} / p95 {p95:.3f} ms, carry {carry_bytes} B, export {fit_s:.1f} s")
        rows.append((kind, med, p95, carry_bytes))
    load = f"{load_before:.1f}-{os.getloadavg()[0]:.1f}"
    when = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    machine = f"{platform.node()} ({cpu_model()}, {os.cpu_count()} cpu)"
    lines = [
        f"| {when} | {machine} | {load} | {args.label} | {kind} | {args.ticks} | {med:.3f} | {p95:.3f} "
        f"| {carry_bytes:,} |"
        for kind, med, p95, carry_bytes in rows
    ]
    if not OUT.exists():
        keys = "; ".join(f"{k} `{v}`" for k, v in KINDS.items() if v is not None)
        head = HEADER.format(bar_closes=BAR_CLOSES, strategies=", ".join(PRICE), keys=keys)
        table = f"| {' | '.join(COLUMNS)} |\n|{'---|' * len(COLUMNS)}\n"
        OUT.write_text(head + table, encoding="utf-8")
    with OUT.open("a", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
