"""The model leaderboard: every trained policy with its evaluation metrics, best and selected marked."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from sqlalchemy import select

from bridge.dependencies import DbSession
from bridge.schemas import IDENT, EvaluationOut, LeaderboardOut, ModelEntry
from common.db.models import Evaluation, Model

router = APIRouter(tags=["models"])


def _score(metrics: dict[str, object], metric: str) -> float | None:
    value = metrics.get(metric)
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


@router.get("/models", response_model=LeaderboardOut, summary="Leaderboard of trained models")
def leaderboard(
    session: DbSession,
    metric: Annotated[str, Query(max_length=64, pattern=IDENT, description="Metric ranked on.")] = "sharpe",
    window: Annotated[str, Query(max_length=64, pattern=IDENT, description="Evaluation window.")] = "test",
    order: Annotated[Literal["desc", "asc"], Query(description="desc: higher is better.")] = "desc",
) -> LeaderboardOut:
    models = session.scalars(select(Model).order_by(Model.created_at)).all()
    evaluations = session.scalars(select(Evaluation).order_by(Evaluation.created_at, Evaluation.id)).all()
    by_model: dict[str, list[Evaluation]] = defaultdict(list)
    baselines: dict[str, Evaluation] = {}
    for ev in evaluations:
        if ev.model_id is None:
            if ev.window == window:
                baselines[ev.name] = ev  # later rows win: the latest run's baseline
        else:
            by_model[ev.model_id].append(ev)
    entries = []
    for m in models:
        in_window = [e for e in by_model[m.model_id] if e.window == window]
        metrics = dict(in_window[-1].metrics) if in_window else {}
        entries.append(
            ModelEntry(
                rank=None,
                model_id=m.model_id,
                algo=m.algo,
                created_at=m.created_at,
                strategy_set=list(m.strategy_set),
                selected=m.selected,
                selected_at=m.selected_at,
                selected_by=m.selected_by,
                score=_score(metrics, metric),
                metrics=metrics,
                evaluations=[EvaluationOut.model_validate(e) for e in by_model[m.model_id]],
            )
        )
    sign = -1.0 if order == "desc" else 1.0
    scored = sorted((e for e in entries if e.score is not None), key=lambda e: sign * (e.score or 0.0))
    for rank, entry in enumerate(scored, start=1):
        entry.rank = rank
    ordered = scored + [e for e in entries if e.score is None]
    return LeaderboardOut(
        metric=metric,
        window=window,
        best_model_id=scored[0].model_id if scored else None,
        selected_model_id=next((e.model_id for e in entries if e.selected), None),
        models=ordered,
        baselines=[EvaluationOut.model_validate(b) for b in baselines.values()],
    )
