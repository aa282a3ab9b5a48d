"""The workflow service: one object the browser annotator, the desktop module and `mva project` all call.

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
import logging

from MVAWorkflowLib.database import Database
from MVAWorkflowLib.service_accounts import AccountsMixin
from MVAWorkflowLib.service_annotations import AnnotationsMixin
from MVAWorkflowLib.service_base import ServiceBase
from MVAWorkflowLib.service_cases import CasesMixin
from MVAWorkflowLib.service_projects import ProjectsMixin

_log = logging.getLogger(__name__)


class WorkflowService(AccountsMixin, ProjectsMixin, CasesMixin, AnnotationsMixin, ServiceBase):
    """Accounts, projects, labels, forms, cases, reviews. Statistics and export: `statistics`, `export`."""

    @classmethod
    def open(cls, url=None, migrate=True, clean_up=True):
        """Connect to `url` (default `database.default_url()`).

        When `migrate`, upgrade its schema; when `clean_up`, remove files left by saves whose process was
        killed before committing (`remove_unfinished_saves`).
        """
        database = Database(url)
        if migrate:
            database.migrate()
        service = cls(database)
        if clean_up and database.is_initialised():
            try:
                service.remove_unfinished_saves()
            except OSError as error:  # a storage folder out of reach must not stop the server
                _log.warning("could not clean up unfinished saves: %s", error)
        return service
