"""Shared pieces of the deployment checks: paths, the pinned tools, rendered output.

The tools (helm, actionlint, kubernetes-validate with the Kubernetes JSON schemas) come from
deploy/tools/install-tools.sh, called once per session: on a fresh machine it builds them (a few
minutes, Go module proxy and PyPI only), afterwards it returns at once. YAML is parsed in that
tools environment too (it has PyYAML), so these tests need nothing beyond the project's lock.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "k8s" / "btcmeta"
REGISTRY = REPO / "strategies_registry.json"
INSTALL = REPO / "deploy" / "tools" / "install-tools.sh"
VALIDATOR = REPO / "deploy" / "tools" / "validate-manifests.py"
#: The Kubernetes minor version the manifests are validated against (EKS in production).
KUBE_VERSION = "1.31.0"
#: The only value the chart requires.
BASE_SET = ["kafka.bootstrapServers=b-1.test.example:9098"]
#: Custom resources: kubernetes-validate ships only core Kubernetes schemas, so these have none
#: there; test_chart.py checks their structure field by field instead.
CRD_KINDS = ("ExternalSecret", "ClusterSecretStore")


@dataclass(frozen=True)
class Tools:
    helm: Path
    actionlint: Path
    python: Path  # interpreter of the kubernetes-validate environment (has PyYAML)

    def parse(self, files: Iterable[Path], validate: bool = False) -> list[dict[str, Any]]:
        """One record per YAML document: kind, name, status, error, doc (see validate-manifests.py)."""
        cmd = [str(self.python), str(VALIDATOR), "--kubernetes-version", KUBE_VERSION]
        cmd += ["--strict", *[f"--allow-crd={k}" for k in CRD_KINDS]] if validate else ["--parse-only"]
        done = subprocess.run([*cmd, *map(str, files)], capture_output=True, text=True, timeout=300)
        records = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
        assert done.returncode in (0, 1), done.stderr
        return records

@dataclass
class Rendered:
    text: str
    records: list[dict[str, Any]]

    @property
    def docs(self) -> list[dict[str, Any]]:
        return [r["doc"] for r in self.records]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.docs if d["kind"] == kind]

    def named(self, kind: str, name: str) -> dict[str, Any]:
        matches = [d for d in self.of_kind(kind) if d["metadata"]["name"] == name]
        assert len(matches) == 1, f"{kind}/{name}: {len(matches)} found"
        return matches[0]


def registry_with(tmp_path: Path, change: Callable[[list[dict[str, Any]]], None]) -> Path:
    """A copy of the repository's registry, changed by ``change(strategies)``, written to tmp_path."""
    data = json.loads(REGISTRY.read_text())
    change(data["strategies"])
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "strategies_registry.json"
    path.write_text(json.dumps(data, indent=2))
    return path
