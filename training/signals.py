"""Every enabled registry strategy over the whole history, as the arrays the live observation uses.

Why the batch path is exact: each strategy's ``evaluate`` is the same vectorized code the live
service runs on its window, and docs/decisions/0004 proves window == history at every bar of the
real data. So ``target/event/confidence[t]`` here is what the meta consumer would have received for
the tick that closes bar ``t``.

A 1h strategy is due at every hourly tick, so its answer is fresh when the tick is decided (age 0;
the live service publishes from the first bar, warm-up included, where the target is FLAT). A 4h or
1d strategy answers when its own bar closes; between two of its bars the meta consumer holds its
last answer, ``age`` hourly ticks old. ``warmup`` is the longest ``warmup_bars`` in hours: before it
some strategy's target is flat by construction, so windows for training start after it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from common.dataset import resample_candles
from common.events import SignalEvent
from common.observation import EVENT_CODES
from common.registry import Registry, load_registry
from common.signals import SignalArrays

_EVENT_TO_CODE = {e.value: code for e, code in EVENT_CODES.items()}
HOUR = pd.Timedelta(hours=1)


def event_codes(events: np.ndarray) -> np.ndarray:
    """Event names (``ENTER_LONG`` ...) to the observation's integer codes; unknown names raise."""
    try:
        return np.array([_EVENT_TO_CODE[str(e)] for e in events], dtype=np.int8)
    except KeyError as exc:
        known = [e.value for e in SignalEvent]
        raise ValueError(f"unknown event {exc.args[0]!r}; expected one of {known}") from None


def compute_signals(
    candles: pd.DataFrame,
    registry: Registry | None = None,
    exogenous: Mapping[str, pd.DataFrame] | None = None,
) -> SignalArrays:
    """Run each enabled strategy of ``registry`` (default: the repo's) over ``candles`` (1h bars).

    A 4h/1d strategy runs on its own bars (resampled exactly as the tick emitter does) and its
    answer is the one the meta consumer holds at each hourly tick: that of its last bar closed by
    the tick, aged by the hours since (``age``), absent before its first bar. Strategies that read
    exogenous series get ``exogenous`` (the loader's frames), which each strategy cuts by
    publication time itself; a missing series makes it say "no opinion", as live.
    """
    reg = registry if registry is not None else load_registry()
    specs = reg.enabled
    if not specs:
        raise ValueError("the registry has no enabled strategy")
    n, s = len(candles), len(specs)
    target = np.zeros((n, s), dtype=np.int8)
    event = np.zeros((n, s), dtype=np.int8)
    confidence = np.zeros((n, s), dtype=np.float64)
    age = np.zeros((n, s), dtype=np.int64)
    present = np.ones((n, s), dtype=bool)
    hour_close = (pd.DatetimeIndex(candles.index) + HOUR).asi8
    warmup = 0
    for j, spec in enumerate(specs):
        strategy = spec.load_class()(
            params=dict(spec.params), lookback_hours=spec.lookback_hours, version=spec.version
        )
        if spec.timeframe != strategy.timeframe:
            raise ValueError(
                f"registry entry {spec.name!r}: timeframe {spec.timeframe} differs from the "
                f"class's {strategy.timeframe}"
            )
        frame = resample_candles(candles, spec.timeframe)
        out = (
            strategy.evaluate(frame, exogenous=exogenous or {})
            if spec.exogenous_inputs
            else strategy.evaluate(frame)
        )
        tgt = out["target"].to_numpy(dtype=np.int8)
        evt = event_codes(out["event"].to_numpy())
        conf = out["confidence"].to_numpy(dtype=np.float64)
        hours = spec.timeframe_minutes // 60
        warmup = max(warmup, int(strategy.warmup_bars) * max(hours, 1))
        if frame is candles:
            target[:, j], event[:, j], confidence[:, j] = tgt, evt, conf
            continue
        tf_close = (pd.DatetimeIndex(frame.index) + pd.Timedelta(minutes=spec.timeframe_minutes)).asi8
        last = np.searchsorted(tf_close, hour_close, side="right") - 1
        seen = last >= 0
        pick = np.maximum(last, 0)
        target[:, j] = np.where(seen, tgt[pick], 0)
        event[:, j] = np.where(seen, evt[pick], 0)
        confidence[:, j] = np.where(seen, conf[pick], 0.0)
        age[:, j] = np.where(seen, (hour_close - tf_close[pick]) // (HOUR.value), 0)
        present[:, j] = seen
    return SignalArrays(
        strategies=tuple(spec.name for spec in specs),
        index=pd.DatetimeIndex(candles.index, name="date"),
        target=target,
        event=event,
        confidence=confidence,
        age=age,
        present=present,
        warmup=warmup,
    )


def restarted_at(signals: SignalArrays, first: int) -> SignalArrays:
    """The arrays as a run whose first tick closes bar ``first`` sees them from that bar on.

    A fresh meta consumer knows only the answers published during its run: an answer given before
    ``first`` (a 1d strategy's, aged up to 23 ticks) is absent until the strategy's next bar closes.
    Rows before ``first`` are unchanged (no run sees them).
    """
    rows = np.arange(len(signals))[:, None]
    before = (rows >= first) & (rows - signals.age < first)
    return SignalArrays(
        strategies=signals.strategies,
        index=signals.index,
        target=np.where(before, 0, signals.target).astype(np.int8),
        event=np.where(before, 0, signals.event).astype(np.int8),
        confidence=np.where(before, 0.0, signals.confidence),
        age=np.where(before, 0, signals.age),
        present=signals.present & ~before,
        warmup=signals.warmup,
    )


# ---------------------------------------------------------------------------------------------
# Target positions per 1h bar for every registered strategy, any timeframe, with exogenous inputs
# (``python -m training signals --out FILE.csv``). Kept import-light: the tick emitter's resampler
# and the exogenous loader are imported where used.


def hourly_targets(
    strategy: Any, candles: pd.DataFrame, exogenous: Mapping[str, pd.DataFrame] | None = None
) -> np.ndarray:
    """The strategy's target at each 1h bar's close (int8), as the live service would have said it.

    A 4h/1d strategy answers when its own bar closes; at a 1h bar the value is the target of the
    last ``timeframe`` bar closed by that 1h bar's close (flat before the first), never a bar that
    closes later.
    """
    from common.timeframes import parse_timeframe

    frame = resample_candles(candles, strategy.timeframe)
    target = strategy.evaluate(frame, exogenous=exogenous)["target"].to_numpy(dtype=np.int8)
    if frame is candles:
        return target
    tf = pd.Timedelta(minutes=parse_timeframe(strategy.timeframe))
    tf_close = (pd.DatetimeIndex(frame.index) + tf).asi8
    hour_close = (pd.DatetimeIndex(candles.index) + HOUR).asi8
    last = np.searchsorted(tf_close, hour_close, side="right") - 1
    return np.where(last >= 0, target[np.maximum(last, 0)], 0).astype(np.int8)


def cut_inputs(
    candles: pd.DataFrame, exogenous: Mapping[str, pd.DataFrame], until: pd.Timestamp
) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """Everything known at ``until``: 1h bars closed by then, observations published by then."""
    kept = candles.loc[pd.DatetimeIndex(candles.index) + HOUR <= until]
    cut = {}
    for name, frame in exogenous.items():
        published = pd.to_datetime(frame["published_at"], utc=True) if len(frame) else frame["published_at"]
        cut[name] = frame.loc[(published <= until).to_numpy(dtype=bool)] if len(frame) else frame
    return kept, cut


def positions_table(
    candles: pd.DataFrame,
    registry: Registry | None = None,
    exogenous: Mapping[str, pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """One row per 1h bar: ``ts`` (open time, ISO UTC) and each enabled strategy's target (-1/0/1).

    The targets are ``compute_signals``'s, so the file and the training arrays cannot disagree.
    """
    sig = compute_signals(candles, registry, exogenous)
    out: dict[str, Any] = {
        "ts": pd.DatetimeIndex(candles.index).tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")
    }
    for j, name in enumerate(sig.strategies):
        out[name] = sig.target[:, j]
    return pd.DataFrame(out)


def exogenous_needed(registry: Registry) -> tuple[str, ...]:
    """Names of the exogenous series the enabled strategies of ``registry`` declare."""
    return tuple(sorted({name for spec in registry.enabled for name in spec.exogenous_inputs}))


def load_exogenous(directory: Path, names: tuple[str, ...]) -> dict[str, pd.DataFrame]:
    """The named series from a folder in the shared layout (``common.exogenous`` loader)."""
    from common.exogenous.files import load_dir

    return load_dir(directory, names) if names else {}


def training_exogenous(
    registry: Registry | None = None, directory: Path | None = None
) -> dict[str, pd.DataFrame]:
    """The series the registry's strategies read, for offline training and evaluation.

    From ``directory`` (default: the configured ``exogenous.data_dir``, the shared files). A missing
    folder is not an error: the strategies that read it say "no opinion" over the whole history, as
    they would live without the data, and a warning says so.
    """
    reg = registry if registry is not None else load_registry()
    names = exogenous_needed(reg)
    if not names:
        return {}
    if directory is None:
        from config import load_settings

        directory = Path(load_settings().exogenous.data_dir)
    if not directory.is_dir():
        from common.logging import get_logger

        get_logger(__name__).warning(
            "exogenous_data_missing",
            directory=str(directory),
            series=list(names),
            effect="strategies reading them stay flat (no opinion)",
        )
        return {}
    return load_exogenous(directory, names)


def parse_until(text: str) -> pd.Timestamp:
    """An ISO timestamp as UTC (a naive one is read as UTC); ValueError when it is not one."""
    ts = pd.Timestamp(text)
    if ts is pd.NaT:
        raise ValueError(f"not an ISO timestamp: {text!r}")
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def write_positions_csv(
    candles: pd.DataFrame,
    out: Path,
    *,
    exogenous_dir: Path | None = None,
    until: pd.Timestamp | None = None,
    registry: Registry | None = None,
) -> pd.DataFrame:
    """``positions_table`` over the inputs known at ``until`` (all of them without it) -> ``out``.

    The registry is the configured one (``BTCMETA_REGISTRY_PATH``, as the services read it).
    """
    if registry is None:
        from config import load_settings

        registry = load_registry(load_settings().registry_path)
    reg = registry
    exo = load_exogenous(exogenous_dir, exogenous_needed(reg)) if exogenous_dir is not None else {}
    if until is not None:
        candles, exo = cut_inputs(candles, exo, until)
    table = positions_table(candles, reg, exo)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    return table
