"""Alembic environment: resolves the database URL at run time and migrates online only.

The URL comes, in order, from the caller (`config.attributes["url"]`, used by common.db.migrate),
`-x url=...`, $BTCMETA_DATABASE_URL, then the project settings. It is never read from alembic.ini,
so no credential lives in the repository.
"""

from __future__ import annotations

import logging
import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy import pool, text

from common.db.migrate import include_object
from common.db.models import metadata
from common.db.session import make_engine

ENV_VAR = "BTCMETA_DATABASE_URL"
MIGRATION_LOCK_KEY = 0x6274636D657461  # "btcmeta": any constant shared by every migrating process

config = context.config
log = logging.getLogger("alembic.env")

# Only the CLI configures logging: when a service migrates through common.db.migrate, its own
# logging setup must survive (fileConfig would otherwise reset it).
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = metadata


def _settings_url() -> str | None:
    """URL from the project settings; config.py is optional so the CLI also works without it."""
    try:
        from config import get_settings
    except ImportError:
        return None
    settings = get_settings()
    secret = getattr(settings, "database_url", None)
    if secret is None:
        return None
    return secret.get_secret_value() if hasattr(secret, "get_secret_value") else str(secret)


def database_url() -> str:
    """Pick the URL from the first source that provides one."""
    url = (
        config.attributes.get("url")
        or context.get_x_argument(as_dictionary=True).get("url")
        or os.environ.get(ENV_VAR)
        or _settings_url()
    )
    if not url:
        raise RuntimeError(f"no database URL: pass -x url=..., set {ENV_VAR}, or configure config.py")
    return url


def run_migrations_online() -> None:
    """Run migrations on a live connection (there is no offline/SQL-script mode on purpose)."""
    engine = make_engine(database_url(), poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=target_metadata,
                compare_type=True,
                include_object=include_object,
                # SQLite cannot ALTER most things; batch mode recreates tables there.
                render_as_batch=connection.dialect.name == "sqlite",
            )
            with context.begin_transaction():
                if connection.dialect.name == "postgresql":
                    # Pods starting together all call upgrade(); the lock serializes them, and
                    # the waiters then find the version already at head and do nothing.
                    lock = text("SELECT pg_advisory_xact_lock(:key)")
                    connection.execute(lock, {"key": MIGRATION_LOCK_KEY})
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) mode is not supported: migration 0002 inspects the live server")
run_migrations_online()
