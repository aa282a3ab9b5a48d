"""Run a tool's heavy step off the event loop and apply its result on the main loop.

VTK and MRML are not thread-safe: `compute` (numpy / torch only, through a SnapshotBridge) runs in a
one-thread executor; `apply` (segment writes, rendering) runs on the asyncio loop that serves the page.
One job at a time: a click while a job runs is refused with a message rather than queued. A compute step
that can report progress and stop early takes `runner.report_progress` (a fraction 0..1, from the worker) and
`runner.cancel_requested` (polled); the page shows the fraction as a bar and its Cancel calls `cancel()`.
A job that reports nothing (a SAM embedding: one forward pass), or that reports coarse steps, gets a bar
estimated from how long the last job of the same kind took (`estimated_progress`), capped below 100 % until it
ends.
"""
import asyncio
import concurrent.futures
import logging
import threading
import time
from dataclasses import dataclass

_LOG = logging.getLogger(__name__)


class JobCancelledError(RuntimeError):
    """The user cancelled the job: its result is dropped."""


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
        self.kind = ""  # what the running job does ("Embedding this slice"): the page's text, the estimate's key
        self.progress = None  # fraction done of the running job, None while it has not reported any
        self._cancel = threading.Event()
        self.history = []  # JobResult of every finished job (latency measurements)
        self._started = None  # perf_counter of the running job's start
        self._drop_on_cancel = True
        self._typical_s = {}  # label -> seconds the last successful job of that label took

    def report_progress(self, fraction):
        """Called by a compute step (any thread): how far the running job is, 0..1."""
        self.progress = min(1.0, max(0.0, float(fraction)))

    def estimated_progress(self, now=None):
        """(fraction 0..1 or None, estimated) of the running job: what it reported, or elapsed time over the
        duration of the last job of the same kind when that is further (at most 0.95: an estimate never claims
        the job is done). Both only grow, so the bar never goes back."""
        if not self.busy:
            return None, False
        typical = self._typical_s.get(self.kind)
        if not typical or self._started is None:
            return self.progress, False
        elapsed = (time.perf_counter() if now is None else now) - self._started
        estimate = min(0.95, elapsed / typical)
        if self.progress is not None and self.progress >= estimate:
            return self.progress, False
        return estimate, True

    def cancel_requested(self):
        """Polled by a compute step: True once the user asked to cancel the running job."""
        return self._cancel.is_set()

    def cancel(self):
        """Ask the running job to stop (a compute step that polls `cancel_requested`); False when idle."""
        if not self.busy:
            return False
        self._cancel.set()
        return True

    def submit(self, label, compute, apply, on_error=None, kind=None, cancel_drops_result=True):
        """Start `compute()` in the worker, then `apply(result)` on the loop. Returns False when busy.

        `label`: the tool (status line, history); `kind`: what the job does (default `label`).

        A cancel asked for while `compute` ran means `apply` is skipped even when `compute` did not poll it in
        time: a cancelled job writes nothing (`cancel_drops_result=False`: the compute decides, e.g. a save
        already committed). `on_error(text)` (on the loop) is called instead of `apply` when the job failed or
        was cancelled. Without a running asyncio loop (scripts, unit tests) both run here,
        synchronously.
        """
        if self.busy:
            return False
        self.busy, self.label, self.kind, self.progress = True, label, kind or label, None
        self._cancel.clear()
        started = self._started = time.perf_counter()
        if self.on_start is not None:
            self.on_start(label)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        self._drop_on_cancel = cancel_drops_result
        if loop is None:
            self._finish(label, started, *self._run_sync(compute, apply), on_error)
        else:
            loop.create_task(self._run_async(loop, label, started, compute, apply, on_error))
        return True

    def _apply_unless_cancelled(self, apply, result):
        if self._cancel.is_set() and self._drop_on_cancel:
            raise JobCancelledError("cancelled by the user; nothing was written")
        return apply(result)

    def _run_sync(self, compute, apply):
        try:
            return self._apply_unless_cancelled(apply, compute()), ""
        except (ValueError, RuntimeError, OSError, KeyError) as error:
            return None, str(error)

    async def _run_async(self, loop, label, started, compute, apply, on_error):
        value, error = None, ""
        try:
            result = await loop.run_in_executor(self._pool, compute)
            value = self._apply_unless_cancelled(apply, result)
        except (ValueError, RuntimeError, OSError, KeyError) as error_:
            error = str(error_)
        self._finish(label, started, value, error, on_error)

    def _finish(self, label, started, value, error, on_error=None):
        self.busy, self.progress = False, None
        result = JobResult(label, time.perf_counter() - started, value, error)
        if error:
            _LOG.warning("%s: %s", label, error)
            if on_error is not None:
                on_error(error)
        else:
            self._typical_s[self.kind] = result.seconds
        self.history.append(result)
        if self.on_done is not None:
            self.on_done(result)

    def shutdown(self):
        self._pool.shutdown(wait=False, cancel_futures=True)
