"""Operator actions: select a model, trip/reset the kill switch, pause/resume trading.

Each action changes the row the executor/meta consumer read (``risk_state`` per namespace,
``models.selected``) and appends to ``audit_log`` in the *same* transaction, so there is never a
change without its audit record or an audit record of a change that did not happen.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Path, status
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bridge.dependencies import CurrentPrincipal, DbSession, Namespace, Principal, State
from bridge.queries import risk_state
from bridge.schemas import IDENT, ControlResult, ErrorOut, FlattenStatus, ReasonIn, TripIn
from bridge.state import BridgeState
from common import control
from common.db.models import AuditLog, Model
from common.kafka.topics import INTENTS
from common.logging import get_logger

router = APIRouter(prefix="/control", tags=["control"])
log = get_logger(__name__)

_ERRORS: dict[int | str, dict[str, Any]] = {404: {"model": ErrorOut}, 409: {"model": ErrorOut}}


#: model_id of operator-made intents (common.control, shared with the executor CLI).
OPERATOR_MODEL = control.OPERATOR_MODEL


def _audit(session: Session, ns: str, who: Principal, action: str, payload: dict[str, Any]) -> int:
    row = AuditLog(namespace=ns, actor=who.name, role=who.role.value, action=action, payload=payload)
    session.add(row)
    session.flush()
    log.info("control_action", action=action, actor=who.name, namespace=ns)
    return row.id


def _risk_action(
    session: Session, ns: str, who: Principal, action: str, reason: str, **values: Any
) -> ControlResult:
    """Switches through common.control (the executor CLI's path too): row + audit in one transaction."""
    if values.get("kill_switch") is True:
        audit_id = control.engage_kill_switch(session, ns, actor=who.name, role=who.role.value, reason=reason)
    elif values.get("kill_switch") is False:
        audit_id = control.release_kill_switch(
            session, ns, actor=who.name, role=who.role.value, reason=reason, action=action
        )
    else:
        audit_id = control.set_switches(
            session, ns, actor=who.name, role=who.role.value, action=action, reason=reason, **values
        )
    log.info("control_action", action=action, actor=who.name, namespace=ns)
    return ControlResult(action=action, actor=who.name, audit_id=audit_id, risk=risk_state(session, ns))


def _publish_flatten(
    state: BridgeState, ns: str, who: Principal, reason: str
) -> tuple[str | None, str | None]:
    """Publish a FLAT intent for the executor of ``ns``; returns (intent id, why not).

    Only for the namespace this bridge's Kafka topics belong to: a replay's kill switch must never
    flatten the live book. A Kafka failure does not undo the trip (the switch alone already stops
    every order); it is reported so the operator knows the flatten waits for the next intent.
    """
    if not state.bridge.flatten_on_trip:
        return None, "flatten on trip is disabled on this bridge"
    if ns != state.kafka_namespace:
        return None, f"namespace {ns!r} is not this bridge's Kafka namespace {state.kafka_namespace!r}"
    now = datetime.now(UTC)
    intent = control.flatten_intent(state.settings.symbol, who.name, reason, now)
    try:
        producer = state.producer()
        producer.send(state.settings.topic(INTENTS), intent, key=intent.intent_id)
        producer.flush(timeout=10.0)
    except Exception as exc:
        log.error("flatten_publish_failed", namespace=ns, error=str(exc))
        return None, f"FLAT intent not published: {exc}"
    return intent.intent_id, None


@router.post("/kill-switch/trip", response_model=ControlResult, summary="Trip the kill switch")
def trip_kill_switch(
    session: DbSession, ns: Namespace, who: CurrentPrincipal, body: TripIn, state: State
) -> ControlResult:
    """Engage the kill switch now; with ``flatten``, also REQUEST a flatten (a FLAT intent).

    The answer is honest about what happened here: the switch is set (durably, audited) and, at
    most, an intent was published. Whether the book is flat is the executor's outcome for
    ``flatten_intent_id`` (``/api/intents``, ``orders.executions``); the executor flattens under
    the kill switch even while trading is paused.
    """
    result = _risk_action(
        session, ns, who, "kill_switch", body.reason, kill_switch=True, kill_reason=body.reason
    )
    session.commit()  # the switch is durable before anything is published
    if not body.flatten:
        return result.model_copy(update={"flatten_status": FlattenStatus.NOT_REQUESTED})
    intent_id, error = _publish_flatten(state, ns, who, body.reason)
    status_ = FlattenStatus.PUBLISHED if intent_id is not None else FlattenStatus.NOT_PUBLISHED
    log.warning(
        "kill_switch_flatten_requested" if intent_id else "kill_switch_flatten_not_published",
        namespace=ns,
        actor=who.name,
        intent_id=intent_id,
        error=error,
    )
    return result.model_copy(
        update={"flatten_status": status_, "flatten_intent_id": intent_id, "flatten_error": error}
    )


@router.post("/kill-switch/reset", response_model=ControlResult, summary="Reset the kill switch")
def reset_kill_switch(
    session: DbSession, ns: Namespace, who: CurrentPrincipal, body: Annotated[ReasonIn | None, Body()] = None
) -> ControlResult:
    body = body or ReasonIn()
    return _risk_action(
        session, ns, who, "kill_switch_reset", body.reason, kill_switch=False, kill_reason=None
    )


@router.post("/trading/pause", response_model=ControlResult, summary="Pause trading (no new orders)")
def pause_trading(
    session: DbSession, ns: Namespace, who: CurrentPrincipal, body: Annotated[ReasonIn | None, Body()] = None
) -> ControlResult:
    body = body or ReasonIn()
    return _risk_action(session, ns, who, "pause", body.reason, trading_paused=True)


@router.post("/trading/resume", response_model=ControlResult, summary="Resume trading")
def resume_trading(
    session: DbSession, ns: Namespace, who: CurrentPrincipal, body: Annotated[ReasonIn | None, Body()] = None
) -> ControlResult:
    body = body or ReasonIn()
    return _risk_action(session, ns, who, "resume", body.reason, trading_paused=False)


@router.post(
    "/models/{model_id}/select",
    response_model=ControlResult,
    responses=_ERRORS,
    summary="Select the model the meta consumer trades with",
)
def select_model(
    session: DbSession,
    ns: Namespace,
    who: CurrentPrincipal,
    model_id: Annotated[str, Path(max_length=200, pattern=IDENT)],
    body: Annotated[ReasonIn | None, Body()] = None,
) -> ControlResult:
    body = body or ReasonIn()
    if session.get(Model, model_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no model {model_id!r}")
    previous = session.scalar(select(Model.model_id).where(Model.selected.is_(True)))
    try:
        session.execute(
            update(Model).where(Model.selected.is_(True), Model.model_id != model_id).values(selected=False)
        )
        session.execute(
            update(Model)
            .where(Model.model_id == model_id)
            .values(selected=True, selected_at=func.now(), selected_by=who.name)
        )
        session.flush()
    except IntegrityError as exc:  # another operator selected a model at the same moment
        raise HTTPException(status.HTTP_409_CONFLICT, "a concurrent selection won; reload and retry") from exc
    payload = {"model_id": model_id, "previous_model_id": previous, "reason": body.reason}
    audit_id = _audit(session, ns, who, "model_select", payload)
    return ControlResult(action="model_select", actor=who.name, audit_id=audit_id, selected_model_id=model_id)
