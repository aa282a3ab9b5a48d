"""Smart Regions: a positive click on a thin rim of missed tissue next to the segment adds only the rim near it."""
import numpy as np
import pytest
from conftest import GEOMETRIES, add_segmentation
from scipy import ndimage

from MVABridgeLib.editor_session import SegmentEditorSession
from MVABridgeLib.segments import segment_mask_in_volume
from MVABridgeLib.slice_geometry import SlicePlane
from MVABridgeLib.volumes import add_volume_node
from SmartRegionsLib.smart_regions_logic import RIM_REACH, RegionsOptions, SmartRegionsLogic

PAINTED = (slice(None), slice(10, 30), slice(10, 30))  # drawn by hand inside the tissue


@pytest.fixture
def painted_tissue(headless):
    """One homogeneous tissue (1 mm voxels) in a dark background, part of it painted into the segment by hand."""
    image = np.full((10, 40, 60), 10, np.int16)
    image[:, 5:35, 5:55] = 100
    image += np.random.default_rng(0).normal(0, 2, image.shape).astype(np.int16)
    matrix = GEOMETRIES["identity"]
    volume = add_volume_node(headless.scene, image, matrix)
    segmentation, (segment_id,) = add_segmentation(headless, volume)
    session = SegmentEditorSession(volume, segmentation, segment_id, headless.scene)
    painted = np.zeros(image.shape, bool)
    painted[PAINTED] = True
    session.bridge.write_blocks((0, 0, 0), add=painted)
    logic = SmartRegionsLogic(session.bridge, RegionsOptions(region_size_mm=6.0))
    plane = SlicePlane.for_anatomical_axis("axial", 5, matrix, image.shape)

    def mask():
        return segment_mask_in_volume(segmentation, segment_id, volume).astype(bool)

    def click(index_kji):
        pixel, _ = plane.index_kji_to_pixel([index_kji], matrix)
        logic.click(plane, tuple(np.round(pixel[0]).astype(int)), add=True)
        return mask()
    return painted, mask, click, session


def test_a_click_beside_the_segment_adds_only_voxels_near_it_and_connected_to_it(painted_tissue):
    painted, mask, click, session = painted_tissue
    assert np.array_equal(mask(), painted)
    index = (5, 20, 30)  # 1 mm beside the painted edge (its last column is 29)
    after = click(index)
    added = after & ~painted
    assert after[painted].all()  # a positive click removes nothing
    assert after[index] and 0 < added.sum()
    grid = np.indices(after.shape)
    distance = np.sqrt(sum((g - v) ** 2 for g, v in zip(grid, index)))
    assert distance[added].max() <= RIM_REACH * 1.0  # within the reach of a 1 mm deep rim
    pieces, _ = ndimage.label(added)
    assert np.unique(pieces[added]).tolist() == [pieces[index]]  # one piece, the one holding the click
    session.undo()
    assert np.array_equal(mask(), painted)  # one undo step


def test_a_click_well_inside_the_missed_tissue_still_takes_its_regions_whole(painted_tissue):
    painted, mask, click, _ = painted_tissue
    after = click((5, 20, 45))  # 16 mm from the segment: not a rim
    added = after & ~painted
    assert after[painted].all()
    assert added.sum() > 10 * (4 / 3 * np.pi * RIM_REACH ** 3)  # far more than a rim's ball
    assert added[5, 20, 31:50].all()  # it reaches the segment across the missed tissue



def test_a_click_on_the_segment_itself_takes_its_regions_whole(painted_tissue):
    """A click on voxels already in the segment points at no missed rim: the regions it lands in are added as they
    are (the way to take the tissue beyond a drawn patch, in 3D too), not a few voxels around the click."""
    painted, mask, click, _ = painted_tissue
    after = click((5, 20, 20))  # in the middle of the painted patch
    added = after & ~painted
    assert after[painted].all()
    assert added.sum() > 10 * (4 / 3 * np.pi * RIM_REACH ** 3)

def test_the_near_part_is_the_connected_piece_within_reach_in_millimetres():
    from SmartRegionsLib.algorithms.region_corrections import near_part
    taken = np.ones((5, 20, 20), bool)
    taken[:, :, 12] = False  # a wall: the piece beyond it is near but not connected
    kept = near_part(taken, (2, 10, 10), (2.0, 1.0, 1.0), 3.0)
    assert kept[2, 10, 7:12].all() and not kept[2, 10, 6] and not kept[:, :, 12:].any()
    assert kept[:, 10, 10].tolist() == [False, True, True, True, False]  # 2 mm slices: the next one only
    assert near_part(taken, (2, 10, 12), (2.0, 1.0, 1.0), 3.0) is None  # the voxel itself is not taken
