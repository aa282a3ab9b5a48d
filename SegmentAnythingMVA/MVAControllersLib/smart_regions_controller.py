"""Smart Regions: click / drag over regions (shift removes); hover highlights the region a click would take.

Hover and click use the same plane (the view's slice at voxel resolution), so in 2D mode both see the same
superpixels; the highlight and the boundaries are mapped from that plane into the view's pixels.
"""
import dataclasses
from dataclasses import dataclass

from MVAControllersLib.tool_controller import ToolController, describe_edit
from MVAControllersLib.view_events import Reaction
from MVAControllersLib import view_planes
from SmartRegionsLib.regions_options import RegionsOptions

BOUNDARIES, HOVER = "boundaries", "hover"


@dataclass
class RegionsToolOptions(RegionsOptions):
    show_boundaries: bool = True


class SmartRegionsController(ToolController):
    name = "Smart Regions"

    def __init__(self, bridge, runner=None, confirm_edit=None, options=None):
        super().__init__(bridge, runner, confirm_edit)
        from SmartRegionsLib.smart_regions_logic import SmartRegionsLogic
        self.options = options or RegionsToolOptions()
        self.logic = SmartRegionsLogic(bridge, self.options)
        self.stroke = None  # (plane, pixels, add)
        self.labelled_plane = None  # 2D mode: the plane whose superpixels exist

    def reset(self):
        self.stroke = None

    # --- regions ------------------------------------------------------------------------------------------
    def has_regions(self, plane=None):
        """True when a click needs no computation first (never computes anything)."""
        if self.options.mode == "2d":
            return plane is not None and self.labelled_plane is not None and _same_plane(plane, self.labelled_plane)
        return self.logic.has_volume_labels()

    def compute_regions(self):
        """Compute the supervoxels of the whole volume now (a job), instead of on the first click."""
        return self.guarded(self._compute_regions, None)

    def _compute_regions(self, then):
        if self.busy:
            raise ValueError("The regions are being computed: wait for it or cancel it")
        if self.options.mode == "3d" and self.logic.has_volume_labels():
            return then() if then else Reaction(redraw=True, status="Regions are ready")
        token = self.logic.volume_token()
        worker = _copy_with_bridge(self.logic, self.snapshot())
        volume, parameters = self.bridge.work_volume(), self.options.parameters()

        def from_reply(reply):  # labels from the compute worker join the cache the live logic reads
            return self.logic.cache.store(reply.arrays["labels"], volume.array, volume.spacing_kji, parameters,
                                          token=token)

        def finish(_labels):  # the shared cache holds them now, under the live volume's token
            return then() if then else Reaction(redraw=True, status="Regions are ready")
        request = ("supervoxels", {"spacing_kji": [float(v) for v in volume.spacing_kji],
                                   "parameters": dataclasses.asdict(parameters)}, {"image": volume.array})
        return self.start_job("Computing supervoxels",
                              lambda progress, cancel: worker.volume_labels(progress, cancel, token), finish,
                              request=request, from_reply=from_reply)

    # --- events ---------------------------------------------------------------------------------------------
    def on_press(self, event):
        if self.busy:
            raise ValueError("The regions are being computed: wait for it or cancel it")
        plane = self.plane_of(event.slice_node)
        self.last_slice_node = event.slice_node
        self.stroke = (plane, [self.pixel_of(plane, event)], not event.shift)
        return Reaction(consumed=True)

    def on_move(self, event):
        if self.stroke is not None:
            pixel = self.pixel_or_none(self.stroke[0], event)
            if pixel is not None and pixel != self.stroke[1][-1]:
                self.stroke[1].append(pixel)
            return Reaction(consumed=True)
        return self.hover(event)

    def on_release(self, event):
        stroke, self.stroke = self.stroke, None
        if stroke is None:
            return Reaction()
        plane, pixels, add = stroke
        if self.options.mode == "3d" and not self.logic.has_volume_labels():
            return self._compute_regions(lambda: self._take(plane, pixels, add))
        return self._take(plane, pixels, add)

    def _take(self, plane, pixels, add):
        result = self.edit(self.logic.drag, plane, pixels, add)
        if self.options.mode == "2d":
            self.labelled_plane = plane
        self._highlight(plane, pixels[-1])
        return Reaction(consumed=True, redraw=True, status=describe_edit(result))

    def hover(self, event):
        """Highlight the region under the cursor when regions exist (mouse moves never compute them)."""
        if self.busy:
            return Reaction()
        plane = self.plane_of(event.slice_node)
        if not self.has_regions(plane):
            return Reaction()
        pixel = self.pixel_or_none(plane, event)
        before = self.drawings.get(HOVER)
        if pixel is None:
            self.drawings.pop(HOVER, None)
        else:
            self._highlight(plane, pixel)
        changed = before is not self.drawings.get(HOVER)
        return Reaction(consumed=False, redraw=changed)

    def _highlight(self, plane, pixel):
        mask = self.logic.hover(plane, pixel)
        previous = self.drawings.get(HOVER)
        if previous is not None and _same_plane(previous[1], plane) and (previous[2] == mask).all():
            return  # same region: nothing to redraw
        self.drawings[HOVER] = ("plane", plane, mask)

    # --- overlays -------------------------------------------------------------------------------------------
    def _view_overlays(self, slice_node):
        shown = super()._view_overlays(slice_node)
        if self.options.show_boundaries:
            plane = self.plane_of(slice_node)
            if self.has_regions(plane):
                grid = view_planes.view_pixels(slice_node, self.segmentation_node())
                shown[BOUNDARIES] = view_planes.plane_mask_in_view(plane, self.logic.boundaries(plane), grid)
        return shown

    def plane_layers(self):
        plane, layers = super().plane_layers()
        if plane is not None and self.options.show_boundaries and self.has_regions(plane):
            layers = {BOUNDARIES: self.logic.boundaries(plane), **layers}
        return plane, layers


def _same_plane(first, second):
    import numpy as np
    return first.shape == second.shape and np.allclose(first.pixel_to_ras_matrix, second.pixel_to_ras_matrix)


def _copy_with_bridge(logic, bridge):
    import copy
    worker = copy.copy(logic)  # shares the supervoxel cache: the result lands where the live logic finds it
    worker.bridge = bridge
    return worker
