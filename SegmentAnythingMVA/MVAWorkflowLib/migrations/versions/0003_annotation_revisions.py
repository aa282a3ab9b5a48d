"""Every committed revision of an annotation with its file and checksum (recovery opens an earlier one).

Existing assignments get one row for their current revision.

Revision ID: 0003
Revises: 0002
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('annotation_revisions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('assignment_id', sa.Integer(), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('saved_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['assignment_id'], ['assignments.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('assignment_id', 'revision')
    )
    with op.batch_alter_table('annotation_revisions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_annotation_revisions_assignment_id'), ['assignment_id'], unique=False)
    op.execute("INSERT INTO annotation_revisions (assignment_id, revision, path, sha256, saved_at) "
               "SELECT id, annotation_revision, annotation_path, annotation_sha256, claimed_at FROM assignments "
               "WHERE annotation_path IS NOT NULL AND annotation_sha256 IS NOT NULL")


def downgrade():
    op.drop_table('annotation_revisions')
