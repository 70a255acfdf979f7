"""server-side session records, sign-in throttles per email and address, salted recovery codes

Revision ID: 0006
Revises: 0005

security.md (issue 23): each signed-in browser has a record checked at every request, so a user
can see where they are signed in and end one session at once on every worker; failed sign-ins
slow down one (email, address) pair instead of the whole account; recovery codes are stored as
Argon2id hashes, longer than the SHA-256 hex they replace (old rows stay valid until used or
replaced: docs/security.md).
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('user_sessions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=False),
    sa.Column('last_used_at', sa.DateTime(), nullable=False),
    sa.Column('address', sa.String(length=64), nullable=True),
    sa.Column('browser', sa.String(length=255), nullable=True),
    sa.Column('reauthenticated_at', sa.DateTime(), nullable=True),
    sa.Column('ended_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_user_sessions_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_user_sessions')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_user_sessions_token_hash'))
    )
    with op.batch_alter_table('user_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_user_sessions_user_id'), ['user_id'], unique=False)

    op.create_table('sign_in_throttles',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('address', sa.String(length=64), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('last_failed_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sign_in_throttles')),
    sa.UniqueConstraint('email', 'address', name=op.f('uq_sign_in_throttles_email_address'))
    )

    with op.batch_alter_table('recovery_codes', schema=None) as batch_op:
        batch_op.alter_column('code_hash', existing_type=sa.String(length=64),
                              type_=sa.String(length=255), existing_nullable=False)

    # Plain DROP COLUMN (SQLite 3.35 and later, PostgreSQL), not a batch copy of `users`: on
    # SQLite the copy drops the old table, and with foreign keys on that deletes every row that
    # cascades from a user (recovery codes, sessions, memberships).
    op.execute('ALTER TABLE users DROP COLUMN failed_login_count')
    op.execute('ALTER TABLE users DROP COLUMN last_failed_login_at')


def downgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_failed_login_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('failed_login_count', sa.Integer(), server_default='0', nullable=False))

    # recovery_codes.code_hash stays 255 wide: Argon2id hashes do not fit 64, and a wider
    # column costs the older code nothing (it writes 64 hex characters). Those codes no longer
    # verify there (it compares SHA-256): users get new ones from the two-factor page.

    op.drop_table('sign_in_throttles')
    with op.batch_alter_table('user_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_user_sessions_user_id'))
    op.drop_table('user_sessions')
