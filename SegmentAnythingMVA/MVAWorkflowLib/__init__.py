"""Annotation workflow of the Medical Volume Annotator (Qt-free).

Projects with label sets and case forms, a case queue (to annotate -> in review -> accepted / returned),
suppliers, users with roles, sessions, an audit log, statistics and export. Storage: SQLAlchemy with Alembic
migrations, SQLite by default, PostgreSQL through the same code path.

Entry point for the browser annotator and the desktop module: `MVAWorkflowLib.service.WorkflowService`.
"""
