"""treatment plans, fracture risk and the rest of the FLS-DB dataset

Revision ID: 0009
Revises: 0008

Issue 19: a treatment plan per episode (treatment_courses, with their doses and reviews in
treatment_events); on episodes the type of fracture (1.10), FRAX hip and the NOGG category
(3.06-3.08), the falls-risk items (5.02-5.09), the new fractures at 12 months (7.07-7.13) and
"complete for the audit". Alfacalcidol joins the drugs therapy16 and therapy52 may hold. Another
revision '0008' is being written beside this one: when both land, the later re-chains.

The vocabularies are written out here, as they were when this revision was made.
"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

YES_NO_UNKNOWN = ('Yes', 'No', 'Not known')
SITES = ('Hip', 'Spine', 'Humerus', 'Pelvis', 'Wrist', 'Other')
CHOICES = {
    'fracture_type': ('Clinical', 'Incidental finding on imaging', 'Not known'),
    'frax_with_bmd': ('With BMD', 'Without BMD'),
    'nogg_risk_category': ('Low', 'Intermediate', 'High', 'Very high'),
    'falls_two_or_more': YES_NO_UNKNOWN,
    'fear_of_falling': YES_NO_UNKNOWN,
    'falls_risk_medicines': YES_NO_UNKNOWN,
    'mobility_before_fracture': (
        'Freely mobile without aids',
        'Mobile outdoors with one aid',
        'Mobile outdoors with two aids or frame',
        'Some indoor mobility only',
        'No functional mobility',
        'Not known',
    ),
    'visual_impairment': YES_NO_UNKNOWN,
    'toileting_problems': YES_NO_UNKNOWN,
    'cardiovascular_abnormal': YES_NO_UNKNOWN,
    'cognitive_impairment': YES_NO_UNKNOWN,
    'refracture1_site': SITES,
    'refracture2_site': SITES,
    'refracture3_site': SITES,
}
DRUGS_BEFORE = (
    'Alendronate', 'Risedronate', 'Ibandronate', 'Zoledronate', 'Denosumab', 'Teriparatide',
    'Romosozumab', 'Abaloparatide', 'Strontium ranelate', 'HRT', 'Raloxifene',
)
DRUGS = DRUGS_BEFORE[:9] + ('Alfacalcidol',) + DRUGS_BEFORE[9:]
FOLLOWUP_OUTCOMES = (
    'Not started', 'No longer appropriate', 'Informed decline', 'Referred for clinical opinion',
    'Not known',
)


def _one_of(column, values):
    quoted = ', '.join("'" + v.replace("'", "''") + "'" for v in values)
    return f'{column} IS NULL OR {column} IN ({quoted})'


def _therapy_checks(batch_op, drugs):
    for column in ('therapy16', 'therapy52'):
        batch_op.drop_constraint(batch_op.f(f'ck_episodes_{column}'), type_='check')
        batch_op.create_check_constraint(column, _one_of(column, drugs + FOLLOWUP_OUTCOMES))


def upgrade():
    op.create_table('treatment_courses',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('service_id', sa.Integer(), nullable=False),
    sa.Column('episode_id', sa.Integer(), nullable=False),
    sa.Column('drug', sa.String(length=40), nullable=False),
    sa.Column('route', sa.String(length=20), nullable=False),
    sa.Column('started_on', sa.Date(), nullable=False),
    sa.Column('stopped_on', sa.Date(), nullable=True),
    sa.Column('stop_reason', sa.String(length=40), nullable=True),
    sa.Column('follow_on_id', sa.Integer(), nullable=True),
    sa.Column('no_follow_on_confirmed', sa.Boolean(), server_default='0', nullable=False),
    sa.Column('version', sa.Integer(), server_default='1', nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.CheckConstraint("drug IS NULL OR drug IN ('Alendronate', 'Risedronate', 'Ibandronate', 'Zoledronate', 'Denosumab', 'Teriparatide', 'Romosozumab', 'Abaloparatide', 'Strontium ranelate', 'Alfacalcidol', 'HRT', 'Raloxifene')", name=op.f('ck_treatment_courses_drug')),
    sa.CheckConstraint("route IS NULL OR route IN ('Oral', 'Subcutaneous', 'Intravenous', 'Transdermal')", name=op.f('ck_treatment_courses_route')),
    sa.CheckConstraint("stop_reason IS NULL OR stop_reason IN ('Course completed', 'Treatment holiday', 'Side effects', 'Patient choice', 'Clinical decision', 'Switched to another drug', 'Other')", name=op.f('ck_treatment_courses_stop_reason')),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_treatment_courses_created_by_id_users')),
    sa.ForeignKeyConstraint(['episode_id'], ['episodes.id'], name=op.f('fk_treatment_courses_episode_id_episodes')),
    sa.ForeignKeyConstraint(['follow_on_id'], ['treatment_courses.id'], name=op.f('fk_treatment_courses_follow_on_id_treatment_courses')),
    sa.ForeignKeyConstraint(['service_id'], ['services.id'], name=op.f('fk_treatment_courses_service_id_services')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_treatment_courses'))
    )
    with op.batch_alter_table('treatment_courses', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_treatment_courses_episode_id'), ['episode_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_treatment_courses_service_id'), ['service_id'], unique=False)

    op.create_table('treatment_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('service_id', sa.Integer(), nullable=False),
    sa.Column('course_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('event_date', sa.Date(), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.CheckConstraint("kind IS NULL OR kind IN ('dose', 'review')", name=op.f('ck_treatment_events_kind')),
    sa.ForeignKeyConstraint(['course_id'], ['treatment_courses.id'], name=op.f('fk_treatment_events_course_id_treatment_courses')),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_treatment_events_created_by_id_users')),
    sa.ForeignKeyConstraint(['service_id'], ['services.id'], name=op.f('fk_treatment_events_service_id_services')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_treatment_events'))
    )
    with op.batch_alter_table('treatment_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_treatment_events_course_id'), ['course_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_treatment_events_service_id'), ['service_id'], unique=False)

    with op.batch_alter_table('episodes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('fracture_type', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('frax_hip_percent', sa.Numeric(precision=4, scale=1, asdecimal=False), nullable=True))
        batch_op.add_column(sa.Column('frax_with_bmd', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('nogg_risk_category', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('falls_two_or_more', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('fear_of_falling', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('falls_risk_medicines', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('mobility_before_fracture', sa.String(length=60), nullable=True))
        batch_op.add_column(sa.Column('visual_impairment', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('toileting_problems', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('cardiovascular_abnormal', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('cognitive_impairment', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('refracture_count', sa.Numeric(precision=2, scale=0, asdecimal=False), nullable=True))
        batch_op.add_column(sa.Column('refracture1_site', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('refracture1_date', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('refracture2_site', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('refracture2_date', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('refracture3_site', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('refracture3_date', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('audit_complete_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('audit_complete_by_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_episodes_audit_complete_by_id_users'), 'users', ['audit_complete_by_id'], ['id'])
        for column, values in CHOICES.items():
            batch_op.create_check_constraint(column, _one_of(column, values))
        batch_op.create_check_constraint(
            'frax_hip_percent', 'frax_hip_percent IS NULL OR frax_hip_percent BETWEEN 0 AND 100'
        )
        batch_op.create_check_constraint(
            'refracture_count', 'refracture_count IS NULL OR refracture_count BETWEEN 1 AND 20'
        )
        _therapy_checks(batch_op, DRUGS)


def downgrade():
    # Before 0009 no follow-up could name alfacalcidol: such an answer is cleared (the audit trail
    # keeps it).
    for column in ('therapy16', 'therapy52'):
        op.execute(f"UPDATE episodes SET {column} = NULL WHERE {column} = 'Alfacalcidol'")
    # The treatment plan goes first: SQLite rebuilds episodes below, which their rows reference.
    with op.batch_alter_table('treatment_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_treatment_events_service_id'))
        batch_op.drop_index(batch_op.f('ix_treatment_events_course_id'))

    op.drop_table('treatment_events')
    with op.batch_alter_table('treatment_courses', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_treatment_courses_service_id'))
        batch_op.drop_index(batch_op.f('ix_treatment_courses_episode_id'))

    op.drop_table('treatment_courses')

    with op.batch_alter_table('episodes', schema=None) as batch_op:
        _therapy_checks(batch_op, DRUGS_BEFORE)
        for column in ('frax_hip_percent', 'refracture_count', *CHOICES):
            batch_op.drop_constraint(batch_op.f(f'ck_episodes_{column}'), type_='check')
        batch_op.drop_constraint(batch_op.f('fk_episodes_audit_complete_by_id_users'), type_='foreignkey')
        batch_op.drop_column('audit_complete_by_id')
        batch_op.drop_column('audit_complete_at')
        batch_op.drop_column('refracture3_date')
        batch_op.drop_column('refracture3_site')
        batch_op.drop_column('refracture2_date')
        batch_op.drop_column('refracture2_site')
        batch_op.drop_column('refracture1_date')
        batch_op.drop_column('refracture1_site')
        batch_op.drop_column('refracture_count')
        batch_op.drop_column('cognitive_impairment')
        batch_op.drop_column('cardiovascular_abnormal')
        batch_op.drop_column('toileting_problems')
        batch_op.drop_column('visual_impairment')
        batch_op.drop_column('mobility_before_fracture')
        batch_op.drop_column('falls_risk_medicines')
        batch_op.drop_column('fear_of_falling')
        batch_op.drop_column('falls_two_or_more')
        batch_op.drop_column('nogg_risk_category')
        batch_op.drop_column('frax_with_bmd')
        batch_op.drop_column('frax_hip_percent')
        batch_op.drop_column('fracture_type')
