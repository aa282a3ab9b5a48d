"""Property-based tests of the edit contract (MVABridgeLib/edit_backend.py) on a real scene and editor logic.

Random grids (aligned, LPS, oblique, anisotropic) with segments written beforehand by a plain write, then random
sequences of tool actions (Smart Brush apply / erase, Smart Regions add / remove clicks, Smart Propagation,
Segment Anything points and new objects) mixed with the user's own paint. After each action, judged from the
inputs only (never from what a tool reports):
- every voxel the user wrote survives unless the user marked it "not this" (erase strokes, remove-clicks);
- the other segment changes only where the action added voxels to the selected one;
- one undo restores both segments exactly, and redo brings the action back;
- an action made to fail at its first or second write changes nothing.
"""
import numpy as np
import pytest
from conftest import GEOMETRIES, add_segmentation
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from MVABridgeLib.editor_session import SegmentEditorSession
from MVABridgeLib.headless_scene import create_headless_scene
from MVABridgeLib.segments import replace_segment_from_mask, segment_mask_in_volume
from MVABridgeLib.slice_geometry import SlicePlane
from MVABridgeLib.volumes import add_volume_node
from MVAEvaluationLib.simulated_user import dab_mask
from SegmentAnythingLib.algorithms.sam_engine import SamEngine
from SegmentAnythingLib.algorithms.sam_models import build_tiny_sam
from SegmentAnythingLib.segment_anything_logic import SegmentAnythingLogic
from SmartBrushLib.smart_brush_logic import SmartBrushLogic
from SmartPropagationLib.algorithms.propagation_errors import EmptySeedMaskError
from SmartPropagationLib.propagation_options import PropagationOptions
from SmartPropagationLib.smart_propagation_logic import SmartPropagationLogic
from SmartRegionsLib.regions_options import RegionsOptions
from SmartRegionsLib.smart_regions_logic import SmartRegionsLogic

ORIENTATIONS = ("axial", "coronal", "sagittal")
ACTIONS = ("brush", "brush_erase", "brush_3d", "regions_add", "regions_remove", "propagate", "sam_point", "sam_new_object",
           "user_paint", "user_erase")


class InjectedFailure(RuntimeError):
    """Raised by the backend at a chosen write, as a crash in Slicer's logic would be."""


@pytest.fixture(scope="module")
def scene():
    headless = create_headless_scene()
    yield headless
    headless.clear()


@pytest.fixture(scope="module")
def engine():
    return SamEngine(build_tiny_sam(seed=0))


def blobs(rng, shape, count, radius):
    """A bool volume of `count` random balls (radius in voxels)."""
    k, j, i = np.indices(shape)
    out = np.zeros(shape, bool)
    for _ in range(count):
        centre = [rng.integers(0, n) for n in shape]
        out |= (k - centre[0]) ** 2 + (j - centre[1]) ** 2 + (i - centre[2]) ** 2 <= radius ** 2
    return out


class Case:
    """A volume with two objects, segments A (selected) and B written by a plain write, and the four tools."""

    def __init__(self, headless, engine, rng, shape, geometry):
        self.rng = rng
        self.matrix = GEOMETRIES[geometry]
        objects = blobs(rng, shape, 2, max(2, min(shape) // 3))
        image = np.where(objects, 300, 20) + rng.normal(0, 10, shape)
        self.volume = add_volume_node(headless.scene, image.astype(np.int16), self.matrix, "Volume")
        self.segmentation, (self.a, self.b) = add_segmentation(headless, self.volume, ("A", "B"))
        drawn_a = blobs(rng, shape, 2, 2)
        drawn_b = blobs(rng, shape, 2, 2) & ~drawn_a
        replace_segment_from_mask(self.segmentation, self.a, drawn_a, self.matrix)
        replace_segment_from_mask(self.segmentation, self.b, drawn_b, self.matrix)
        self.session = SegmentEditorSession(self.volume, self.segmentation, self.a, headless.scene)
        self.user_drawn = drawn_a.copy()  # voxels the user wrote into A (must survive unless marked)
        bridge = self.session.bridge
        self.brush = SmartBrushLogic(bridge)
        self.regions = SmartRegionsLogic(bridge, RegionsOptions(region_size_mm=4.0))
        self.pending_erase = {}  # brush plane key -> voxels of erase strokes not applied yet (what Apply erases)
        self.propagation = SmartPropagationLogic(bridge, PropagationOptions(strategy="registration", max_slices=4))
        self.sam = SegmentAnythingLogic(bridge, engine, "tiny", window_level=(400.0, 150.0))

    def state(self):
        return (segment_mask_in_volume(self.segmentation, self.a, self.volume).astype(bool),
                segment_mask_in_volume(self.segmentation, self.b, self.volume).astype(bool))

    def plane(self):
        orientation = ORIENTATIONS[self.rng.integers(0, 3)]
        probe = SlicePlane.for_anatomical_axis(orientation, 0, self.matrix, self.shape)
        count = self.shape[probe.aligned_axis]
        return SlicePlane.for_anatomical_axis(orientation, int(self.rng.integers(0, count)), self.matrix, self.shape)

    @property
    def shape(self):
        return self.volume.GetImageData().GetDimensions()[::-1]

    def pixel(self, plane):
        return int(self.rng.integers(0, plane.shape[0])), int(self.rng.integers(0, plane.shape[1]))

    def plane_voxels(self, plane, mask_2d):
        selected, _ = plane.mask_to_volume(mask_2d, self.matrix, self.shape)
        return selected.full(self.shape)

    def run(self, action):
        """Run one action; returns the voxels of A the user marked "not this" by it."""
        marked = np.zeros(self.shape, bool)
        plane = self.plane()
        if action in ("brush", "brush_erase"):
            stroke = dab_mask(plane.shape, self.pixel(plane), radius=2)
            key = (plane.pixel_to_ras_matrix.round(6).tobytes(), plane.shape)
            voxels = self.plane_voxels(plane, stroke)
            pending = self.pending_erase.get(key, np.zeros(self.shape, bool))
            pending = pending | voxels if action == "brush_erase" else pending & ~voxels
            self.pending_erase[key] = pending
            self.brush.add_stroke(plane, stroke, erase=action == "brush_erase")
            self.brush.apply()
            marked |= self.pending_erase.pop(key)
        elif action == "brush_3d":
            if not self.brush.painted_box:
                return marked
            plane = self.brush.preview.plane if self.brush.preview is not None else plane
            try:
                patch = self.brush.predict_volume(plane)
            except ValueError:
                return marked  # nothing painted in this orientation: refused
            for pending in self.pending_erase.values():
                marked |= pending
            self.brush.apply_volume(patch)
            self.pending_erase.clear()
        elif action in ("regions_add", "regions_remove"):
            pixel = self.pixel(plane)
            if action == "regions_remove":
                index = np.round(plane.pixel_to_index_kji([pixel], self.matrix)[0]).astype(int)
                labels = self.regions.volume_labels()
                label = labels[tuple(np.clip(index, 0, np.array(self.shape) - 1))]
                marked |= (labels == label) & (label > 0)
            self.regions.click(plane, pixel, add=action == "regions_add")
        elif action == "propagate":
            try:
                self.propagation.compute_preview(plane)
            except EmptySeedMaskError:
                return marked  # an empty seed slice: refused, nothing to write
            self.propagation.apply()
        elif action == "sam_point":
            self.sam.add_point(plane, self.pixel(plane), positive=bool(self.rng.integers(0, 2)))
        elif action == "sam_new_object":
            self.sam.reset()
            self.sam.add_point(plane, self.pixel(plane), positive=True)
        elif action == "user_paint":
            self.session.bridge.apply_slice_mask(plane, dab_mask(plane.shape, self.pixel(plane), radius=2), "add")
        elif action == "user_erase":
            erase = dab_mask(plane.shape, self.pixel(plane), radius=2)
            self.session.bridge.apply_slice_mask(plane, erase, "remove")
            marked |= self.plane_voxels(plane, erase)
        return marked


def fail_at_write(case, number):
    """Make the backend's `number`-th modify call of the next action raise InjectedFailure."""
    backend = case.session.bridge.backend
    original = backend.modify
    calls = []

    def modify(*args, **kwargs):
        calls.append(1)
        if len(calls) == number:
            raise InjectedFailure(f"write {number} failed")
        return original(*args, **kwargs)
    backend.modify = modify
    return lambda: setattr(backend, "modify", original)


@settings(max_examples=80, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(seed=st.integers(0, 2 ** 16), geometry=st.sampled_from(sorted(GEOMETRIES)),
       shape=st.tuples(st.integers(6, 48), st.integers(8, 48), st.integers(8, 48)),
       actions=st.lists(st.tuples(st.sampled_from(ACTIONS), st.sampled_from(["ok", "ok", "undo", "fail1", "fail2"])),
                        min_size=1, max_size=5))
def test_tool_actions_keep_every_voxel_they_did_not_decide_about(scene, engine, seed, geometry, shape, actions):
    scene.clear()
    case = Case(scene, engine, np.random.default_rng(seed), shape, geometry)
    protected = case.user_drawn.copy()
    for action, twist in actions:
        before_a, before_b = case.state()
        restore = fail_at_write(case, int(twist[-1])) if twist.startswith("fail") else (lambda: None)
        try:
            marked = case.run(action)
        except InjectedFailure:
            after_a, after_b = case.state()
            assert np.array_equal(after_a, before_a) and np.array_equal(after_b, before_b), action
            continue
        finally:
            restore()
        after_a, after_b = case.state()  # (an action with fewer writes than the failing one is judged as normal)
        if action == "user_paint":
            protected |= after_a & ~before_a
        protected &= ~marked
        lost = protected & ~after_a
        assert not lost.any(), f"{action} removed {int(lost.sum())} voxels the user drew"
        assert not (after_b & ~before_b).any(), f"{action} added to the other segment"
        assert not ((before_b & ~after_b) & ~(after_a & ~before_a)).any(), \
            f"{action} removed voxels of the other segment where it added nothing"
        changed = not (np.array_equal(after_a, before_a) and np.array_equal(after_b, before_b))
        if changed and twist == "undo" and not action.startswith("user"):
            assert case.session.undo()
            undone = case.state()
            assert np.array_equal(undone[0], before_a) and np.array_equal(undone[1], before_b), action
            assert case.session.redo()
            redone = case.state()
            assert np.array_equal(redone[0], after_a) and np.array_equal(redone[1], after_b), action
