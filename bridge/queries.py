"""Small read helpers several routers share (risk state, selected model, latest price)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bridge.schemas import RiskStateOut
from common.db.models import Candle, Model, RiskState


def risk_state(session: Session, namespace: str) -> RiskStateOut:
    """The namespace's switches; no row yet means nothing was ever tripped (all off)."""
    row = session.get(RiskState, namespace)
    if row is None:
        return RiskStateOut(namespace=namespace)
    return RiskStateOut.model_validate(row)


def selected_model_id(session: Session) -> str | None:
    return session.scalar(select(Model.model_id).where(Model.selected.is_(True)))


def latest_close(session: Session, symbol: str) -> tuple[float | None, datetime | None]:
    """Close and close time of the newest stored candle of any timeframe (the mark price)."""
    row = session.execute(
        select(Candle.close, Candle.open_time, Candle.timeframe)
        .where(Candle.symbol == symbol)
        .order_by(Candle.open_time.desc())
        .limit(1)
    ).first()
    if row is None:
        return None, None
    return float(row.close), row.open_time
