"""Run a tool's heavy step off the event loop and apply its result on the main loop.

VTK and MRML are not thread-safe: `compute` (numpy / torch only, through a SnapshotBridge) runs in a
one-thread executor; `apply` (segment writes, rendering) runs on the asyncio loop that serves the page.
One job at a time: a click while a job runs is refused with a message rather than queued. A compute step
that can report progress and stop early takes `runner.report_progress` (a fraction 0..1, from the worker) and
`runner.cancel_requested` (polled); the page shows the fraction as a bar and its Cancel calls `cancel()`.
"""
import asyncio
import concurrent.futures
import logging
import threading
import time
from dataclasses import dataclass

_LOG = logging.getLogger(__name__)


@dataclass
class JobResult:
    label: str
    seconds: float
    value: object = None
    error: str = ""


class JobRunner:
    """Serialises tool jobs; `on_done(JobResult)` is called on the main loop after each job."""

    def __init__(self, on_done=None, on_start=None):
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="mva-tool")
        self.on_done = on_done
        self.on_start = on_start
        self.busy = False
        self.label = ""
        self.progress = None  # fraction done of the running job, None while it has not reported any
        self._cancel = threading.Event()
        self.history = []  # JobResult of every finished job (latency measurements)

    def report_progress(self, fraction):
        """Called by a compute step (any thread): how far the running job is, 0..1."""
        self.progress = min(1.0, max(0.0, float(fraction)))

    def cancel_requested(self):
        """Polled by a compute step: True once the user asked to cancel the running job."""
        return self._cancel.is_set()

    def cancel(self):
        """Ask the running job to stop (a compute step that polls `cancel_requested`); False when idle."""
        if not self.busy:
            return False
        self._cancel.set()
        return True

    def submit(self, label, compute, apply):
        """Start `compute()` in the worker, then `apply(result)` on the loop. Returns False when busy.

        Without a running asyncio loop (scripts, unit tests) both run here, synchronously.
        """
        if self.busy:
            return False
        self.busy, self.label, self.progress = True, label, None
        self._cancel.clear()
        started = time.perf_counter()
        if self.on_start is not None:
            self.on_start(label)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is None:
            self._finish(label, started, *self._run_sync(compute, apply))
        else:
            loop.create_task(self._run_async(loop, label, started, compute, apply))
        return True

    @staticmethod
    def _run_sync(compute, apply):
        try:
            return apply(compute()), ""
        except (ValueError, RuntimeError, OSError, KeyError) as error:
            return None, str(error)

    async def _run_async(self, loop, label, started, compute, apply):
        value, error = None, ""
        try:
            result = await loop.run_in_executor(self._pool, compute)
            value = apply(result)
        except (ValueError, RuntimeError, OSError, KeyError) as error_:
            error = str(error_)
        self._finish(label, started, value, error)

    def _finish(self, label, started, value, error):
        self.busy, self.progress = False, None
        result = JobResult(label, time.perf_counter() - started, value, error)
        if error:
            _LOG.warning("%s: %s", label, error)
        self.history.append(result)
        if self.on_done is not None:
            self.on_done(result)

    def shutdown(self):
        self._pool.shutdown(wait=False, cancel_futures=True)
