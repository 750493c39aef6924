"""The Argo CD Application: GitOps from this repository with automated sync, the registry passed
in as the chart's `registry` value, and values that render to valid manifests."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.deploy.chartkit import CHART, REGISTRY, REPO

pytestmark = pytest.mark.timeout(1800)  # the first test may build the tools (see conftest)

APPLICATION = REPO / "deploy" / "argocd" / "application.yaml"


@pytest.fixture(scope="module")
def app(tools) -> dict[str, Any]:
    (record,) = tools.parse([APPLICATION])
    return record["doc"]


def test_application_syncs_the_chart_automatically(app):
    assert app["apiVersion"] == "argoproj.io/v1alpha1" and app["kind"] == "Application"
    source = app["spec"]["source"]
    assert (REPO / source["path"]).resolve() == CHART.resolve()
    assert source["targetRevision"] == "main"
    automated = app["spec"]["syncPolicy"]["automated"]
    assert automated["prune"] is True and automated["selfHeal"] is True


def test_registry_is_passed_from_the_repository_file(app):
    (param,) = app["spec"]["source"]["helm"]["fileParameters"]
    assert param["name"] == "registry"
    # Argo CD resolves the path from the chart folder and refuses paths outside the repository.
    resolved = (CHART / param["path"]).resolve()
    assert resolved == REGISTRY.resolve()
    assert REPO.resolve() in resolved.parents


def test_application_values_render_valid_manifests(app, render, tmp_path):
    values = app["spec"]["source"]["helm"]["valuesObject"]
    flat: list[str] = []

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(f"{prefix}{key}.", value)
        else:
            flat.append(f"{prefix[:-1]}={json.dumps(node) if not isinstance(node, str) else node}")

    walk("", values)
    rendered = render([v.replace(",", "\\,") for v in flat], registry=REGISTRY, validate=True)
    assert not [r for r in rendered.records if r["status"] == "invalid"]
    assert rendered.named("ConfigMap", "btcmeta-config")["data"]["BTCMETA_KAFKA__BOOTSTRAP_SERVERS"] == (
        values["kafka"]["bootstrapServers"])
