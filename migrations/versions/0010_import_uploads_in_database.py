"""uploads kept in the database; import jobs run on the queue's workers

Revision ID: 0010
Revises: 0009

Issue 21: imports are checked and applied by the job queue's workers (Huey), on any host, not by a
thread of the web process that took the upload. So the upload is kept where every instance and
worker can read it: in `import_upload_chunks`, a megabyte a row, deleted after use or after 7 days.
`runner` (the process of a thread) and `stored_path` (a file on one machine's disk) go. A job names
its attempt (`attempts`, so that a run overtaken by another stops writing) and the last sign of
life of the worker running it (`heartbeat_at`), so that a job whose worker died is marked failed.

Jobs running or waiting with a file on disk when this runs cannot be finished by a worker that
cannot see that disk: they are discarded and their files deleted (upload the file again).
"""
import os

from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

MOVED = "The portal now keeps uploads in its database: upload the file again."


def upgrade():
    op.create_table(
        'import_upload_chunks',
        sa.Column('job_id', sa.Integer(), nullable=False),
        sa.Column('number', sa.Integer(), nullable=False),
        sa.Column('data', sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(['job_id'], ['import_jobs.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('job_id', 'number'),
    )
    jobs = sa.table(
        'import_jobs',
        sa.column('id', sa.Integer),
        sa.column('status', sa.String),
        sa.column('error', sa.Text),
        sa.column('stored_path', sa.Text),
    )
    connection = op.get_bind()
    kept = connection.execute(
        sa.select(jobs.c.id, jobs.c.stored_path).where(jobs.c.stored_path.is_not(None))
    ).all()
    for job_id, path in kept:
        try:
            os.remove(path)
        except OSError:
            pass  # already gone, or on another machine's disk
    connection.execute(
        jobs.update()
        .where(jobs.c.status.in_(('checking', 'previewed', 'applying')))
        .values(status='discarded', error=MOVED)
    )
    with op.batch_alter_table('import_jobs', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('attempts', sa.Integer(), nullable=False, server_default='0')
        )
        batch_op.add_column(sa.Column('heartbeat_at', sa.DateTime(), nullable=True))
        batch_op.drop_column('stored_path')
        batch_op.drop_column('runner')


def downgrade():
    with op.batch_alter_table('import_jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('runner', sa.String(length=160), nullable=True))
        batch_op.add_column(sa.Column('stored_path', sa.Text(), nullable=True))
        batch_op.drop_column('heartbeat_at')
        batch_op.drop_column('attempts')
    jobs = sa.table('import_jobs', sa.column('status', sa.String), sa.column('error', sa.Text))
    # The uploads go with their table: a job still waiting for one can no longer run.
    op.get_bind().execute(
        jobs.update()
        .where(jobs.c.status.in_(('checking', 'previewed', 'applying')))
        .values(status='discarded', error=MOVED)
    )
    op.drop_table('import_upload_chunks')
