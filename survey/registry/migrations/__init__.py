"""Alembic migrations of the registry, run by :mod:`survey.registry.migrate` (no alembic.ini)."""
