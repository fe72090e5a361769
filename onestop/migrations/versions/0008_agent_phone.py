"""agents' own phone: number and where their calls ring

Revision ID: 4b1d0c7e9a21
Revises: 9dceb3528ff5
Create Date: 2026-11-22 07:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '4b1d0c7e9a21'
down_revision = '9dceb3528ff5'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('agents', schema=None) as batch_op:
        batch_op.add_column(sa.Column('phone_number', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('voice_device', sa.String(length=10), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('agents', schema=None) as batch_op:
        batch_op.drop_column('voice_device')
        batch_op.drop_column('phone_number')
