"""Exceptions of the compute worker, its client and the inference service."""


class ComputeError(RuntimeError):
    """Base class: a compute request could not be carried out."""


class ProtocolError(ValueError):
    """Bytes that are not a valid frame of the compute protocol (see wire_format)."""


class UnknownOperationError(ComputeError):
    """A request names an operation the worker does not have."""


class WorkerCrashedError(ComputeError):
    """The worker process stopped while requests were in flight; it is restarted, submit them again."""


class ComputeUnavailableError(ComputeError):
    """The worker could not be started, or the remote service cannot be reached."""


class AuthenticationError(ComputeError):
    """The inference service refused the token."""


class RequestCancelledError(ComputeError):
    """The request was cancelled before its result was delivered."""


class RemoteComputeError(ComputeError):
    """The operation itself failed in the worker; `kind` names the worker-side exception."""

    def __init__(self, message, kind="Error"):
        super().__init__(message)
        self.kind = kind
