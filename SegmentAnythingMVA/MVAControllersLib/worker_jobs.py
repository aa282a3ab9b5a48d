"""Jobs that name a worker request run in the compute worker process (MVAComputeLib's ComputeClient): the GUI
process's Python only sends arrays and polls (inside Slicer, Python threads get the GIL only while the main thread
runs Python, so a thread would crawl). Other jobs, or every job when no worker can start, run in a thread."""
import logging
import time

from MVAControllersLib.background_jobs import JobRunner
from MVAControllersLib.view_events import Reaction

_LOG = logging.getLogger(__name__)
_UNCLAIMED = {}  # replies polled by one runner for another (runners of several effects share one client)
_DROPPED = set()  # ids of requests cancelled by their runner: their late replies are discarded, not kept


class WorkerJobRunner(JobRunner):
    """A JobRunner that sends `job.request` to a compute client made by `client_factory()` on first use."""

    def __init__(self, client_factory, threaded=True):
        super().__init__(threaded)
        self.client_factory = client_factory
        self.client = None
        self.notice = ""  # why the worker is not used, or what happened to it
        self.request_id = None
        self.side = {}  # request id -> on_reply(reply): background requests (prefetch) that block nothing

    @property
    def uses_worker(self):
        """False once the worker could not start (jobs then compute in a thread here)."""
        return self.client is not None or self.client_factory is not None

    def _client(self):
        if self.client is None and self.client_factory is not None:
            try:
                self.client = self.client_factory()
            except Exception as error:  # noqa: BLE001 - no worker: compute here, and say so once
                self.client_factory = None
                self.notice = f"The compute worker could not start ({error}); computing in Slicer instead"
                _LOG.warning("%s", self.notice)
        return self.client

    def start(self, job):
        client = self._client() if job.request is not None else None
        if client is None:
            return super().start(job)
        if self.busy:
            return super().start(job)  # raises JobBusyError
        op, params, arrays = job.request
        self.job, self.request_id = job, client.submit(op, params, arrays)

    def cancel(self, reason="cancelled"):
        if self.job is not None and self.request_id is not None:
            self.client.cancel(self.request_id)
            _DROPPED.add(self.request_id)
        for request_id in self.side:
            self.client.cancel(request_id)
            _DROPPED.add(request_id)
        self.side = {}
        super().cancel(reason)

    def _collect(self):
        """Move the client's new replies into the shared table; replies of cancelled requests are dropped."""
        for arrived in self.client.poll():
            if arrived.request_id in _DROPPED:
                _DROPPED.discard(arrived.request_id)
            else:
                _UNCLAIMED[arrived.request_id] = arrived

    def submit_side(self, request, on_reply):
        """Send a background request whose successful reply goes to `on_reply(reply)`; False without a worker."""
        client = self._client()
        if client is None:
            return False
        op, params, arrays = request
        self.side[client.submit(op, params, arrays)] = on_reply
        return True

    @property
    def side_pending(self):
        return bool(self.side)

    def poll_side(self):
        if not self.side:
            return
        self._collect()
        for request_id in [r for r in self.side if r in _UNCLAIMED]:
            reply, on_reply = _UNCLAIMED.pop(request_id), self.side.pop(request_id)
            if reply.ok:
                on_reply(reply)

    def poll(self, current_context=None):
        if self.request_id is None:
            return super().poll(current_context)
        job = self.job
        if current_context is not None and job.context and tuple(current_context) != tuple(job.context):
            self.cancel("the selected segment or the source volume changed")
        self._collect()
        reply = _UNCLAIMED.pop(self.request_id, None)
        if reply is None and not job.cancelled:
            fraction = self.client.progress(self.request_id) or 0.0
            return Reaction(status=f"{job.label}: {int(100 * fraction)} %", details={"progress": fraction})
        self.job, self.request_id = None, None
        if job.cancelled or reply.status == "cancelled":
            return Reaction(status=f"{job.label}: {job.cancel_reason or 'cancelled'}; nothing was written", redraw=True)
        if not reply.ok:
            notice = getattr(self.client, "notice", "")
            return Reaction(message=f"{job.label}: {reply.message}" + (f" ({notice})" if notice else ""), redraw=True)
        return job.finish(job.from_reply(reply)) or Reaction()

    def wait(self, timeout=None):
        if self.request_id is None:
            return super().wait(timeout)
        deadline = time.time() + (timeout or 600)
        while self.request_id in self.client.pending() and time.time() < deadline:
            time.sleep(0.02)
