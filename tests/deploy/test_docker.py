"""Dockerfiles and .dockerignore, checked statically (no Docker engine on these machines, so the
images themselves are built only by .github/workflows/images.yml)."""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.chartkit import REPO

DOCKER = REPO / "deploy" / "docker"
IMAGES = {"services.Dockerfile": "services", "meta.Dockerfile": "meta"}


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


@pytest.mark.parametrize("name", IMAGES)
def test_multi_stage_locked_non_root_image(name):
    ins = instructions(DOCKER / name)
    froms = [args for word, args in ins if word == "FROM"]
    assert [f.split()[-1] for f in froms] == ["builder", "runtime"]
    args = dict(a.split("=", 1) for w, a in ins if w == "ARG" and "=" in a)
    assert args["PYTHON_IMAGE"].startswith("python:3.11-slim")
    run = " ".join(a for w, a in ins if w == "RUN")
    assert '--group "${UV_GROUP}"' in run and "uv sync --frozen --no-default-groups" in run
    assert args["UV_GROUP"] == IMAGES[name]
    runtime = ins[[i for i, (w, _) in enumerate(ins) if w == "FROM"][1]:]
    assert ("COPY", "--from=builder /app/.venv /app/.venv") in runtime
    # The runtime stage installs nothing: only the venv and the source are copied in.
    assert not [a for w, a in runtime if w == "RUN" and re.search(r"\b(pip|uv|apt-get)\b", a)]
    users = [a for w, a in ins if w == "USER"]
    assert users and users[-1] not in ("root", "0", "0:0")
    assert any(w == "HEALTHCHECK" for w, _ in ins)
    # No credentials in build arguments or in the image's environment.
    for word, rest in ins:
        if word in ("ARG", "ENV"):
            assert not re.search(r"(SECRET|PASSWORD|TOKEN|API_KEY|DATABASE_URL)", rest, re.I), rest


def test_only_the_meta_image_has_torch():
    assert "torch" in (DOCKER / "meta.Dockerfile").read_text()
    assert "torch" not in (DOCKER / "services.Dockerfile").read_text().replace("No torch", "")


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; a directory pattern covers what is inside."""
    result = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern[1:] if negate else pattern
        pat = pat.rstrip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        hit = any(fnmatch.fnmatchcase(p, pat) for p in prefixes)
        if pat.startswith("**/"):
            hit = hit or any(fnmatch.fnmatchcase(part, pat[3:]) for part in parts)
        if hit:
            result = not negate
    return result


def test_dockerignore_keeps_the_context_to_what_services_run():
    patterns = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    for path in (".local/kafka/data/x", ".venv/bin/python", "out/demo/report.html", "tests/unit/test_x.py",
                 ".git/HEAD", "gui-java/pom.xml", "docs/DESIGN.md", "common/__pycache__/x.pyc",
                 "bench/bench_x.py", ".env", "deploy/k8s/btcmeta/values.yaml"):
        assert ignored(path, patterns), f"{path} would reach the image"
    needed = ["pyproject.toml", "uv.lock", "config.py", "alembic.ini", "strategies_registry.json",
              "schemas/strategies_registry.schema.json", "data/btcusd_1h_bitstamp.csv.gz"]
    # Every top-level Python package except the tests and benchmarks belongs in the image, so a new
    # service folder that is not added to .dockerignore fails here, not in production.
    packages = [p.name for p in REPO.iterdir()
                if (p / "__init__.py").exists() and p.name not in ("tests", "bench")]
    assert {"common", "ops", "tick_emitter", "strategy_consumers", "executor", "bridge"} <= set(packages)
    needed += [f"{p}/__init__.py" for p in packages] + ["migrations/env.py"]
    for path in needed:
        assert not ignored(path, patterns), f"{path} is missing from the image"


#: The packages the images run (python -m <package> in the chart). The meta consumer's image is
#: the same context plus torch (group "meta", a multi-GB download kept out of CI); its modules
#: must import without torch too, as the design asks of live inference.
SERVICE_PACKAGES = ("common", "ops", "producers", "tick_emitter", "strategy_consumers", "executor", "bridge",
                    "meta_consumer")

IMPORT_ALL = """
import importlib, pkgutil, sys
failed = []
for package in sys.argv[1:]:
    names = [package] + [m.name for m in pkgutil.walk_packages(importlib.import_module(package).__path__,
                                                               package + ".")]
    for name in names:
        if name.endswith(".__main__"):
            continue
        try:
            importlib.import_module(name)
        except Exception as exc:
            failed.append(f"{name}: {type(exc).__name__}: {exc}")
print("\\n".join(failed))
sys.exit(1 if failed else 0)
"""


def uv_binary() -> str:
    found = shutil.which("uv") or str(REPO / ".local" / "tools" / "bin" / "uv")  # see scripts/python-env.sh
    assert Path(found).exists(), "uv not found (scripts/python-env.sh installs it)"
    return found


def test_services_run_from_the_image_context_with_only_the_services_group(tmp_path):
    """Rebuild what services.Dockerfile builds, without Docker: the files .dockerignore lets into
    the context, and a venv of the lock's `services` group only (`uv sync --frozen
    --no-default-groups --group services`, as the builder stage runs it). Then every module of
    every service package (CLIs included) must import. A source folder missing from the context,
    or a dependency that is only in the dev environment, fails here."""
    patterns = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, text=True, check=True, timeout=60).stdout.splitlines()
    context = tmp_path / "context"
    for rel in listed:
        source = REPO / rel
        if source.is_file() and not ignored(rel, patterns):
            (context / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, context / rel)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("BTCMETA_", "PYTHON", "VIRTUAL_ENV", "UV_"))}
    venv = context / ".venv"
    synced = subprocess.run(
        [uv_binary(), "sync", "--frozen", "--no-default-groups", "--group", "services",
         "--no-install-project", "--python", sys._base_executable],
        cwd=context, env={**env, "UV_PROJECT_ENVIRONMENT": str(venv), "UV_PYTHON_DOWNLOADS": "never"},
        capture_output=True, text=True, timeout=600)
    assert synced.returncode == 0, synced.stderr
    ran = subprocess.run([str(venv / "bin" / "python"), "-c", IMPORT_ALL, *SERVICE_PACKAGES], cwd=context,
                         env=env, capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, (
        "in the image context, with only the services group installed, these modules fail to import:\n"
        + ran.stdout + ran.stderr)
