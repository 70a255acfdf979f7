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

    with op.batch_alter_table('episodes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('followup16_not_done_reason', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('followup52_not_done_reason', sa.String(length=40), nullable=True))

    with op.batch_alter_table('patients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('given_name', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('family_name', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('hospital_number', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('phone', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('gp_practice', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('gp_practice_code', sa.String(length=6), nullable=True))
        batch_op.add_column(sa.Column('preferred_language', sa.String(length=50), nullable=True))
        batch_op.add_column(sa.Column('interpreter_needed', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('given_name_search', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('family_name_search', sa.String(length=100), nullable=True))
        batch_op.create_index('ix_patients_service_id_family_name_search', ['service_id', 'family_name_search'], unique=False)
        batch_op.create_unique_constraint(batch_op.f('uq_patients_service_id_hospital_number'), ['service_id', 'hospital_number'])
        batch_op.create_check_constraint(op.f('ck_patients_interpreter_needed'), "interpreter_needed IS NULL OR interpreter_needed IN ('Yes', 'No', 'Not known')")

    with op.batch_alter_table('services', schema=None) as batch_op:
        batch_op.add_column(sa.Column('attempts_before_lost', sa.Integer(), server_default='3', nullable=False))
        batch_op.add_column(sa.Column('letter_heading', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('letter_address', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('letter_telephone', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('letter_signature', sa.Text(), nullable=True))
        batch_op.create_check_constraint(op.f('ck_services_attempts_before_lost_1_to_10'), 'attempts_before_lost BETWEEN 1 AND 10')



def downgrade():
    with op.batch_alter_table('services', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_services_attempts_before_lost_1_to_10'), type_='check')
        batch_op.drop_column('letter_signature')
        batch_op.drop_column('letter_telephone')
        batch_op.drop_column('letter_address')
        batch_op.drop_column('letter_heading')
        batch_op.drop_column('attempts_before_lost')

    with op.batch_alter_table('patients', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_patients_interpreter_needed'), type_='check')
        batch_op.drop_constraint(batch_op.f('uq_patients_service_id_hospital_number'), type_='unique')
        batch_op.drop_index('ix_patients_service_id_family_name_search')
        batch_op.drop_column('family_name_search')
        batch_op.drop_column('given_name_search')
        batch_op.drop_column('interpreter_needed')
        batch_op.drop_column('preferred_language')
        batch_op.drop_column('gp_practice_code')
        batch_op.drop_column('gp_practice')
        batch_op.drop_column('phone')
        batch_op.drop_column('hospital_number')
        batch_op.drop_column('family_name')
        batch_op.drop_column('given_name')

    with op.batch_alter_table('episodes', schema=None) as batch_op:
        batch_op.drop_column('followup52_not_done_reason')
        batch_op.drop_column('followup16_not_done_reason')

    with op.batch_alter_table('letters', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_letters_episode_id'))

    op.drop_table('letters')
    with op.batch_alter_table('contact_attempts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_contact_attempts_episode_id'))

    op.drop_table('contact_attempts')
