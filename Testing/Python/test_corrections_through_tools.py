"""Corrections go through the tool that wrote the voxels: propagation's "end here", a brush plane with erase
strokes only, and the annotator's choice of where the object ends."""
import numpy as np
import pytest
from conftest import GEOMETRIES, add_segmentation

from MVABridgeLib.editor_session import SegmentEditorSession
from MVABridgeLib.errors import NothingToApplyError
from MVABridgeLib.segments import replace_segment_from_mask, segment_mask_in_volume
from MVABridgeLib.slice_geometry import SlicePlane
from MVABridgeLib.volumes import add_volume_node
from MVAEvaluationLib.simulated_user import dab_mask
from SmartBrushLib.smart_brush_logic import SmartBrushLogic
from SmartPropagationLib.propagation_corrections import end_here
from SmartPropagationLib.smart_propagation_logic import PropagationOptions, SmartPropagationLogic

MATRIX = GEOMETRIES["lps_anisotropic"]


@pytest.fixture
def cylinder_case(headless):
    """A bright cylinder along k over slices 4..15 of 20, with a dim tail of the same cross-section beyond it
    (slices 16..19) that propagation runs into."""
    k, j, i = np.mgrid[0:20, 0:32, 0:32]
    disc = (j - 16) ** 2 + (i - 16) ** 2 < 8 ** 2
    inside = disc & (k >= 4) & (k < 16)
    tail = disc & (k >= 16)
    rng = np.random.default_rng(2)
    image = (np.where(inside, 200, np.where(tail, 190, 30)) + rng.normal(0, 5, disc.shape)).astype(np.int16)
    volume = add_volume_node(headless.scene, image, MATRIX)
    segmentation, (segment_id,) = add_segmentation(headless, volume, ("Cylinder",))
    session = SegmentEditorSession(volume, segmentation, segment_id, headless.scene)
    return session, volume, segmentation, segment_id, inside


def segment(case):
    session, volume, segmentation, segment_id, _ = case
    return segment_mask_in_volume(segmentation, segment_id, volume).astype(bool)


def test_end_here_takes_back_propagation_beyond_the_slice_and_keeps_the_drawing_in_one_undo_step(cylinder_case):
    session, volume, segmentation, segment_id, inside = cylinder_case
    seed = np.zeros_like(inside)
    seed[10] = inside[10]
    replace_segment_from_mask(segmentation, segment_id, seed, MATRIX)
    logic = SmartPropagationLogic(session.bridge, PropagationOptions(strategy="copy", max_slices=20))
    plane = SlicePlane.for_anatomical_axis("axial", 10, MATRIX, inside.shape)
    with pytest.raises(NothingToApplyError):
        end_here(logic, plane)  # nothing propagated yet
    logic.compute_preview(plane)
    logic.apply()
    propagated = segment(cylinder_case)
    assert propagated[17].any() and propagated[2].any()  # copy runs past both ends
    user_dab = np.zeros_like(inside)
    user_dab[18, 1:4, 1:4] = True  # the user's own paint beyond the end (outside the propagated disc) stays
    session.bridge.write_blocks((0, 0, 0), add=user_dab)
    result = end_here(logic, SlicePlane.for_anatomical_axis("axial", 16, MATRIX, inside.shape))
    after = segment(cylinder_case)
    assert result.removed > 0 and result.added == 0
    assert not (after[16:] & ~user_dab[16:]).any() and after[18, 1:4, 1:4].all()
    assert np.array_equal(after[:16], propagated[:16])  # the seed side is untouched
    session.undo()
    assert np.array_equal(segment(cylinder_case), propagated | user_dab)


def test_a_plane_with_erase_strokes_only_previews_nothing_the_segment_lacks_there(cylinder_case):
    session, volume, segmentation, segment_id, inside = cylinder_case
    brush = SmartBrushLogic(session.bridge)
    first = SlicePlane.for_anatomical_axis("axial", 10, MATRIX, inside.shape)
    brush.add_stroke(first, dab_mask(first.shape, (16, 16)))
    brush.add_stroke(first, dab_mask(first.shape, (3, 3)), erase=True)
    brush.apply()
    other = SlicePlane.for_anatomical_axis("axial", 8, MATRIX, inside.shape)  # the disc is there, not in the segment
    before = segment(cylinder_case)
    preview = brush.add_stroke(other, dab_mask(other.shape, (2, 2)), erase=True)
    assert not preview.mask_2d.any()  # the classifier knows the disc, but an erase stroke adds nothing
    brush.apply()
    assert not (segment(cylinder_case) & ~before).any()


def test_the_object_ends_at_the_first_slice_past_it_that_the_mask_still_covers():
    from MVAEvaluationLib.annotate3d import Annotator

    class _Case:
        truth = np.zeros((20, 4, 4), bool)
        truth[5:12] = True

    annotator = Annotator(_Case())
    visible = np.zeros((20, 4, 4), bool)
    visible[3:18] = True  # propagation ran 2 slices past the start and 6 past the end
    assert annotator.object_end(visible, 0, 17) == 12
    assert annotator.object_end(visible, 0, 3) == 4
    visible[14] = False  # a gap: the nearest covered run from the wrong slice
    assert annotator.object_end(visible, 0, 17) == 15


def test_a_propagated_slice_counts_as_mostly_wrong_when_less_than_half_of_it_is_the_structure(headless):
    from MVAEvaluationLib.annotate3d import Annotator

    class _Case:
        ijk_to_ras = np.eye(4)
        truth = np.zeros((4, 10, 10), bool)
        truth[:, :5, :5] = True

    annotator = Annotator(_Case())
    plane = SlicePlane.for_anatomical_axis("axial", 2, _Case.ijk_to_ras, _Case.truth.shape)
    shown = np.zeros_like(_Case.truth)
    shown[2, :5, :6] = True  # 25 of 30 right
    assert not annotator.slice_mostly_wrong(plane, shown)
    shown[2, :, :] = True  # 25 of 100 right
    assert annotator.slice_mostly_wrong(plane, shown)
    assert not annotator.slice_mostly_wrong(plane, np.zeros_like(shown))  # nothing shown: nothing wrong to end
