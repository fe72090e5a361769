"""The migrations build exactly the schema the code expects, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from onestop.database import current_revision, head_revision, migrate, target_metadata
from routing import create_database


async def test_migrating_an_empty_database_matches_the_models(database_url: str) -> None:
    db = create_database(database_url)
    try:
        await migrate(db)
        await migrate(db)  # a second run changes nothing
        assert await current_revision(db) == head_revision()
        async with db.engine.connect() as conn:
            diff = await conn.run_sync(
                lambda c: compare_metadata(MigrationContext.configure(c), target_metadata())
            )
        assert diff == []
    finally:
        await db.dispose()
