"""The migrations build exactly the schema the code expects, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from onestop.database import current_revision, head_revision, migrate, target_metadata
from routing import (
    Channel,
    ContactCenter,
    IdentityHint,
    IdentityKind,
    InboundMessage,
    InProcessBus,
    Task,
    create_database,
)
from routing.config import Settings
from tests.conftest import ManualClock
from tests.routing.helpers import settle


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



async def test_duplicate_open_tasks_stored_before_0009_are_closed_but_one(
        database_url: str, settings: Settings, clock: ManualClock) -> None:
    """A database from before the one-open-task index may hold a conversation with two open
    tasks (racing hand-offs): upgrading keeps the one an officer holds and cancels the
    other as a duplicate, so the index can be built and nothing else changes."""
    db = create_database(database_url)
    try:
        await migrate(db, to="4b1d0c7e9a21")  # 0008, the revision before the index
        center = ContactCenter(db, settings, bus=InProcessBus(), clock=clock)
        result = await center.ingest(InboundMessage(
            channel=Channel.EMAIL, message_id="<dup@example.co.th>", conversation_key="dup",
            body="ขอคุยกับเจ้าหน้าที่", identity_hints=(IdentityHint(IdentityKind.EMAIL,
                                                              "dup@example.co.th"),)))
        await settle(center)  # email goes straight to people: the hand-off is made
        held = await center.hand_to_people(result.conversation_id, reason="asked_for_agent")
        def pending_copy(task: Task, task_id: str) -> Task:
            fields = {c.key: getattr(task, c.key) for c in Task.__table__.columns}
            return Task(**{**fields, "id": task_id, "status": "pending", "agent_id": None})

        async with db.sessions() as s, s.begin():
            first = await s.get_one(Task, held)
            first.status, first.agent_id = "assigned", "agent-1"
            s.add(pending_copy(first, "duplicate-task"))
        await migrate(db)
        async with db.sessions() as s:
            rows = {t.id: (t.status, t.reason) for t in (await s.scalars(select(Task))).all()}
        assert rows == {held: ("assigned", "channel_entry"),
                        "duplicate-task": ("canceled", "duplicate")}
        with pytest.raises(IntegrityError):  # and a second open task is refused from now on
            async with db.sessions() as s, s.begin():
                s.add(pending_copy(first, "another"))
    finally:
        await db.dispose()
