"""Exceptions of the annotation workflow. All are `ValueError`s with a message a user can act on."""


class WorkflowError(ValueError):
    """Base class of every workflow error."""


class AuthenticationError(WorkflowError):
    """Unknown user, wrong password, disabled account, or an expired / unknown session token."""


class LoginThrottledError(AuthenticationError):
    """Too many failed logins for this user name or from this address: wait `retry_after_s` seconds."""

    def __init__(self, retry_after_s):
        self.retry_after_s = max(1, int(round(retry_after_s + 0.4999)))
        super().__init__(f"Too many failed logins: wait {self.retry_after_s} s and try again")


class PermissionDeniedError(WorkflowError):
    """The acting user's role does not allow the action (e.g. an annotator accepting their own case)."""


class NotFoundError(WorkflowError):
    """A project, case, user, supplier, label or question that does not exist."""


class InvalidStateError(WorkflowError):
    """The case is not in a status that allows the action (e.g. reviewing a case that is still to annotate)."""


class ConflictError(WorkflowError):
    """Someone else changed the record since it was read (optimistic locking): reload and try again."""


class InvalidInputError(WorkflowError):
    """A value that does not fit: bad colour, unknown role, form answer of the wrong type, missing answer."""


class OperationCancelledError(WorkflowError):
    """The user cancelled the action before it was committed: nothing was changed."""
