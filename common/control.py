"""The one kill-switch path: engage, release and read it (``risk_state`` row + ``audit_log``).

The executor CLI (``python -m executor kill-switch`` / ``resume``) and the bridge
(``/api/control/kill-switch/*``) both call these, and the executor reads the switch with
:func:`read_kill_switch`'s row, so a switch engaged either way is the same switch. The change and
its audit record are written in the caller's transaction: never one without the other.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from common.db.models import AuditLog, RiskState
from common.events import IntentAction, OrderIntent
from common.ids import make_tick_id

#: model_id of operator-made intents (the flatten a kill switch requests); the executor allows it.
OPERATOR_MODEL = "operator"


def set_switches(
    s: Session, namespace: str, *, actor: str, role: str, action: str, reason: str, **values: Any
) -> int:
    """Upsert the namespace's ``risk_state`` and append its audit row; returns the audit id."""
    row_values = {**values, "updated_by": actor}
    stmt = insert(RiskState).values(namespace=namespace, **row_values)
    s.execute(
        stmt.on_conflict_do_update(
            index_elements=[RiskState.namespace], set_={**row_values, "updated_at": func.now()}
        )
    )
    s.expire_all()
    payload = {
        "reason": reason,
        **{k: v.isoformat() if isinstance(v, datetime) else v for k, v in values.items()},
    }
    audit = AuditLog(namespace=namespace, actor=actor, role=role, action=action, payload=payload)
    s.add(audit)
    s.flush()
    return int(audit.id)


def engage_kill_switch(s: Session, namespace: str, *, actor: str, role: str, reason: str) -> int:
    """Engage the kill switch: the executor flattens, then refuses every intent until released."""
    return set_switches(
        s,
        namespace,
        actor=actor,
        role=role,
        action="kill_switch",
        reason=reason,
        kill_switch=True,
        kill_reason=reason,
    )


def release_kill_switch(
    s: Session,
    namespace: str,
    *,
    actor: str,
    role: str,
    reason: str,
    action: str = "kill_switch_reset",
    **also: Any,
) -> int:
    """Release the kill switch (``also``: further switches changed with it, e.g. un-pausing)."""
    return set_switches(
        s,
        namespace,
        actor=actor,
        role=role,
        action=action,
        reason=reason,
        kill_switch=False,
        kill_reason=None,
        **also,
    )


def read_kill_switch(s: Session, namespace: str) -> tuple[bool, str | None]:
    """(engaged, reason); no row means it was never engaged."""
    row = s.get(RiskState, namespace)
    return (False, None) if row is None else (bool(row.kill_switch), row.kill_reason)


def flatten_intent(symbol: str, actor: str, reason: str, now: datetime) -> OrderIntent:
    """The FLAT intent a kill switch publishes so the executor flattens now, not at the next tick."""
    return OrderIntent.create(
        tick_id=make_tick_id(symbol, now),
        model_id=OPERATOR_MODEL,
        symbol=symbol,
        action=IntentAction.FLAT,
        current_exposure=0.0,
        target_exposure=0.0,
        created_at=now,
        reason=f"kill switch by {actor}: {reason}",
    )
