"""import jobs name the process that runs them

Revision ID: 0004
Revises: 0003

An import is checked and applied by a thread of the portal process that received it. If that
process ends (a restart, a crash, a worker recycled), the job would stay "checking" or
"applying" for ever. `runner` names the process (host, pid, start time) so that a page showing
the job can tell that it is gone and mark the job failed (nothing was written: an apply is one
transaction).
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('import_jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('runner', sa.String(length=160), nullable=True))


def downgrade():
    with op.batch_alter_table('import_jobs', schema=None) as batch_op:
        batch_op.drop_column('runner')
