"""One tick's decision as a pure function of (carried state, this tick's inputs, the chosen policy).

Pure on purpose: the service feeds it what Postgres holds, so a tick decided again after a crash
sees the same inputs and gives the same result; tests call it directly without any broker.

The carried state (:class:`Carry`) is everything a decision hands to the next one: how many ticks
were decided (ages are counted in ticks), the latest *applied* recommendation of each strategy, the
model portfolio and the last bar close window. It is stored inside each decision row, so a restart
continues from the last row. A recommendation that arrived after its tick was decided is never in
``recs_now`` of any decision, hence never becomes "latest": late answers cannot leak forward.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from common.actions import ACTIONS, apply_action, label_for, majority_vote
from common.combiner import LINEAR_CLOSES, Combiner
from common.events import IntentAction, SignalEvent, Target, from_epoch_ms, to_epoch_ms
from common.ids import make_tick_id
from common.observation import EVENT_CODES, TARGET_VALUES, FeatureSpec, observation_row, rolling_volatility
from common.policy import Policy
from common.portfolio import Portfolio
from config import FallbackMode

if TYPE_CHECKING:
    from common.signals import SignalArrays

#: Close prices kept in the carried mark: enough for any sensible ``vol_window``.
MARK_CLOSES = 256
#: Closes the bar reader keeps per BarClosed, the most any loadable combiner reads (a linear
#: combiner's 720 h return: 721 closes). The carried mark keeps only :data:`MARK_CLOSES` unless the
#: deciding combiner needs more (:func:`carried_closes`), so the decision row (the carry is stored
#: in every row) grows only while such a combiner decides (ADR 0025).
BAR_CLOSES = LINEAR_CLOSES


@dataclass(frozen=True)
class LatestRec:
    """A strategy's most recent applied recommendation and the tick sequence number it came with."""

    tick_id: str
    seq: int
    target: Target
    event: SignalEvent
    confidence: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "tick_id": self.tick_id,
            "seq": self.seq,
            "target": self.target.value,
            "event": self.event.value,
            "confidence": self.confidence,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LatestRec:
        return cls(
            d["tick_id"], int(d["seq"]), Target(d["target"]), SignalEvent(d["event"]), float(d["confidence"])
        )


@dataclass(frozen=True)
class Mark:
    """The decision timeframe's last closed bar: close window for price and volatility."""

    tick_id: str
    closes: tuple[float, ...]
    #: Kafka offset of the BarClosed message, where the bar reader resumes after a restart.
    offset: int = -1

    @property
    def price(self) -> float:
        return self.closes[-1]

    def volatility(self, window: int) -> float:
        if len(self.closes) < window + 1:
            return float("nan")
        return float(rolling_volatility(np.asarray(self.closes[-(window + 1) :]), window)[-1])

    def to_dict(self) -> dict[str, Any]:
        return {"tick_id": self.tick_id, "closes": list(self.closes), "offset": self.offset}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> Mark | None:
        return None if not d else cls(d["tick_id"], tuple(float(c) for c in d["closes"]), int(d["offset"]))


@dataclass(frozen=True)
class Online:
    """An online combiner's learner state after the last bar it stepped on (ADR 0026).

    ``model``: the fingerprint of the artefact the state belongs to (another artefact, e.g. after a
    hot reload, starts from its own stored state); ``state``: JSON-readable floats, as the
    artefact stores them; ``bar``: the tick id of the bar the state last learned from (a bar is a
    step once); ``fraction``: the exposure fraction decided at that bar.
    """

    model: str
    state: Mapping[str, Any]
    bar: str
    fraction: float

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "state": dict(self.state), "bar": self.bar, "fraction": self.fraction}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> Online | None:
        return None if not d else cls(d["model"], dict(d["state"]), d["bar"], float(d["fraction"]))


@dataclass(frozen=True)
class Carry:
    seq: int = 0
    tick_time: datetime | None = None
    portfolio: Portfolio = field(default_factory=Portfolio)
    latest: Mapping[str, LatestRec] = field(default_factory=dict)
    mark: Mark | None = None
    #: The deciding online combiner's state (None unless a hedge/dsr combiner decides).
    online: Online | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {
            "seq": self.seq,
            "tick_time_ms": None if self.tick_time is None else to_epoch_ms(self.tick_time),
            "portfolio": self.portfolio.to_dict(),
            "latest": {s: r.to_dict() for s, r in sorted(self.latest.items())},
            "mark": None if self.mark is None else self.mark.to_dict(),
        }
        if self.online is not None:  # absent otherwise: rows without an online combiner unchanged
            out["online"] = self.online.to_dict()
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> Carry:
        if not d:
            return cls()
        ms = d.get("tick_time_ms")
        return cls(
            seq=int(d["seq"]),
            tick_time=None if ms is None else from_epoch_ms(int(ms)),
            portfolio=Portfolio.from_dict(d.get("portfolio")),
            latest={s: LatestRec.from_dict(r) for s, r in (d.get("latest") or {}).items()},
            mark=Mark.from_dict(d.get("mark")),
            online=Online.from_dict(d.get("online")),
        )


@dataclass(frozen=True)
class Choice:
    """Who decides this tick: a loaded policy, or the configured fallback rule."""

    model_id: str
    spec: FeatureSpec
    policy: Policy | None = None
    fallback: FallbackMode = FallbackMode.MAJORITY_VOTE
    reason: str = ""
    retrain_needed: bool = False
    #: A research combiner artefact (``common.combiner``, ``rl`` included) instead of an MLP ``policy``.
    combiner: Combiner | None = None


@dataclass(frozen=True)
class TickInput:
    tick_id: str
    tick_time: datetime
    due: frozenset[str]
    #: Recommendations stored for this tick when it is decided: strategy -> (target, event, confidence).
    recs: Mapping[str, tuple[Target, SignalEvent, float]]
    #: This tick's bar of the decision timeframe, if it closed now and arrived.
    bar: Mark | None
    needs_bar: bool
    #: The last funding rate published at or before ``tick_time`` (None: none known); read only
    #: for a combiner that needs it (the linear kinds), from the exogenous store.
    funding_last: float | None = None
    #: The funding charged to a long over this tick's bar (settlements after the previous close, up
    #: to this close); read only for a ``dsr`` combiner (its reward), from the exogenous store.
    funding_charge: float = 0.0


_TARGET_OF = {1: Target.LONG, 0: Target.FLAT, -1: Target.SHORT}


def signals_tick_input(
    close: np.ndarray,
    signals: SignalArrays,
    t: int,
    tick_time: datetime,
    *,
    closes: int = BAR_CLOSES,
    funding_last: float | None = None,
    funding_charge: float = 0.0,
    offset: int = -1,
    symbol: str = "BTC/USD:USD",
) -> TickInput:
    """What this service is fed at bar ``t`` when the strategies' answers are research arrays
    (``SignalArrays``, confidence 0.5, no event): the answers present at ``t``, the bar's last ``closes``
    closes. Tests and benchmarks that replay the real data tick by tick build their inputs here.
    A NaN ``funding_last`` means none is known."""
    tick = make_tick_id(symbol, tick_time)
    recs = {
        s: (_TARGET_OF[int(signals.target[t, k])], SignalEvent.NONE, 0.5)
        for k, s in enumerate(signals.strategies)
        if signals.present[t, k]
    }
    bar = Mark(tick, tuple(close[max(0, t + 1 - closes) : t + 1]), offset)
    funding = None if funding_last is None or np.isnan(funding_last) else float(funding_last)
    return TickInput(tick, tick_time, frozenset(recs), recs, bar, True, funding, float(funding_charge))


@dataclass(frozen=True)
class Outcome:
    action: IntentAction
    current_exposure: float
    target_exposure: float
    degraded: bool
    late: list[str]
    reason: str
    features: dict[str, float]
    carry: Carry


def observe(
    spec: FeatureSpec, latest: Mapping[str, LatestRec], seq: int, portfolio: Portfolio, mark: Mark | None
) -> np.ndarray:
    """One observation row (shape (1, dim)): the training env's features, from the one-row builder
    (``observation_row``, bit-identical to the batch ``build_observations``)."""
    recs = [latest.get(s) for s in spec.strategies]
    price = None if mark is None else mark.price
    return observation_row(
        spec,
        targets=[TARGET_VALUES[r.target] if r else 0 for r in recs],
        events=[EVENT_CODES[r.event] if r else 0 for r in recs],
        confidence=[r.confidence if r else 0.0 for r in recs],
        age=[seq - r.seq if r else 0 for r in recs],
        present=[r is not None for r in recs],
        exposure=portfolio.exposure,
        unrealized_pnl=portfolio.pnl(price),
        volatility=np.nan if mark is None else mark.volatility(spec.vol_window),
    )


def decide_tick(
    tick: TickInput, carry: Carry, choice: Choice, live: Sequence[str], *, step: float, max_exposure: float
) -> Outcome:
    """The decision for ``tick`` and the state carried to the next one."""
    seq = carry.seq + 1
    latest = dict(carry.latest)
    for name, (side, event, confidence) in tick.recs.items():
        latest[name] = LatestRec(tick.tick_id, seq, side, event, confidence)
    late = sorted(tick.due - set(tick.recs))
    mark = tick.bar or carry.mark
    notes = []
    if late:
        notes.append(f"deadline passed without {','.join(late)}")
    if tick.needs_bar and tick.bar is None:
        notes.append("no bar: previous close used")
    obs = observe(choice.spec, latest, seq, carry.portfolio, mark)
    online: Online | None = None  # kept only while an online combiner decides
    current = carry.portfolio.exposure
    if choice.policy is not None:
        if choice.policy.output == "discrete":
            action = ACTIONS[int(choice.policy.act(obs)[0])]
            target = apply_action(action, current, step, max_exposure)
        else:
            target = float(choice.policy.act(obs)[0])
            action = label_for(current, target)
    elif choice.combiner is not None and choice.combiner.online:
        target, online, note = _online_fraction(tick, carry, choice.combiner, latest)
        target *= max_exposure
        action = label_for(current, target)
        if note:
            notes.append(note)
    elif choice.combiner is not None:
        answered = {s: latest[s].target for s in choice.combiner.strategies if s in latest}
        closes = () if mark is None else mark.closes
        target = choice.combiner.fraction(answered, closes, tick.funding_last) * max_exposure
        action = label_for(current, target)
        if len(closes) < choice.combiner.closes_needed:  # said in the decision, not silently flat
            unknown = "720 h return unknown" if choice.combiner.linear is not None else "volatility unknown"
            notes.append(
                f"combiner: {len(closes)} closes of {choice.combiner.closes_needed}: {unknown}, flat"
            )
    else:
        if choice.fallback is FallbackMode.MAJORITY_VOTE:
            target = majority_vote([latest[s].target for s in live if s in latest], max_exposure)
        else:
            target = 0.0
        action = label_for(current, target)
    features = dict(zip(_feature_names(choice.spec), obs[0].tolist(), strict=True))
    reason = "; ".join([r for r in (choice.reason, *notes) if r])
    new_carry = replace(
        carry,
        seq=seq,
        tick_time=tick.tick_time,
        portfolio=carry.portfolio.moved_to(target, None if mark is None else mark.price),
        latest=latest,
        mark=_trim(mark, carried_closes(choice)),
        online=online,
    )
    degraded = bool(late) or (tick.needs_bar and tick.bar is None)
    return Outcome(action, current, float(target), degraded, late, reason, features, new_carry)


def _online_fraction(
    tick: TickInput, carry: Carry, comb: Combiner, latest: Mapping[str, LatestRec]
) -> tuple[float, Online | None, str]:
    """An online combiner's decision: ``(fraction, state to carry, note)``.

    The learner steps once per bar of the decision timeframe, as the research loop does: when this
    tick brings a new bar with the closes the step reads. The ``rl`` policy (ADR 0027) steps the
    same way: its state is the trailing records' cumulative P&L and vote history and each seed's
    held target; a bar that does not follow the one its state last stepped on (bars missed while
    the service was down) is stepped on all the same and said in the reason.

    It starts from the artefact's state unless the carry holds this artefact's state (keyed by
    fingerprint: a hot reload to another model starts from that model's). A tick without a new bar
    (or too few closes) does not learn and holds the last decided fraction (flat before the first
    step), and says so.
    """
    prev = carry.online if carry.online is not None and carry.online.model == comb.fingerprint else None
    bar = tick.bar
    if bar is None or (prev is not None and prev.bar == bar.tick_id):
        held = 0.0 if prev is None else prev.fraction
        return held, prev, f"combiner: no new bar: {comb.kind} state held, fraction {held:g}"
    if len(bar.closes) < comb.closes_needed:
        held = 0.0 if prev is None else prev.fraction
        what = "FeatureSpec v2 unknown, rl state not stepped" if comb.rl is not None else "does not learn"
        return (
            held,
            prev,
            (
                f"combiner: {len(bar.closes)} closes of {comb.closes_needed}: {comb.kind} {what} "
                f"from this bar, fraction {held:g}"
            ),
        )
    answered = {s: latest[s].target for s in comb.strategies if s in latest}
    state = comb.initial_state() if prev is None else prev.state
    new, fraction = comb.step(state, answered, bar.closes, tick.funding_last, tick.funding_charge)
    note = ""
    mark = carry.mark
    if (
        comb.rl is not None
        and prev is not None
        and mark is not None
        and mark.tick_id == prev.bar
        and mark.closes[1:] != bar.closes[:-1]  # the window did not move by one bar: bars were missed
    ):
        note = (
            "combiner: rl: this bar does not follow the state's last bar; the trailing records "
            "continue as if it did"
        )
    return fraction, Online(comb.fingerprint, new, bar.tick_id, fraction), note


@functools.lru_cache(maxsize=64)
def _feature_names(spec: FeatureSpec) -> tuple[str, ...]:
    return tuple(spec.feature_names())


def carried_closes(choice: Choice) -> int:
    """Closes the carried mark keeps: :data:`MARK_CLOSES`, more while a combiner needs more.

    The carry is stored in every decision row, so 721 closes are carried only while a combiner
    that reads them decides (a tick without its bar then still has them).
    """
    need = 0 if choice.combiner is None else choice.combiner.closes_needed
    return max(MARK_CLOSES, need)


def _trim(mark: Mark | None, keep: int = MARK_CLOSES) -> Mark | None:
    if mark is None or len(mark.closes) <= keep:
        return mark
    return replace(mark, closes=mark.closes[-keep:])
