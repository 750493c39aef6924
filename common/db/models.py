"""The whole product schema in one import: `from common.db.models import Base, Candle, ...`.

Tables live in small topical modules; this module gathers them so that `Base.metadata` is
complete for Alembic and for `create_all` on SQLite, whichever model a caller imports first.
"""

from __future__ import annotations

from common.db.base import LIVE_NAMESPACE, NAMING_CONVENTION, Base, BigId, JSONDoc
from common.db.market import (
    RECOMMENDATION_EVENTS,
    RECOMMENDATION_TARGETS,
    Candle,
    CandleRejection,
    Decision,
    Recommendation,
    Tick,
)
from common.db.ml import Evaluation, Model, TrainingRun
from common.db.ops import AvroSchema, ReplayRun, ServiceHeartbeat
from common.db.trading import AuditLog, Fill, FundingPayment, Intent, Order, PnlDaily, Position, RiskState
from common.exogenous.models import ExogenousObservation, ExogenousSeries

metadata = Base.metadata

__all__ = [
    "LIVE_NAMESPACE",
    "NAMING_CONVENTION",
    "RECOMMENDATION_EVENTS",
    "RECOMMENDATION_TARGETS",
    "AuditLog",
    "AvroSchema",
    "Base",
    "BigId",
    "Candle",
    "CandleRejection",
    "Decision",
    "Evaluation",
    "ExogenousObservation",
    "ExogenousSeries",
    "Fill",
    "FundingPayment",
    "Intent",
    "JSONDoc",
    "Model",
    "Order",
    "PnlDaily",
    "Position",
    "Recommendation",
    "ReplayRun",
    "RiskState",
    "ServiceHeartbeat",
    "Tick",
    "TrainingRun",
    "metadata",
]
