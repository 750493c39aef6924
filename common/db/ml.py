"""Trained policies and their provenance: models, training runs, evaluations.

The model file itself is stored in the row (bytes + sha256) so a live pod needs no shared volume
and the artifact that made a decision can always be recovered. Exactly one model may be selected
for live trading; the database enforces it with a partial unique index, so two operators racing
to select different models cannot both win.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, LargeBinary, String, false, text
from sqlalchemy.orm import Mapped, Session, mapped_column

from common.db.base import Base, BigId, JSONDoc, created_column


class TrainingRun(Base):
    """One offline training invocation (laptop or CI), with everything needed to re-run it."""

    __tablename__ = "training_runs"
    __table_args__ = (Index("ix_training_runs_started_at", "started_at"),)

    run_id: Mapped[str] = mapped_column(primary_key=True)  # uuid4 as text (portable to SQLite)
    started_at: Mapped[datetime] = created_column()
    finished_at: Mapped[datetime | None]
    host: Mapped[str | None]
    # Not named "user": unquoted `user` in PostgreSQL SQL silently means CURRENT_USER.
    username: Mapped[str | None]
    config: Mapped[dict[str, Any]] = mapped_column(JSONDoc, default=dict)
    status: Mapped[str]
    seed: Mapped[int | None] = mapped_column(BigInteger)


class Model(Base):
    """A trained policy: its artifact, the feature/strategy layout it expects, and selection state."""

    __tablename__ = "models"
    __table_args__ = (
        Index(
            "uq_models_selected",
            "selected",
            unique=True,
            postgresql_where=text("selected"),
            sqlite_where=text("selected"),
        ),
        Index("ix_models_created_at", "created_at"),
    )

    model_id: Mapped[str] = mapped_column(primary_key=True)
    algo: Mapped[str]
    created_at: Mapped[datetime] = created_column()
    feature_spec: Mapped[dict[str, Any]] = mapped_column(JSONDoc)
    strategy_set: Mapped[list[str]] = mapped_column(JSONDoc)
    params: Mapped[dict[str, Any]] = mapped_column(JSONDoc, default=dict)
    artifact: Mapped[bytes] = mapped_column(LargeBinary)
    artifact_sha256: Mapped[str] = mapped_column(String(64))
    selected: Mapped[bool] = mapped_column(default=False, server_default=false())
    selected_at: Mapped[datetime | None]
    selected_by: Mapped[str | None]


class Evaluation(Base):
    """Metrics of one policy or baseline (e.g. buy_and_hold) on one data window of a run."""

    __tablename__ = "evaluations"
    __table_args__ = (
        Index("ix_evaluations_run_id", "run_id"),
        Index("ix_evaluations_model_id", "model_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("training_runs.run_id", ondelete="CASCADE"))
    # Null for baselines that are not a stored model.
    model_id: Mapped[str | None]
    name: Mapped[str]
    window: Mapped[str]  # "validation", "test", "fold_3", ...
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONDoc)
    created_at: Mapped[datetime] = created_column()


class ModelConflict(ValueError):
    """The model id already names another artefact (an id names one artefact forever)."""


def add_model(
    session: Session,
    *,
    model_id: str,
    algo: str,
    artifact: bytes,
    feature_spec: dict[str, Any],
    strategy_set: list[str],
    params: dict[str, Any] | None = None,
) -> bool:
    """Store an artefact as an unselected ``models`` row; False when the same artefact is there.

    The one way rows enter ``models`` (replay pins, research exports, live uploads), so the rule
    that an id never changes its artefact holds for every path: a different artefact under an
    existing id raises :class:`ModelConflict` instead of running something else under that name.
    """
    sha = hashlib.sha256(artifact).hexdigest()
    existing = session.get(Model, model_id)
    if existing is not None:
        if existing.artifact_sha256 != sha:
            raise ModelConflict(
                f"model {model_id} exists with another artifact (sha256 {existing.artifact_sha256})"
            )
        return False
    session.add(
        Model(
            model_id=model_id,
            algo=algo,
            feature_spec=feature_spec,
            strategy_set=strategy_set,
            params=params or {},
            artifact=artifact,
            artifact_sha256=sha,
            selected=False,
        )
    )
    return True
