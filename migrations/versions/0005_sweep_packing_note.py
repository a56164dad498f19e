"""why a sweep's trials run one per task (a workload that cannot be packed)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 06:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('sweeps', sa.Column('packing', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('sweeps') as batch:
        batch.drop_column('packing')
