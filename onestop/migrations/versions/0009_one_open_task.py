"""one open task per conversation

Hand-offs that raced (the citizen asking for an officer while the bot handed over) could
give one conversation two open tasks, offered to two officers. A unique partial index
now forbids it. Duplicates already stored are closed first: the task an officer holds
(or else the oldest) stays open, the others are canceled with reason "duplicate".

Revision ID: 7e2c5a9d1f30
Revises: 4b1d0c7e9a21
Create Date: 2026-11-22 11:30:00.000000
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import routing.storage.types

revision = '7e2c5a9d1f30'
down_revision = '4b1d0c7e9a21'
branch_labels = None
depends_on = None

#: The unfinished statuses, the one an officer holds furthest along first.
HELD_FIRST = {"wrapping": 0, "assigned": 1, "reserved": 2, "pending": 3}
OPEN = "status IN ({})".format(", ".join(f"'{status}'" for status in HELD_FIRST))


def upgrade() -> None:
    conn = op.get_bind()
    tasks_table = sa.table("tasks", sa.column("id"), sa.column("conversation_id"),
                           sa.column("status"), sa.column("created_at"))
    rows = conn.execute(
        sa.select(tasks_table).where(tasks_table.c.status.in_(list(HELD_FIRST)))
        .order_by(tasks_table.c.conversation_id, tasks_table.c.created_at,
                  tasks_table.c.id)).all()
    by_conversation: dict[str, list[sa.Row]] = {}
    for row in rows:
        by_conversation.setdefault(row.conversation_id, []).append(row)
    now = datetime.now(UTC)
    cancel = sa.text(
        "UPDATE tasks SET status = 'canceled', reason = 'duplicate', finished_at = :now "
        "WHERE id = :id").bindparams(sa.bindparam("now", type_=routing.storage.types.UTCDateTime()))
    for tasks in by_conversation.values():
        if len(tasks) < 2:
            continue
        keep = min(tasks, key=lambda r: (HELD_FIRST[r.status], r.created_at, r.id))
        for task in tasks:
            if task.id != keep.id:
                conn.execute(cancel, {"now": now, "id": task.id})
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.create_index('uq_tasks_open_conversation', ['conversation_id'], unique=True,
                              sqlite_where=sa.text(OPEN), postgresql_where=sa.text(OPEN))


def downgrade() -> None:
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.drop_index('uq_tasks_open_conversation')
