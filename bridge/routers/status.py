"""Health of the whole pipeline at a glance: heartbeats, degraded ticks, risk switches, stream."""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from sqlalchemy import func, select

from bridge.dependencies import DbSession, Namespace, Principal, State, require_viewer
from bridge.queries import risk_state, selected_model_id
from bridge.schemas import AuditEntry, ServiceStatus, StatusOut, StreamStatus, WhoAmI
from common.db.models import AuditLog, Decision, Recommendation, ServiceHeartbeat
from common.ids import parse_tick_id

router = APIRouter(tags=["status"])


@router.get("/status", response_model=StatusOut, summary="Every service's heartbeat and the risk switches")
def get_status(session: DbSession, ns: Namespace, state: State) -> StatusOut:
    now: datetime = session.execute(select(func.now())).scalar_one()
    stale_after = state.bridge.heartbeat_stale_s
    services = []
    for hb in session.scalars(
        select(ServiceHeartbeat).order_by(ServiceHeartbeat.service, ServiceHeartbeat.instance)
    ):
        age = max(0.0, (now - hb.last_seen).total_seconds())
        services.append(
            ServiceStatus(
                service=hb.service,
                instance=hb.instance,
                last_seen=hb.last_seen,
                age_s=age,
                lag_s=hb.lag,
                stale=age > stale_after,
                info=hb.info,
            )
        )
    total, degraded, last = session.execute(
        select(
            func.count(Decision.id),
            func.count(Decision.id).filter(Decision.degraded.is_(True)),
            func.max(Decision.decided_at),
        ).where(Decision.namespace == ns)
    ).one()
    hub = state.hub
    return StatusOut(
        namespace=ns,
        server_time=now,
        services=services,
        decisions_total=total,
        degraded_ticks=degraded,
        last_decision_at=last,
        selected_model_id=selected_model_id(session),
        risk=risk_state(session, ns),
        stream=StreamStatus(
            enabled=state.bridge.stream_enabled,
            connected=hub.connected,
            instance=hub.instance,
            last_event_id=hub.last_id,
            buffered=len(hub),
            error=hub.error,
        ),
        run_clock=run_clock(session, ns),
    )


def run_clock(session: DbSession, ns: str) -> datetime | None:
    """Newest tick time of the namespace, from its decisions' tick ids and recommendations' bars.

    Decision rows carry the wall-clock time they were written (``decided_at``); only the tick id
    holds the data time, and for one symbol the greatest id is the newest tick (ISO times sort).
    """
    candidates: list[datetime] = []
    newest_tick = session.scalar(select(func.max(Decision.tick_id)).where(Decision.namespace == ns))
    if newest_tick:
        with contextlib.suppress(ValueError):  # a malformed id must not break the status page
            candidates.append(parse_tick_id(newest_tick)[1])
    newest_bar = session.scalar(
        select(func.max(Recommendation.bar_close_time)).where(Recommendation.namespace == ns)
    )
    if newest_bar is not None:
        candidates.append(newest_bar)
    return max(candidates) if candidates else None


@router.get("/whoami", response_model=WhoAmI, summary="The caller's token name and role")
def whoami(principal: Annotated[Principal, Depends(require_viewer)]) -> WhoAmI:
    return WhoAmI(name=principal.name, role=principal.role.value)


@router.get("/audit", response_model=list[AuditEntry], summary="Recent control actions, newest first")
def audit(
    session: DbSession,
    ns: Namespace,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AuditEntry]:
    rows = session.scalars(
        select(AuditLog).where(AuditLog.namespace == ns).order_by(AuditLog.id.desc()).limit(limit)
    )
    return [AuditEntry.model_validate(r) for r in rows]
