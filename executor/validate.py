"""What makes an intent poison (never handleable), and who may send intents at all.

Runs before the executor touches its book or the venue, so a refusal here has no side effect to
undo: the intent is dead-lettered with the reason (``PoisonMessage``), its offset committed, and
the next intent is handled. Everything NOT decided here (database down, venue timeout, a bug
met half way through an intent) still stops the loop without committing, and the restart
re-delivers and reconciles (docs/decisions/0007-executor-exactly-once.md).

Poison is content that no retry, restart or deploy of this version can make right:

* a tick id that does not parse, or names another symbol than the intent, or a tick time outside
  any market that exists (before Bitcoin, or past 2100);
* an intent id that is not ``<tick id>|<model id>``: the id is the dedup key, so a freely chosen id
  would let the same decision trade twice;
* ids with control characters (Postgres text refuses NUL, which would crash the booking on every
  re-delivery) or absurd lengths;
* non-finite exposures (the event type already refuses them; checked again because money depends
  on it), and a FLAT action with a non-zero target (the fields disagree: we cannot know which one
  was meant, and when in doubt we do not trade).

A symbol the executor does not trade is NOT poison: it is a well-formed intent that risk rejects
with a report (``symbol: ...``), as before. Limits (exposure beyond max, stale, paused) are risk's.

Model ids (decided in docs/decisions/0014-unknown-schema-fingerprints.md): in the live namespace
only the model selected in the registry, the documented fallbacks and the operator (kill switch)
may trade; an intent from any other model id is dead-lettered. Replays and tests, in namespaces of
their own, run pinned models on purpose and accept any id unless configured otherwise.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import Engine, select

from common.db.models import Model
from common.db.session import session_scope
from common.events import IntentAction, OrderIntent
from common.ids import make_intent_id, parse_tick_id
from common.kafka.consumer import PoisonMessage
from common.logging import get_logger
from config import ModelCheck as ModelCheck  # defined with settings.executor, used here

log = get_logger(__name__)

#: model_id of operator-made intents (``executor kill-switch`` and the bridge's kill switch use it).
OPERATOR_MODEL = "operator"
#: The meta consumer's documented fallbacks (``meta_consumer.models.fallback_id``): they decide when
#: no usable model is selected. Spelled out, not imported: the executor image has no meta consumer.
FALLBACK_MODELS = frozenset({"fallback:majority_vote", "fallback:flat"})

MAX_ID_CHARS = 300
#: The earliest and latest tick times any real market can have (Bitcoin's genesis block; 2100).
EARLIEST_TICK = datetime(2009, 1, 3, tzinfo=UTC)
LATEST_TICK = datetime(2100, 1, 1, tzinfo=UTC)


def _check_text(name: str, value: str) -> None:
    if len(value) > MAX_ID_CHARS:
        raise PoisonMessage(f"poison_intent: {name} is {len(value)} characters, at most {MAX_ID_CHARS}")
    bad = [c for c in value if unicodedata.category(c) in ("Cc", "Cs")]
    if bad:
        raise PoisonMessage(f"poison_intent: {name} contains control characters {sorted(set(bad))!r}")


def check_intent(intent: OrderIntent) -> None:
    """Raise PoisonMessage when ``intent`` can never be handled; return None when it can."""
    for name in ("intent_id", "tick_id", "model_id", "symbol"):
        _check_text(name, getattr(intent, name))
    try:
        tick_symbol, tick_time = parse_tick_id(intent.tick_id)
    except ValueError as exc:
        raise PoisonMessage(f"poison_intent: {exc}") from exc
    if tick_symbol != intent.symbol:
        raise PoisonMessage(
            f"poison_intent: tick id {intent.tick_id!r} is for {tick_symbol!r}, "
            f"the intent for {intent.symbol!r}"
        )
    if not EARLIEST_TICK <= tick_time < LATEST_TICK:
        raise PoisonMessage(f"poison_intent: tick time {tick_time.isoformat()} is outside any market")
    expected_id = make_intent_id(intent.tick_id, intent.model_id)
    if intent.intent_id != expected_id:
        raise PoisonMessage(
            f"poison_intent: intent id {intent.intent_id!r} is not '<tick id>|<model id>' ({expected_id!r});"
            " it is the dedup key and must be derived"
        )
    for name in ("current_exposure", "target_exposure"):
        value = getattr(intent, name)
        if not isinstance(value, float | int) or not math.isfinite(value):
            raise PoisonMessage(f"poison_intent: {name} {value!r} is not a finite number")
    if intent.action is IntentAction.FLAT and intent.target_exposure != 0.0:
        raise PoisonMessage(
            f"poison_intent: action FLAT with target_exposure {intent.target_exposure:g}: the fields disagree"
        )


class ModelGate:
    """Refuses intents from models that are not allowed to trade this book.

    The selected model is read per intent (one indexed query): a selection made in the bridge
    applies to the next intent, and an intent still in flight from the previous selection is
    refused (dead-lettered, logged) rather than traded: the new model decides the next tick.
    """

    def __init__(self, engine: Engine, extra: Iterable[str] = ()) -> None:
        self._engine = engine
        self._always = frozenset({OPERATOR_MODEL, *FALLBACK_MODELS, *(m for m in extra if m)})

    def allowed(self) -> frozenset[str]:
        """The ids allowed right now. Database errors propagate (transient: the loop stops)."""
        with session_scope(self._engine) as s:
            selected = s.scalar(select(Model.model_id).where(Model.selected.is_(True)))
        return self._always | ({selected} if selected else frozenset())

    def check(self, intent: OrderIntent) -> None:
        allowed = self.allowed()
        if intent.model_id not in allowed:
            raise PoisonMessage(
                f"model_not_allowed: intent from model {intent.model_id!r}; this executor takes intents "
                f"only from {sorted(allowed)} (selected model, fallbacks, operator)"
            )
