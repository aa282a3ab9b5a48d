"""The tool combinations of `mva eval annotate3d`, each driven by the simulated `Annotator` through the bridge.

Every combination is a function (case, session, **options) that performs interactions and records each one with
`session.record`; it ends when the session raises SessionOver. The tools never see the truth.
"""
import numpy as np

from MVABridgeLib.edit_backend import EditMode
from MVAEvaluationLib import baselines
from MVAEvaluationLib.annotate3d import MAX_CLICKS_PER_SLICE, SessionOver, timed
from MVAEvaluationLib.simulated_user import dab_mask

ORIENTATIONS = ("axial", "coronal", "sagittal")


def plane_along(case, axis, index):
    """The voxel slice `index` along array `axis` (0 = k, 1 = j, 2 = i)."""
    for orientation in ORIENTATIONS:
        if case.axis_of(orientation) == axis:
            return case.plane(orientation, index)
    raise ValueError(f"No anatomical orientation maps to array axis {axis}")


def axial_axis(case):
    return case.axis_of("axial")


def _with_slices(volume_mask, axis, masks, skip=()):
    """`volume_mask` with the slices of `masks` (index along `axis` -> 2D mask) replaced, except `skip`."""
    visible = np.moveaxis(np.array(volume_mask, bool), axis, 0)
    for index, mask in masks.items():
        if index not in skip:
            visible[index] = mask
    return np.moveaxis(visible, 0, axis)


class Stuck:
    """Ends the session when the annotator finds nothing new to do several times in a row."""

    def __init__(self, patience=3):
        self.patience = patience
        self.misses = 0

    def check(self, progressed):
        self.misses = 0 if progressed else self.misses + 1
        if self.misses >= self.patience:
            raise SessionOver()


# --- slice tools: what one click does on one slice --------------------------------------------------------------
class BrushSlices:
    """Smart Brush (2D preview per slice): a click is a dab; the slice's preview is written by Apply."""
    pending_apply = True

    def __init__(self, case, seed=0, **_):
        from SmartBrushLib.smart_brush_logic import BrushOptions, SmartBrushLogic
        self.case = case
        self.logic = SmartBrushLogic(case.bridge, BrushOptions(seed=seed))

    def click(self, plane, click):
        """One dab; returns what the user sees: the slice as Apply would leave it (the segment there plus the
        preview, minus the pending erase strokes and the brush's own earlier voxels it no longer predicts)."""
        preview = self.logic.add_stroke(plane, dab_mask(plane.shape, click.index), erase=not click.positive)
        segment = self.case.segment()
        key = (self.logic._plane_key(plane), self.case.segment_id)
        erased = self.logic.erase_strokes.get(key, (plane, np.zeros(plane.shape, bool)))[1]
        written = self.logic.written.get(key, np.zeros(plane.shape, bool))
        slice_2d = plane.sample(segment, self.case.ijk_to_ras, order=0) > 0
        outcome = (slice_2d & ~erased & ~(written & ~preview.mask_2d)) | preview.mask_2d
        covered, _ = plane.mask_to_volume(np.ones(plane.shape, bool), self.case.ijk_to_ras, segment.shape)
        selected, _ = plane.mask_to_volume(outcome, self.case.ijk_to_ras, segment.shape)
        return (segment & ~covered.full(segment.shape)) | selected.full(segment.shape)

    def finish(self):
        self.logic.apply()


class SamSlices:
    """Segment Anything point prompts; every click writes its mask."""
    pending_apply = False

    def __init__(self, case, model="tiny", checkpoint=None, **_):
        from SegmentAnythingLib.engine_factory import create_engine
        from SegmentAnythingLib.segment_anything_logic import SegmentAnythingLogic
        self.case = case
        self.logic = SegmentAnythingLogic(case.bridge, create_engine(model, checkpoint), model)

    def click(self, plane, click):
        self.logic.add_point(plane, click.index, positive=click.positive)
        return self.case.segment()

    def finish(self):
        pass


def annotate_slice(case, session, tool, plane, visible, first=False):
    """Clicks on one slice until the annotator is content with it (or moves on); returns the visible mask."""
    annotator = session.annotator
    for _ in range(MAX_CLICKS_PER_SLICE):
        if not first and annotator.slice_done(plane, visible):
            break
        first = False
        click = annotator.click(plane, visible)
        if click is None:
            break
        visible, seconds = timed(tool.click, plane, click)
        session.record("click" if click.positive else "negative click", seconds, visible,
                       pending=tool.pending_apply)
        if tool.pending_apply and session.left <= 1:
            break
    if tool.pending_apply:
        _, seconds = timed(tool.finish)
        visible = case.segment()
        session.record("apply", seconds, visible)
    return visible


def _propagate(case, session, logic, plane, annotated_planes):
    """Press Propagate (or Re-propagate from here), look at the preview, press Apply."""
    preview_call = logic.compute_preview
    axis = plane.aligned_axis
    if len(annotated_planes) > 1:  # a correction: "Re-propagate from here", not an interpolation between far slices
        preview_call = logic.repropagate_from
    session.need(2)
    preview, seconds = timed(preview_call, plane)
    visible = _with_slices(case.segment(), axis, preview.masks, preview.drawn)
    session.record("propagate", seconds, visible, pending=True)
    _, seconds = timed(logic.apply)
    visible = case.segment()
    session.record("apply", seconds, visible)
    return visible


def slice_tool_with_propagation(tool_class):
    """A combination: a slice tool on the first slice, Propagate, then fix the worst slice and re-propagate.

    Where the worst slice is one the object is not on (propagation ran past its end), the person tells Smart
    Propagation so ("end here": it takes back its own voxels there and beyond) instead of erasing slice by slice;
    where propagation went mostly wrong on a slice of the object, the person ends it there too, annotates that
    slice afresh and re-propagates from it. Re-propagation ("Re-propagate from here", which redoes the slices
    beyond it) starts only from slices the person got right. A slice the person clicked on to the limit without
    getting it right is given up: they go on to the worst of the other slices instead of coming back to it.
    """
    def run(case, session, **options):
        from SmartPropagationLib.propagation_corrections import end_here
        from SmartPropagationLib.smart_propagation_logic import PropagationOptions, SmartPropagationLogic
        tool = tool_class(case, **options)
        annotator = session.annotator
        axis = axial_axis(case)
        logic = SmartPropagationLogic(case.bridge, PropagationOptions(max_slices=case.truth.shape[axis]))
        annotated = set()
        plane = plane_along(case, axis, annotator.first_slice(axis))
        visible = annotate_slice(case, session, tool, plane, case.segment(), first=True)
        annotated.add(plane.slice_index)
        given_up = set() if annotator.slice_done(plane, visible) else {(axis, plane.slice_index)}
        visible = _propagate(case, session, logic, plane, annotated)
        stuck = Stuck()
        while True:
            target = annotator.slice_to_fix(visible, axes=(axis,), skip=given_up)
            if target is None:
                return
            plane = plane_along(case, axis, target[1])
            object_here = annotator.slice_truth(plane).any()
            if not object_here or annotator.slice_mostly_wrong(plane, visible):
                if not object_here:
                    plane = plane_along(case, axis, annotator.object_end(visible, axis, target[1]))
                result, seconds = timed(end_here, logic, plane)
                visible = case.segment()
                session.record("end here", seconds, visible)
                stuck.check(result.changed)
                if result.changed and not object_here:
                    continue
            visible = annotate_slice(case, session, tool, plane, visible)
            # Re-propagating from a slice still wrong spreads its errors: from a slice made better but still at 0.74
            # it cost 0.039 on the oblique CT effusion.
            if object_here and annotator.slice_done(plane, visible):
                annotated.add(plane.slice_index)
                visible = _propagate(case, session, logic, plane, annotated)
            elif object_here:
                given_up.add((axis, plane.slice_index))
    return run


# --- 3D tools: every click on the slice the annotator picks, in any orientation --------------------------------
def clicks_anywhere(case, session, on_click, after_click=None):
    """The 3D-tool loop: a click on the first slice, then on the slice of the largest 3D error (any orientation).

    `on_click(plane, click)` performs and records one interaction and returns the mask the user now sees;
    `after_click(visible, click)` (optional) may record a button press (Apply) and return the new visible mask.
    """
    annotator = session.annotator
    axis = axial_axis(case)
    plane = plane_along(case, axis, annotator.first_slice(axis))
    visible = case.segment()
    stuck = Stuck()
    while True:
        click = annotator.click(plane, visible)
        stuck.check(click is not None)
        if click is not None:
            visible = on_click(plane, click)
        if after_click is not None:
            visible = after_click(visible, click)
        target = annotator.slice_to_fix(visible, axes=(0, 1, 2))
        if target is None:
            return
        plane = plane_along(case, *target)


def brush3d(case, session, seed=0, **_):
    """Smart Brush in 3D: dabs on any slice update one 3D preview; Apply once the annotator is content."""
    from SmartBrushLib.volume_brush_logic import VolumeBrushLogic
    logic = VolumeBrushLogic(case.bridge, seed=seed)

    def dab(plane, click):
        preview, seconds = timed(logic.add_stroke, plane, dab_mask(plane.shape, click.index), erase=not click.positive)
        session.record("dab" if click.positive else "erase dab", seconds, preview.mask_kji, pending=True)
        return preview.mask_kji

    def apply_when_content(visible, click):
        if logic.preview is not None and (click is None or session.wants_apply(visible)):
            _, seconds = timed(logic.apply)
            session.record("apply", seconds, case.segment())
        return visible

    clicks_anywhere(case, session, dab, apply_when_content)


def regions(case, session, **_):
    """Smart Regions in 3D: each click adds (or, negative, removes) supervoxels; every click writes."""
    from SmartRegionsLib.smart_regions_logic import RegionsOptions, SmartRegionsLogic
    logic = SmartRegionsLogic(case.bridge, RegionsOptions(mode="3d"))
    logic.volume_labels()  # one-off cost, before the first click as in the effect

    def region_click(plane, click):
        _, seconds = timed(logic.click, plane, click.index, add=click.positive)
        visible = case.segment()
        session.record("click" if click.positive else "negative click", seconds, visible)
        return visible

    clicks_anywhere(case, session, region_click)


# --- Slicer's own ways -----------------------------------------------------------------------------------------------
def paint_fillbetween(case, session, **_):
    """Slicer's manual way: Paint strokes on a few slices, Fill between slices (auto-update), Apply.

    The person paints the largest slice and a slice near each end of the structure (10 % inside its extent),
    presses Fill between, then paints the worst slice (rule 6) while the fill preview updates.
    """
    annotator = session.annotator
    axis = axial_axis(case)
    painted = np.moveaxis(case.segment(), axis, 0).copy()
    truth_slices = np.flatnonzero(np.moveaxis(annotator.truth, axis, 0).any(axis=(1, 2)))
    low, high = int(truth_slices[0]), int(truth_slices[-1])
    inset = max(1, int(round(0.1 * (high - low))))
    # a structure on one or two slices has no slice 10 % inside its ends: the ends themselves
    first = [annotator.first_slice(axis), min(low + inset, high), max(high - inset, low)]
    filled = [False]

    def visible():
        if not filled[0]:
            return np.moveaxis(painted, 0, axis)
        return np.moveaxis(_fill(painted), 0, axis)

    def paint(index):
        plane = plane_along(case, axis, index)
        current = visible()
        for _ in range(MAX_CLICKS_PER_SLICE):
            if session.left <= 1 or annotator.slice_done(plane, np.moveaxis(painted, 0, axis)):
                break
            # the stroke is in the plane's pixels, which follow the view's orientation, not the array's
            shown = plane.sample(np.moveaxis(painted, 0, axis), case.ijk_to_ras, order=0) > 0
            stroke = annotator.stroke(plane, shown)
            if stroke is None:
                break
            mask, positive = stroke
            placed, _ = plane.mask_to_volume(mask, case.ijk_to_ras, case.truth.shape)
            voxels = np.moveaxis(placed.full(case.truth.shape), axis, 0)[index]
            painted[index] = painted[index] | voxels if positive else painted[index] & ~voxels
            current, seconds = timed(visible)
            session.record("stroke", seconds, current, pending=True)
        return current

    for index in dict.fromkeys(first):
        current = paint(index)
    if session.left > 1:
        filled[0] = True
        current, seconds = timed(visible)
        session.record("fill between", seconds, current, pending=True)
    stuck = Stuck()
    while not session.wants_apply(current):
        target = annotator.slice_to_fix(current, axes=(axis,))
        if target is None:
            break
        before = len(session.dice)
        current = paint(target[1])
        stuck.check(len(session.dice) > before)
    block = current
    _, seconds = timed(case.bridge.write_blocks, (0, 0, 0), add=block, remove=~block)
    session.record("apply", seconds, case.segment())


def _fill(painted):
    """Fill between slices on the painted slices, computed on their bounding box (with a margin) for speed."""
    where = np.argwhere(painted)
    if len(where) == 0:
        return painted.copy()
    low = np.maximum(where.min(0) - [0, 2, 2], 0)
    high = np.minimum(where.max(0) + [1, 3, 3], painted.shape)
    box = tuple(slice(a, b) for a, b in zip(low, high))
    out = np.zeros(painted.shape, bool)
    if (high - low).min() >= 1:
        out[box] = baselines.fill_between_slices(painted[box].astype(np.uint8)) > 0
    return out | painted


class IncrementalGrowCut:
    """One vtkImageGrowCutSegment kept across updates, as Slicer's effect keeps it: only the seeds change, so the
    filter continues from its previous state instead of starting over."""

    def __init__(self, image, spacing_kji):
        from vtk.util import numpy_support
        self.numpy_support = numpy_support
        self.grower = baselines._slicer().vtkImageGrowCutSegment()
        self.grower.SetIntensityVolume(baselines._to_vtk(image, spacing_kji))
        self.grower.SetDistancePenalty(0.0)
        self.spacing_kji = spacing_kji
        self.seed_image = None

    def update(self, seeds):
        if len(np.unique(seeds[seeds != 0])) < 2:
            return seeds
        if self.seed_image is None:
            self.seed_image = baselines._to_vtk(seeds.astype(np.uint8), self.spacing_kji)
            self.grower.SetSeedLabelVolume(self.seed_image)
        else:
            target = self.numpy_support.vtk_to_numpy(self.seed_image.GetPointData().GetScalars())
            target[:] = seeds.astype(np.uint8).ravel()
            self.seed_image.Modified()
        self.grower.Update()
        return baselines._from_vtk(self.grower.GetOutput())


def growcut3d(case, session, **_):
    """Slicer's Grow from seeds in 3D on an ROI the person draws around the structure (one interaction).

    The ROI's border is the background seed; dabs (rule 5) on the slices the annotator visits add seeds of
    their label; the preview updates after each dab; Apply at the end.
    """
    annotator = session.annotator
    roi = annotator.roi()
    box = tuple(slice(a, b) for a, b in roi)
    volume = case.bridge.work_volume()
    image = volume.array[box]
    seeds = np.zeros(image.shape, np.uint8)
    for axis in range(3):
        for end in (0, -1):
            index = [slice(None)] * 3
            index[axis] = end
            seeds[tuple(index)] = baselines.BACKGROUND_SEED
    full = np.zeros(case.truth.shape, bool)
    grower = IncrementalGrowCut(image, volume.spacing_kji)
    session.record("roi", 0.0, full, pending=True)

    def dab(plane, click):
        placed, _ = plane.mask_to_volume(dab_mask(plane.shape, click.index), case.ijk_to_ras, full.shape)
        seeds[placed.full(full.shape)[box]] = baselines.FOREGROUND_SEED if click.positive else baselines.BACKGROUND_SEED
        grown, seconds = timed(grower.update, seeds)
        visible = full.copy()
        visible[box] = grown == baselines.FOREGROUND_SEED
        session.record("dab", seconds, visible, pending=True)
        return visible

    def apply_when_content(visible, click):
        if click is None or session.wants_apply(visible):
            _, seconds = timed(case.bridge.write_blocks, (0, 0, 0), add=visible, remove=~visible)
            session.record("apply", seconds, case.segment())
        return visible

    clicks_anywhere(case, session, dab, apply_when_content)


COMBINATIONS = {
    "brush3d": brush3d,
    "brush+propagate": slice_tool_with_propagation(BrushSlices),
    "regions": regions,
    "sam+propagate": slice_tool_with_propagation(SamSlices),
    "paint+fillbetween": paint_fillbetween,
    "growcut3d": growcut3d,
}
BASELINES = ("paint+fillbetween", "growcut3d")
