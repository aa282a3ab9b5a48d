"""The workflow service: one object the browser annotator, the desktop module and `mva project` all call.

>>> from MVAWorkflowLib.database import Database
>>> from MVAWorkflowLib.service import WorkflowService
>>> service = WorkflowService.open("sqlite:///team.db")        # migrates the schema if needed
>>> admin = service.create_first_admin("ada", "a-long-password")
>>> session = service.login("ada", "a-long-password")           # session.token identifies the caller
>>> project = service.create_project(session.token, "Liver")
>>> service.add_labels(session.token, "Liver", ["1:Liver:#dd8065:SCT:10200004:Liver"])

Every method takes the caller first (`actor`: a session token string, a `SessionInfo` or a `UserInfo`), checks
the caller's role (`service_base.PERMISSIONS`), runs in one transaction, writes an audit entry for every
change, and returns frozen records (`service_base`). Errors are `errors.WorkflowError` subclasses.
"""
from MVAWorkflowLib.database import Database
from MVAWorkflowLib.service_accounts import AccountsMixin
from MVAWorkflowLib.service_base import ServiceBase
from MVAWorkflowLib.service_cases import CasesMixin
from MVAWorkflowLib.service_projects import ProjectsMixin


class WorkflowService(AccountsMixin, ProjectsMixin, CasesMixin, ServiceBase):
    """Accounts, projects, labels, forms, cases, reviews. Statistics and export: `statistics`, `export`."""

    @classmethod
    def open(cls, url=None, migrate=True):
        """Connect to `url` (default `database.default_url()`) and, when `migrate`, upgrade its schema."""
        database = Database(url)
        if migrate:
            database.migrate()
        return cls(database)
