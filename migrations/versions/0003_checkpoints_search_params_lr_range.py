"""trial checkpoints, search params and lr range tests

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 04:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('sweeps', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lr_range', sa.JSON(), nullable=True))

    with op.batch_alter_table('trials', schema=None) as batch_op:
        batch_op.add_column(sa.Column('checkpoint_path', sa.String(length=1024), nullable=True))
        batch_op.add_column(sa.Column('checkpoint_epoch', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('search_params', sa.JSON(), nullable=True))
        batch_op.add_column(
            sa.Column('epochs_run', sa.Integer(), nullable=False, server_default='0')
        )
        batch_op.add_column(sa.Column('hyperparameter_history', sa.JSON(), nullable=True))
        batch_op.create_index(
            'ix_trials_sweep_id_best_objective_value', ['sweep_id', 'best_objective_value']
        )
        batch_op.create_index('ix_trials_sweep_id_objective_value', ['sweep_id', 'objective_value'])
        batch_op.create_index(
            'ix_trials_sweep_id_optimizer_objective_value',
            ['sweep_id', 'optimizer', 'objective_value'],
        )


def downgrade() -> None:
    with op.batch_alter_table('trials', schema=None) as batch_op:
        batch_op.drop_index('ix_trials_sweep_id_optimizer_objective_value')
        batch_op.drop_index('ix_trials_sweep_id_objective_value')
        batch_op.drop_index('ix_trials_sweep_id_best_objective_value')
        batch_op.drop_column('hyperparameter_history')
        batch_op.drop_column('search_params')
        batch_op.drop_column('epochs_run')
        batch_op.drop_column('checkpoint_epoch')
        batch_op.drop_column('checkpoint_path')

    with op.batch_alter_table('sweeps', schema=None) as batch_op:
        batch_op.drop_column('lr_range')
