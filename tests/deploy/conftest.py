"""Session fixtures of the deployment checks: the pinned tools and chart rendering.

``tools`` runs deploy/tools/install-tools.sh once per session: on a fresh machine it builds helm and
actionlint and creates the kubernetes-validate environment (a few minutes, from the Go module proxy
and PyPI only); afterwards it returns at once.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from tests.deploy.chartkit import BASE_SET, CHART, INSTALL, KUBE_VERSION, REPO, Rendered, Tools


@pytest.fixture(scope="session")
def tools() -> Tools:
    done = subprocess.run(["bash", str(INSTALL)], capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, f"deploy/tools/install-tools.sh failed:\n{done.stdout}\n{done.stderr}"
    local = Path(os.environ.get("BTCMETA_TOOLS_DIR") or REPO / ".local" / "tools")  # as install-tools.sh
    found = Tools(local / "bin" / "helm", local / "bin" / "actionlint",
                  local / "kubernetes-validate" / "bin" / "python")
    for path in (found.helm, found.actionlint, found.python):
        assert path.exists(), f"{path} missing after install-tools.sh"
    return found


@pytest.fixture(scope="session")
def render(tools: Tools, tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Rendered]:
    """render(values=["key=value", ...], registry=Path|None, validate=False) -> Rendered.

    Results are shared between tests: treat them as read-only."""
    out = tmp_path_factory.mktemp("rendered")
    counter = iter(range(1_000_000))
    cache: dict[tuple, Rendered] = {}  # same inputs, same output: render once per session

    def _render(values: Iterable[str] = (), registry: Path | None = None, validate: bool = False,
                release: str = "btcmeta") -> Rendered:
        key = (tuple(values), registry.read_text() if registry else None, validate, release)
        if key in cache:
            return cache[key]
        cmd = [str(tools.helm), "template", release, str(CHART), "--namespace", "btcmeta",
               "--kube-version", KUBE_VERSION]
        for item in [*BASE_SET, *values]:
            cmd += ["--set", item]
        if registry is not None:
            cmd += ["--set-file", f"registry={registry}"]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"helm template failed:\n{done.stderr}"
        target = out / f"render-{next(counter)}.yaml"
        target.write_text(done.stdout)
        cache[key] = Rendered(done.stdout, tools.parse([target], validate=validate))
        return cache[key]

    return _render
