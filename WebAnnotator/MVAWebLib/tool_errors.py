"""Tool gestures that fail show why in the page: a readable message instead of a server-log traceback.

A gesture on a slice view reaches a tool controller from inside VTK's event handling, where an exception is
only logged. `GuardedHandler` sits between the effect and its controller, refuses edits on a read-only case
(reviewers) and turns every failure into a message for the page's snackbar.
"""
import logging

from SegmentAnythingLib.algorithms.sam_errors import CheckpointError

from MVAWebLib.smart_effects import Gesture

_LOG = logging.getLogger(__name__)
NO_MODEL = ("", "none")
DEVELOPER_MODELS = ("tiny", "sam2_tiny")  # random weights: only with `mva serve --developer`


class ReadOnlyCaseError(ValueError):
    """An edit on a case opened for review (reviewers accept or return; they do not edit)."""


class NoSamModelError(ValueError):
    """Segment Anything was used with no model chosen."""


def no_model_message():
    """What to do when no SAM model is set: where to put which checkpoint (with its download address)."""
    from SegmentAnythingLib.algorithms.sam_checkpoints import CHECKPOINTS, checkpoint_folder
    info = CHECKPOINTS["vit_b"]
    return (f"No Segment Anything model is loaded. Download {info.file_name} from {info.url} into "
            f"{checkpoint_folder()} (or ask your administrator), then choose vit_b in the tool's Model list; "
            "other models: vit_l, vit_h, or a MedSAM checkpoint file.")


def readable(error):
    """One line for the page from any exception raised by a tool."""
    if isinstance(error, (ValueError, CheckpointError, OSError)) and str(error):
        return str(error)
    return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else 'unexpected error'}"


class GuardedHandler:
    """Wraps a tool controller's `on_gesture`; `report(text)` shows a failure, `read_only()` -> bool."""

    def __init__(self, controller, report, read_only, before_press=None):
        self.controller = controller
        self.report = report
        self.read_only = read_only
        self.before_press = before_press  # callable(controller) raising a ValueError to refuse a press

    def __getattr__(self, name):
        return getattr(self.controller, name)

    def on_gesture(self, slice_node, gesture, point_ras, shift, control):
        if gesture is not Gesture.HOVER and self.read_only():
            if gesture is Gesture.PRESS:
                self.report(str(ReadOnlyCaseError("This case is open for review: it cannot be edited here")))
            return
        try:
            if gesture is Gesture.PRESS and self.before_press is not None:
                self.before_press(self.controller)
            self.controller.on_gesture(slice_node, gesture, point_ras, shift, control)
        except Exception as error:  # noqa: BLE001 - the UI boundary: every failure becomes a message
            _LOG.warning("%s failed", self.controller.name, exc_info=True)
            self.controller.stroke = None
            self.report(f"{self.controller.name}: {readable(error)}")


def check_sam_model(controller):
    """`before_press` of Segment Anything: refuse with download instructions when no model is chosen."""
    if controller.options.model in NO_MODEL and not controller.options.checkpoint:
        raise NoSamModelError(no_model_message())
