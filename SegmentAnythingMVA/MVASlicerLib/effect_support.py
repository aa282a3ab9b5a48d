"""Qt-side helpers shared by the effects: the bridge for a scripted effect, the plane of a slice view,
mouse position -> plane pixel, and error display that never leaves a wait cursor behind."""
import contextlib
import logging

import qt
import slicer



class EffectContext:
    """What an effect needs from Slicer to call the Qt-free tool logic."""

    def __init__(self, scripted_effect):
        from MVASlicerLib.dependencies import ensure_dependencies
        ensure_dependencies()  # the bridge needs scipy: ask before the first use, not at startup
        from MVABridgeLib.edit_backend import EffectBackend, SegmentEditBridge
        self.scripted_effect = scripted_effect
        self.bridge = SegmentEditBridge(EffectBackend(scripted_effect))

    def plane_of_view(self, view_widget):
        """The voxel-resolution SlicePlane of a slice view (exact voxel slice when the view is axis-aligned)."""
        from MVABridgeLib.image_data import matrix_to_array
        from MVABridgeLib.slice_geometry import SlicePlane
        slice_node = view_widget.sliceLogic().GetSliceNode()
        volume = self.bridge.work_volume()
        return SlicePlane.voxel_aligned(matrix_to_array(slice_node.GetSliceToRAS()), volume.index_to_ras, volume.shape)

    def pixel_at(self, effect, xy, view_widget, plane):
        """Plane pixel (row, col) under the mouse position `xy` of `view_widget`."""
        ras = effect.xyToRas(xy, view_widget)
        pixel, _ = plane.ras_to_pixel([ras])
        plane.check_pixel(pixel[0])
        return tuple(int(round(v)) for v in pixel[0])

    def window_level(self):
        node = self.bridge.backend.source_volume_node()
        display = node.GetDisplayNode() if node else None
        if display is None:
            return None
        return float(display.GetWindow()), float(display.GetLevel())


@contextlib.contextmanager
def user_action(title):
    """Wait cursor during the action; bridge errors shown to the user, nothing half-applied is left behind."""
    qt.QApplication.setOverrideCursor(qt.Qt.WaitCursor)
    try:
        yield
    except (ValueError, RuntimeError) as error:  # bridge and tool input errors are ValueErrors
        logging.warning("%s: %s", title, error)
        slicer.util.errorDisplay(f"{title}: {error}")
    finally:
        qt.QApplication.restoreOverrideCursor()



def clone_effect(effect_file, paint=False):
    """A new scripted effect adaptor running `effect_file` (what every effect's clone() returns)."""
    import os

    import qSlicerSegmentationsEditorEffectsPythonQt as effects
    adaptor = effects.qSlicerSegmentEditorScriptedPaintEffect if paint else effects.qSlicerSegmentEditorScriptedEffect
    clone = adaptor(None)
    clone.setPythonSource(os.path.abspath(effect_file).replace("\\", "/"))
    return clone


def effect_icon(effect_file):
    """The SegmentEditorEffect.png beside `effect_file`, or an empty icon."""
    import os
    path = os.path.join(os.path.dirname(effect_file), "SegmentEditorEffect.png")
    return qt.QIcon(path) if os.path.exists(path) else qt.QIcon()


@contextlib.contextmanager
def progress_dialog(label):
    """A progress dialog with a Cancel button: yields (report(fraction), cancel() -> bool)."""
    dialog = slicer.util.createProgressDialog(labelText=label, maximum=100)

    def report(fraction):
        dialog.value = int(100 * fraction)
        slicer.app.processEvents()

    try:
        yield report, lambda: bool(dialog.wasCanceled)
    finally:
        dialog.close()


class BackgroundTask:
    """Run `work(progress, cancel)` in a worker thread; `done(result)` / `failed(error)` run on the Qt thread.

    The work must not touch VTK or Qt (numpy only); a progress bar and a Cancel button stay responsive.
    """

    def __init__(self, label, work, done, failed=None):
        import threading
        self.dialog = slicer.util.createProgressDialog(labelText=label, maximum=100)
        self.fraction, self.result, self.error, self.cancelled = 0.0, None, None, False
        self.done, self.failed = done, failed
        self.thread = threading.Thread(target=self._run, args=(work,), daemon=True)
        self.timer = qt.QTimer()
        self.timer.setInterval(100)
        self.timer.connect("timeout()", self._poll)
        self.thread.start()
        self.timer.start()

    def _run(self, work):
        try:
            self.result = work(self._report, lambda: self.cancelled)
        except Exception as error:  # noqa: BLE001 - handed to the Qt thread, which reports it
            self.error = error

    def _report(self, fraction):
        self.fraction = fraction

    def _poll(self):
        self.cancelled = self.cancelled or bool(self.dialog.wasCanceled)
        self.dialog.value = int(100 * self.fraction)
        if self.thread.is_alive():
            return
        self.timer.stop()
        self.dialog.close()
        if self.error is None:
            self.done(self.result)
        elif self.failed is not None:
            self.failed(self.error)
        else:
            logging.warning("Background task failed: %s", self.error)
            slicer.util.errorDisplay(str(self.error))
