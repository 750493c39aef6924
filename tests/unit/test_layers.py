"""Imports point one way: common <- services, training <- ops (issue 19).

The layers, read from every import statement in the package sources (top level, inside functions
and under ``TYPE_CHECKING`` alike: a lazy import is still a dependency):

* ``common`` (with ``config``) is the shared contract: it imports nothing else of the project;
* the services (producers, tick emitter, strategy consumers, meta consumer, executor, bridge) run
  on ``common`` and never import the training engine or ops;
* ``training`` uses what the services publish through ``common`` (the policy artifact format, the
  model portfolio, the signal file, the tables), never a service's modules nor ops;
* ``ops`` (which starts the services and compares a replay with the training engine's backtest)
  sits on top and may import the layers below; nothing imports ops.

Why a test: the training <-> ops cycle grew one lazy import at a time; a rule that is only written
down does not stop the next one. The graph is read with ``ast``, so nothing is imported.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

COMMON = frozenset({"common", "config"})
SERVICES = frozenset(
    {"producers", "tick_emitter", "strategy_consumers", "meta_consumer", "executor", "bridge"}
)
PROJECT = COMMON | SERVICES | {"training", "ops"}

#: What each layer may import from the project besides itself.
ALLOWED: dict[str, frozenset[str]] = {
    "common": frozenset({"config"}),
    "config": frozenset({"common"}),
    "training": COMMON,
    **{service: COMMON | SERVICES for service in SERVICES},
    "ops": COMMON | SERVICES | {"training"},
}


def _sources(package: str) -> list[Path]:
    if package == "config":
        return [REPO / "config.py"]
    return sorted((REPO / package).rglob("*.py"))


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, imported module) for every absolute import in ``path``; relative ones stay inside."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module


def edges(package: str) -> list[tuple[str, str, str]]:
    """(project package imported, module, ``file:line``) for each import of another project package."""
    found = []
    for path in _sources(package):
        for line, module in _imports(path):
            top = module.split(".")[0]
            if top in PROJECT and top != package:
                found.append((top, module, f"{path.relative_to(REPO)}:{line}"))
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_the_layers_below(package: str) -> None:
    wrong = [
        f"{where} imports {module}" for top, module, where in edges(package) if top not in ALLOWED[package]
    ]
    assert wrong == [], f"{package} may import only {sorted(ALLOWED[package])} of the project:\n" + "\n".join(
        wrong
    )


def test_the_package_graph_has_no_cycle() -> None:
    """Services may import each other, but no two packages import each other, even indirectly."""
    graph = {package: {top for top, _module, _where in edges(package)} for package in ALLOWED}
    state: dict[str, str] = {}
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = "done"

    for package in sorted(graph):
        if package not in state:
            visit(package, [package])
    # common <-> config is one layer (config is the settings module of common's clients and common).
    cycles = [c for c in cycles if not set(c) <= COMMON]
    assert cycles == [], "import cycles between packages: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_walk_sees_lazy_imports(tmp_path: Path) -> None:
    """The reader finds an import inside a function and under TYPE_CHECKING, not only at the top."""
    source = tmp_path / "m.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from ops.pipeline import PipelineSpec\n"
        "def f():\n    import meta_consumer.store\n"
        "from . import sibling\n",
        encoding="utf-8",
    )
    assert sorted(m for _line, m in _imports(source)) == ["meta_consumer.store", "ops.pipeline", "typing"]
