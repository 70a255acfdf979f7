"""audit events name the command-line operator

Revision ID: 0005
Revises: 0004

Every change carries who made it (security.md): a signed-in user, or the operator who ran a
`flask` command on the server. `operator` names the latter ("command line (root)"), so that the
trail never shows a change made by nobody.
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('operator', sa.String(length=100), nullable=True))


def downgrade():
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_column('operator')
