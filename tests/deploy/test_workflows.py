"""GitHub Actions workflows: actionlint passes, and each workflow does the job the project relies on."""

from __future__ import annotations

import re
import subprocess
from typing import Any

import pytest

from tests.deploy.chartkit import REPO

pytestmark = pytest.mark.timeout(1800)  # the first test may build the tools (see conftest)

WORKFLOWS = REPO / ".github" / "workflows"


@pytest.fixture(scope="module")
def workflows(tools) -> dict[str, dict[str, Any]]:
    files = sorted(WORKFLOWS.glob("*.yml"))
    records = tools.parse(files)
    return {r["file"].rsplit("/", 1)[-1]: r["doc"] for r in records}


def steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


def test_actionlint_passes(tools):
    done = subprocess.run(
        [str(tools.actionlint), "-no-color"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_four_workflows_exist(workflows):
    assert {"ci.yml", "images.yml", "chart.yml", "suites.yml"} <= set(workflows)


def test_suites_deselected_from_make_test_run_nightly_with_their_own_targets(workflows):
    """What addopts leaves out of `make test` is not dropped: a scheduled workflow runs each suite."""
    import tomllib

    addopts = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["addopts"]
    deselected = set(re.findall(r"not (\w+)", addopts))
    assert deselected == {"chaos", "exhaustive"}
    suites = workflows["suites.yml"]
    triggers = suites.get("on") or suites["true"]
    assert "schedule" in triggers
    (job,) = suites["jobs"].values()
    assert {f"test-{m}" for m in deselected} == set(job["strategy"]["matrix"]["target"])
    assert [s["run"].strip() for s in job["steps"] if "run" in s] == ["make ${{ matrix.target }}"]
    makefile = (REPO / "Makefile").read_text()
    for marker in deselected:
        recipe = re.search(rf"^test-{marker}:.*\n\t(.+)$", makefile, re.M)
        assert recipe and f"-m {marker}" in recipe.group(1), marker


def test_ci_runs_exactly_make_test_with_caches(workflows):
    ci = workflows["ci.yml"]
    runs = [s["run"].strip() for s in steps(ci) if "run" in s]
    assert runs == ["make test"], "CI must run the same command as .ci/run and the README"
    assert "make test" in (REPO / ".ci" / "run").read_text()
    cached = "\n".join(s["with"]["path"] for s in steps(ci) if s.get("uses", "").startswith("actions/cache@"))
    for path in ("~/.cache/uv", "~/.m2", "~/.cache/go-build", "~/go/pkg/mod", ".local/tools"):
        assert path in cached, path
    triggers = ci.get("on") or ci["true"]  # YAML 1.1 reads the bare key `on` as true
    assert "pull_request" in triggers and "push" in triggers


def test_images_are_built_and_pushed_on_main_separately(workflows):
    images = workflows["images.yml"]
    triggers = images.get("on") or images["true"]
    assert triggers["push"]["branches"] == ["main"]
    builds = {}
    for name, job in images["jobs"].items():
        for step in job["steps"]:
            if step.get("uses", "").startswith("docker/build-push-action@"):
                builds[name] = step["with"]
    assert sorted(b["file"] for b in builds.values()) == [
        "deploy/docker/meta.Dockerfile",
        "deploy/docker/services.Dockerfile",
    ]
    assert len(builds) == 2, "the meta (torch) image is its own job"
    for build in builds.values():
        assert build["push"] is True and build["context"] == "."
    text = (WORKFLOWS / "images.yml").read_text()
    assert "vars.IMAGE_REGISTRY" in text
    assert "build-args" not in text, "nothing secret (or otherwise) is passed into the image build"


def test_chart_workflow_lints_renders_and_validates(workflows):
    runs = "\n".join(s.get("run", "") for s in steps(workflows["chart.yml"]))
    for expected in ("install-tools.sh", "helm lint", "helm template", "validate-manifests.py", "actionlint"):
        assert expected in runs, expected
