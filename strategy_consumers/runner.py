"""The generic live runner: one strategy, one consumer group, one Recommendation per closed bar.

Every strategy service is this runner with a different registry entry, so adding a strategy is a
module plus a registry line. The target state machine is carried across bars in memory (warm
mode, exact by construction); after a restart, or when a bar is missing, the first bar is
computed cold from the window alone, which equals the full history on the real data for the
registry's lookbacks (docs/decisions/0004-strategy-parity.md).

Bars are answered per consume batch: live, a batch is one bar; under a backlog (catch-up, topic
replays) consecutive bars whose windows agree are answered from one frame
(:meth:`Strategy.recommend_run`) instead of one frame each, which is what lets a replay run
faster than the strategies' per-window cost. Recommendations are produced and flushed before the
loop commits the batch's offsets.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from confluent_kafka import Message

from common.bar_stream import ChainBroken, WindowAssembler
from common.events import BarClosed, Recommendation, SignalEvent, Target, to_epoch_ms
from common.kafka.consumer import ConsumerLoop, PoisonMessage
from common.kafka.producer import EventProducer
from common.kafka.readback import PartitionReadBack
from common.kafka.topics import RECOMMENDATIONS, bars_topic
from common.logging import get_logger
from common.metrics import STEPPER_GUARD_CHECKS, STEPPER_RESYNCS
from common.registry import StrategySpec, load_registry
from common.serde_bars import COLUMNS, BarWindow, ExogenousArrays, decode_bar_window
from config import Settings
from strategy_consumers.strategies.base import RecommendationResult, Strategy
from strategy_consumers.strategies.stepping import Bar, as_arrays

log = get_logger(__name__)

TARGETS = {1: Target.LONG, -1: Target.SHORT, 0: Target.FLAT}
#: How many recent bar targets to remember (re-deliveries of a recent bar stay warm).
STATE_BARS = 64


class RunnerError(RuntimeError):
    """The runner cannot start (unknown or disabled strategy)."""


def resolve_spec(settings: Settings, name: str) -> StrategySpec:
    registry = load_registry(settings.registry_path, max_lookback_hours=settings.max_lookback_hours)
    if name not in registry.names:
        raise RunnerError(f"strategy {name!r} is not in {settings.registry_path} (known: {registry.names})")
    spec = registry.get(name)
    if not spec.enabled:
        raise RunnerError(f"strategy {name!r} is disabled in {settings.registry_path}")
    return spec


def build_strategy(spec: StrategySpec) -> Strategy:
    cls = spec.load_class()
    return cls(params=spec.params, lookback_hours=spec.lookback_hours, version=spec.version)


def window_frame(bar: BarClosed | BarWindow, bars: int) -> pd.DataFrame:
    """The last ``bars`` bars of the event as the frame the strategy code expects."""
    if isinstance(bar, BarClosed):
        bar = BarWindow.from_event(bar)
    index = pd.DatetimeIndex(pd.to_datetime(bar.times[-bars:], unit="ms", utc=True), name="date")
    # Copies: the window's arrays are read-only views of the message bytes.
    data = {c: np.array(bar.columns[c][-bars:], dtype=np.float64) for c in COLUMNS}
    return pd.DataFrame(data, index=index)


class StrategyRunner:
    """Turns BarClosed events into Recommendations for one strategy."""

    def __init__(self, settings: Settings, spec: StrategySpec, producer: EventProducer) -> None:
        self.settings = settings
        self.spec = spec
        self.strategy = build_strategy(spec)
        self.producer = producer
        self.topic_out = settings.topic(RECOMMENDATIONS)
        self._tf = timedelta(minutes=spec.timeframe_minutes)
        self._bars = self.strategy.bars_needed(spec.timeframe_minutes)
        self._reads_exogenous = bool(self.strategy.exogenous_inputs)
        self._reach_ms = int(self.strategy.exogenous_reach() / timedelta(milliseconds=1))
        self._targets: OrderedDict[datetime, int] = OrderedDict()
        self._pending: list[tuple[BarWindow, Message | None]] = []
        #: Set by :func:`make_loop`: the loop's dead-letter step for a bar that failed on its own.
        self.dead_letter: Callable[[Message, str, str], None] | None = None
        self._stepper = self.strategy.stepper() if settings.strategy.step else None
        self._guard_bars = settings.strategy.guard_bars
        self._since_guard = 0
        self._service = f"strategy.{spec.name}"
        #: The window whose last bar the stepper holds (its warm tail is checked on the next bar).
        self._stepped_window: BarWindow | None = None
        #: Turns continuations into whole windows (ADR 0028); reads a chain back when it must.
        self.assembler = WindowAssembler(PartitionReadBack(settings, self._service))

    def check(self, bar: BarClosed | BarWindow) -> None:
        """Refuse a bar this strategy cannot answer (it goes to the dead-letter topic)."""
        if bar.timeframe != self.spec.timeframe:
            raise PoisonMessage(
                f"bar timeframe {bar.timeframe} is not {self.spec.name}'s {self.spec.timeframe}"
            )
        if bar.symbol != self.settings.symbol:
            raise PoisonMessage(f"bar symbol {bar.symbol!r} is not the configured {self.settings.symbol!r}")
        if len(bar) == 0:
            raise PoisonMessage("bar window is empty")

    def recommendation_for(self, bar: BarClosed | BarWindow) -> Recommendation:
        self.check(bar)
        if isinstance(bar, BarClosed):
            bar = BarWindow.from_event(bar)
        prev = self._targets.get(bar.bar_open_time - self._tf)
        result = self._stepped(bar, prev)
        if result is None:
            if prev is None:
                log.info("cold_start", strategy=self.spec.name, bar_open_time=bar.bar_open_time.isoformat())
            result = self._window_result(bar, prev)
            self._seed(bar)
        self._remember(bar.bar_open_time, result.target)
        return self._recommendation(bar, result)

    def _window_result(self, bar: BarWindow, prev: int | None) -> RecommendationResult:
        """The bar recomputed from its window (the reference every other path must equal)."""
        window = window_frame(bar, self._bars)
        return self.strategy.recommend(window, prev_target=prev, exogenous=self._exogenous(bar, window))

    # ------------------------------------------------------------------ incremental path
    def _stepped(self, bar: BarWindow, prev: int | None) -> RecommendationResult | None:
        """The bar from the stepper, if it carries the state up to this bar's predecessor.

        None (the caller recomputes the window and reseeds) when there is no stepper, no carried
        target, or the window's previous bar is not the bar stepped last (a gap, a restart, a
        batch answered from one frame, a revised candle). Every ``guard_bars`` stepped bars the
        window path runs too and wins on any difference.
        """
        stepper = self._stepper
        n = len(bar)
        if stepper is None or prev is None or n < 2 or stepper.last is None or self._stepped_window is None:
            return None
        if stepper.last != _bar_at(bar, n - 2) or not self._same_tail(self._stepped_window, bar):
            return None
        try:
            result = self.strategy.warm_result(as_arrays(stepper.push(_bar_at(bar, n - 1))), prev)
        except Exception as exc:  # a stepper bug must cost speed, never the bar: recompute it
            log.error("stepper_failed", strategy=self.spec.name, error=repr(exc))
            STEPPER_RESYNCS.labels(self._service, "error").inc()
            stepper.reset()
            self._stepped_window = None
            return None
        self._stepped_window = bar
        self._since_guard += 1
        if self._since_guard < self._guard_bars:
            return result
        self._since_guard = 0
        STEPPER_GUARD_CHECKS.labels(self._service).inc()
        reference = self._window_result(bar, prev)
        if not same_result(result, reference):
            log.warning(
                "stepper_diverged",
                strategy=self.spec.name,
                bar_open_time=bar.bar_open_time.isoformat(),
                stepped=repr(result),
                window=repr(reference),
            )
            STEPPER_RESYNCS.labels(self._service, "guard_mismatch").inc()
            self._seed(bar, count=False)
            return reference
        return result

    def _same_tail(self, before: BarWindow, bar: BarWindow) -> bool:
        """Does ``bar``'s window hold, before its new bar, the bars the warm path reads exactly as
        ``before`` (the window stepped last) had them? A candle revised there since changes the
        window's answer, so the stepper must not carry on (older bars cannot: ADR 0004)."""
        k = self.strategy.warmup_bars
        n, m = len(bar), len(before)
        if n < k + 1 or m < k:
            return False
        if not np.array_equal(bar.times[n - 1 - k : n - 1], before.times[m - k :]):
            return False
        return all(
            np.array_equal(bar.columns[c][n - 1 - k : n - 1], before.columns[c][m - k :], equal_nan=True)
            for c in COLUMNS
        )

    def _seed(self, bar: BarWindow, count: bool = True) -> None:
        """Rebuild the stepper from the window's warm tail (the frame the warm path computes)."""
        stepper = self._stepper
        if stepper is None:
            return
        n = len(bar)
        if n <= self.strategy.warmup_bars:  # too short to trust: stay on the window path
            stepper.reset()
            self._stepped_window = None
            return
        try:
            stepper.seed([_bar_at(bar, i) for i in range(n - self.strategy.warmup_bars - 1, n)])
        except Exception as exc:  # as in _stepped: the window path goes on answering
            log.error("stepper_failed", strategy=self.spec.name, error=repr(exc))
            STEPPER_RESYNCS.labels(self._service, "error").inc()
            stepper.reset()
            self._stepped_window = None
            return
        self._stepped_window = bar
        self._since_guard = 0
        if count:
            STEPPER_RESYNCS.labels(self._service, "seed").inc()

    def _exogenous(self, bar: BarClosed | BarWindow, window: pd.DataFrame) -> dict[str, pd.DataFrame] | None:
        """The bar's exogenous series, cut for ``window`` exactly as the full-history path cuts them.

        The message carries each series from the earliest publication any strategy due on the
        timeframe can use; ``Strategy.cut_exogenous`` keeps what this strategy's window can use.
        A series the message lacks stays absent (the strategy then says why it has no opinion).
        """
        if not self._reads_exogenous:
            return None
        if isinstance(bar, BarClosed):
            bar = BarWindow.from_event(bar)
        frames = {
            name: bar.exogenous[name].to_frame()
            for name in self.strategy.exogenous_inputs
            if name in bar.exogenous
        }
        return self.strategy.cut_exogenous(frames, window)

    def recommendations_for(self, bars: Sequence[BarWindow]) -> list[Recommendation]:
        """One Recommendation per bar, in order: runs of consecutive bars from one frame each."""
        out: list[Recommendation] = []
        start = 0
        while start < len(bars):
            prev = self._targets.get(bars[start].bar_open_time - self._tf)
            result = self._stepped(bars[start], prev)
            if result is not None:
                self._remember(bars[start].bar_open_time, result.target)
                out.append(self._recommendation(bars[start], result))
                start += 1
                continue
            end = self._run_end(bars, start)
            if end - start < 2 or prev is None:
                out.append(self.recommendation_for(bars[start]))
                start += 1
                continue
            run, last = bars[start:end], bars[end - 1]
            frame = window_frame(last, self.strategy.warmup_bars + len(run))
            exo = self._exogenous(last, frame)
            results = self.strategy.recommend_run(frame, len(run), prev, exogenous=exo)
            for bar, result in zip(run, results, strict=True):
                self._remember(bar.bar_open_time, result.target)
                out.append(self._recommendation(bar, result))
            start = end
        if self._stepper is not None and bars:
            last = bars[-1]
            if self._stepper.last != _bar_at(last, len(last) - 1):
                self._seed(last)  # answered from one frame: bring the stepper up to date
        return out

    def _run_end(self, bars: Sequence[BarWindow], start: int) -> int:
        """End (exclusive) of the longest run from ``start`` that one frame answers exactly as the
        bar-by-bar path would: consecutive bars, each with a full warm tail, whose tails are the
        same bars with the same values in the run's last window."""
        warm = self.strategy.warmup_bars + 1
        tf_ms = int(self._tf.total_seconds() * 1000)
        end = start + 1
        while end < len(bars):
            bar = bars[end]
            if (
                len(bar) < warm
                or len(bars[end - 1]) < warm
                or to_epoch_ms(bar.bar_open_time) != to_epoch_ms(bars[end - 1].bar_open_time) + tf_ms
                or end + 1 - start > len(bar) - self.strategy.warmup_bars
            ):
                break
            end += 1
        # Every earlier bar's own tail must be the matching slice of the last bar's window.
        while end - start >= 2 and not self._tails_agree(bars[start:end]):
            end -= 1
        return end

    def _tails_agree(self, run: Sequence[BarWindow]) -> bool:
        warm = self.strategy.warmup_bars + 1
        last = run[-1]
        n = len(last)
        for j, bar in enumerate(run[:-1]):
            stop = n - (len(run) - 1 - j)
            if not np.array_equal(bar.times[-warm:], last.times[stop - warm : stop]):
                return False
            for c in COLUMNS:
                mine, theirs = bar.columns[c][-warm:], last.columns[c][stop - warm : stop]
                if not np.array_equal(mine, theirs, equal_nan=True):
                    return False
        return self._exogenous_agree(run)

    def _exogenous_agree(self, run: Sequence[BarWindow]) -> bool:
        """Would each earlier bar of the run see, from the last bar's inputs, what its own carried?

        The run is answered from the last message's observations; an earlier bar may only be
        answered that way if the observations usable for it (published from the run frame's
        reach up to its own close) are the same rows in its own message. They differ when a row
        was stored after that bar's tick with an earlier ``published_at`` (a late import): then
        the bar gets what was known at its tick, bar by bar.
        """
        if not self._reads_exogenous:
            return True
        last = run[-1]
        tf_ms = int(self._tf.total_seconds() * 1000)
        frame_start = int(last.times[len(last) - (self.strategy.warmup_bars + len(run))])
        lo = frame_start + tf_ms - self._reach_ms
        for bar in run[:-1]:
            close = to_epoch_ms(bar.bar_open_time) + tf_ms
            for name in self.strategy.exogenous_inputs:
                theirs, mine = last.exogenous.get(name), bar.exogenous.get(name)
                if (theirs is None) != (mine is None):
                    return False
                if theirs is None or mine is None:
                    continue
                if not _same_rows(_published_in(mine, lo, close), _published_in(theirs, lo, close)):
                    return False
        return True

    def _recommendation(self, bar: BarClosed | BarWindow, result: RecommendationResult) -> Recommendation:
        return Recommendation(
            tick_id=bar.tick_id,
            strategy=self.spec.name,
            strategy_version=self.spec.version,
            symbol=bar.symbol,
            timeframe=bar.timeframe,
            bar_close_time=bar.bar_open_time + self._tf,
            target=TARGETS[result.target],
            event=SignalEvent(result.event),
            confidence=result.confidence,
            horizon_bars=result.horizon_bars,
            indicators={k: v for k, v in result.indicators.items() if np.isfinite(v)},
            produced_at=datetime.now(UTC),
            reason=result.reason,
            attention=_attention(result.indicators),
        )

    def _remember(self, bar_open_time: datetime, target: int) -> None:
        self._targets[bar_open_time] = target
        self._targets.move_to_end(bar_open_time)
        while len(self._targets) > STATE_BARS:
            self._targets.popitem(last=False)

    def handle(self, bar: BarClosed | BarWindow, msg: Message | None = None) -> None:
        """Check the bar now (a bad one is dead-lettered alone); answer it with its batch.

        A continuation (BarClosed v3) becomes its whole window here, where the message's place in
        its partition is known; one that cannot be rebuilt is dead-lettered with the reason.
        """
        self.check(bar)
        part = bar if isinstance(bar, BarWindow) else BarWindow.from_event(bar)
        try:
            if msg is None:
                whole = self.assembler.window(part)
            else:
                where = (msg.topic() or "", msg.partition() or 0, msg.offset() or 0)
                whole = self.assembler.window(part, *where)
        except ChainBroken as exc:
            raise PoisonMessage(str(exc)) from exc
        self._pending.append((whole, msg))

    def answer_batch(self) -> None:
        """The loop's after-batch step: answer the batch's bars, produce and flush, before the commit.

        Should the one-frame path fail, the bars are answered one by one, so that a bar the
        strategy cannot compute is dead-lettered alone, as the loop does for a per-message error.
        """
        pending, self._pending = self._pending, []
        if not pending:
            return
        try:
            recs = self.recommendations_for([bar for bar, _ in pending])
        except Exception as exc:
            log.warning("batch_path_failed", strategy=self.spec.name, bars=len(pending), error=repr(exc))
            recs = []
            for bar, msg in pending:
                try:
                    recs.append(self.recommendation_for(bar))
                except Exception as one:
                    if self.dead_letter is None or msg is None:
                        raise
                    self.dead_letter(msg, f"{type(one).__name__}: {one}", type(one).__name__)
        for rec in recs:
            self.producer.send(self.topic_out, rec, key=rec.tick_id)
        self.producer.flush()


#: The indicator a strategy publishes to flag a news-related high-attention bar.
ATTENTION_INDICATOR = "high_attention"


def _attention(indicators: dict[str, float]) -> bool | None:
    """The Recommendation's attention flag: the strategy's ``high_attention`` indicator, if it has one."""
    value = indicators.get(ATTENTION_INDICATOR)
    if value is None or not np.isfinite(value):
        return None
    return bool(value)


def _bar_at(bar: BarWindow, i: int) -> Bar:
    """Row ``i`` of the window as a stepper bar (open time in epoch ns)."""
    c = bar.columns
    return (
        int(bar.times[i]) * 1_000_000,
        float(c["open"][i]),
        float(c["high"][i]),
        float(c["low"][i]),
        float(c["close"][i]),
        float(c["volume"][i]),
    )


def same_result(a: RecommendationResult, b: RecommendationResult) -> bool:
    """Equal recommendations, bit for bit (NaN equals NaN): what the guard demands."""

    def same(x: float, y: float) -> bool:
        return x == y or (x != x and y != y)

    return (
        a.target == b.target
        and a.event == b.event
        and same(a.confidence, b.confidence)
        and a.horizon_bars == b.horizon_bars
        and a.reason == b.reason
        and a.indicators.keys() == b.indicators.keys()
        and all(same(v, b.indicators[k]) for k, v in a.indicators.items())
    )


def _published_in(arrays: ExogenousArrays, lo: int, hi: int) -> ExogenousArrays:
    pub = arrays.published_ms
    return arrays.slice(int(np.searchsorted(pub, lo, "left")), int(np.searchsorted(pub, hi, "right")))


def _same_rows(a: ExogenousArrays, b: ExogenousArrays) -> bool:
    if not (np.array_equal(a.about_ms, b.about_ms) and np.array_equal(a.published_ms, b.published_ms)):
        return False
    if a.numbers.keys() != b.numbers.keys() or a.texts.keys() != b.texts.keys():
        return False
    return all(np.array_equal(v, b.numbers[c], equal_nan=True) for c, v in a.numbers.items()) and all(
        list(v) == list(b.texts[c]) for c, v in a.texts.items()
    )


def make_loop(settings: Settings, name: str, **loop_kwargs: Any) -> tuple[ConsumerLoop, StrategyRunner]:
    """The consumer loop of ``strategy.<name>`` on its timeframe's bars topic."""
    spec = resolve_spec(settings, name)
    producer = EventProducer(settings, f"strategy.{name}")
    runner = StrategyRunner(settings, spec, producer)
    loop = ConsumerLoop(
        settings,
        service=f"strategy.{name}",
        group_id=f"{settings.kafka.topic_prefix}strategy.{name}",
        topics=[settings.topic(bars_topic(spec.timeframe))],
        handler=runner.handle,
        producer=producer,
        expected=BarClosed,
        decoder=decode_bar_window,
        after_batch=runner.answer_batch,
        **loop_kwargs,
    )
    runner.dead_letter = loop.dead_letter
    return loop, runner
