"""Exogenous inputs on the bars: which series each due strategy reads, cut at the tick, read once.

A strategy declares its inputs in code (``Strategy.exogenous_inputs``) and how far back before its
window's first bar close they can still matter (``Strategy.exogenous_reach``). At a tick, every
bars message of a timeframe carries, per series read by a strategy due on that timeframe, the
observations published in ``[earliest first bar close of those strategies' windows - their reach,
tick]``: a superset of what ``Strategy.cut_exogenous`` keeps for any of those windows (the runner applies
that cut, so live sees exactly what the full-history path sees). Nothing published after the tick
is ever attached: the feed is asked for ``published_at <= tick`` and the result is checked again.

Where the observations come from (``ExogenousFeed``):

* ``CachedDbFeed`` (the emitter and the replay): the series held in memory and topped up, so a tick
  costs an in-memory cut (~0.2 ms) instead of one Postgres query per series (~25 ms each on a
  TimescaleDB hypertable, whose 150+ chunks are all planned because the read filters on
  ``published_at``, not on the partitioning column). Its docstring says when it goes back to the
  database and why a late row is still seen.
* ``DbFeed``: one query per series and tick; the reference the cache is tested against.
* ``FrameFeed``: whole series given in memory (files, tests).
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import numpy as np
from sqlalchemy import Engine, Select, func, select, text

from common.events import to_epoch_ms
from common.logging import get_logger
from common.registry import Registry, StrategySpec
from common.serde_bars import ExogenousArrays
from common.timeframes import parse_timeframe
from tick_emitter.core import MINUTE_MS, BarPayload, DuePlan

log = get_logger(__name__)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class ExogenousLeak(RuntimeError):
    """An observation published after the tick was about to be sent (a feed bug): never published."""


@dataclass(frozen=True, slots=True)
class ExogenousNeed:
    """One strategy's inputs: the series it reads and how far before its window they matter (ms)."""

    strategy: str
    timeframe: str
    series: tuple[str, ...]
    reach_ms: int
    #: Bars of the strategy's own window (the last ones of its timeframe's message).
    bars: int


def exogenous_needs(specs: Registry | Iterable[StrategySpec]) -> tuple[ExogenousNeed, ...]:
    """The needs of every enabled strategy that declares exogenous inputs (imports their classes).

    The reach comes from the strategy instance built with its registry params, exactly as the
    runner builds it, so the emitter and the strategy agree on the cut. A class that cannot be
    imported here is logged and gets no inputs: its runner (which imports the same class) cannot
    start either, and were it to, a missing input makes a strategy say "no opinion", never guess.
    """
    out = []
    enabled = specs.enabled if isinstance(specs, Registry) else tuple(s for s in specs if s.enabled)
    for spec in enabled:
        try:
            cls = spec.load_class()
        except Exception as exc:  # the registry's own check reports it to whoever deploys
            log.error(
                "strategy_class_not_importable",
                strategy=spec.name,
                class_path=spec.class_path,
                error=f"{type(exc).__name__}: {exc}",
                detail="no exogenous inputs attached for it",
            )
            continue
        inputs = getattr(cls, "exogenous_inputs", None)
        if not inputs:
            continue
        strategy = cls(params=spec.params, lookback_hours=spec.lookback_hours, version=spec.version)
        reach = strategy.exogenous_reach()
        out.append(
            ExogenousNeed(
                spec.name,
                spec.timeframe,
                tuple(inputs),
                int(reach / timedelta(milliseconds=1)),
                strategy.bars_needed(spec.timeframe_minutes),
            )
        )
    return tuple(out)


class ExogenousFeed(Protocol):
    """Where observations come from: per series, its rows published in ``[lo, hi]`` (epoch ms)."""

    def read_all(self, wanted: Mapping[str, tuple[int, int]]) -> dict[str, ExogenousArrays]: ...


def _dt(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


class DbFeed:
    """Postgres (``exogenous_observations``): one indexed range query per series and tick."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def read_all(self, wanted: Mapping[str, tuple[int, int]]) -> dict[str, ExogenousArrays]:
        """One connection checkout per tick, one query per series."""
        from common.exogenous.store import read_published

        with self.engine.connect() as conn:
            return {
                series: ExogenousArrays.from_frame(series, read_published(conn, series, _dt(lo), _dt(hi)))
                for series, (lo, hi) in wanted.items()
            }


class FrameFeed:
    """Whole series held in memory (files or one DB read), cut per tick by binary search.

    For long replays, where a query per tick would dominate; gives the rows ``DbFeed`` gives.
    """

    def __init__(self, frames: Mapping[str, ExogenousArrays]) -> None:
        for name, arrays in frames.items():
            pub = arrays.published_ms
            if pub.size > 1 and not bool(np.all(pub[1:] >= pub[:-1])):
                raise ValueError(f"{name}: observations must be sorted by published_at")
        self.frames = dict(frames)

    def read_all(self, wanted: Mapping[str, tuple[int, int]]) -> dict[str, ExogenousArrays]:
        return {series: self.read(series, lo, hi) for series, (lo, hi) in wanted.items()}

    def read(self, series: str, lo_ms: int, hi_ms: int) -> ExogenousArrays:
        arrays = self.frames[series]
        i0 = int(np.searchsorted(arrays.published_ms, lo_ms, side="left"))
        i1 = int(np.searchsorted(arrays.published_ms, hi_ms, side="right"))
        return arrays.slice(i0, i1)


_US = timedelta(microseconds=1)
#: "No upper publication bound" (µs): a live cache holds everything published since its lower bound.
_NO_END = 2**62


def _us(when: datetime) -> int:
    """Epoch microseconds of an aware datetime, exactly (Postgres keeps microseconds)."""
    return (when - _EPOCH) // _US


def _dt_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


@dataclass(frozen=True, slots=True)
class _Held:
    """One series in memory: every row published in ``[lo_us, hi_us]`` that was committed when the
    database was last asked, sorted like ``DbFeed`` returns them (published_at, about_ts, item_key).
    Any row not seen then has ``ingested_at >= since`` (see ``CachedDbFeed``). ``generation``
    changes on every reload, so that a background refresh that raced a reload drops its now
    outdated answer."""

    lo_us: int
    hi_us: int
    pub_us: np.ndarray
    about_us: np.ndarray
    #: item_key and text columns as object arrays: trimming takes views, a read copies only its slice.
    keys: np.ndarray
    numbers: dict[str, np.ndarray]
    texts: dict[str, np.ndarray]
    since: datetime
    generation: int

    def __len__(self) -> int:
        return int(self.pub_us.shape[0])

    def read(self, series: str, lo_ms: int, hi_ms: int) -> ExogenousArrays:
        """Rows published in ``[lo_ms, hi_ms]``, compared in microseconds as Postgres compares them
        (a row published 0.5 ms after the tick is after the tick, though the wire shows whole ms)."""
        i0 = int(np.searchsorted(self.pub_us, lo_ms * 1000, side="left"))
        i1 = int(np.searchsorted(self.pub_us, hi_ms * 1000, side="right"))
        return ExogenousArrays(
            series,
            self.about_us[i0:i1] // 1000,
            self.pub_us[i0:i1] // 1000,
            {c: v[i0:i1] for c, v in self.numbers.items()},
            {c: v[i0:i1].tolist() for c, v in self.texts.items()},
        )

    def trimmed(self, lo_us: int) -> _Held:
        """Without the rows published before ``lo_us`` (views: the arrays are rebuilt on every merge)."""
        if lo_us <= self.lo_us:
            return self
        i = int(np.searchsorted(self.pub_us, lo_us, side="left"))
        return _Held(
            lo_us,
            self.hi_us,
            self.pub_us[i:],
            self.about_us[i:],
            self.keys[i:],
            {c: v[i:] for c, v in self.numbers.items()},
            {c: v[i:] for c, v in self.texts.items()},
            self.since,
            self.generation,
        )

    def has(self, pub: int, about: int, key: str) -> bool:
        i0 = int(np.searchsorted(self.pub_us, pub, side="left"))
        i1 = int(np.searchsorted(self.pub_us, pub, side="right"))
        return any(int(self.about_us[i]) == about and self.keys[i] == key for i in range(i0, i1))


def _held(
    series: str, rows: Sequence[Any], lo_us: int, hi_us: int, since: datetime, generation: int
) -> _Held:
    """Rows (series, published_at, about_ts, item_key, value, fields) of one series as arrays.

    The same conversion as ``common.exogenous.store.read_published`` followed by
    ``ExogenousArrays.from_frame`` (the test compares them on every tick): the value of a
    one-number series from ``value``, every other column from ``fields``, a missing number NaN, a
    missing text "".
    """
    from common.exogenous.catalog import ColumnKind, get_series
    from common.exogenous.store import value_column

    spec = get_series(series)
    single = value_column(spec)
    numbers: dict[str, np.ndarray] = {}
    texts: dict[str, np.ndarray] = {}
    for col in spec.columns:
        raw = [r[4] for r in rows] if col.name == single else [(r[5] or {}).get(col.name) for r in rows]
        if col.kind is ColumnKind.NUMBER:
            numbers[col.name] = np.array([np.nan if v is None else float(v) for v in raw], dtype=np.float64)
        else:
            texts[col.name] = _objects(["" if v is None else str(v) for v in raw])
    pub = np.fromiter((_us(r[1]) for r in rows), np.int64, len(rows))
    about = np.fromiter((_us(r[2]) for r in rows), np.int64, len(rows))
    keys = _objects([str(r[3]) for r in rows])
    return _Held(lo_us, hi_us, pub, about, keys, numbers, texts, since, generation)


def _objects(values: list[str]) -> np.ndarray:
    """A 1-d object array of ``values`` (``np.array`` would make a fixed-width unicode array)."""
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _merged(held: _Held, new: _Held, since: datetime) -> _Held:
    """``held`` plus the rows of ``new`` it does not have yet (rows are never rewritten, so a row
    already held is the same row), in ``DbFeed``'s order; ``new`` rows outside the held publication
    range are dropped."""
    last = int(held.pub_us[-1]) if len(held) else -_NO_END
    keep = [
        i
        for i, pub in enumerate(new.pub_us.tolist())
        if held.lo_us <= pub <= held.hi_us
        and (pub > last or not held.has(pub, int(new.about_us[i]), new.keys[i]))
    ]
    if not keep:
        return replace(held, since=since)
    idx = np.asarray(keep, dtype=np.int64)
    pub = np.concatenate([held.pub_us, new.pub_us[idx]])
    about = np.concatenate([held.about_us, new.about_us[idx]])
    keys = np.concatenate([held.keys, new.keys[idx]])
    numbers = {c: np.concatenate([v, new.numbers[c][idx]]) for c, v in held.numbers.items()}
    texts = {c: np.concatenate([v, new.texts[c][idx]]) for c, v in held.texts.items()}
    if len(held) and int(new.pub_us[idx[0]]) <= int(held.pub_us[-1]):
        # A late row (published no later than a row already held): sort again (``new`` itself comes in
        # the database's order, so rows all published after the held ones are simply appended).
        # Postgres orders item_key by its collation; the keys are "" or lowercase hex digests,
        # which every collation orders like Python does.
        order = np.lexsort((keys, about, pub))
        pub, about, keys = pub[order], about[order], keys[order]
        numbers = {c: v[order] for c, v in numbers.items()}
        texts = {c: v[order] for c, v in texts.items()}
    return _Held(held.lo_us, held.hi_us, pub, about, keys, numbers, texts, since, held.generation)


#: A transaction's start time is taken a moment before it shows in pg_stat_activity.
_START_SLACK = timedelta(seconds=1)
#: The database clock now, the start of the oldest other transaction open on this database, and
#: how many other sessions hide theirs (``state`` is null for another role's session without
#: ``pg_read_all_stats``). ``xact_start`` is what ``now()`` returns inside that transaction, i.e.
#: the ``ingested_at`` its inserts get.
_IN_FLIGHT = """
SELECT now(), min(xact_start), count(*) FILTER (WHERE state IS NULL)
FROM pg_stat_activity
WHERE datname = current_database() AND backend_type = 'client backend' AND pid <> pg_backend_pid()
"""


def _rows_query(
    series: Sequence[str], lo_us: int, hi_us: int, ingested_after: datetime | None
) -> Select[Any]:
    """Rows of ``series`` published in ``[lo_us, hi_us]`` (and inserted from ``ingested_after`` on)."""
    from common.exogenous.models import ExogenousObservation as Obs

    query = select(Obs.series, Obs.published_at, Obs.about_ts, Obs.item_key, Obs.value, Obs.fields).where(
        Obs.series.in_(list(series)), Obs.published_at >= _dt_us(lo_us)
    )
    if hi_us < _NO_END:
        query = query.where(Obs.published_at <= _dt_us(hi_us))
    if ingested_after is not None:
        query = query.where(Obs.ingested_at >= ingested_after)
    return query.order_by(Obs.series, Obs.published_at, Obs.about_ts, Obs.item_key)


class CachedDbFeed:
    """``DbFeed``'s answers from memory: each series read once, then only what is new.

    Why: on the TimescaleDB hypertable a read by ``published_at`` (not the partitioning column)
    plans and probes every chunk, ~25 ms per series and ~10-20 ms even for an empty "anything
    new?" query; the target for a whole tick's preparation is 5 ms. So no query may sit on the
    per-tick path in steady state. What the cache holds and when it asks the database:

    * **Per series**, the rows published in ``[lo, hi]`` (``_Held``), in ``DbFeed``'s order. A tick
      asking below ``lo`` (the first tick, a reach that grew, an older tick) reloads that series.
      Live (``ahead=None``, the default) ``hi`` is open: everything published since ``lo`` is held
      (nothing is published in the future; new rows come in through ``refresh``). A replay
      (``ahead`` set) holds up to ``tick + ahead`` and a tick past ``hi`` reads the next ``ahead``
      of publications: one query per ``ahead`` of tick time, not one per tick. Rows are never
      rewritten in the table (the store refuses a different version of a stored row), so a row
      once read stays right.
    * **Trimming**: after each read the rows published before ``tick - span`` are dropped, where
      ``span`` is the longest ``tick - earliest publication`` any need can ask (its reach plus its
      window's bars plus one bar, from ``needs``) or any tick did ask. Memory stays that span of
      rows (plus ``ahead`` in a replay; live, plus what was published since the last tick).
    * **Late rows** (``refresh``): a row can be committed after the cache read its publication
      range: a value published at 08:00 and inserted at 08:02 falls in a range read at 08:00:01, and
      an import can fill the past. The table records when each row was inserted (``ingested_at``,
      the inserting transaction's start time, by the database clock), so ``refresh`` asks for the
      rows in the held ranges with ``ingested_at >= since`` and merges those it does not hold. A row
      the previous read did not see was committed after that read's snapshot, so its transaction
      either started after the read began (``ingested_at >= now()`` of the read) or was already open
      then, and ``pg_stat_activity`` shows its start (``xact_start``, the same clock): ``since`` is
      the earliest of the two, read just before the snapshot, less one second (the instant between
      a transaction's start and its entry there). So a bulk import is read again at most once after
      its commit. Where other sessions' transactions are hidden (a role without
      ``pg_read_all_stats``) or ``watch_transactions`` is off, ``since`` falls back to the read's
      ``now() - late_margin``: a transaction open longer than that when the read ran would be
      missed until the next full reload (``full_reload_s``, hourly by default; it also catches rows
      written with an explicit old ``ingested_at``, e.g. a restored dump, and drops rows a
      retention policy deleted).
    * **When** (``refresh_s``): live (the default), a background thread refreshes every
      ``refresh_s`` seconds, off the tick path, so a late row is attached from at most ``refresh_s``
      (+ one query) after its commit, where ``DbFeed`` would attach it from its commit; the thread
      holds only a weak reference and stops with the feed (or ``close``). Should it stall or fail,
      a tick finding the last good refresh older than ``stale_after_s`` refreshes itself (and fails
      like ``DbFeed`` if the database is down). ``refresh_s=None`` (the replay): the history is
      taken as stored when each range is first read and never re-checked; an import running during
      a replay makes any feed's output depend on timing, and a replay must not pay a query per tick.

    Never leaks: reads cut at ``published_at <= tick`` in microseconds, like the query, though the
    cache holds rows past the tick, and ``attach_exogenous`` checks the result again. Thread-safe
    (one lock; the background query runs outside it).
    """

    def __init__(
        self,
        engine: Engine,
        needs: Sequence[ExogenousNeed] = (),
        *,
        refresh_s: float | None = 5.0,
        late_margin: timedelta = timedelta(minutes=10),
        full_reload_s: float | None = 3600.0,
        stale_after_s: float | None = None,
        ahead: timedelta | None = None,
        watch_transactions: bool = True,
    ) -> None:
        self.engine = engine
        self.refresh_s = refresh_s
        self.late_margin = late_margin
        self.watch_transactions = watch_transactions and engine.dialect.name == "postgresql"
        self.full_reload_s = full_reload_s
        self.stale_after_s = (
            stale_after_s
            if stale_after_s is not None
            else (None if refresh_s is None else max(30.0, 6 * refresh_s))
        )
        self.ahead_us = None if ahead is None else int(ahead / _US)
        self._span_us: dict[str, int] = {}
        for need in needs:
            span = (need.reach_ms + (need.bars + 1) * parse_timeframe(need.timeframe) * MINUTE_MS) * 1000
            for name in need.series:
                self._span_us[name] = max(self._span_us.get(name, 0), span)
        self._held: dict[str, _Held] = {}
        self._generation = 0
        self._lock = threading.Lock()
        self._refreshed = 0.0  # monotonic time of the last successful refresh (or load)
        self._reloaded = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: Database round trips, by kind (load, extend, refresh, reload): what the bench and tests count.
        self.queries: dict[str, int] = {}

    # ------------------------------------------------------------------ the tick path
    def read_all(self, wanted: Mapping[str, tuple[int, int]]) -> dict[str, ExogenousArrays]:
        """Per series its rows published in ``[lo, hi]`` (epoch ms), as ``DbFeed.read_all``."""
        if (
            self.stale_after_s is not None
            and self._held
            and time.monotonic() - self._refreshed > self.stale_after_s
        ):
            log.warning(
                "exogenous_cache_stale",
                seconds=round(time.monotonic() - self._refreshed, 1),
                detail="background refresh late; refreshing on the tick path",
            )
            self.refresh()
        with self._lock:
            if self.refresh_s is not None and self._thread is None:
                self._start_refresher(self.refresh_s)
            self._cover(wanted)
            out = {}
            for series, (lo, hi) in wanted.items():
                held = self._held[series]
                out[series] = held.read(series, lo, hi)
                span = self._span_us[series] = max(self._span_us.get(series, 0), (hi - lo) * 1000)
                self._held[series] = held.trimmed(hi * 1000 - span)
            return out

    def _cover(self, wanted: Mapping[str, tuple[int, int]]) -> None:
        """Load what ``wanted`` asks beyond what is held (with the lock held)."""
        load: dict[str, tuple[int, int]] = {}
        extend: dict[str, tuple[int, int]] = {}
        for series, (lo, hi) in wanted.items():
            held = self._held.get(series)
            lo_us, hi_us = lo * 1000, hi * 1000
            top = _NO_END if self.ahead_us is None else hi_us + self.ahead_us
            if held is None or lo_us < held.lo_us:
                load[series] = (min(lo_us, hi_us - self._span_us.get(series, 0)), top)
            elif hi_us > held.hi_us:
                extend[series] = (held.hi_us + 1, top)
        if load:
            self._read_into(load, "load")
        if extend:
            self._read_into(extend, "extend")

    def _read_into(self, ranges: Mapping[str, tuple[int, int]], kind: str) -> None:
        """One query for every series of ``ranges``; loads replace a series, extensions append."""
        lo = min(r[0] for r in ranges.values())
        hi = max(r[1] for r in ranges.values())
        since, rows = self._query(_rows_query(sorted(ranges), lo, hi, None), kind)
        for series, (s_lo, s_hi) in ranges.items():
            part = [r for r in rows.get(series, ()) if s_lo <= _us(r[1]) <= s_hi]
            self._generation += 1
            new = _held(series, part, s_lo, s_hi, since, self._generation)
            held = self._held.get(series)
            if kind == "extend" and held is not None:
                # Rows past the held range, all published after every held row: appended in order.
                # A new generation all the same: a refresh that read before this has not seen them.
                new = replace(
                    _merged(replace(held, hi_us=s_hi), new, min(held.since, since)),
                    generation=self._generation,
                )
            self._held[series] = new
        if kind == "load" and not self._refreshed:
            self._refreshed = time.monotonic()  # the first data: the stale clock starts here

    def _query(self, query: Select[Any], kind: str) -> tuple[datetime, dict[str, list[Any]]]:
        """The rows by series, and ``since``: every row this read cannot see has ``ingested_at >= since``.

        Read in the same transaction, before the rows (whose snapshot is taken after it).
        """
        with self.engine.connect() as conn:
            if self.watch_transactions:
                now, oldest, hidden = conn.execute(text(_IN_FLIGHT)).one()
                since = now - self.late_margin if hidden else min(now, oldest or now) - _START_SLACK
            else:
                since = conn.execute(select(func.now())).scalar_one() - self.late_margin
            rows: dict[str, list[Any]] = {}
            for row in conn.execute(query):
                rows.setdefault(row[0], []).append(row)
        self.queries[kind] = self.queries.get(kind, 0) + 1
        return since, rows

    # ------------------------------------------------------------------ late rows
    def refresh(self, *, full: bool | None = None) -> int:
        """Merge the rows committed since the last check into every held series; returns how many.

        ``full`` (default: when ``full_reload_s`` has passed) re-reads the held ranges whole
        instead, replacing what is held. The query runs without the lock; its answer is dropped for
        a series reloaded meanwhile (the reload is newer).
        """
        if full is None:
            full = self.full_reload_s is not None and time.monotonic() - self._reloaded >= self.full_reload_s
        with self._lock:
            held = dict(self._held)
        if not held:
            return 0
        lo = min(h.lo_us for h in held.values())
        hi = max(h.hi_us for h in held.values())
        since = None if full else min(h.since for h in held.values())
        query = _rows_query(sorted(held), lo, hi, since)
        since_next, rows = self._query(query, "reload" if full else "refresh")
        fresh = {
            series: _held(
                series,
                [r for r in rows.get(series, ()) if h.lo_us <= _us(r[1]) <= h.hi_us],
                h.lo_us,
                h.hi_us,
                since_next,
                h.generation,
            )
            for series, h in held.items()
        }  # converted before taking the lock: the tick path waits less
        added = 0
        with self._lock:
            for series, new in fresh.items():
                now = self._held.get(series)
                if now is None or now.generation != new.generation:
                    continue
                if full:  # the held range may have been trimmed meanwhile, never widened
                    new = new.trimmed(now.lo_us)
                    added += max(0, len(new) - len(now))
                    self._held[series] = new
                else:
                    merged = _merged(now, new, since_next)
                    added += len(merged) - len(now)
                    self._held[series] = merged
            self._refreshed = time.monotonic()
            if full:
                self._reloaded = self._refreshed
        if added:
            log.info("exogenous_cache_late_rows", rows=added, full=full)
        return added

    def _start_refresher(self, every_s: float) -> None:
        self._thread = threading.Thread(
            target=_refresh_loop,
            args=(weakref.ref(self), self._stop, every_s),
            name="exogenous-cache-refresh",
            daemon=True,
        )
        self._thread.start()

    def close(self) -> None:
        """Stop the background refresh (the feed still answers, from memory and loads)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        self.refresh_s = None
        self.stale_after_s = None

    def held_rows(self) -> dict[str, int]:
        """Rows held per series (memory; trimming is tested with it)."""
        with self._lock:
            return {series: len(h) for series, h in self._held.items()}

    def held_range(self, series: str) -> tuple[int, int]:
        """The publication range (epoch µs, inclusive) held for ``series``."""
        with self._lock:
            h = self._held[series]
            return h.lo_us, h.hi_us


def _refresh_loop(ref: weakref.ref[CachedDbFeed], stop: threading.Event, every_s: float) -> None:
    """The background refresh: holds the feed only while refreshing, so the feed can be collected."""
    failing = False
    while not stop.wait(every_s):
        feed = ref()
        if feed is None:
            return
        try:
            feed.refresh()
            failing = False
        except Exception as exc:  # the database away: ticks notice through stale_after_s and fail loudly
            if not failing:
                log.warning("exogenous_cache_refresh_failed", error=f"{type(exc).__name__}: {exc}")
            failing = True
        del feed


def attach_exogenous(
    bars: Sequence[BarPayload], plan: DuePlan, needs: Sequence[ExogenousNeed], feed: ExogenousFeed
) -> list[BarPayload]:
    """``bars`` with the exogenous inputs of the strategies due at ``plan`` attached.

    Per series the feed is read once, from the earliest publication any due strategy on any
    timeframe can use up to the tick; each timeframe's message then gets its own (longer or
    shorter) slice of that read.
    """
    due = {s.name for s in plan.strategies}
    tick_ms = to_epoch_ms(plan.tick_time)
    wanted: dict[str, dict[str, int]] = {}  # timeframe -> series -> earliest publication (ms)
    by_tf = {bar.timeframe: bar for bar in bars}
    for need in needs:
        bar = by_tf.get(need.timeframe)
        if need.strategy not in due or bar is None or not len(bar):
            continue
        # The runner hands the strategy the last ``bars`` bars of the message (``window_frame``).
        first_open = int(bar.times[max(0, len(bar) - need.bars)])
        first_close = first_open + parse_timeframe(need.timeframe) * MINUTE_MS
        series_lo = wanted.setdefault(need.timeframe, {})
        for series in need.series:
            lo = first_close - need.reach_ms
            series_lo[series] = min(series_lo.get(series, lo), lo)
    if not wanted:
        return list(bars)
    lows: dict[str, int] = {}
    for series_lo in wanted.values():
        for series, lo in series_lo.items():
            lows[series] = min(lows.get(series, lo), lo)
    read = feed.read_all({series: (lo, tick_ms) for series, lo in lows.items()})
    for series, arrays in read.items():
        if len(arrays) and int(arrays.published_ms[-1]) > tick_ms:
            raise ExogenousLeak(
                f"{series}: feed returned an observation published after the tick "
                f"{plan.tick_time.isoformat()}"
            )
    out = []
    for bar in bars:
        cut = wanted.get(bar.timeframe)
        if not cut:
            out.append(bar)
            continue
        frames = []
        for series, lo in cut.items():
            arrays = read[series]
            start = int(np.searchsorted(arrays.published_ms, lo, side="left"))
            frames.append(arrays.slice(start, len(arrays)))
        out.append(replace(bar, exogenous=tuple(frames)))
    return out
