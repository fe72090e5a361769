"""Alembic migrations of every room's tables (the composition root knows them all)."""
