"""Database layer shared by every service: models, engine/session helpers, migrations API.

Import what you need explicitly (`common.db.models`, `common.db.session`, `common.db.migrate`);
this package imports nothing itself so that importing one part never drags Alembic into a service.
"""
