"""Tests that need Kafka or Postgres are marked ``integration`` by their fixtures, not by memory.

``pytest -m "not integration"`` must run on a machine without the broker and database: the
conftest hook marks every test whose fixture closure reaches ``infra`` (all infra fixtures
depend on it), so a module that forgets ``pytestmark`` is still deselected.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.conftest import pytest_collection_modifyitems


@dataclass
class _Item:
    fixturenames: tuple[str, ...]
    markers: list[Any] = field(default_factory=list)

    def add_marker(self, marker: Any) -> None:
        self.markers.append(marker)


def test_infra_closure_gets_the_integration_marker() -> None:
    needs = _Item(("settings", "kafka_bootstrap", "database_url", "pg_server", "infra", "tmp_path"))
    pure = _Item(("tmp_path", "monkeypatch"))
    pytest_collection_modifyitems([needs, pure])  # type: ignore[list-item]
    assert [m.name for m in needs.markers] == ["integration"]
    assert pure.markers == []


@pytest.mark.parametrize(
    "fixture", ["pg_server", "database_url", "kafka_bootstrap", "settings", "pipeline_env"]
)
def test_every_infra_fixture_depends_on_infra(fixture: str, request: pytest.FixtureRequest) -> None:
    """The hook keys on ``infra`` alone: each infra fixture must reach it through its arguments."""
    manager = request.session._fixturemanager
    seen: set[str] = set()
    todo = [fixture]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for fdef in manager.getfixturedefs(name, request.node) or ():
            todo.extend(fdef.argnames)
    assert "infra" in seen
