"""status tallies kept by triggers; partial indexes of pending and ranked trials

How many of a sweep's trials are in each status (and of each family, ranked: completed or
stopped with a finite objective) was a GROUP BY over all of them on every read (the sweep
page's polling, the report's cache key, the leaderboard, the finisher): O(trials) each time.
Now the database's own triggers write a delta for every trial inserted, every change of its
status or objective kind, and every delete (``status_deltas``, whoever makes the change: the controller, the API, a person with
psql), the controller folds them into ``status_tallies``, and a count reads both: a few rows at
any size. The dispatcher's next pending trials come from a partial index of the pending ones,
in number order, instead of sorting every pending trial of the sweep on each tick; a sweep's
best objective from a partial index of its ranked trials, whatever the planner's statistics
say of the rest.

Existing sweeps' tallies are counted from their trials here.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 23:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUS = sa.Enum(
    'pending', 'running', 'completed', 'stopped', 'failed', 'diverged', 'cancelled',
    name='trialstate', native_enum=False, length=16,
)

FINITE_OLD = "(OLD.objective_kind IS NOT NULL AND OLD.objective_kind = 'finite')"
FINITE_NEW = "(NEW.objective_kind IS NOT NULL AND NEW.objective_kind = 'finite')"
KEY = "sweep_id, optimizer, status, finite"
CHANGED = (
    "OLD.status IS DISTINCT FROM NEW.status"
    " OR OLD.objective_kind IS DISTINCT FROM NEW.objective_kind"
    " OR OLD.sweep_id <> NEW.sweep_id OR OLD.optimizer <> NEW.optimizer"
)
POSTGRES_TRIGGERS = [
    # An INSERT's rows counted once per statement (a sweep's trials arrive thousands at once).
    f"""
    CREATE FUNCTION trials_inserted_deltas() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO status_deltas ({KEY}, delta)
        SELECT sweep_id, optimizer, status, coalesce(objective_kind = 'finite', false), count(*)
        FROM added GROUP BY 1, 2, 3, 4;
        RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER trials_inserted_deltas AFTER INSERT ON trials
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT
    EXECUTE FUNCTION trials_inserted_deltas()
    """,
    # A change, row by row: most updates of a trial (its metrics) change neither its status
    # nor its objective's kind, and the WHEN clause skips them without calling the function.
    f"""
    CREATE FUNCTION trials_changed_deltas() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO status_deltas ({KEY}, delta)
        VALUES (OLD.sweep_id, OLD.optimizer, OLD.status, {FINITE_OLD}, -1);
        IF TG_OP = 'UPDATE' THEN
            INSERT INTO status_deltas ({KEY}, delta)
            VALUES (NEW.sweep_id, NEW.optimizer, NEW.status, {FINITE_NEW}, 1);
        END IF;
        RETURN NULL;
    END $$
    """,
    f"""
    CREATE TRIGGER trials_changed_deltas
    AFTER UPDATE OF status, objective_kind, sweep_id, optimizer ON trials
    FOR EACH ROW WHEN ({CHANGED}) EXECUTE FUNCTION trials_changed_deltas()
    """,
    """
    CREATE TRIGGER trials_deleted_deltas AFTER DELETE ON trials
    FOR EACH ROW EXECUTE FUNCTION trials_changed_deltas()
    """,
]
SQLITE_TRIGGERS = [
    f"""
    CREATE TRIGGER trials_inserted_deltas AFTER INSERT ON trials BEGIN
        INSERT INTO status_deltas ({KEY}, delta)
        VALUES (NEW.sweep_id, NEW.optimizer, NEW.status, {FINITE_NEW}, 1);
    END
    """,
    f"""
    CREATE TRIGGER trials_changed_deltas
    AFTER UPDATE OF status, objective_kind, sweep_id, optimizer ON trials
    WHEN {CHANGED} BEGIN
        INSERT INTO status_deltas ({KEY}, delta) VALUES
            (OLD.sweep_id, OLD.optimizer, OLD.status, {FINITE_OLD}, -1),
            (NEW.sweep_id, NEW.optimizer, NEW.status, {FINITE_NEW}, 1);
    END
    """,
    f"""
    CREATE TRIGGER trials_deleted_deltas AFTER DELETE ON trials BEGIN
        INSERT INTO status_deltas ({KEY}, delta)
        VALUES (OLD.sweep_id, OLD.optimizer, OLD.status, {FINITE_OLD}, -1);
    END
    """,
]
DROP_POSTGRES = [
    'DROP TRIGGER IF EXISTS trials_inserted_deltas ON trials',
    'DROP TRIGGER IF EXISTS trials_changed_deltas ON trials',
    'DROP TRIGGER IF EXISTS trials_deleted_deltas ON trials',
    'DROP FUNCTION IF EXISTS trials_inserted_deltas()',
    'DROP FUNCTION IF EXISTS trials_changed_deltas()',
]
DROP_SQLITE = [
    'DROP TRIGGER IF EXISTS trials_inserted_deltas',
    'DROP TRIGGER IF EXISTS trials_changed_deltas',
    'DROP TRIGGER IF EXISTS trials_deleted_deltas',
]


def upgrade() -> None:
    op.create_table(
        'status_tallies',
        sa.Column('sweep_id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('optimizer', sa.String(length=32), nullable=False),
        sa.Column('status', STATUS, nullable=False),
        sa.Column('finite', sa.Boolean(), nullable=False),
        sa.Column('count', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('sweep_id', 'optimizer', 'status', 'finite'),
    )
    op.create_table(
        'status_deltas',
        sa.Column(
            'id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False
        ),
        sa.Column('sweep_id', sa.Integer(), nullable=False),
        sa.Column('optimizer', sa.String(length=32), nullable=False),
        sa.Column('status', STATUS, nullable=False),
        sa.Column('finite', sa.Boolean(), nullable=False),
        sa.Column('delta', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index(
        'ix_trials_pending',
        'trials',
        ['sweep_id', 'number'],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
        sqlite_where=sa.text("status = 'pending'"),
    )
    ranked = "status IN ('completed', 'stopped') AND objective_kind = 'finite'"
    op.create_index(
        'ix_trials_ranked',
        'trials',
        ['sweep_id', 'objective_value'],
        unique=False,
        postgresql_where=sa.text(ranked),
        sqlite_where=sa.text(ranked),
    )
    op.execute(
        f"INSERT INTO status_tallies ({KEY}, count) SELECT sweep_id, optimizer, status, "
        "coalesce(objective_kind = 'finite', false), count(*) FROM trials GROUP BY 1, 2, 3, 4"
    )
    postgres = op.get_bind().dialect.name == 'postgresql'
    for statement in POSTGRES_TRIGGERS if postgres else SQLITE_TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == 'postgresql'
    for statement in DROP_POSTGRES if postgres else DROP_SQLITE:
        op.execute(statement)
    op.drop_index('ix_trials_ranked', table_name='trials')
    op.drop_index('ix_trials_pending', table_name='trials')
    op.drop_table('status_deltas')
    op.drop_table('status_tallies')
