"""Smart Brush: strokes -> classifier preview -> Apply; erase is a mode (Slicer's paint adaptor refuses strokes
that start with a modifier key, qSlicerSegmentEditorPaintEffect.cxx: `LeftButtonPressEvent && !anyModifierKeyPressed`)."""
from dataclasses import dataclass, field

import numpy as np

from MVABridgeLib.image_data import array_view, index_to_ras
from MVAControllersLib.tool_controller import ToolController, describe_edit
from MVAControllersLib.view_events import Reaction
from SmartBrushLib.brush_options import BrushOptions

PREVIEW, UNCERTAINTY = "preview", "uncertainty"
VOLUME_MODE = "3d"  # strokes on any slice train one classifier of the whole object (VolumeBrushLogic)


@dataclass
class BrushToolOptions(BrushOptions):
    radius_mm: float = 5.0  # strokes drawn by the controller itself (browser); Slicer's paint adaptor has its own
    erase: bool = False  # strokes are examples of what the segment is not
    show_uncertainty: bool = False
    auto_apply: bool = False  # write the prediction after each stroke (one undo step) instead of waiting for Apply


@dataclass
class _Stroke:
    plane: object
    pixels: list = field(default_factory=list)
    erase: bool = False


class SmartBrushController(ToolController):
    name = "Smart Brush"

    def __init__(self, bridge, runner=None, confirm_edit=None, options=None):
        super().__init__(bridge, runner, confirm_edit)
        from SmartBrushLib.smart_brush_logic import SmartBrushLogic
        self.options = options or BrushToolOptions()
        self.logic = SmartBrushLogic(bridge, self.options)
        self.volume_logic = None  # VolumeBrushLogic of the 3D mode, made on its first stroke
        self.volume_segment = None  # the segment the 3D preview is for
        self.stroke = None

    def reset(self):
        self.stroke = None
        self._clear_volume()

    # --- strokes drawn by the controller (browser, or any front end without Slicer's brush) ---------------------
    def on_press(self, event):
        self._refuse_while_busy()
        plane = self.plane_of(event.slice_node)
        self.last_slice_node = event.slice_node
        self.stroke = _Stroke(plane, [self.pixel_of(plane, event)], self.options.erase or event.shift)
        return Reaction(consumed=True)

    def on_move(self, event):
        if self.stroke is None:
            return Reaction()
        pixel = self.pixel_or_none(self.stroke.plane, event)
        if pixel is not None and pixel != self.stroke.pixels[-1]:
            self.stroke.pixels.append(pixel)
        return Reaction(consumed=True)

    def on_release(self, event):
        stroke, self.stroke = self.stroke, None
        if stroke is None:
            return Reaction()
        pixel = self.pixel_or_none(stroke.plane, event)
        if pixel is not None and pixel != stroke.pixels[-1]:
            stroke.pixels.append(pixel)
        return self.learn(stroke.plane, self.disk_stroke(stroke), stroke.erase)

    def disk_stroke(self, stroke):
        """The stroke's pixels as disks of `radius_mm` on its plane."""
        plane = stroke.plane
        spacing = float(np.linalg.norm(plane.pixel_to_ras_matrix[:3, 0]))
        radius = max(self.options.radius_mm / spacing, 1.0)
        rows, cols = np.ogrid[0:plane.shape[0], 0:plane.shape[1]]
        mask = np.zeros(plane.shape, bool)
        for row, col in stroke.pixels:
            mask |= (rows - row) ** 2 + (cols - col) ** 2 <= radius ** 2
        return mask

    # --- strokes painted by Slicer's paint effect (desktop paintApply) ---------------------------------------
    def paint_stroke(self, slice_node, stroke_image):
        """Learn from a stroke Slicer painted into `stroke_image` (vtkOrientedImageData, reference geometry)."""
        return self.guarded(self._paint_stroke, slice_node, stroke_image)

    def _paint_stroke(self, slice_node, stroke_image):
        self._refuse_while_busy()
        plane = self.plane_of(slice_node)
        self.last_slice_node = slice_node
        stroke_2d = plane.sample(array_view(stroke_image), index_to_ras(stroke_image), order=0) > 0
        return self.learn(plane, stroke_2d, self.options.erase)

    def learn(self, plane, stroke_2d, erase):
        if not stroke_2d.any():
            return Reaction(consumed=True, status="The stroke is outside the volume")
        if self.options.mode == VOLUME_MODE:
            return self._learn_volume(plane, stroke_2d, erase)
        if self.options.mode == "assist":
            start = tuple(int(v) for v in np.argwhere(stroke_2d)[0])
            result = self.edit(self.logic.paint_assisted, plane, stroke_2d, start, erase)
            return Reaction(consumed=True, redraw=True, status=describe_edit(result, "Edge-aware stroke: "))
        preview = self.logic.add_stroke(plane, stroke_2d, erase)
        self.drawings = {PREVIEW: ("plane", plane, preview.mask_2d)}
        if self.options.show_uncertainty:
            self.drawings[UNCERTAINTY] = ("plane", plane, preview.uncertainty_2d > 0.5)
        if self.options.auto_apply:
            return self._apply()
        return Reaction(consumed=True, redraw=True,
                        status=f"Preview: {int(preview.mask_2d.sum())} pixels. Apply writes them.")

    # --- actions --------------------------------------------------------------------------------------------
    def apply(self):
        return self.guarded(self._apply)

    def _apply(self):
        self._refuse_while_busy()
        if self.options.mode == VOLUME_MODE:
            return self._apply_volume()
        result = self.edit(self.logic.apply)
        self.drawings = {}
        return Reaction(consumed=True, redraw=True, status=describe_edit(result, "Applied: "))

    def clear(self):
        def clear():
            self.logic.clear(self.bridge.backend.selected_segment_id())
            self._clear_volume()
            self.drawings = {}
            return Reaction(redraw=True, status="Strokes of this segment cleared")
        return self.guarded(clear)

    def predict_3d(self):
        """Predict a box around the strokes in the orientation of the view last painted in (a job)."""
        return self.guarded(self._predict_3d)

    def _predict_3d(self):
        if self.last_slice_node is None:
            raise ValueError("Paint a stroke first: 3D prediction works in the orientation of the view painted in")
        from MVAComputeLib.brush_operation import brush_box_request
        plane = self.plane_of(self.last_slice_node)
        model, label, box = self.logic.volume_box(plane)  # read here; strokes are refused until the job ends
        request = brush_box_request(model, box) if self.runner_uses_worker() else None

        def predict_here(progress, cancel):  # without a compute worker: numpy on the model, no MRML
            return model.predict_box(box, progress=progress, cancel=cancel)[0]

        def finish(labels):
            patch = self.logic.volume_patch(plane, box, labels, label)
            result = self.edit(self.logic.apply_volume, patch)  # the edit contract: never a REPLACE of the box
            return Reaction(redraw=True, status=describe_edit(result, "3D prediction written: "))
        return self.start_job("Smart Brush 3D prediction", predict_here, finish, request=request,
                              from_reply=lambda reply: reply.arrays["labels"])

    # --- 3D mode: one classifier for strokes in any view, the whole object previewed, Apply writes it ---------
    def _learn_volume(self, plane, stroke_2d, erase):
        self.bridge.checked_segment()  # no segment selected / segment locked: said before any work
        segment_id = self.bridge.backend.selected_segment_id()
        if self.volume_segment != segment_id:
            self._clear_volume()  # strokes for another segment do not train this one
        logic = self._volume_brush()
        worker = logic.stroke_copy(self.snapshot(with_mask=logic.base is None))

        def learn_here(progress, cancel):  # numpy on the copy only: a dropped job leaves the live logic as it was
            return worker.add_stroke(plane, stroke_2d, erase)

        def finish(_preview):
            preview = logic.take_stroke(worker)
            self.volume_segment = segment_id
            if preview is None:
                return Reaction(redraw=True, status="The stroke is outside the volume")
            self.drawings = {PREVIEW: ("volume", preview.mask_kji)}
            if self.options.auto_apply:
                return self._apply_volume()
            return Reaction(redraw=True, status=f"3D preview: {int(preview.mask_kji.sum())} voxels. Apply writes them.")
        return self.start_job("Smart Brush 3D update", learn_here, finish)

    def _volume_brush(self):
        if self.volume_logic is None:
            from SmartBrushLib.volume_brush_logic import VolumeBrushLogic
            self.volume_logic = VolumeBrushLogic(self.bridge, seed=self.options.seed)
        return self.volume_logic

    def _apply_volume(self):
        if self.volume_logic is None or self.volume_logic.preview is None:
            raise ValueError("Nothing to apply: paint a stroke in 3D mode first")
        if self.volume_segment != self.bridge.backend.selected_segment_id():
            self._clear_volume()
            raise ValueError("The selected segment changed: the 3D preview was for another one and was cleared")
        result = self.edit(self.volume_logic.apply)
        self.drawings = {}
        return Reaction(consumed=True, redraw=True, status=describe_edit(result, "Applied in 3D: "))

    def _clear_volume(self):
        if self.volume_logic is not None:
            self.volume_logic.clear()
        self.volume_segment = None
        if PREVIEW in self.drawings and self.drawings[PREVIEW][0] == "volume":
            self.drawings = {}

    def plane_layers(self):
        """The 3D preview cut by the plane of the last stroke (front ends that draw on a plane: the browser)."""
        drawing = self.drawings.get(PREVIEW)
        if drawing is None or drawing[0] != "volume" or self.last_slice_node is None:
            return super().plane_layers()
        from MVAControllersLib import view_planes
        plane = self.plane_of(self.last_slice_node)
        volume = self.bridge.work_volume()
        return plane, {PREVIEW: view_planes.volume_mask_in_view(drawing[1], volume.index_to_ras, plane)}

    def _refuse_while_busy(self):
        if self.busy:
            raise ValueError("The 3D prediction is running: wait for it or cancel it first")
