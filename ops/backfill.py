"""Backfill one strategy over the retained bars history of a replay namespace.

Adding a strategy is adding a consumer group: ``strategy_consumers run <name>`` in the namespace
joins ``<prefix>strategy.<name>``, which has no committed offsets yet, so it starts at the oldest
retained BarClosed of its timeframe and answers every bar, exactly as it would live. A sink here
stores its Recommendations in ``recommendations`` under the namespace (the meta consumer's own
``save_recommendation``: idempotent, same columns). The other strategies are not re-run: their
answers from the original replay are already in that table, so :func:`signals_from_namespace`
turns the namespace's rows into the training engine's ``SignalArrays`` (``.npz``) with the new
strategy beside them, and a model can be retrained on it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from confluent_kafka import Consumer, TopicPartition
from sqlalchemy import Engine, func, select

from common.db.models import Recommendation
from common.db.session import make_engine, session_scope
from common.events import Recommendation as RecommendationEvent
from common.kafka.configuration import consumer_config
from common.kafka.topics import RECOMMENDATIONS, bars_topic
from common.observation import EVENT_CODES, TARGET_VALUES
from common.registry import load_registry
from common.serde import SerdeError, decode
from common.signals import SignalArrays
from meta_consumer.store import save_recommendation
from ops.pipeline import check_prefix, service_env, settings_for
from ops.supervisor import Supervisor


@dataclass(frozen=True)
class BackfillResult:
    strategy: str
    bars: int
    stored: int
    seconds: float


def retained_bars(prefix: str, timeframe: str) -> int:
    """BarClosed messages still retained on ``<prefix>market.bars.<tf>`` (single partition)."""
    settings = settings_for(prefix)
    probe = Consumer(consumer_config(settings, f"{prefix}backfill-probe"))
    try:
        low, high = probe.get_watermark_offsets(
            TopicPartition(settings.topic(bars_topic(timeframe)), 0), timeout=10
        )
    finally:
        probe.close()
    return int(high - low)


def stored_count(engine: Engine, namespace: str, strategy: str) -> int:
    with session_scope(engine) as s:
        q = select(func.count()).where(
            Recommendation.namespace == namespace, Recommendation.strategy == strategy
        )
        return int(s.scalar(q) or 0)


def backfill(
    prefix: str,
    strategy: str,
    log_dir: Path,
    *,
    timeout_s: float = 1800.0,
    say: Callable[[str], None] = print,
) -> BackfillResult:
    """Run ``strategy``'s consumer group over the namespace's retained bars; store its answers."""
    prefix = check_prefix(prefix)
    settings = settings_for(prefix)
    registry = load_registry(settings.registry_path, max_lookback_hours=settings.max_lookback_hours)
    spec = registry.get(strategy)
    expected = retained_bars(prefix, spec.timeframe)
    if expected == 0:
        raise ValueError(f"{prefix}{bars_topic(spec.timeframe)} retains no bars: replay the window first")
    engine = make_engine(settings.database_url.get_secret_value())
    # The sink never commits: storing is idempotent, so a re-run simply reads the topic again.
    sink = Consumer(consumer_config(settings, f"{prefix}backfill.{strategy}"))
    sink.subscribe([settings.topic(RECOMMENDATIONS)])
    started = time.monotonic()
    say(f"backfilling {strategy} over {expected:,} retained {spec.timeframe} bars of {prefix}")
    try:
        with Supervisor(service_env(prefix), log_dir) as sup:
            sup.start(f"strategy.{strategy}", "strategy_consumers", "run", strategy)
            while stored_count(engine, prefix, strategy) < expected:
                for msg in sink.consume(500, timeout=0.5):
                    value = msg.value()
                    if msg.error() is not None or value is None:
                        continue
                    try:
                        rec = decode(value, RecommendationEvent)
                    except SerdeError:
                        continue  # not ours to judge: the meta consumer dead-letters bad messages
                    if rec.strategy == strategy:
                        save_recommendation(engine, prefix, rec)
                sup.check_alive()
                if time.monotonic() - started > timeout_s:
                    raise TimeoutError(
                        f"backfill of {strategy}: {stored_count(engine, prefix, strategy)} of {expected} "
                        f"stored after {timeout_s:.0f}s; see {log_dir}"
                    )
    finally:
        sink.close()
    return BackfillResult(
        strategy, expected, stored_count(engine, prefix, strategy), time.monotonic() - started
    )


def signals_from_namespace(engine: Engine, namespace: str, strategies: Sequence[str]) -> SignalArrays:
    """The namespace's stored recommendations as the training engine's arrays (bars answered by all)."""
    with session_scope(engine) as s:
        rows = s.execute(
            select(
                Recommendation.strategy,
                Recommendation.timeframe,
                Recommendation.bar_close_time,
                Recommendation.target,
                Recommendation.event,
                Recommendation.confidence,
            ).where(Recommendation.namespace == namespace, Recommendation.strategy.in_(list(strategies)))
        ).all()
    frame = pd.DataFrame(
        rows, columns=["strategy", "timeframe", "bar_close_time", "target", "event", "confidence"]
    )
    if frame.empty:
        raise ValueError(f"no recommendations of {list(strategies)} in namespace {namespace!r}")
    frame["bar"] = pd.to_datetime(frame["bar_close_time"], utc=True) - pd.Timedelta(hours=1)
    if set(frame["timeframe"]) != {"1h"}:
        raise ValueError("only 1h strategies are supported (the training engine's bar grid)")
    target = frame.pivot(index="bar", columns="strategy", values="target").dropna()[list(strategies)]
    index = pd.DatetimeIndex(target.index, name="date")
    pick = lambda col: frame.pivot(index="bar", columns="strategy", values=col).loc[index, list(strategies)]  # noqa: E731
    target_codes = {t.value: v for t, v in TARGET_VALUES.items()}
    event_codes = {e.value: c for e, c in EVENT_CODES.items()}
    n, k = len(index), len(strategies)
    return SignalArrays(
        strategies=tuple(strategies),
        index=index,
        target=target.map(target_codes.__getitem__).to_numpy(dtype=np.int8),
        event=pick("event").map(event_codes.__getitem__).to_numpy(dtype=np.int8),
        confidence=pick("confidence").to_numpy(dtype=np.float64),
        age=np.zeros((n, k), dtype=np.int64),
        present=np.ones((n, k), dtype=bool),
        warmup=0,
    )
