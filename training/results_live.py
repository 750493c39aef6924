"""From the results database to live trading: ``select`` a model, and check whether to retrain.

``select`` reads the model file on this machine, checks it against the sha256 recorded when it
was trained and that the meta consumer's own loader accepts it, then, in one transaction on the
live database: inserts the ``models`` row (artifact bytes, feature spec, strategy set, provenance),
unselects the previous model and selects this one with who and when. The meta consumer polls the
selected (model_id, sha256) between ticks and hot-reloads. The partial unique index on
``models.selected`` makes two people selecting at once end with exactly one winner; the loser gets
a clear error. The run and its evaluations are copied into the live ``training_runs`` /
``evaluations`` tables so the bridge's leaderboard shows the selected model's metrics.

``publish_research_live`` copies a research run's pooled out-of-sample rows (issue 16) into the same
two tables, so the bridge and the desktop leaderboard list research baselines and candidates beside
the models (ADR 0016). It uploads no model and selects nothing: research candidates are rules
without a model file.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Engine, delete, select, update
from sqlalchemy.exc import IntegrityError

from common.db.ml import ModelConflict, add_model
from common.db.models import Evaluation, Model, TrainingRun
from common.db.session import session_scope
from common.observation import FeatureSpec
from common.policy import Policy, PolicyError, load_policy
from training.results import EvaluationRow, ResultsDB, ResultsError


class SelectError(RuntimeError):
    """The model cannot be selected; the message says why and what to do."""


def live_model_id(ev: EvaluationRow) -> str:
    """The ``models.model_id`` of a stored model: ``<run id>:<candidate>`` (``@fold<k>`` appended
    for an earlier fold's model), unique across runs because run ids are."""
    return f"{ev.run_id}:{ev.candidate}" + (f"@fold{ev.fold}" if ev.fold else "")


def read_checked_artifact(ev: EvaluationRow) -> tuple[bytes, Policy]:
    """The model file's bytes after checking its sha256 and that the live loader runs it."""
    path = Path(ev.model_path or "")
    if not ev.model_path or not path.is_file():
        raise SelectError(
            f"model file of {ev.run_id}:{ev.candidate} is missing: {path} (model files stay on "
            "the machine that trained them; run select there)"
        )
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != ev.model_sha256:
        raise SelectError(
            f"model file {path} was altered since training: sha256 {digest} != recorded "
            f"{ev.model_sha256}; refusing to upload it"
        )
    row = SimpleNamespace(
        model_id=live_model_id(ev),
        algo=ev.algo or ev.candidate,
        artifact=data,
        artifact_sha256=digest,
        feature_spec={},
    )
    try:
        policy = load_policy(row)
    except PolicyError as exc:
        raise SelectError(f"model file {path} is not a loadable policy: {exc}") from None
    return data, policy


@dataclass(frozen=True)
class Selection:
    model_id: str
    sha256: str
    previous: str | None
    strategies: tuple[str, ...]


def select_model(results: ResultsDB, ref: str, live: Engine, *, selected_by: str) -> Selection:
    """Upload the model ``ref`` (see ``ResultsDB.resolve_model``) and make it the selected one."""
    try:
        ev = results.resolve_model(ref)
    except ResultsError as exc:
        raise SelectError(str(exc)) from None
    data, policy = read_checked_artifact(ev)
    model_id = live_model_id(ev)
    spec_doc = json.loads(policy.spec.to_json())
    run = results.run(ev.run_id)
    params = {
        "run_id": ev.run_id,
        "candidate": ev.candidate,
        "trained_by": run["username"],
        "host": run["host"],
        "git_commit": run["git_commit"],
        "data_fingerprint": run["data_fingerprint"],
        "output": policy.output,
        **ev.params,
    }
    now = datetime.now(UTC)
    try:
        with session_scope(live) as s:
            try:
                add_model(
                    s,
                    model_id=model_id,
                    algo=ev.algo or ev.candidate,
                    artifact=data,
                    feature_spec=spec_doc,
                    strategy_set=list(policy.spec.strategies),
                    params=params,
                )
            except ModelConflict as exc:
                raise SelectError(f"live {exc}; refusing to replace it") from None
            _copy_run(s, results, ev, model_id, run)
            s.flush()
            previous = s.scalars(select(Model.model_id).where(Model.selected)).first()
            s.execute(update(Model).where(Model.selected, Model.model_id != model_id).values(selected=False))
            s.flush()
            s.execute(
                update(Model)
                .where(Model.model_id == model_id)
                .values(selected=True, selected_at=now, selected_by=selected_by)
            )
    except IntegrityError:
        raise SelectError(
            "another model was selected at the same moment; check the live state and retry"
        ) from None
    results.record_selection(ev, model_id, selected_by, str(live.url))
    return Selection(
        model_id,
        ev.model_sha256 or "",
        previous if previous != model_id else None,
        tuple(policy.spec.strategies),
    )


def _copy_run(s: Any, results: ResultsDB, ev: EvaluationRow, model_id: str, run: dict[str, Any]) -> None:
    """The run and this model's + the baselines' evaluations, into the live provenance tables.

    Only the fold the model was trained in: its metrics and the baselines' on the same windows, so
    the bridge's leaderboard (which reads ``window = 'test'``) compares like with like.
    """
    if s.get(TrainingRun, ev.run_id) is None:
        s.add(
            TrainingRun(
                run_id=ev.run_id,
                started_at=run["started_at"],
                finished_at=run["finished_at"],
                host=run["host"],
                username=run["username"],
                config=run["config"],
                status=run["status"],
                seed=run["seed"],
            )
        )
        s.flush()
    s.execute(
        delete(Evaluation).where(
            Evaluation.run_id == ev.run_id, (Evaluation.model_id == model_id) | Evaluation.model_id.is_(None)
        )
    )
    for row in results.evaluations(run_id=ev.run_id):
        # the model's own fold only (its windows), with the baselines on the very same bars
        if row.fold == ev.fold and (row.candidate == ev.candidate or row.kind == "baseline"):
            s.add(
                Evaluation(
                    run_id=ev.run_id,
                    model_id=model_id if row.kind == "model" else None,
                    name=row.candidate,
                    window=row.window,
                    metrics={**row.metrics, "fold": row.fold},
                )
            )


# The research windows the live leaderboard shows: the pooled OOS rows and the hindsight bound. The
# per-trial ``cpcv`` rows (hundreds) stay in the results DB: ``leaderboard --run`` reads them there.
RESEARCH_LIVE_WINDOWS = ("test", "upper_bound")


@dataclass(frozen=True)
class PublishedResearch:
    run_id: str
    rows: int
    proposed: str | None  # the candidate marked proposed (``selected`` when it passed), else None
    selected_passes: bool


def publish_research_live(results: ResultsDB, ref: str, live: Engine) -> PublishedResearch:
    """Copy research run ``ref``'s pooled rows into the live ``training_runs`` / ``evaluations``.

    Why the live tables and the same path ``select`` uses for baselines (rows with no model id)
    rather than the bridge reading the results DB: the bridge already reads the live database, the
    results DB may be a laptop's SQLite file, and no new setting or second connection is needed.
    What the live ``evaluations`` table has no column for (each row's kind, which row is proposed,
    whether ``selected`` passed the gates) goes into the live run's ``config`` under ``research``;
    the bridge recognises research runs by it and keeps them out of the models' baselines.

    Replaces the run's earlier live copy in one transaction (a rerun of the same data and splits
    has the same run id), so publishing twice never duplicates rows.
    """
    try:
        run = results.run(ref)
    except ResultsError as exc:
        raise SelectError(str(exc)) from None
    run_id = str(run["run_id"])
    config = dict(run["config"] or {})
    if run.get("kind") != "research" or not config.get("research"):
        raise SelectError(
            f"run {run_id} is not a research run (python -m training research writes those); "
            "models reach the live leaderboard through select"
        )
    rows = [r for r in results.evaluations(run_id=run_id) if r.window in RESEARCH_LIVE_WINDOWS]
    if not any(r.window == "test" for r in rows):
        raise SelectError(f"research run {run_id} has no pooled out-of-sample rows to publish")
    proposed = next((r.candidate for r in rows if r.proposed), None)
    passes = bool(config.get("selected_passes"))
    live_config = {
        **config,
        "research": {
            "kinds": {r.candidate: r.kind for r in rows},
            "proposed": proposed,
            "selected_passes": passes,
            "data_fingerprint": run.get("data_fingerprint"),
            "git_commit": run.get("git_commit"),
        },
    }
    with session_scope(live) as s:
        existing = s.get(TrainingRun, run_id)
        if existing is None:
            s.add(
                TrainingRun(
                    run_id=run_id,
                    started_at=run["started_at"],
                    finished_at=run["finished_at"],
                    host=run["host"],
                    username=run["username"],
                    config=live_config,
                    status=run["status"],
                    seed=run["seed"],
                )
            )
        else:
            existing.finished_at = run["finished_at"]
            existing.config = live_config
            existing.status = run["status"]
        s.flush()
        s.execute(delete(Evaluation).where(Evaluation.run_id == run_id))
        for r in rows:
            s.add(
                Evaluation(
                    run_id=run_id, model_id=None, name=r.candidate, window=r.window, metrics=dict(r.metrics)
                )
            )
    return PublishedResearch(run_id, len(rows), proposed, passes)


@dataclass(frozen=True)
class RetrainCheck:
    needed: bool
    reason: str
    model_id: str | None
    model_strategies: tuple[str, ...]
    live_strategies: tuple[str, ...]


def retrain_check(live: Engine, live_strategies: tuple[str, ...]) -> RetrainCheck:
    """Compare the selected model's FeatureSpec.strategies with the registry's enabled strategies."""
    # The models table is what the meta consumer reads too; querying it here (not through the
    # meta consumer's store) keeps training off the services' modules.
    with session_scope(live) as session:
        row = session.scalars(select(Model).where(Model.selected)).one_or_none()
    if row is None:
        return RetrainCheck(
            True,
            "no model is selected (the live fallback decides): train and select one",
            None,
            (),
            live_strategies,
        )
    try:
        spec = load_policy(row).spec
    except PolicyError as exc:
        return RetrainCheck(
            True,
            f"the selected model {row.model_id} cannot be loaded: {exc}",
            row.model_id,
            tuple(row.strategy_set),
            live_strategies,
        )
    return compare_strategies(row.model_id, spec, live_strategies)


def compare_strategies(model_id: str, spec: FeatureSpec, live: tuple[str, ...]) -> RetrainCheck:
    """Needed exactly when the meta consumer would refuse the model or run it on a subset: the
    strategy *sets* differ (order does not matter, observations are built in the spec's order)."""
    missing, extra = spec.missing_from(live)
    if not missing and not extra:
        return RetrainCheck(
            False,
            f"model {model_id} uses exactly the registry's strategies",
            model_id,
            tuple(spec.strategies),
            live,
        )
    parts = []
    if missing:
        parts.append(f"the registry no longer runs {', '.join(missing)}")
    if extra:
        parts.append(f"the model does not know {', '.join(extra)}")
    return RetrainCheck(
        True, f"model {model_id}: " + "; ".join(parts), model_id, tuple(spec.strategies), live
    )
