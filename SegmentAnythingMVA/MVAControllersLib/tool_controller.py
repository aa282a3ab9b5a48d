"""The part every smart-tool controller shares: event dispatch, error capture, edits, jobs, overlays."""
import logging

from MVABridgeLib.errors import OutsideVolumeError
from MVAControllersLib import view_planes
from MVAControllersLib.background_jobs import BackgroundJob, JobBusyError, JobRunner
from MVAControllersLib.snapshot import SnapshotBridge
from MVAControllersLib.view_events import EventKind, Reaction

_LOG = logging.getLogger(__name__)


def describe_edit(result, prefix=""):
    """Status text of a bridge write (an EditResult says what changed and why; a plain int counts voxels)."""
    message = getattr(result, "message", None)
    return prefix + (message if message else f"{int(result or 0)} voxels changed")


class EditNotConfirmed(Exception):
    """The user declined to edit the hidden segment (Slicer's confirmCurrentSegmentVisible answered Cancel)."""


class ToolController:
    """Base of the four tool controllers.

    Parameters
    ----------
    bridge : SegmentEditBridge
        One per effect (or browser session), kept for the controller's life: the work volume is read once and
        cached until the source changes.
    runner : JobRunner, optional
        Runs the heavy steps; default: a threaded runner the front end polls.
    confirm_edit : callable () -> bool, optional
        Asked before every write; the desktop passes Slicer's confirmCurrentSegmentVisible (0 = NotConfirmed).
    """

    name = "Tool"

    def __init__(self, bridge, runner=None, confirm_edit=None):
        self.bridge = bridge
        self.runner = runner or JobRunner()
        self.confirm_edit = confirm_edit or (lambda: True)
        self.drawings = {}  # layer -> ("plane", SlicePlane, bool (rows, cols)) or ("volume", bool (k, j, i))
        self.last_slice_node = None  # the view of the last stroke or click (Predict 3D, propagation)

    # --- entry points: never raise ----------------------------------------------------------------------------
    def handle(self, event):
        """A view event -> Reaction. 3D views (no slice node) are left to Slicer."""
        if event.slice_node is None:
            return Reaction(consumed=False)
        handler = {EventKind.PRESS: self.on_press, EventKind.MOVE: self.on_move,
                   EventKind.RELEASE: self.on_release, EventKind.KEY: self.on_key}[event.kind]
        return self.guarded(handler, event)

    def guarded(self, action, *args, consumed=True):
        """Run a user action; any error becomes a message and leaves the segment as it was."""
        try:
            reaction = action(*args)
        except EditNotConfirmed:
            return Reaction(consumed=consumed, status=f"{self.name}: not applied (the segment is hidden)")
        except JobBusyError as error:
            return Reaction(consumed=consumed, message=str(error))
        except Exception as error:  # noqa: BLE001 - the user boundary: show every error, raise none
            if not isinstance(error, ValueError):
                _LOG.exception("%s failed", self.name)
            return Reaction(consumed=consumed, message=f"{self.name}: {error}")
        return reaction if reaction is not None else Reaction(consumed=consumed)

    def poll(self):
        """Progress or the outcome of the running job (call from a timer while `busy` or `working`)."""
        self.guarded(self.runner.poll_side, consumed=False)
        return self.guarded(self.runner.poll, self.context(), consumed=False)

    @property
    def busy(self):
        return self.runner.busy

    def runner_uses_worker(self):
        """True when jobs naming a worker request go to the compute worker (build the request then)."""
        return bool(getattr(self.runner, "uses_worker", False))

    @property
    def working(self):
        """A job or background requests (prefetch in the worker) are out: keep polling."""
        return self.runner.busy or self.runner.side_pending

    def cancel(self, reason="cancelled"):
        self.runner.cancel(reason)

    def deactivate(self):
        """The effect was deactivated: cancel background work, drop overlays and strokes."""
        self.cancel("the tool was deactivated")
        self.drawings = {}
        self.reset()
        return Reaction(redraw=True)

    def reset(self):
        """Forget per-gesture state (subclasses)."""

    # --- event handlers (subclasses) ------------------------------------------------------------------------
    def on_press(self, event):
        return Reaction()

    def on_move(self, event):
        return Reaction()

    def on_release(self, event):
        return Reaction()

    def on_key(self, event):
        return Reaction()

    # --- geometry -------------------------------------------------------------------------------------------
    def segmentation_node(self):
        return self.bridge.backend.segmentation_node()

    def plane_of(self, slice_node):
        """The plane tools compute on for a slice view (voxel slice or oblique grid, segmentation coordinates)."""
        return view_planes.tool_plane(slice_node, self.bridge.work_volume(), self.segmentation_node())

    def pixel_of(self, plane, event):
        return view_planes.pixel_at(plane, event.slice_node, event.xy)

    def pixel_or_none(self, plane, event):
        try:
            return self.pixel_of(plane, event)
        except OutsideVolumeError:
            return None

    # --- edits and jobs -------------------------------------------------------------------------------------
    def context(self):
        """(selected segment id, source volume node id, its voxels' modification time) now: a job's result is
        dropped when any of them changed meanwhile (new voxels in the same node are another source volume)."""
        backend = self.bridge.backend
        node = backend.source_volume_node()
        if node is None:
            return backend.selected_segment_id(), None, None
        image = node.GetImageData()
        return backend.selected_segment_id(), node.GetID(), image.GetMTime() if image is not None else None

    def edit(self, write, *args):
        """Ask to edit (hidden segment), then run `write(*args)` (one bridge write = one undo step)."""
        if not self.confirm_edit():
            raise EditNotConfirmed()
        return write(*args)

    def snapshot(self, with_mask=False):
        return SnapshotBridge(self.bridge, with_mask=with_mask)

    def start_job(self, label, compute, finish, request=None, from_reply=None):
        """Start a job for the current segment and volume; `finish` runs on the GUI thread via `poll()`.

        `request` (op, params, arrays) lets a WorkerJobRunner send it to the compute worker instead."""
        job = BackgroundJob(label, compute, finish, context=self.context(), request=request, from_reply=from_reply)
        self.runner.start(job)
        return Reaction(consumed=True, status=f"{label}...", job=job)

    # --- overlays -------------------------------------------------------------------------------------------
    def view_overlays(self, slice_node):
        """{layer: bool (rows, cols) in the view's pixels, row 0 at the top} for one slice view."""
        try:
            return self._view_overlays(slice_node)
        except Exception as error:  # noqa: BLE001 - a view that cannot show the overlay shows none
            _LOG.debug("%s: no overlay in %s: %s", self.name, view_planes.view_name(slice_node), error)
            return {}

    def _view_overlays(self, slice_node):
        if not self.drawings:
            return {}
        grid = view_planes.view_pixels(slice_node, self.segmentation_node())
        volume = self.bridge.work_volume()
        shown = {}
        for layer, drawing in self.drawings.items():
            if drawing[0] == "plane":
                shown[layer] = view_planes.plane_mask_in_view(drawing[1], drawing[2], grid)
            else:
                shown[layer] = view_planes.volume_mask_in_view(drawing[1], volume.index_to_ras, grid)
        return shown

    def plane_layers(self):
        """(plane, {layer: bool (rows, cols)}) of the plane-drawn layers (front ends drawing in 3D space)."""
        planes = [d for d in self.drawings.values() if d[0] == "plane"]
        if not planes:
            return None, {}
        plane = planes[-1][1]
        return plane, {layer: d[2] for layer, d in self.drawings.items() if d[0] == "plane" and d[1] is plane}
