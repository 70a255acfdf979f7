"""partial indexes for the worklists of large services

Revision ID: 0011
Revises: 0010

Issue 21: on ten years of a nation (3.5 million episodes) a worklist page of the largest service
(140,000 episodes) took 0.5 to 1.3 s on PostgreSQL: each page read every live episode of the
service and joined its patient to count the list. Each list's unanswered field gets a partial
index by (service, fracture date, patient), so that a list is counted from its own index and read
a page at a time in date order; two partial indexes on patients find the deceased, and those
missing an audited field of their own, of a service; a list sorted by date of birth walks
the service's patients in that order. The predicates are those of
portal/models/waiting.py, written out here as the migration ran them. On PostgreSQL they are
built without holding off saves (CONCURRENTLY).
"""

from alembic import op


revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

LIVE = "deleted_at IS NULL"


def _blank(name):
    return f"{name} IS NULL OR {name} = ''"


EPISODE_AUDITED = (
    "identification_date IS NULL",
    _blank("admitted"),
    _blank("fracture_sites"),
    "assessment_date IS NULL",
    _blank("previous_fracture"),
    _blank("smoker"),
    _blank("on_bone_therapy_at_fracture"),
    _blank("dxa_status"),
    _blank("falls_assessed"),
    _blank("bone_therapy"),
    _blank("calcium_vitd"),
    _blank("followup16_done"),
    _blank("strength_balance16"),
    _blank("followup52_done"),
)

EPISODE_INDEXES = {
    "ix_episodes_waiting_awaiting_assessment": f"{LIVE} AND assessment_date IS NULL",
    "ix_episodes_waiting_dxa_not_done": (
        f"{LIVE} AND dxa_status = 'Recommended' AND dxa_date IS NULL"
    ),
    "ix_episodes_waiting_followup16": f"{LIVE} AND ({_blank('followup16_done')})",
    "ix_episodes_waiting_followup52": f"{LIVE} AND ({_blank('followup52_done')})",
    "ix_episodes_waiting_incomplete": f"{LIVE} AND ({' OR '.join(EPISODE_AUDITED)})",
}
PATIENT_INDEXES = {
    "ix_patients_deceased": "date_of_death IS NOT NULL",
    "ix_patients_audit_incomplete": " OR ".join(
        _blank(name) for name in ("sex", "postcode", "care_home_resident")
    ),
}


INDEXES = {
    **{
        name: f"ON episodes (service_id, fracture_date, patient_id) WHERE {where}"
        for name, where in EPISODE_INDEXES.items()
    },
    **{name: f"ON patients (service_id, id) WHERE {where}" for name, where in PATIENT_INDEXES.items()},
    "ix_patients_service_id_date_of_birth": "ON patients (service_id, date_of_birth)",
}


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        for name, definition in INDEXES.items():
            op.execute(f"CREATE INDEX {name} {definition}")
        return
    # On PostgreSQL the indexes are built CONCURRENTLY, outside a transaction: a plain CREATE
    # INDEX holds off every write to the table while it builds (about 7 s on 3.5 M episodes), and
    # nurses save during a rolling deploy (README). A build that failed half-way leaves an invalid
    # index of the same name: it is dropped first, so that running the migration again mends it.
    with op.get_context().autocommit_block():
        for name, definition in INDEXES.items():
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
            op.execute(f"CREATE INDEX CONCURRENTLY {name} {definition}")


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        for name in INDEXES:
            op.execute(f"DROP INDEX {name}")
        return
    with op.get_context().autocommit_block():
        for name in INDEXES:
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
