"""users, API tokens, projects and memberships; every sweep in a project (existing ones in
"default"); code packages' projects, the audit log and Idempotency-Key answers

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 08:40:00.000000
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op



revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Users, tokens, projects and memberships, and every existing sweep moved into the
    default project: one logical change, kept in one function in the order Alembic applies it
    (a migration is read top to bottom, not reused)."""
    op.create_table(
        'users',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('is_admin', sa.Boolean(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
        sa.UniqueConstraint('name', name=op.f('uq_users_name')),
    )
    op.create_table(
        'projects',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_projects')),
        sa.UniqueConstraint('name', name=op.f('uq_projects_name')),
    )
    op.create_table(
        'api_tokens',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('prefix', sa.String(length=16), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ['user_id'], ['users.id'], name=op.f('fk_api_tokens_user_id_users')
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_api_tokens')),
        sa.UniqueConstraint('token_hash', name=op.f('uq_api_tokens_token_hash')),
    )
    op.create_index(op.f('ix_api_tokens_user_id'), 'api_tokens', ['user_id'])
    op.create_table(
        'memberships',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('project_id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('role', sa.Enum('viewer', 'member', 'owner', name='role', native_enum=False, length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ['project_id'], ['projects.id'], name=op.f('fk_memberships_project_id_projects')
        ),
        sa.ForeignKeyConstraint(
            ['user_id'], ['users.id'], name=op.f('fk_memberships_user_id_users')
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_memberships')),
        sa.UniqueConstraint('project_id', 'user_id', name=op.f('uq_memberships_project_id_user_id')),
    )
    op.create_index(op.f('ix_memberships_project_id'), 'memberships', ['project_id'])
    op.create_index(op.f('ix_memberships_user_id'), 'memberships', ['user_id'])
    op.create_table(
        'code_packages',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('project_id', sa.Integer(), nullable=False),
        sa.Column('package', sa.String(length=64), nullable=False),
        sa.Column('uploaded_by', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ['project_id'], ['projects.id'], name=op.f('fk_code_packages_project_id_projects')
        ),
        sa.ForeignKeyConstraint(
            ['uploaded_by'], ['users.id'], name=op.f('fk_code_packages_uploaded_by_users')
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_code_packages')),
        sa.UniqueConstraint('project_id', 'package', name=op.f('uq_code_packages_project_id_package')),
    )
    op.create_index(op.f('ix_code_packages_package'), 'code_packages', ['package'])
    op.create_index(op.f('ix_code_packages_project_id'), 'code_packages', ['project_id'])
    op.create_table(
        'audit_events',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=True),
        sa.Column('user_name', sa.String(length=64), nullable=False),
        sa.Column('project_id', sa.Integer(), nullable=True),
        sa.Column('action', sa.String(length=40), nullable=False),
        sa.Column('target', sa.String(length=200), nullable=False),
        sa.Column('address', sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ['project_id'], ['projects.id'], name=op.f('fk_audit_events_project_id_projects')
        ),
        sa.ForeignKeyConstraint(
            ['user_id'], ['users.id'], name=op.f('fk_audit_events_user_id_users')
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_events')),
    )
    op.create_index(op.f('ix_audit_events_at'), 'audit_events', ['at'])
    op.create_index(op.f('ix_audit_events_project_id'), 'audit_events', ['project_id'])
    op.create_table(
        'idempotency_records',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('route', sa.String(length=100), nullable=False),
        sa.Column('key', sa.String(length=200), nullable=False),
        sa.Column('body_hash', sa.String(length=64), nullable=False),
        sa.Column('status_code', sa.Integer(), nullable=True),
        sa.Column('response', sa.JSON(), nullable=True),
        sa.Column('headers', sa.JSON(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ['user_id'], ['users.id'], name=op.f('fk_idempotency_records_user_id_users')
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_idempotency_records')),
        sa.UniqueConstraint(
            'user_id', 'route', 'key', name=op.f('uq_idempotency_records_user_id_route_key')
        ),
    )
    op.create_index(
        op.f('ix_idempotency_records_created_at'), 'idempotency_records', ['created_at']
    )
    # Every sweep belongs to a project: those from before accounts go to "default".
    projects = sa.table(
        'projects', sa.column('id', sa.Integer), sa.column('name', sa.String),
        sa.column('created_at', sa.DateTime(timezone=True)),
    )
    op.bulk_insert(projects, [{'id': 1, 'name': 'default', 'created_at': datetime.now(UTC)}])
    if op.get_bind().dialect.name == 'postgresql':  # the explicit id leaves the sequence at 0
        op.execute("SELECT setval('projects_id_seq', 1)")
    with op.batch_alter_table('sweeps') as batch:
        batch.add_column(
            sa.Column('project_id', sa.Integer(), nullable=False, server_default='1')
        )
        batch.add_column(sa.Column('created_by', sa.Integer(), nullable=True))
        batch.create_index(batch.f('ix_sweeps_project_id'), ['project_id'])
        batch.create_foreign_key(
            batch.f('fk_sweeps_project_id_projects'), 'projects', ['project_id'], ['id']
        )
        batch.create_foreign_key(
            batch.f('fk_sweeps_created_by_users'), 'users', ['created_by'], ['id']
        )
    with op.batch_alter_table('sweeps') as batch:
        batch.alter_column('project_id', server_default=None)


def downgrade() -> None:
    with op.batch_alter_table('sweeps') as batch:
        batch.drop_constraint(batch.f('fk_sweeps_created_by_users'), type_='foreignkey')
        batch.drop_constraint(batch.f('fk_sweeps_project_id_projects'), type_='foreignkey')
        batch.drop_index(batch.f('ix_sweeps_project_id'))
        batch.drop_column('created_by')
        batch.drop_column('project_id')
    op.drop_index(op.f('ix_idempotency_records_created_at'), table_name='idempotency_records')
    op.drop_table('idempotency_records')
    op.drop_index(op.f('ix_audit_events_project_id'), table_name='audit_events')
    op.drop_index(op.f('ix_audit_events_at'), table_name='audit_events')
    op.drop_table('audit_events')
    op.drop_index(op.f('ix_code_packages_project_id'), table_name='code_packages')
    op.drop_index(op.f('ix_code_packages_package'), table_name='code_packages')
    op.drop_table('code_packages')
    op.drop_index(op.f('ix_memberships_user_id'), table_name='memberships')
    op.drop_index(op.f('ix_memberships_project_id'), table_name='memberships')
    op.drop_table('memberships')
    op.drop_index(op.f('ix_api_tokens_user_id'), table_name='api_tokens')
    op.drop_table('api_tokens')
    op.drop_table('projects')
    op.drop_table('users')
