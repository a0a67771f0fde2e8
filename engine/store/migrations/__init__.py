"""Alembic migrations, run from inside the package (`engine.store.migrate`); no alembic.ini needed."""
