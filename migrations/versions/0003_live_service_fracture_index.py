"""a partial index on live episodes by service and fracture date

Revision ID: 0003
Revises: 0002

A service's KPI page and run charts read its live episodes in a run of months. With only
`ix_episodes_service_id` every one of the service's episodes (all years, deleted ones too) is
fetched and filtered; this index finds the months asked for. It is partial (`deleted_at IS
NULL`) because nothing reads deleted episodes by date, and it leads with the service so that a
scan of every service keeps using `ix_episodes_fracture_date` or the table. Queries that read
every live episode of a service (worklists, the export) keep `ix_episodes_service_id`, in stored
order (kpis.sql.unindexed; docs/bench-kpis.md).
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

LIVE = sa.text('deleted_at IS NULL')


def upgrade():
    with op.batch_alter_table('episodes', schema=None) as batch_op:
        batch_op.create_index(
            'ix_episodes_live_service_fracture_date',
            ['service_id', 'fracture_date'],
            unique=False,
            sqlite_where=LIVE,
            postgresql_where=LIVE,
        )


def downgrade():
    with op.batch_alter_table('episodes', schema=None) as batch_op:
        batch_op.drop_index('ix_episodes_live_service_fracture_date')
