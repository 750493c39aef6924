"""The model leaderboard: every trained policy with its evaluation metrics, best and selected marked,
and beside them a published research run's baselines and candidates (ADR 0016): the newest by
default, or the one named by ``research_run`` (``GET /api/research/runs`` lists them), so a quant
can look at an earlier run and compare runs."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, status
from sqlalchemy import select
from sqlalchemy.orm import Session

from bridge.dependencies import DbSession
from bridge.schemas import (
    IDENT,
    ErrorOut,
    EvaluationOut,
    LeaderboardOut,
    ModelEntry,
    ResearchBoard,
    ResearchEntry,
    ResearchRunOut,
)
from common.db.models import Evaluation, Model, TrainingRun

router = APIRouter(tags=["models"])


def _score(metrics: dict[str, object], metric: str) -> float | None:
    value = metrics.get(metric)
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "No published research run with that id"}
}


@router.get(
    "/models", response_model=LeaderboardOut, summary="Leaderboard of trained models", responses=_NOT_FOUND
)
def leaderboard(
    session: DbSession,
    metric: Annotated[str, Query(max_length=64, pattern=IDENT, description="Metric ranked on.")] = "sharpe",
    window: Annotated[str, Query(max_length=64, pattern=IDENT, description="Evaluation window.")] = "test",
    order: Annotated[Literal["desc", "asc"], Query(description="desc: higher is better.")] = "desc",
    research_run: Annotated[
        str | None,
        Query(
            max_length=64,
            pattern=IDENT,
            description="Which published research run's board to show (GET /api/research/runs lists "
            "them). Default: the newest.",
        ),
    ] = None,
) -> LeaderboardOut:
    models = session.scalars(select(Model).order_by(Model.created_at)).all()
    evaluations = session.scalars(select(Evaluation).order_by(Evaluation.created_at, Evaluation.id)).all()
    by_model: dict[str, list[Evaluation]] = defaultdict(list)
    baselines: dict[str, Evaluation] = {}
    research = _research_runs(session, {ev.run_id for ev in evaluations if ev.model_id is None})
    if research_run is not None and research_run not in research:
        # checked before anything is ranked: a wrong id must not quietly show the newest run instead
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no published research run {research_run!r}")
    by_research: dict[str, list[Evaluation]] = defaultdict(list)
    for ev in evaluations:
        if ev.run_id in research:
            by_research[ev.run_id].append(ev)  # research rows are not the models' baselines
        elif ev.model_id is None:
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
        research=_research_board(research, by_research, metric, window, sign, research_run),
    )


@router.get(
    "/research/runs",
    response_model=list[ResearchRunOut],
    summary="Published research runs, newest first",
)
def research_runs(session: DbSession) -> list[ResearchRunOut]:
    """Every run ``training publish-research`` wrote to the live database, newest first: the ids
    the leaderboard's ``research_run`` accepts, with what tells them apart without loading each."""
    rows = session.scalars(
        select(Evaluation).where(Evaluation.model_id.is_(None)).order_by(Evaluation.created_at, Evaluation.id)
    ).all()
    runs = _research_runs(session, {ev.run_id for ev in rows})
    by_run: dict[str, list[Evaluation]] = defaultdict(list)
    for ev in rows:
        if ev.run_id in runs:
            by_run[ev.run_id].append(ev)
    out = []
    for run_id in _newest_first(by_run):
        config: dict[str, Any] = dict(runs[run_id].config or {})
        info: dict[str, Any] = config["research"]
        passes = bool(info.get("selected_passes"))
        raw = config.get("data")
        data: dict[str, Any] = raw if isinstance(raw, dict) else {}
        out.append(
            ResearchRunOut(
                run_id=run_id,
                published_at=max(e.created_at for e in by_run[run_id]),
                trials=_trials(config),
                selected_passes=passes,
                verdict=_verdict(passes),
                ranking_window=_ranking_window(by_run[run_id], dict(info.get("kinds") or {})),
                evaluated_from=_when(data.get("evaluated_from")),
                evaluated_to=_when(data.get("last")),
            )
        )
    return out


def _research_runs(session: Session, run_ids: set[str]) -> dict[str, TrainingRun]:
    """The runs among ``run_ids`` that ``training publish-research`` wrote: their ``config`` holds a
    ``research`` section (row kinds, the proposed row, the gate verdict)."""
    if not run_ids:
        return {}
    runs = session.scalars(select(TrainingRun).where(TrainingRun.run_id.in_(run_ids))).all()
    return {r.run_id: r for r in runs if isinstance((r.config or {}).get("research"), dict)}


def _newest_first(rows_by_run: dict[str, list[Evaluation]]) -> list[str]:
    """Run ids, newest publication first: by the last-written row (``publish-research`` rewrites a
    run's rows, so republishing an older run makes it the newest again, as the board always did)."""
    return sorted(rows_by_run, key=lambda r: max((e.created_at, e.id) for e in rows_by_run[r]), reverse=True)


def _verdict(passes: bool) -> str:
    return (
        "selected passes every gate: proposed (a person still decides with `training select`)"
        if passes
        else "selected fails the gates: not proposed; the live policy stays as it is (majority vote "
        "unless a model is selected)"
    )


def _trials(config: dict[str, Any]) -> int | None:
    trials = config.get("trials_logged")
    return int(trials) if isinstance(trials, int) and not isinstance(trials, bool) else None


def _ranking_window(rows: Sequence[Evaluation], kinds: dict[str, str]) -> str:
    """The window its baselines and candidates sit in (the bound has its own, never ranked)."""
    windows = {e.window for e in rows if kinds.get(e.name) != "bound"}
    return "test" if "test" in windows or not windows else min(windows)


def _when(value: object) -> datetime | None:
    """An ISO timestamp from the run's ``data`` section; None when absent or unreadable (older runs)."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _research_board(
    runs: dict[str, TrainingRun],
    rows_by_run: dict[str, list[Evaluation]],
    metric: str,
    window: str,
    sign: float,
    chosen: str | None = None,
) -> ResearchBoard | None:
    """Research run ``chosen`` (default: the newest, whose rows were written last), ranked like the
    models. ``chosen`` must be a key of ``runs``; the caller answers 404 otherwise."""
    if chosen is not None and chosen in rows_by_run:
        run_id = chosen
    elif rows_by_run:
        run_id = _newest_first(rows_by_run)[0]
    else:
        return None
    run = runs[run_id]
    config: dict[str, Any] = dict(run.config or {})
    info: dict[str, Any] = config["research"]
    kinds: dict[str, str] = dict(info.get("kinds") or {})
    proposed_name = info.get("proposed")
    passes = bool(info.get("selected_passes"))
    rows: Sequence[Evaluation] = rows_by_run[run_id]

    def entry(ev: Evaluation) -> ResearchEntry:
        kind = kinds.get(ev.name, "candidate")
        if kind == "bound":
            status = "upper bound"
        elif ev.name == proposed_name:
            status = "proposed"
        elif ev.name == "selected":
            status = "not proposed"  # the procedure's choice failed a gate: on the board, not proposed
        else:
            status = kind
        metrics = dict(ev.metrics)
        return ResearchEntry(
            rank=None,
            name=ev.name,
            kind=kind,
            status=status,
            proposed=ev.name == proposed_name,
            window=ev.window,
            score=_score(metrics, metric) if kind != "bound" else None,
            metrics=metrics,
        )

    entries = [entry(e) for e in rows]
    ranked = [e for e in entries if e.window == window and e.kind != "bound"]
    scored = sorted((e for e in ranked if e.score is not None), key=lambda e: sign * (e.score or 0.0))
    for rank, e in enumerate(scored, start=1):
        e.rank = rank
    bounds = [e for e in entries if e.kind == "bound"]
    return ResearchBoard(
        run_id=run_id,
        published_at=max(e.created_at for e in rows),
        trials=_trials(config),
        selected_passes=passes,
        verdict=_verdict(passes),
        entries=scored + [e for e in ranked if e.score is None] + bounds,
    )
