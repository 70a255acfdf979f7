"""the nurse's day: patients as people, contact attempts, letters

Revision ID: 0008
Revises: 0007

Issue 18. The patient's direct-care fields (dataset.md, "Patient, for direct care") with the
names folded for search and the hospital number unique within a service; why a follow-up was not
done; each attempt to reach a patient; letters to the GP and the patient; and, per service, the
number of unanswered attempts after which a patient is lost to follow-up and the letters'
letterhead, address, telephone and signature block.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('contact_attempts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('service_id', sa.Integer(), nullable=False),
    sa.Column('episode_id', sa.Integer(), nullable=False),
    sa.Column('purpose', sa.String(length=20), nullable=False),
    sa.Column('made_on', sa.Date(), nullable=False),
    sa.Column('method', sa.String(length=20), nullable=False),
    sa.Column('outcome', sa.String(length=20), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint("method IS NULL OR method IN ('Telephone', 'Letter', 'Clinic', 'Other')", name=op.f('ck_contact_attempts_method')),
    sa.CheckConstraint("outcome IS NULL OR outcome IN ('Reached', 'No answer', 'Wrong number', 'Declined')", name=op.f('ck_contact_attempts_outcome')),
    sa.CheckConstraint("purpose IS NULL OR purpose IN ('followup16', 'followup52', 'assessment', 'other')", name=op.f('ck_contact_attempts_purpose')),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_contact_attempts_created_by_id_users')),
    sa.ForeignKeyConstraint(['episode_id'], ['episodes.id'], name=op.f('fk_contact_attempts_episode_id_episodes')),
    sa.ForeignKeyConstraint(['service_id'], ['services.id'], name=op.f('fk_contact_attempts_service_id_services')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contact_attempts'))
    )
    with op.batch_alter_table('contact_attempts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_contact_attempts_episode_id'), ['episode_id'], unique=False)

    op.create_table('letters',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('service_id', sa.Integer(), nullable=False),
    sa.Column('episode_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('state', sa.String(length=10), server_default='draft', nullable=False),
    sa.Column('recipient', sa.Text(), nullable=False),
    sa.Column('heading', sa.Text(), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('signature', sa.Text(), nullable=False),
    sa.Column('version', sa.Integer(), server_default='1', nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('finalised_by_id', sa.Integer(), nullable=True),
    sa.Column('finalised_at', sa.DateTime(), nullable=True),
    sa.CheckConstraint("kind IS NULL OR kind IN ('gp', 'patient')", name=op.f('ck_letters_kind')),
    sa.CheckConstraint("state IS NULL OR state IN ('draft', 'final')", name=op.f('ck_letters_state')),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_letters_created_by_id_users')),
    sa.ForeignKeyConstraint(['episode_id'], ['episodes.id'], name=op.f('fk_letters_episode_id_episodes')),
    sa.ForeignKeyConstraint(['finalised_by_id'], ['users.id'], name=op.f('fk_letters_finalised_by_id_users')),
    sa.ForeignKeyConstraint(['service_id'], ['services.id'], name=op.f('fk_letters_service_id_services')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_letters'))
    )
    with op.batch_alter_table('letters', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_letters_episode_id'), ['episode_id'], unique=False)

    for column in EPISODE_COLUMNS:
        op.add_column('episodes', column())
    for column in PATIENT_COLUMNS:
        op.add_column('patients', column())
    op.create_index('ix_patients_service_id_family_name_search', 'patients', ['service_id', 'family_name_search'], unique=False)
    # A unique index rather than a constraint: the same guard, added without rebuilding a table
    # that others refer to (SQLite rebuilds a table to add a constraint).
    op.create_index('uq_patients_service_id_hospital_number', 'patients', ['service_id', 'hospital_number'], unique=True)
    _add_checked('patients', 'interpreter_needed', sa.String(length=20), 'ck_patients_interpreter_needed', "interpreter_needed IS NULL OR interpreter_needed IN ('Yes', 'No', 'Not known')")
    _add_checked('services', 'attempts_before_lost', sa.Integer(), 'ck_services_attempts_before_lost_1_to_10', 'attempts_before_lost BETWEEN 1 AND 10', default='3')
    for column in SERVICE_COLUMNS:
        op.add_column('services', column())


def downgrade():
    for column in SERVICE_COLUMNS:
        _drop('services', column().name)
    _drop('services', 'attempts_before_lost', check='ck_services_attempts_before_lost_1_to_10')
    op.drop_index('uq_patients_service_id_hospital_number', table_name='patients')
    op.drop_index('ix_patients_service_id_family_name_search', table_name='patients')
    _drop('patients', 'interpreter_needed', check='ck_patients_interpreter_needed')
    for column in reversed(PATIENT_COLUMNS):
        _drop('patients', column().name)
    for column in reversed(EPISODE_COLUMNS):
        _drop('episodes', column().name)
    with op.batch_alter_table('letters', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_letters_episode_id'))
    op.drop_table('letters')
    with op.batch_alter_table('contact_attempts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_contact_attempts_episode_id'))
    op.drop_table('contact_attempts')


# Columns added to tables that others refer to (patients, episodes, services). On SQLite they are
# added and dropped in place (ALTER TABLE ... ADD / DROP COLUMN) rather than by rebuilding the
# table, which foreign keys from rows that hold data would refuse.
EPISODE_COLUMNS = (
    lambda: sa.Column('followup16_not_done_reason', sa.String(length=40), nullable=True),
    lambda: sa.Column('followup52_not_done_reason', sa.String(length=40), nullable=True),
)
PATIENT_COLUMNS = (
    lambda: sa.Column('given_name', sa.String(length=100), nullable=True),
    lambda: sa.Column('family_name', sa.String(length=100), nullable=True),
    lambda: sa.Column('hospital_number', sa.String(length=20), nullable=True),
    lambda: sa.Column('phone', sa.String(length=100), nullable=True),
    lambda: sa.Column('gp_practice', sa.String(length=200), nullable=True),
    lambda: sa.Column('gp_practice_code', sa.String(length=6), nullable=True),
    lambda: sa.Column('preferred_language', sa.String(length=50), nullable=True),
    lambda: sa.Column('given_name_search', sa.String(length=100), nullable=True),
    lambda: sa.Column('family_name_search', sa.String(length=100), nullable=True),
)
SERVICE_COLUMNS = (
    lambda: sa.Column('letter_heading', sa.Text(), nullable=True),
    lambda: sa.Column('letter_address', sa.Text(), nullable=True),
    lambda: sa.Column('letter_telephone', sa.String(length=100), nullable=True),
    lambda: sa.Column('letter_signature', sa.Text(), nullable=True),
)


def _sqlite() -> bool:
    return op.get_bind().dialect.name == 'sqlite'


def _add_checked(table, name, type_, check_name, condition, default=None):
    """A column with its CHECK: on SQLite written into the column (ALTER TABLE ADD COLUMN takes a
    column constraint), elsewhere a named table constraint."""
    if _sqlite():
        type_sql = type_.compile(dialect=op.get_bind().dialect)
        default_sql = f" NOT NULL DEFAULT '{default}'" if default is not None else ''
        op.execute(
            f'ALTER TABLE {table} ADD COLUMN {name} {type_sql}{default_sql} '
            f'CONSTRAINT {check_name} CHECK ({condition})'
        )
        return
    column = sa.Column(name, type_, nullable=default is None, server_default=default)
    op.add_column(table, column)
    op.create_check_constraint(check_name, table, condition)


def _drop(table, name, check=None):
    if _sqlite():
        op.execute(f'ALTER TABLE {table} DROP COLUMN {name}')
        return
    if check is not None:
        op.drop_constraint(check, table, type_='check')
    op.drop_column(table, name)
