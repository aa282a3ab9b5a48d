"""Heavy steps of a tool as jobs: arrays read on the GUI thread, `compute` anywhere, `finish` on the GUI thread.

`compute(progress, cancel)` sees numpy arrays only (no MRML, VTK or Qt object: Slicer's
`sourceVolumeImageData()` called from another thread emits a queued signal that cannot return its `bool&`,
qSlicerSegmentEditorAbstractEffect.cxx). `finish(result)` writes through the bridge and returns a Reaction.
A job remembers the segment and volume it was started for; its result is dropped if either changed.
"""
import logging
import threading
from dataclasses import dataclass, field

from MVAControllersLib.view_events import Reaction

_LOG = logging.getLogger(__name__)


class JobCancelled(Exception):
    """Raised inside `compute` (through `cancel()` checks of the algorithms) or set when a job is dropped."""


@dataclass
class BackgroundJob:
    label: str
    compute: object  # callable(progress(fraction), cancel() -> bool) -> result
    finish: object  # callable(result) -> Reaction, on the GUI thread
    context: tuple = ()  # (segment id, volume id) at start; the result is dropped when it changed
    request: tuple = None  # (op, params, arrays) for a compute worker (MVAComputeLib); None: `compute` only
    from_reply: object = None  # callable(Reply) -> the result `finish` takes, on the GUI thread
    progress: float = 0.0
    cancelled: bool = False
    cancel_reason: str = ""
    result: object = None
    error: object = None
    done: threading.Event = field(default_factory=threading.Event)

    def cancel(self, reason="cancelled"):
        self.cancelled = True
        self.cancel_reason = self.cancel_reason or reason

    def run(self):
        """Run `compute` here (any thread); the outcome is kept for `outcome()`."""
        try:
            self.result = self.compute(self._report, lambda: self.cancelled)
        except Exception as error:  # noqa: BLE001 - handed to the GUI thread, which shows it
            self.error = error
        finally:
            self.done.set()

    def _report(self, fraction):
        self.progress = float(fraction)


class JobRunner:
    """One job at a time. The front end calls `poll()` from a timer (desktop: QTimer; tests: directly).

    `threaded=False` runs compute inside `start` (tests, scripts). Python threads in Slicer only get the GIL
    while the main thread runs Python, so a worker *process* is the goal for heavy compute; this runner keeps
    every MRML/Qt call on the GUI thread either way.
    """

    def __init__(self, threaded=True):
        self.threaded = threaded
        self.job = None
        self._thread = None

    @property
    def busy(self):
        return self.job is not None

    @property
    def side_pending(self):
        """Background requests (prefetch) still out; only worker runners have them."""
        return False

    def poll_side(self):
        """Deliver finished background requests (worker runners)."""

    def start(self, job):
        if self.busy:
            raise JobBusyError(f"{self.job.label} is still running: wait for it or cancel it")
        self.job = job
        if self.threaded:
            self._thread = threading.Thread(target=job.run, name="mva-" + job.label, daemon=True)
            self._thread.start()
        else:
            job.run()

    def cancel(self, reason="cancelled"):
        if self.job is not None:
            self.job.cancel(reason)

    def poll(self, current_context=None):
        """None while running; else the finished job's Reaction (its result written, or why not).

        `current_context`: the (segment id, volume id) now; a job started for another one is dropped.
        """
        job = self.job
        if job is None:
            return None
        if current_context is not None and job.context and tuple(current_context) != tuple(job.context):
            job.cancel("the selected segment or the source volume changed")
        if not job.done.is_set():
            return Reaction(status=f"{job.label}: {int(100 * job.progress)} %", details={"progress": job.progress})
        self.job = None
        if job.cancelled:
            return Reaction(status=f"{job.label}: {job.cancel_reason}; nothing was written", redraw=True)
        if job.error is not None:
            if isinstance(job.error, JobCancelled) or type(job.error).__name__.endswith("Cancelled"):
                return Reaction(status=f"{job.label}: cancelled; nothing was written", redraw=True)
            _LOG.warning("%s failed: %s", job.label, job.error)
            return Reaction(message=f"{job.label}: {job.error}", redraw=True)
        return job.finish(job.result) or Reaction()

    def wait(self, timeout=None):
        """Block until the job's compute ended (scripts and tests); then call `poll()`."""
        if self.job is not None:
            self.job.done.wait(timeout)


class JobBusyError(RuntimeError):
    """A job is running; the new action was refused (nothing changed)."""
