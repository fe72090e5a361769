"""Alembic environment: run on a connection handed in by `onestop.database.migrate`."""

from __future__ import annotations

from alembic import context

from onestop.database import target_metadata

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise SystemExit("run migrations through `python -m onestop migrate`")
context.configure(
    connection=connection,
    target_metadata=target_metadata(),
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
