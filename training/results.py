"""The results database: every training run, and every candidate's metrics on every window.

Where: ``TrainingSettings.results_database_url`` (``BTCMETA_TRAINING__RESULTS_DATABASE_URL``),
an embedded SQLite file by default, the team's PostgreSQL when configured. Model files and equity
curves stay on the machine that trained them (under ``TrainingSettings.artifacts_dir``); the
database records their paths and sha256, so ``select`` can refuse a file that changed since.

Why ``metadata.create_all`` and not Alembic: this schema is not the live system's. It lives in a
laptop SQLite file as often as in Postgres, has no service that could run migrations before it is
used, and each training invocation must be able to start on an empty file. The tables carry a
``results_`` prefix and their own ``MetaData``, so they may share the live database without
touching (or being touched by) the Alembic-managed ``training_runs`` / ``evaluations`` tables,
which hold only what was uploaded for live use (see ``training.selection``). A schema change here
needs a new table name or a one-off script; the columns are few and the details live in JSON.

No collisions when several people train against one database at once: run ids are uuid4 (made by
the writer, never by a counter), evaluation ids come from the database's own sequence, and schema
creation is serialized (a PostgreSQL advisory lock; on SQLite a retry of ``create_all``).
"""

from __future__ import annotations

import getpass
import hashlib
import math
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    event,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import DatabaseError

from common.db.session import make_engine
from training.ledger import Ledger

JSONCol = JSON().with_variant(JSONB(), "postgresql")
Id = BigInteger().with_variant(Integer(), "sqlite")

#: Metrics copied into their own columns (sortable in SQL); every metric also stays in ``metrics``.
MAIN_METRICS = ("sharpe", "sortino", "calmar", "total_return", "cagr", "max_drawdown", "win_rate")
#: Metrics where smaller is better (the leaderboard and proposals rank them ascending).
LOWER_IS_BETTER = frozenset({"max_drawdown", "fees_paid", "funding_paid", "turnover"})
KINDS = ("model", "baseline")
#: Kinds a research run (``python -m training research``) writes: rules and combiners without a
#: stored model file ("candidate"), and the hindsight oracle ("bound", an upper bound, never chosen).
RESEARCH_KINDS = ("baseline", "candidate", "bound")

metadata = MetaData()

runs = Table(
    "results_runs",
    metadata,
    Column("run_id", Text, primary_key=True),  # uuid4 hex, made by the writer
    Column("username", Text, nullable=False),
    Column("host", Text, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("status", Text, nullable=False),  # running | finished | failed
    Column("git_commit", Text),
    Column("data_fingerprint", Text),
    Column("config", JSONCol, nullable=False),
    Column("seed", BigInteger),
    Column("kind", Text, nullable=False),  # manual | retrain | ...
    Index("ix_results_runs_started_at", "started_at"),
)

evaluations = Table(
    "results_evaluations",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("run_id", Text, ForeignKey("results_runs.run_id", ondelete="CASCADE"), nullable=False),
    Column("candidate", Text, nullable=False),  # "ppo", "buy_and_hold", "single:ott", ...
    Column("kind", Text, nullable=False),  # model | baseline
    Column("algo", Text),
    Column("window", Text, nullable=False),  # train | validation | test
    Column("fold", Integer, nullable=False),
    Column("window_start", DateTime(timezone=True)),
    Column("window_end", DateTime(timezone=True)),
    Column("metrics", JSONCol, nullable=False),
    *(Column(m, Float) for m in MAIN_METRICS),
    Column("trades", Integer),
    Column("model_path", Text),
    Column("model_sha256", Text),
    Column("curve_path", Text),
    Column("params", JSONCol, nullable=False),
    Column("proposed", Boolean, nullable=False, default=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("run_id", "candidate", "window", "fold", name="uq_results_evaluations_key"),
    Index("ix_results_evaluations_run_id", "run_id"),
)

selections = Table(
    "results_selections",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("run_id", Text, ForeignKey("results_runs.run_id", ondelete="CASCADE"), nullable=False),
    Column("candidate", Text, nullable=False),
    Column("model_id", Text, nullable=False),  # the live ``models.model_id``
    Column("model_sha256", Text, nullable=False),
    Column("selected_by", Text, nullable=False),
    Column("selected_at", DateTime(timezone=True), nullable=False),
    Column("live_database", Text, nullable=False),  # host/db only, never credentials
)


class ResultsError(ValueError):
    """A request the results database cannot satisfy (unknown run, ambiguous reference, ...)."""


@dataclass(frozen=True)
class EvaluationRow:
    """One row of ``results_evaluations`` as read back."""

    id: int
    run_id: str
    candidate: str
    kind: str
    algo: str | None
    window: str
    fold: int
    metrics: dict[str, Any]
    model_path: str | None
    model_sha256: str | None
    curve_path: str | None
    params: dict[str, Any]
    proposed: bool

    @classmethod
    def from_mapping(cls, m: Mapping[Any, Any]) -> EvaluationRow:
        return cls(
            int(m["id"]),
            m["run_id"],
            m["candidate"],
            m["kind"],
            m["algo"],
            m["window"],
            int(m["fold"]),
            dict(m["metrics"]),
            m["model_path"],
            m["model_sha256"],
            m["curve_path"],
            dict(m["params"]),
            bool(m["proposed"]),
        )


def who() -> tuple[str, str]:
    """(user, host) of this process, for provenance."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = os.environ.get("USER", "unknown")
    return user, socket.gethostname()


def git_commit(repo: Path | None = None) -> str | None:
    """HEAD of the checkout (with ``-dirty`` when tracked files changed), or None outside git."""
    cwd = repo or Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}-dirty" if dirty else head


def data_fingerprint(candles: pd.DataFrame) -> str:
    """sha256 over the bar times and OHLCV values: equal data, equal fingerprint."""
    h = hashlib.sha256()
    h.update(np.asarray(candles.index.asi8, dtype=np.int64).tobytes())
    for col in ("open", "high", "low", "close", "volume"):
        h.update(np.ascontiguousarray(candles[col].to_numpy(np.float64)).tobytes())
    return h.hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def safe_name(candidate: str) -> str:
    """A file-name form of a candidate name (``single:ott`` -> ``single_ott``)."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in candidate)


def _clean(value: Any) -> Any:
    """JSON-safe metrics: numpy scalars to Python, non-finite floats to None."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _url_for_display(url: str) -> str:
    from sqlalchemy.engine import make_url

    u = make_url(url)
    return u.render_as_string(hide_password=True)


class ResultsDB:
    """Record and read training results. ``ResultsDB.open()`` uses the configured URL."""

    def __init__(self, url: str, artifacts_dir: str | Path = "out/training") -> None:
        self.url = url
        self.artifacts_dir = Path(artifacts_dir)
        if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.engine: Engine = (
            make_engine(url, connect_args={"timeout": 60}) if "sqlite" in url else make_engine(url)
        )
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_wal)
        self.create_schema()

    @classmethod
    def open(cls, url: str | None = None, artifacts_dir: str | Path | None = None) -> ResultsDB:
        """The results DB from settings (``BTCMETA_TRAINING__*``), each part overridable."""
        from config import load_settings

        t = load_settings().training
        return cls(
            url or t.results_database_url.get_secret_value(),
            artifacts_dir if artifacts_dir is not None else t.artifacts_dir,
        )

    def __repr__(self) -> str:
        return f"ResultsDB({_url_for_display(self.url)!r})"

    def close(self) -> None:
        self.engine.dispose()

    # ------------------------------------------------------------------ schema

    def create_schema(self) -> None:
        """Create the tables if absent; safe when several processes start at once."""
        if self.engine.dialect.name == "postgresql":
            with self.engine.begin() as conn:
                conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('btcmeta.results_schema'))"))
                metadata.create_all(conn, checkfirst=True)
            return
        for attempt in range(20):
            try:
                metadata.create_all(self.engine, checkfirst=True)
                return
            except DatabaseError:  # another process created a table between check and create
                if attempt == 19:
                    raise
                time.sleep(0.05 * (attempt + 1))

    # ------------------------------------------------------------------ writing

    def run_dir(self, run_id: str) -> Path:
        return self.artifacts_dir / "runs" / run_id

    def start_run(
        self,
        *,
        config: Mapping[str, Any] | None = None,
        seed: int | None = None,
        data_fingerprint: str | None = None,
        kind: str = "manual",
        commit: str | None = None,
    ) -> str:
        """Insert a ``running`` run and return its id (uuid4 hex; never collides)."""
        run_id = uuid.uuid4().hex
        user, host = who()
        with self.engine.begin() as conn:
            conn.execute(
                insert(runs).values(
                    run_id=run_id,
                    username=user,
                    host=host,
                    started_at=datetime.now(UTC),
                    status="running",
                    git_commit=commit if commit is not None else git_commit(),
                    data_fingerprint=data_fingerprint,
                    config=_clean(dict(config or {})),
                    seed=seed,
                    kind=kind,
                )
            )
        return run_id

    def finish_run(self, run_id: str, status: str = "finished") -> None:
        with self.engine.begin() as conn:
            done = conn.execute(
                update(runs)
                .where(runs.c.run_id == run_id)
                .values(status=status, finished_at=datetime.now(UTC))
            )
            if done.rowcount != 1:
                raise ResultsError(f"unknown run {run_id}")

    def save_model(self, run_id: str, candidate: str, artifact: bytes, fold: int = 0) -> tuple[Path, str]:
        """Write a model artifact under the run's folder; returns (absolute path, sha256)."""
        path = (self.run_dir(run_id) / "models" / f"{safe_name(candidate)}.fold{fold}.npz").resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(artifact)
        tmp.replace(path)
        return path, hashlib.sha256(artifact).hexdigest()

    def save_curve(
        self,
        run_id: str,
        candidate: str,
        window: str,
        fold: int,
        ledger: Ledger,
        index: pd.DatetimeIndex | None = None,
    ) -> Path:
        """Equity, net returns and exposure of one evaluation as an ``.npz`` (no pickles)."""
        path = (self.run_dir(run_id) / "curves" / f"{safe_name(candidate)}.{window}.{fold}.npz").resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        times = np.asarray(index.asi8 if index is not None else np.arange(len(ledger.equity)), dtype=np.int64)
        if times.shape[0] != ledger.equity.shape[0]:
            raise ValueError(f"index has {times.shape[0]} bars, the equity curve {ledger.equity.shape[0]}")
        np.savez_compressed(
            path,
            time=times,
            equity=ledger.equity,
            net=ledger.net,
            exposure=ledger.exposure,
            has_time=np.array(index is not None),
        )
        return path

    def record_evaluation(
        self,
        run_id: str,
        candidate: str,
        *,
        window: str,
        metrics: Mapping[str, Any],
        kind: str = "baseline",
        fold: int = 0,
        algo: str | None = None,
        model_path: Path | None = None,
        model_sha256: str | None = None,
        ledger: Ledger | None = None,
        index: pd.DatetimeIndex | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> int:
        """Insert one evaluation; returns its id. ``ledger`` (+ ``index``: the window's bar times)
        stores the equity curve for the report. A model needs ``model_path`` and ``model_sha256``."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        if kind == "model" and (model_path is None or model_sha256 is None):
            raise ValueError(f"model evaluation {candidate!r} needs model_path and model_sha256")
        curve = (
            self.save_curve(run_id, candidate, window, fold, ledger, index) if ledger is not None else None
        )
        m = _clean(dict(metrics))
        values: dict[str, Any] = {
            "run_id": run_id,
            "candidate": candidate,
            "kind": kind,
            "algo": algo,
            "window": window,
            "fold": fold,
            "metrics": m,
            "trades": m.get("trades"),
            "model_path": str(model_path) if model_path else None,
            "model_sha256": model_sha256,
            "curve_path": str(curve) if curve else None,
            "params": _clean(dict(params or {})),
            "proposed": False,
            **{k: m.get(k) for k in MAIN_METRICS},
        }
        if index is not None and len(index):
            values["window_start"], values["window_end"] = index[0].to_pydatetime(), index[-1].to_pydatetime()
        with self.engine.begin() as conn:
            return int(
                conn.execute(insert(evaluations).values(**values).returning(evaluations.c.id)).scalar_one()
            )

    def put_research(
        self,
        run_id: str,
        rows: Sequence[Mapping[str, Any]],
        *,
        config: Mapping[str, Any],
        data_fingerprint: str | None = None,
    ) -> None:
        """Write a research run's evaluations, replacing whatever that run id held (no duplicates).

        The run id is the research run's own (derived from its data and split settings), so a
        resumed or repeated run updates one run instead of adding another. Each row: ``candidate``,
        ``kind`` (``RESEARCH_KINDS``), ``window``, ``fold``, ``metrics``, optional ``params`` and
        ``proposed``. One transaction: a reader sees the old set or the new one.
        """
        now = datetime.now(UTC)
        user, host = who()
        values = []
        for r in rows:
            if r["kind"] not in RESEARCH_KINDS:
                raise ValueError(f"research kind must be one of {RESEARCH_KINDS}, got {r['kind']!r}")
            m = _clean(dict(r["metrics"]))
            values.append(
                {
                    "run_id": run_id,
                    "candidate": r["candidate"],
                    "kind": r["kind"],
                    "algo": r.get("algo"),
                    "window": r["window"],
                    "fold": int(r.get("fold", 0)),
                    "metrics": m,
                    "trades": m.get("trades"),
                    "model_path": None,
                    "model_sha256": None,
                    "curve_path": None,
                    "params": _clean(dict(r.get("params") or {})),
                    "proposed": bool(r.get("proposed", False)),
                    **{k: m.get(k) for k in MAIN_METRICS},
                }
            )
        with self.engine.begin() as conn:
            exists = conn.execute(select(runs.c.run_id).where(runs.c.run_id == run_id)).first()
            if exists is None:
                conn.execute(
                    insert(runs).values(
                        run_id=run_id,
                        username=user,
                        host=host,
                        started_at=now,
                        finished_at=now,
                        status="finished",
                        git_commit=git_commit(),
                        data_fingerprint=data_fingerprint,
                        config=_clean(dict(config)),
                        seed=None,
                        kind="research",
                    )
                )
            else:
                conn.execute(
                    update(runs)
                    .where(runs.c.run_id == run_id)
                    .values(finished_at=now, status="finished", config=_clean(dict(config)))
                )
            conn.execute(evaluations.delete().where(evaluations.c.run_id == run_id))
            if values:
                conn.execute(insert(evaluations), values)

    def propose(
        self,
        run_id: str,
        *,
        metric: str = "sharpe",
        window: str = "validation",
        kinds: tuple[str, ...] = ("model", "baseline"),
        only: Collection[str] | None = None,
    ) -> str | None:
        """Mark the best candidate of a run (mean ``metric`` over folds on ``window``) as proposed.

        Only marks: selecting for live trading is always a person's ``select``. Returns the name.
        ``only`` limits the pool (the pipeline passes the deployable candidates).
        """
        rows = [
            r
            for r in self.evaluations(run_id=run_id, window=window)
            if r.kind in kinds and (only is None or r.candidate in only)
        ]
        scores: dict[str, list[float]] = {}
        for r in rows:
            v = r.metrics.get(metric)
            if isinstance(v, int | float) and math.isfinite(v):
                scores.setdefault(r.candidate, []).append(float(v))
        if not scores:
            return None
        sign = 1.0 if metric in LOWER_IS_BETTER else -1.0
        best = min(scores, key=lambda c: (sign * float(np.mean(scores[c])), c))
        with self.engine.begin() as conn:
            conn.execute(update(evaluations).where(evaluations.c.run_id == run_id).values(proposed=False))
            conn.execute(
                update(evaluations)
                .where(evaluations.c.run_id == run_id, evaluations.c.candidate == best)
                .values(proposed=True)
            )
        return best

    def record_selection(self, ev: EvaluationRow, model_id: str, selected_by: str, live_url: str) -> None:
        from sqlalchemy.engine import make_url

        u = make_url(live_url)
        where = f"{u.host or ''}:{u.port or ''}/{u.database or ''}"
        with self.engine.begin() as conn:
            conn.execute(
                insert(selections).values(
                    run_id=ev.run_id,
                    candidate=ev.candidate,
                    model_id=model_id,
                    model_sha256=ev.model_sha256 or "",
                    selected_by=selected_by,
                    selected_at=datetime.now(UTC),
                    live_database=where,
                )
            )

    # ------------------------------------------------------------------ reading

    def run(self, ref: str) -> dict[str, Any]:
        """A run by id, unique id prefix, or ``latest``."""
        with self.engine.connect() as conn:
            if ref == "latest":
                row = (
                    conn.execute(select(runs).order_by(runs.c.started_at.desc()).limit(1)).mappings().first()
                )
                if row is None:
                    raise ResultsError("the results database holds no runs yet")
                return dict(row)
            found = (
                conn.execute(select(runs).where(runs.c.run_id.startswith(ref, autoescape=True)).limit(2))
                .mappings()
                .all()
            )
        if not found:
            raise ResultsError(f"no run {ref!r}")
        if len(found) > 1:
            raise ResultsError(f"run prefix {ref!r} is ambiguous; give more characters")
        return dict(found[0])

    def runs(self, limit: int = 50) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [
                dict(r)
                for r in conn.execute(select(runs).order_by(runs.c.started_at.desc()).limit(limit)).mappings()
            ]

    def evaluations(
        self, *, run_id: str | None = None, window: str | None = None, candidate: str | None = None
    ) -> list[EvaluationRow]:
        q = select(evaluations).order_by(evaluations.c.id)
        if run_id is not None:
            q = q.where(evaluations.c.run_id == run_id)
        if window is not None:
            q = q.where(evaluations.c.window == window)
        if candidate is not None:
            q = q.where(evaluations.c.candidate == candidate)
        with self.engine.connect() as conn:
            return [EvaluationRow.from_mapping(m) for m in conn.execute(q).mappings()]

    def evaluation(self, eval_id: int) -> EvaluationRow:
        with self.engine.connect() as conn:
            m = conn.execute(select(evaluations).where(evaluations.c.id == eval_id)).mappings().first()
        if m is None:
            raise ResultsError(f"no evaluation with id {eval_id}")
        return EvaluationRow.from_mapping(m)

    def resolve_model(self, ref: str) -> EvaluationRow:
        """A model by ``<evaluation id>`` or ``<run id or prefix or 'latest'>:<candidate>``.

        Returns one of its evaluation rows (a model's rows on all windows share its file; with
        several folds, ``run:candidate`` means the last fold's model, trained on the newest data);
        refuses a baseline, which is a rule and not a stored model.
        """
        if ref.isdigit():
            ev = self.evaluation(int(ref))
        else:
            run_ref, sep, candidate = ref.partition(":")
            if not sep or not run_ref or not candidate:
                raise ResultsError(
                    f"{ref!r}: expected <evaluation id> or <run>:<candidate> (e.g. latest:ppo)"
                )
            run_id = self.run(run_ref)["run_id"]
            rows = self.evaluations(run_id=run_id, candidate=candidate)
            if not rows:
                names = sorted({r.candidate for r in self.evaluations(run_id=run_id)})
                raise ResultsError(f"run {run_id} has no candidate {candidate!r}; it has: {', '.join(names)}")
            ev = max(rows, key=lambda r: (r.kind == "model", r.fold))  # the newest fold's model
        if ev.kind != "model" or not ev.model_path or not ev.model_sha256:
            raise ResultsError(
                f"{ev.candidate!r} (evaluation {ev.id}) is a {ev.kind}, not a stored model: "
                "only trained models can be selected"
            )
        return ev

    def latest_selection(self) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = (
                conn.execute(select(selections).order_by(selections.c.id.desc()).limit(1)).mappings().first()
            )
        return None if row is None else dict(row)

    def load_curve(self, path: str | Path) -> dict[str, np.ndarray]:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}


def _sqlite_wal(dbapi_connection: Any, _record: Any) -> None:
    """WAL lets readers (the leaderboard) run while a training process writes."""
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.close()
