"""ComputeClient: the one API a front end uses for heavy compute, local worker process or remote service.

Use from a GUI timer (nothing here blocks)::

    client = ComputeClient.local()                       # or ComputeClient.remote(url, token)
    request_id = client.submit("embed", {"model": {"name": "vit_b"}}, {"image": rgb_uint8})
    ...                                                  # every 50 ms, from a QTimer:
    for reply in client.poll():                          # finished requests, each exactly once
        if reply.ok: use(reply.arrays["embedding"])
        else: show(reply.message)                        # error, cancelled, or worker crashed
    client.cancel(request_id)                            # a queued request is dropped; a running one is not answered
    client.close()

``client.notice`` holds the last thing worth telling the user (the worker was restarted after a crash,
the service is unreachable); ``client.progress(request_id)`` the last reported fraction. Headless code and
the service may block on one request with ``client.wait(request_id, timeout_s)``.
"""
from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from typing import Optional

from MVAComputeLib.compute_errors import (AuthenticationError, ComputeError, ComputeUnavailableError,
                                          RemoteComputeError, RequestCancelledError, WorkerCrashedError)

ERROR_TYPES = {"WorkerCrashedError": WorkerCrashedError, "ComputeUnavailableError": ComputeUnavailableError,
               "AuthenticationError": AuthenticationError, "RequestCancelledError": RequestCancelledError}


@dataclass
class Reply:
    """The outcome of one request.

    status : "done", "error" or "cancelled"
    params : plain values of the result; arrays : {name: ndarray} of the result
    error : the exception type's name for "error" replies; message : what to tell the user
    """
    request_id: str
    status: str
    params: dict = field(default_factory=dict)
    arrays: dict = field(default_factory=dict)
    error: Optional[str] = None
    message: str = ""

    @property
    def ok(self):
        return self.status == "done"

    def raise_for_error(self):
        """Return self when done; otherwise raise the matching ComputeError subclass."""
        if self.status == "done":
            return self
        if self.status == "cancelled":
            raise RequestCancelledError(self.message or "The request was cancelled")
        error_type = ERROR_TYPES.get(self.error)
        if error_type is not None:
            raise error_type(self.message)
        raise RemoteComputeError(self.message, self.error or "Error")

    @classmethod
    def from_frame(cls, header, arrays):
        kind = header.get("kind")
        status = {"result": "done", "error": "error", "cancelled": "cancelled"}.get(kind)
        if status is None:
            return None
        return cls(header.get("id"), status, header.get("params") or {}, arrays, header.get("error"),
                   header.get("message", ""))


class ComputeClient:
    """Requests to one transport (LocalWorker or HttpTransport); replies kept until polled or waited for."""

    def __init__(self, transport):
        self._condition = threading.Condition()
        self._replies = {}
        self._progress = {}
        self._pending = set()
        self._waited = set()
        self.notice = ""
        self.transport = transport
        transport.attach(self._deliver, self._progress_update, self._tell)

    @classmethod
    def local(cls, threads=None, python=None):
        """A client of a worker subprocess (started now) of `python` (default: find_worker_python())."""
        from MVAComputeLib.local_worker import LocalWorker
        return cls(LocalWorker(threads=threads, python=python))

    @classmethod
    def remote(cls, url, token, timeout_s=600.0):
        """A client of the inference service at `url` (nothing is sent until the first submit)."""
        from MVAComputeLib.http_transport import HttpTransport
        return cls(HttpTransport(url, token, timeout_s=timeout_s))

    # --- the API ---------------------------------------------------------------------------------------------
    def submit(self, op, params=None, arrays=None, request_id=None):
        """Queue operation `op` (see operations) and return its request id at once."""
        request_id = request_id or uuid.uuid4().hex
        with self._condition:
            self._pending.add(request_id)
        self.transport.send({"kind": "request", "id": request_id, "op": op, "params": params or {}}, arrays or {})
        return request_id

    def poll(self):
        """Replies that arrived since the last poll (never blocks; skips requests someone waits for)."""
        with self._condition:
            ready = [rid for rid in self._replies if rid not in self._waited]
            return [self._take(rid) for rid in ready]

    def wait(self, request_id, timeout_s=None):
        """Block until `request_id` is answered and return its Reply.

        Raises
        ------
        TimeoutError
            No reply within `timeout_s` (the request is left running; cancel it if it is not wanted).
        """
        with self._condition:
            self._waited.add(request_id)
            try:
                if not self._condition.wait_for(lambda: request_id in self._replies, timeout_s):
                    raise TimeoutError(f"No reply to compute request {request_id} within {timeout_s} s")
                return self._take(request_id)
            finally:
                self._waited.discard(request_id)

    def run(self, op, params=None, arrays=None, timeout_s=None):
        """submit + wait + raise_for_error: the result Reply of one request (headless use)."""
        request_id = self.submit(op, params, arrays)
        try:
            return self.wait(request_id, timeout_s).raise_for_error()
        except TimeoutError:
            self.cancel(request_id)
            raise

    def cancel(self, request_id):
        """Ask for `request_id` to be dropped; its reply (if any comes) is "cancelled". Never blocks."""
        with self._condition:
            if request_id not in self._pending:
                return
        self.transport.send({"kind": "cancel", "id": request_id}, {})

    def progress(self, request_id):
        """Last progress fraction reported for `request_id`, or None."""
        with self._condition:
            return self._progress.get(request_id)

    def pending(self):
        """Ids of the requests not answered yet."""
        with self._condition:
            return set(self._pending)

    def close(self):
        """Stop the transport; unanswered requests get "cancelled" replies."""
        self.transport.close()
        with self._condition:
            for request_id in list(self._pending):
                self._replies[request_id] = Reply(request_id, "cancelled", message="the compute client was closed")
            self._pending.clear()
            self._condition.notify_all()

    @property
    def worker_pid(self):
        """PID of the local worker process (None for a remote service)."""
        return getattr(self.transport, "pid", None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- transport callbacks -----------------------------------------------------------------------------------
    def _take(self, request_id):
        self._progress.pop(request_id, None)
        return self._replies.pop(request_id)

    def _deliver(self, reply):
        with self._condition:
            if reply.request_id not in self._pending:
                return  # answered already (e.g. cancelled by close) or not ours
            self._pending.discard(reply.request_id)
            self._replies[reply.request_id] = reply
            self._condition.notify_all()

    def _progress_update(self, request_id, fraction):
        with self._condition:
            if request_id in self._pending:
                self._progress[request_id] = fraction

    def _tell(self, message):
        with self._condition:
            self.notice = message


__all__ = ["ComputeClient", "Reply", "ComputeError"]
