"""Run the repository's Alembic migrations from Python (services at start-up, tests, tools).

Uses the alembic.ini next to the code rather than the working directory, so it behaves the same
from a pod, a test runner or a laptop shell.
"""

from __future__ import annotations

import argparse
import threading
from collections.abc import Mapping
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from common.db.session import make_engine

REPO_ROOT = Path(__file__).resolve().parents[2]
ALEMBIC_INI = REPO_ROOT / "alembic.ini"

# Alembic's `context`/`op` are process-global proxies: two threads migrating at once corrupt each
# other. Processes (pods) are serialized by an advisory lock in migrations/env.py instead.
_ALEMBIC_LOCK = threading.Lock()


#: Tables in the same database that these migrations do not own: the training engine's results
#: (``training/results.py`` creates them itself when its results database is the team's Postgres).
FOREIGN_TABLE_PREFIXES = ("results_",)


def include_object(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    """Alembic's filter: autogenerate must not propose dropping tables another component owns."""
    return not (
        type_ == "table"
        and reflected
        and compare_to is None
        and (name or "").startswith(FOREIGN_TABLE_PREFIXES)
    )


def alembic_config(url: str, options: Mapping[str, str] | None = None) -> Config:
    """Config bound to `url`; `options` are what the CLI takes as `-x key=value`.

    The URL travels in `attributes`, not in the ini options, so a password with '%' survives and
    is never written to a file.
    """
    cfg = Config(str(ALEMBIC_INI))
    cfg.set_main_option("script_location", str(REPO_ROOT / "migrations"))
    cfg.attributes["url"] = url
    cfg.attributes["configure_logger"] = False
    cfg.cmd_opts = argparse.Namespace(x=[f"{k}={v}" for k, v in (options or {}).items()])
    return cfg


def upgrade(url: str, revision: str = "head", options: Mapping[str, str] | None = None) -> None:
    """Migrate the database at `url` up to `revision` (e.g. options={"candle_retention_days": "90"})."""
    with _ALEMBIC_LOCK:
        command.upgrade(alembic_config(url, options), revision)


def downgrade(url: str, revision: str = "base", options: Mapping[str, str] | None = None) -> None:
    """Migrate the database at `url` down to `revision` ("base" removes every table)."""
    with _ALEMBIC_LOCK:
        command.downgrade(alembic_config(url, options), revision)


def head() -> str:
    """Newest revision in the repository, to compare with `current` before serving traffic."""
    revision = ScriptDirectory.from_config(alembic_config("unused")).get_current_head()
    assert revision is not None, "no migrations found"
    return revision


def current(url: str) -> str | None:
    """Revision the database is at, or None when it has never been migrated."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()
