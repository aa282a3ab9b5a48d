"""One controller per smart tool: gestures on a slice view -> tool logic (layer 2) -> the bridge.

Each controller computes through a SnapshotBridge in the JobRunner's worker and writes through the live
bridge on the main loop, inside one trame-slicer undo step.
"""
from dataclasses import dataclass, field

import numpy as np
from MVABridgeLib.slice_geometry import SlicePlane
from slicer.util import arrayFromVTKMatrix
from SmartBrushLib.brush_options import BrushOptions
from SmartPropagationLib.propagation_options import PropagationOptions
from SmartRegionsLib.regions_options import RegionsOptions

from MVAWebLib.overlays import BOUNDARY, HOVER, PREVIEW
from MVAWebLib.smart_effects import Gesture
from MVAWebLib.trame_backend import SnapshotBridge, one_undo_step


@dataclass
class WebBrushOptions(BrushOptions):
    radius_mm: float = 5.0
    auto_apply: bool = True  # write the prediction after each stroke (one undo step); else wait for Apply


@dataclass
class WebPropagationOptions(PropagationOptions):
    auto_apply: bool = True


@dataclass
class SamOptions:
    model: str = "tiny"  # "tiny" (random weights, plumbing only), "vit_b", "vit_l", "vit_h", "medsam_vit_b"
    checkpoint: str = ""  # a local SAM-format checkpoint file; required for MedSAM
    allow_download: bool = False
    input_size: str = "full"  # encoder input: "full" (as trained), "auto", or a side such as "512"

    def engine_input_size(self):
        """`input_size` as create_engine takes it: None, "auto" or an int."""
        from SegmentAnythingLib.engine_factory import input_size_from_text
        return input_size_from_text(self.input_size)


def plane_of(slice_node, volume):
    """The voxel-aligned (or oblique) SlicePlane of a slice view over the work volume."""
    slice_to_ras = arrayFromVTKMatrix(slice_node.GetSliceToRAS())
    return SlicePlane.voxel_aligned(slice_to_ras, volume.index_to_ras, volume.shape)


def pixel_of(plane, point_ras):
    pixel, _ = plane.ras_to_pixel(np.asarray([point_ras], float))
    row, col = np.round(pixel[0]).astype(int)
    return int(row), int(col)


@dataclass
class Stroke:
    plane: object
    pixels: list = field(default_factory=list)
    shift: bool = False
    control: bool = False


class SmartToolController:
    """Collects a press-drag-release stroke on one plane, then runs `finish(stroke)`."""

    name = "tool"

    def __init__(self, bridge, runner, segmentation_editor):
        self.bridge = bridge
        self.runner = runner
        self.editor = segmentation_editor
        self.stroke = None
        self.message = ""
        self.overlay = None  # a ToolOverlay (overlays.py) set by the app; None: nothing is drawn

    def on_gesture(self, slice_node, gesture, point_ras, shift, control):
        if gesture is Gesture.HOVER:
            self.hover(slice_node, point_ras)
            return
        if gesture is Gesture.PRESS:
            plane = plane_of(slice_node, self.bridge.work_volume())
            self.stroke = Stroke(plane, [], shift, control)
        if self.stroke is None:
            return
        pixel = pixel_of(self.stroke.plane, point_ras)
        inside = 0 <= pixel[0] < self.stroke.plane.shape[0] and 0 <= pixel[1] < self.stroke.plane.shape[1]
        if inside and (not self.stroke.pixels or self.stroke.pixels[-1] != pixel):
            self.stroke.pixels.append(pixel)
        if gesture is Gesture.RELEASE:
            stroke, self.stroke = self.stroke, None
            if stroke.pixels:
                self.finish(stroke)

    def finish(self, stroke):
        raise NotImplementedError

    def hover(self, slice_node, point_ras):
        """Mouse move with no button down; only effects with `wants_hover` receive it."""

    def draw(self, plane, value, mask):
        if self.overlay is not None:
            self.overlay.update_layer(plane, value, mask)

    def erase_overlay(self, values=None):
        if self.overlay is not None:
            self.overlay.clear(values)

    def write(self, text, function, *args):
        """Run a write on the main loop as one undo step, with the live bridge."""
        with one_undo_step(self.editor, text):
            return function(*args)

    def run_with_snapshot(self, logic, compute, with_mask=True):
        """A compute closure that runs `compute()` with the logic reading from a snapshot."""
        snapshot = SnapshotBridge(self.bridge, with_mask=with_mask)

        def job():
            logic.bridge = snapshot
            try:
                return compute()
            finally:
                logic.bridge = self.bridge
        return job


class SmartBrushController(SmartToolController):
    name = "Smart Brush"

    def __init__(self, bridge, runner, segmentation_editor):
        super().__init__(bridge, runner, segmentation_editor)
        from SmartBrushLib.smart_brush_logic import SmartBrushLogic
        self.options = WebBrushOptions()
        self.logic = SmartBrushLogic(bridge, self.options)

    def stroke_mask(self, stroke):
        plane = stroke.plane
        spacing = float(np.linalg.norm(plane.pixel_to_ras_matrix[:3, 0]))
        radius = max(self.options.radius_mm / spacing, 1.0)
        rows, cols = np.ogrid[0:plane.shape[0], 0:plane.shape[1]]
        mask = np.zeros(plane.shape, bool)
        for row, col in stroke.pixels:
            mask |= (rows - row) ** 2 + (cols - col) ** 2 <= radius ** 2
        return mask

    def finish(self, stroke):
        mask = self.stroke_mask(stroke)
        compute = self.run_with_snapshot(self.logic, lambda: self.logic.add_stroke(stroke.plane, mask, stroke.shift),
                                         with_mask=False)
        self.runner.submit(self.name, compute, self._after_stroke)

    def _after_stroke(self, preview):
        self.message = f"Preview: {int(preview.mask_2d.sum())} pixels"
        if self.options.auto_apply:
            return self.apply()
        self.message += " (Apply writes it)"
        self.draw(preview.plane, PREVIEW, preview.mask_2d)
        return 0

    def apply(self):
        count = self.write(self.name, self.logic.apply)
        self.erase_overlay((PREVIEW,))
        return count


class SmartRegionsController(SmartToolController):
    name = "Smart Regions"

    def __init__(self, bridge, runner, segmentation_editor):
        super().__init__(bridge, runner, segmentation_editor)
        from SmartRegionsLib.smart_regions_logic import SmartRegionsLogic
        self.options = RegionsOptions()
        self.logic = SmartRegionsLogic(bridge, self.options)
        self.labels = None  # ("2d", plane, labels (rows, cols)) or ("3d", None, labels (k, j, i)) last computed
        self._hovered = None  # (plane key, region label) highlighted now

    def finish(self, stroke):
        logic = self.logic
        if self.options.mode == "2d":
            compute = self.run_with_snapshot(logic, lambda: logic.plane_labels(stroke.plane), with_mask=False)
        elif logic.has_volume_labels() and self.labels is not None and self.labels[0] == "3d":
            labels = self.labels[2]
            compute = lambda: labels
        else:
            compute = self.run_with_snapshot(logic, logic.volume_labels, with_mask=False)
        self.runner.submit(self.name, compute, lambda labels: self._after_labels(stroke, labels))

    def _after_labels(self, stroke, labels):
        self.labels = (self.options.mode, stroke.plane if self.options.mode == "2d" else None, labels)
        count = self.write(self.name, self.logic.drag, stroke.plane, stroke.pixels, not stroke.shift)
        self._hovered = None
        self.show_regions(stroke.plane, stroke.pixels[-1])
        return count

    def plane_region_labels(self, plane):
        """Region labels (rows, cols) on `plane` from the last computed regions, or None when not computed."""
        if self.labels is None or self.labels[0] != self.options.mode:
            return None
        mode, labels_plane, labels = self.labels
        if mode == "2d":
            same = labels_plane.shape == plane.shape and np.allclose(labels_plane.pixel_to_ras_matrix,
                                                                     plane.pixel_to_ras_matrix)
            return labels if same else None
        return plane.sample(labels, self.bridge.work_volume().index_to_ras, order=0).astype(np.int64)

    def show_regions(self, plane, pixel_rc):
        """Draw the region boundaries of `plane` and highlight the region at `pixel_rc`."""
        from skimage.segmentation import find_boundaries
        labels = self.plane_region_labels(plane)
        if labels is None:
            return False
        row, col = pixel_rc
        inside = 0 <= row < labels.shape[0] and 0 <= col < labels.shape[1]
        region = int(labels[row, col]) if inside else 0
        key = (plane.pixel_to_ras_matrix.round(4).tobytes(), region)
        if key == self._hovered:
            return False  # same plane, same region: nothing to redraw
        self._hovered = key
        boundaries = find_boundaries(labels, connectivity=1, mode="inner") & (labels > 0)
        hover = labels == region if region > 0 else np.zeros(labels.shape, bool)
        if self.overlay is not None:
            self.overlay.show(plane, {BOUNDARY: boundaries, HOVER: hover})
        return True

    def hover(self, slice_node, point_ras):
        if self.labels is None or self.runner.busy:
            return
        plane = plane_of(slice_node, self.bridge.work_volume())
        self.show_regions(plane, pixel_of(plane, point_ras))


class SmartPropagationController(SmartToolController):
    name = "Smart Propagation"

    def __init__(self, bridge, runner, segmentation_editor):
        super().__init__(bridge, runner, segmentation_editor)
        from SmartPropagationLib.smart_propagation_logic import SmartPropagationLogic
        self.options = WebPropagationOptions()
        self.logic = SmartPropagationLogic(bridge, self.options)

    def finish(self, stroke):
        progress, cancel = getattr(self.runner, "report_progress", None), getattr(self.runner, "cancel_requested", None)
        compute = self.run_with_snapshot(self.logic, lambda: self.logic.compute_preview(stroke.plane, progress, cancel))
        self.runner.submit(self.name, compute, self._after_preview)

    def _after_preview(self, preview):
        self.message = f"{len(preview.masks)} slices ({preview.strategy}). " + " ".join(preview.stop_messages())
        return self.apply() if self.options.auto_apply else 0

    def apply(self):
        return self.write(self.name, self.logic.apply)


class SegmentAnythingController(SmartToolController):
    """Click: positive point; shift-click: negative point; ctrl-drag: box. The encoder runs in the worker."""

    name = "Segment Anything"

    def __init__(self, bridge, runner, segmentation_editor):
        super().__init__(bridge, runner, segmentation_editor)
        self.options = SamOptions()
        self.logic = None

    def _ensure_logic(self):
        options = self.options
        if (self.logic is None or self.logic.model_name != options.model
                or self.logic.engine.input_size != options.engine_input_size()):
            from SegmentAnythingLib.engine_factory import create_engine
            from SegmentAnythingLib.segment_anything_logic import SegmentAnythingLogic
            engine = create_engine(options.model, checkpoint=options.checkpoint or None,
                                   allow_download=options.allow_download, input_size=options.engine_input_size())
            self.logic = SegmentAnythingLogic(self.bridge, engine, model_name=self.options.model)
        return self.logic

    def finish(self, stroke):
        logic = self._ensure_logic()
        plane = stroke.plane
        key, image = logic.slice_key(plane), logic.slice_image(plane)  # VTK reads stay on the main loop
        if stroke.control and len(stroke.pixels) > 1:
            apply = lambda _e: self.write(self.name, logic.set_box, plane, stroke.pixels[0], stroke.pixels[-1])
        else:
            apply = lambda _e: self.write(self.name, logic.add_point, plane, stroke.pixels[0], not stroke.shift)
        self.runner.submit(self.name, lambda: logic.engine.embed(key, image), apply)

    def next_candidate(self):
        if self.logic is None:
            raise ValueError("No Segment Anything prediction to cycle: click on a slice first")
        return self.write(self.name, self.logic.cycle_candidate)

    def new_object(self):
        if self.logic is not None:
            self.logic.reset()
