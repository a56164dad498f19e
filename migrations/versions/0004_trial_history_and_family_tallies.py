"""trial status history; family tallies for best-so-far charts; a covering metrics index

Sweeps recorded before this revision get their tallies from their trials in trial-number order
(their report order was not kept): epochs spent summed, the best objective carried forward.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 07:40:00.000000
"""

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op


revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'trial_events',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('trial_id', sa.Integer(), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            'status',
            sa.Enum(
                'pending', 'running', 'completed', 'stopped', 'failed', 'diverged',
                name='trialstatus', native_enum=False, length=16,
            ),
            nullable=False,
        ),
        sa.Column('attempt', sa.Integer(), nullable=False),
        sa.Column('detail', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(['trial_id'], ['trials.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('trial_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_trial_events_trial_id'), ['trial_id'], unique=False)

    op.create_table(
        'family_tallies',
        sa.Column('sweep_id', sa.Integer(), nullable=False),
        sa.Column('optimizer', sa.String(length=32), nullable=False),
        sa.Column('epochs_spent', sa.Integer(), nullable=False),
        sa.Column('best_value', sa.Float(precision=53), nullable=True),
        sa.Column('best_trial_id', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['sweep_id'], ['sweeps.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('sweep_id', 'optimizer'),
    )
    op.create_table(
        'family_improvements',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('sweep_id', sa.Integer(), nullable=False),
        sa.Column('optimizer', sa.String(length=32), nullable=False),
        sa.Column('epochs_spent', sa.Integer(), nullable=False),
        sa.Column('value', sa.Float(precision=53), nullable=False),
        sa.Column('trial_id', sa.Integer(), nullable=False),
        sa.Column('epoch', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['sweep_id'], ['sweeps.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('family_improvements', schema=None) as batch_op:
        batch_op.create_index(
            'ix_family_improvements_sweep_optimizer', ['sweep_id', 'optimizer', 'epochs_spent']
        )
    _tally_existing_sweeps()
    # Curves read from the index alone on PostgreSQL (the unique constraint and the trial_id
    # index it replaces covered no values, so each row cost a heap page).
    with op.batch_alter_table('metrics', schema=None) as batch_op:
        batch_op.create_index(
            'ix_metrics_curve', ['trial_id', 'name', 'step'], unique=True,
            postgresql_include=['value_finite', 'value_kind'],
        )
        batch_op.drop_constraint('uq_metrics_trial_id_name_step', type_='unique')
        batch_op.drop_index('ix_metrics_trial_id')


def _tally_existing_sweeps() -> None:
    db = op.get_bind()
    sweeps = db.execute(sa.text('SELECT id, spec FROM sweeps')).all()
    for sweep_id, spec in sweeps:
        spec = json.loads(spec) if isinstance(spec, str) else spec
        maximize = spec['objective']['mode'] == 'max'
        trials = db.execute(
            sa.text(
                'SELECT id, optimizer, epochs_run, best_objective_value FROM trials'
                ' WHERE sweep_id = :sweep AND epochs_run > 0 ORDER BY number'
            ),
            {'sweep': sweep_id},
        )
        tallies: dict[str, dict[str, Any]] = {}
        improvements = []
        for trial_id, optimizer, epochs_run, best in trials:
            tally = tallies.setdefault(
                optimizer,
                {'sweep_id': sweep_id, 'optimizer': optimizer, 'epochs_spent': 0,
                 'best_value': None, 'best_trial_id': None},
            )
            tally['epochs_spent'] += epochs_run
            current = tally['best_value']
            if best is not None and (
                current is None or (best > current if maximize else best < current)
            ):
                tally['best_value'], tally['best_trial_id'] = best, trial_id
                improvements.append(
                    {'sweep_id': sweep_id, 'optimizer': optimizer,
                     'epochs_spent': tally['epochs_spent'], 'value': best,
                     'trial_id': trial_id, 'epoch': epochs_run}
                )
        if tallies:
            db.execute(
                sa.text(
                    'INSERT INTO family_tallies (sweep_id, optimizer, epochs_spent, best_value,'
                    ' best_trial_id) VALUES (:sweep_id, :optimizer, :epochs_spent, :best_value,'
                    ' :best_trial_id)'
                ),
                list(tallies.values()),
            )
        if improvements:
            db.execute(
                sa.text(
                    'INSERT INTO family_improvements (sweep_id, optimizer, epochs_spent, value,'
                    ' trial_id, epoch) VALUES (:sweep_id, :optimizer, :epochs_spent, :value,'
                    ' :trial_id, :epoch)'
                ),
                improvements,
            )


def downgrade() -> None:
    with op.batch_alter_table('metrics', schema=None) as batch_op:
        batch_op.create_index('ix_metrics_trial_id', ['trial_id'], unique=False)
        batch_op.create_unique_constraint(
            'uq_metrics_trial_id_name_step', ['trial_id', 'name', 'step']
        )
        batch_op.drop_index('ix_metrics_curve')
    with op.batch_alter_table('family_improvements', schema=None) as batch_op:
        batch_op.drop_index('ix_family_improvements_sweep_optimizer')
    op.drop_table('family_improvements')
    op.drop_table('family_tallies')
    with op.batch_alter_table('trial_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_trial_events_trial_id'))
    op.drop_table('trial_events')
