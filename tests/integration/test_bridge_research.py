"""Issue 16, item 7: a research run's baselines and candidates on the bridge's leaderboard.

A ``--quick`` research run on the last 8,000 bars of the bundled real data is published to a
live PostgreSQL of this module's own (``research --publish-live``), next to the demo models; the
bridge's ``/api/models`` (FastAPI TestClient, as the desktop client reads it) must then list every
pooled baseline and candidate with the research summary's own Sharpe, keep them out of the
models' ``baselines``, and say "not proposed" for a ``selected`` that failed the gates.

A second research run published beside it (``/api/research/runs``, ``research_run``) must be
listed newest first, and the leaderboard must show whichever run is chosen, the newest by default.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, delete, func, select, update
from typer.testing import CliRunner

from bridge.app import create_app
from common.db.migrate import upgrade
from common.db.models import Evaluation, TrainingRun
from common.db.session import make_engine, session_scope
from config import load_settings
from tests.bridge_seed import seed_demo
from tests.conftest import _create_db, _drop_db, _url
from tests.integration.test_bridge import OPERATOR, VIEWER, auth, bridge_settings
from training.cli import app as training_app
from training.results import ResultsDB, evaluations, runs
from training.results_live import SelectError, publish_research_live

pytestmark = pytest.mark.integration


@dataclass
class Published:
    url: str
    engine: Engine
    results_url: str
    summary: dict[str, Any]
    output: str


@pytest.fixture(scope="module")
def published(pg_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Published]:
    name = _create_db()
    url = _url(name)
    upgrade(url, "head")
    engine = make_engine(url)
    seed_demo(engine, "demo")  # the demo models and their own buy_and_hold baseline
    tmp = tmp_path_factory.mktemp("research")
    results_url = f"sqlite:///{tmp / 'results.db'}"
    res = CliRunner().invoke(
        training_app,
        [
            "research",
            "--quick",
            "--last-bars",
            "8000",
            "--out",
            str(tmp / "run"),
            "--report-dir",
            str(tmp / "report"),
            "--results-db",
            results_url,
            "--publish-live",
            "--database-url",
            url,
        ],
    )
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp / "run" / "summary.json").read_text())
    yield Published(url, engine, results_url, summary, res.output)
    engine.dispose()
    _drop_db(name)


def _board(url: str, **params: object) -> dict[str, Any]:
    app = create_app(load_settings(database_url=url), bridge_settings())
    with TestClient(app) as client:
        response = client.get("/api/models", headers=auth(VIEWER), params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert isinstance(body, dict)
    return body


def test_leaderboard_lists_research_baselines_and_candidates_with_the_summarys_sharpe(
    published: Published,
) -> None:
    s = published.summary
    board = _board(published.url)
    research = board["research"]
    assert research is not None and research["run_id"] == s["results_run_id"]
    assert research["trials"] == s["trials_logged"]
    entries = {e["name"]: e for e in research["entries"] if e["window"] == "test"}
    # every pooled series of the summary, with the summary's Sharpe, nothing else
    assert set(entries) == set(s["sharpe"])
    for name, sharpe in s["sharpe"].items():
        assert entries[name]["metrics"]["sharpe"] == pytest.approx(sharpe), name
        assert entries[name]["metrics"]["sharpe_2x"] == pytest.approx(s["sharpe_2x"][name]), name
    for name in ("buy_and_hold", "flat", "majority_vote", "equal_weight", "ex_ante_best_single"):
        assert entries[name]["kind"] == entries[name]["status"] == "baseline"
    for name in s["configs"]:
        assert entries[name]["kind"] == entries[name]["status"] == "candidate"
    # ranked by Sharpe, best first, like the models
    ranked = [e for e in research["entries"] if e["rank"] is not None]
    assert [e["rank"] for e in ranked] == list(range(1, len(entries) + 1))
    assert [e["score"] for e in ranked] == sorted((e["score"] for e in ranked), reverse=True)
    # the hindsight oracle: beside them, never ranked
    bound = [e for e in research["entries"] if e["kind"] == "bound"]
    assert [(b["name"], b["rank"], b["status"]) for b in bound] == [("dp_oracle", None, "upper bound")]
    assert bound[0]["metrics"]["sharpe"] == pytest.approx(s["oracle"]["sharpe"])
    # the models and their own baselines are untouched by the research rows
    assert board["best_model_id"] == "demo-ppo-v3"
    assert [b["name"] for b in board["baselines"]] == ["buy_and_hold"]
    assert board["baselines"][0]["run_id"] != s["results_run_id"]
    # ranking on another metric ranks the research rows on it too
    by_dd = _board(published.url, metric="max_drawdown", order="asc")["research"]["entries"]
    dd = [e["score"] for e in by_dd if e["rank"] is not None]
    assert dd == sorted(dd)


def test_selected_that_fails_the_gates_is_on_the_board_but_not_proposed(published: Published) -> None:
    s = published.summary
    # measured: on the last 8,000 real bars the quick grid's choice clears no gate
    assert s["selected_passes"] is False
    research = _board(published.url)["research"]
    sel = next(e for e in research["entries"] if e["name"] == "selected")
    assert (sel["status"], sel["proposed"], sel["kind"]) == ("not proposed", False, "candidate")
    assert not any(e["proposed"] or e["status"] == "proposed" for e in research["entries"])
    assert research["selected_passes"] is False and "not proposed" in research["verdict"]
    assert "NOT proposed" in published.output


def test_republishing_replaces_and_a_passing_selected_shows_as_proposed(
    published: Published, tmp_path: Path
) -> None:
    """What the board shows follows the results DB's gate verdict; a second publication of the same
    run replaces its rows (same count), never adds to them."""
    s = published.summary
    run_id = s["results_run_id"]
    with session_scope(published.engine) as session:
        before = session.scalar(
            select(func.count()).select_from(Evaluation).where(Evaluation.run_id == run_id)
        )
    # a copy of the results DB in which the run passed its gates (the source the publication copies)
    copy = tmp_path / "passed.db"
    shutil.copyfile(published.results_url.removeprefix("sqlite:///"), copy)
    passed = ResultsDB(f"sqlite:///{copy}", tmp_path / "art")
    try:
        with passed.engine.begin() as conn:
            conn.execute(
                update(evaluations)
                .where(evaluations.c.run_id == run_id, evaluations.c.candidate == "selected")
                .where(evaluations.c.window == "test")
                .values(proposed=True)
            )
            config = dict(passed.run(run_id)["config"])
            conn.execute(
                update(runs).where(runs.c.run_id == run_id).values(config={**config, "selected_passes": True})
            )
        pub = publish_research_live(passed, run_id, published.engine)
        assert (pub.proposed, pub.selected_passes) == ("selected", True)
        with session_scope(published.engine) as session:
            after = session.scalar(
                select(func.count()).select_from(Evaluation).where(Evaluation.run_id == run_id)
            )
            one = select(func.count()).select_from(TrainingRun).where(TrainingRun.run_id == run_id)
            assert session.scalar(one) == 1
        assert after == before == len(s["sharpe"]) + 1  # pooled rows + the upper bound
        research = _board(published.url)["research"]
        sel = next(e for e in research["entries"] if e["name"] == "selected")
        assert (sel["status"], sel["proposed"]) == ("proposed", True)
        assert research["selected_passes"] is True and research["verdict"].startswith("selected passes")
        assert sel["metrics"]["sharpe"] == pytest.approx(s["sharpe"]["selected"])
        # a training run is not research: models reach the board through select only
        with pytest.raises(SelectError, match="not a research run"):
            publish_research_live(passed, passed.start_run(config={"algo": "ppo"}), published.engine)
    finally:
        passed.close()
        # the board as measured again, through the CLI step (a unique run-id prefix is enough)
        res = CliRunner().invoke(
            training_app,
            [
                "publish-research",
                run_id[:12],
                "--results-db",
                published.results_url,
                "--database-url",
                published.url,
            ],
        )
    assert res.exit_code == 0, res.output
    assert f"published research run {run_id}" in res.output and "NOT proposed" in res.output
    sel = next(e for e in _board(published.url)["research"]["entries"] if e["name"] == "selected")
    assert sel["status"] == "not proposed"


# A second, later research run: the fixture run's pooled rows, every Sharpe one higher, without
# equal_weight, and with a selected that passed; what tells the two boards apart below.
NEWER = "rs" + "e" * 30


def _publish_newer(published: Published, tmp_path: Path) -> None:
    """Publish ``NEWER`` through the real path (results DB -> ``publish_research_live``)."""
    source = ResultsDB(published.results_url, tmp_path / "art-src")
    other = ResultsDB(f"sqlite:///{tmp_path / 'newer.db'}", tmp_path / "art")
    try:
        run_id = published.summary["results_run_id"]
        config = dict(source.run(run_id)["config"])
        rows = [
            {
                "candidate": r.candidate,
                "kind": r.kind,
                "algo": r.algo,
                "window": r.window,
                "fold": r.fold,
                "metrics": {**r.metrics, "sharpe": float(r.metrics["sharpe"]) + 1.0}
                if r.window == "test"
                else dict(r.metrics),
                "params": dict(r.params),
                "proposed": r.candidate == "selected" and r.window == "test",
            }
            for r in source.evaluations(run_id=run_id)
            if r.window in ("test", "upper_bound") and r.candidate != "equal_weight"
        ]
        other.put_research(NEWER, rows, config={**config, "selected_passes": True}, data_fingerprint="e" * 30)
        publish_research_live(other, NEWER, published.engine)
    finally:
        source.close()
        other.close()


def _drop_newer(published: Published) -> None:
    with session_scope(published.engine) as session:
        session.execute(delete(Evaluation).where(Evaluation.run_id == NEWER))
        session.execute(delete(TrainingRun).where(TrainingRun.run_id == NEWER))


def _get(url: str, path: str, token: str | None = VIEWER, **params: object) -> tuple[int, Any]:
    app = create_app(load_settings(database_url=url), bridge_settings())
    with TestClient(app) as client:
        response = client.get(path, headers=auth(token) if token else {}, params=params)
    return response.status_code, response.json()


def test_runs_are_listed_newest_first_and_the_board_shows_the_chosen_one(
    published: Published, tmp_path: Path
) -> None:
    s = published.summary
    older = s["results_run_id"]
    _publish_newer(published, tmp_path)
    try:
        code, listed = _get(published.url, "/api/research/runs")
        assert code == 200, listed
        assert [r["run_id"] for r in listed] == [NEWER, older]
        new, old = listed
        assert datetime.fromisoformat(new["published_at"]) > datetime.fromisoformat(old["published_at"])
        # what tells the runs apart, each from its own run
        assert (new["selected_passes"], old["selected_passes"]) == (True, False)
        assert new["verdict"].startswith("selected passes") and "not proposed" in old["verdict"]
        assert old["trials"] == s["trials_logged"]
        assert old["ranking_window"] == new["ranking_window"] == "test"
        assert datetime.fromisoformat(old["evaluated_from"]) == datetime.fromisoformat(
            s["data"]["evaluated_from"]
        )
        assert datetime.fromisoformat(old["evaluated_to"]) == datetime.fromisoformat(s["data"]["last"])

        # default: the newest run, as before the chooser existed
        default = _board(published.url)
        research = default["research"]
        assert research["run_id"] == NEWER and research["selected_passes"] is True
        names = {e["name"] for e in research["entries"] if e["window"] == "test"}
        assert names == set(s["sharpe"]) - {"equal_weight"}
        assert _board(published.url, research_run=NEWER) == default

        # the older run: its own rows and Sharpes, not the newest's
        chosen = _board(published.url, research_run=older)
        research = chosen["research"]
        assert research["run_id"] == older and research["selected_passes"] is False
        entries = {e["name"]: e for e in research["entries"] if e["window"] == "test"}
        assert set(entries) == set(s["sharpe"])  # equal_weight is back
        for name, sharpe in s["sharpe"].items():
            assert entries[name]["metrics"]["sharpe"] == pytest.approx(sharpe), name
        ranked = [e for e in research["entries"] if e["rank"] is not None]
        assert [e["rank"] for e in ranked] == list(range(1, len(entries) + 1))
        # the models beside it do not depend on the research run chosen
        assert chosen["models"] == default["models"] and chosen["baselines"] == default["baselines"]
        assert chosen["best_model_id"] == "demo-ppo-v3"
    finally:
        _drop_newer(published)
    # gone from the database: gone from the list, and the board's default falls back to the fixture run
    assert [r["run_id"] for r in _get(published.url, "/api/research/runs")[1]] == [older]
    assert _board(published.url)["research"]["run_id"] == older


def test_an_unknown_or_non_research_run_is_404_never_the_newest(published: Published) -> None:
    code, body = _get(published.url, "/api/models", research_run="rs" + "0" * 30)
    assert code == 404 and body["detail"] == f"no published research run {'rs' + '0' * 30!r}"
    # a run that exists but is the demo models' own baseline run, not research
    demo_run = _board(published.url)["baselines"][0]["run_id"]
    code, body = _get(published.url, "/api/models", research_run=demo_run)
    assert code == 404 and "no published research run" in body["detail"]


def test_research_runs_and_the_chooser_need_a_token(published: Published) -> None:
    older = published.summary["results_run_id"]
    for path, params in (("/api/research/runs", {}), ("/api/models", {"research_run": older})):
        assert _get(published.url, path, None, **params)[0] == 401
        assert _get(published.url, path, "not-a-token", **params)[0] == 401
        assert _get(published.url, path, VIEWER, **params)[0] == 200  # a viewer may read
        assert _get(published.url, path, OPERATOR, **params)[0] == 200
