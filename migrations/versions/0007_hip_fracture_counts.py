"""hip fracture counts a year per service, for the missed-patients estimate

Revision ID: 0007
Revises: 0006

An admin records each service's hip fractures a year from the hip fracture audit (NHFD); FLS-DB's
formula estimates from them the patients a service misses (issue 20, kpis/missed.py). Revision
'0006' (sessions and throttles, issue 23) was written beside this one; this one now follows it.
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'hip_fracture_counts',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('service_id', sa.Integer(), nullable=False),
        sa.Column('year', sa.Integer(), nullable=False),
        sa.Column('hip_fractures', sa.Integer(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.CheckConstraint('hip_fractures >= 0', name=op.f('ck_hip_fracture_counts_hip_fractures_not_negative')),
        sa.CheckConstraint('year >= 2016', name=op.f('ck_hip_fracture_counts_year_from_2016')),
        sa.ForeignKeyConstraint(['service_id'], ['services.id'], name=op.f('fk_hip_fracture_counts_service_id_services')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_hip_fracture_counts')),
        sa.UniqueConstraint('service_id', 'year', name=op.f('uq_hip_fracture_counts_service_id_year')),
    )
    with op.batch_alter_table('hip_fracture_counts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_hip_fracture_counts_service_id'), ['service_id'], unique=False)


def downgrade():
    with op.batch_alter_table('hip_fracture_counts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_hip_fracture_counts_service_id'))
    op.drop_table('hip_fracture_counts')
