"""Volume and segment round trips through the bridge on a real slicer-core scene."""
import numpy as np
import pytest
from conftest import GEOMETRIES, add_segmentation, ijk_to_ras_matrix, rotation

from MVABridgeLib.image_data import index_to_ras, oriented_image_from_array
from MVABridgeLib.segments import replace_segment_from_mask, segment_mask_in_volume
from MVABridgeLib.volumes import add_volume_node, volume_array


@pytest.mark.parametrize("geometry", sorted(GEOMETRIES))
def test_volume_round_trip_keeps_voxels_and_geometry(headless, random_volume, geometry):
    node = add_volume_node(headless.scene, random_volume, GEOMETRIES[geometry])
    array, ijk_to_ras = volume_array(node)
    assert np.array_equal(array, random_volume)
    assert np.allclose(ijk_to_ras, GEOMETRIES[geometry])


@pytest.mark.parametrize("geometry", sorted(GEOMETRIES))
def test_segment_round_trip_is_voxel_exact(headless, random_volume, geometry):
    node = add_volume_node(headless.scene, random_volume, GEOMETRIES[geometry])
    segmentation, (segment_id,) = add_segmentation(headless, node)
    mask = (random_volume > 200).astype(np.uint8)
    replace_segment_from_mask(segmentation, segment_id, mask, GEOMETRIES[geometry])
    assert np.array_equal(segment_mask_in_volume(segmentation, segment_id, node), mask)


def reference_volume(headless, kind, volume_matrix, shape_kji):
    """A second volume whose grid the segmentation uses as reference geometry."""
    if kind == "larger_offset_extent":
        matrix = volume_matrix.copy()
        matrix[:3, 3] -= volume_matrix[:3, :3] @ np.array([3, 2, 1])
        shape = tuple(s + 5 for s in shape_kji)
    elif kind == "axes_permuted":
        matrix = np.eye(4)
        matrix[:3, :3] = volume_matrix[:3, :3][:, [1, 0, 2]]
        matrix[:3, 3] = volume_matrix[:3, 3]
        shape = (shape_kji[0], shape_kji[2], shape_kji[1])
    else:  # finer: every volume voxel is 2x2x2 reference voxels
        matrix = volume_matrix.copy()
        matrix[:3, :3] /= 2
        matrix[:3, 3] -= volume_matrix[:3, :3] @ np.array([0.25, 0.25, 0.25])
        shape = tuple(2 * s for s in shape_kji)
    return add_volume_node(headless.scene, np.zeros(shape, np.int16), matrix, "Reference")


@pytest.mark.parametrize("kind", ["larger_offset_extent", "axes_permuted", "finer"])
def test_segment_in_volume_grid_when_reference_geometry_differs(headless, random_volume, kind):
    matrix = GEOMETRIES["lps_anisotropic"]
    node = add_volume_node(headless.scene, random_volume, matrix)
    reference = reference_volume(headless, kind, matrix, random_volume.shape)
    segmentation, (segment_id,) = add_segmentation(headless, node, reference_node=reference)
    mask = np.zeros(random_volume.shape, np.uint8)
    mask[2:6, 3:9, 4:12] = 1
    mask[7, 1, 1] = 1
    replace_segment_from_mask(segmentation, segment_id, mask, matrix)
    assert np.array_equal(segment_mask_in_volume(segmentation, segment_id, node), mask)


def test_index_to_ras_folds_in_an_extent_that_does_not_start_at_zero():
    matrix = ijk_to_ras_matrix((0.5, 0.8, 2.0), (1, 2, 3), rotation(1, 15))
    block = np.ones((2, 3, 4), np.uint8)
    image = oriented_image_from_array(block, matrix, extent_start_ijk=(4, 3, 2))
    assert image.GetExtent() == (4, 7, 3, 5, 2, 3)
    first_voxel_ras = index_to_ras(image) @ np.array([0, 0, 0, 1.0])
    assert np.allclose(first_voxel_ras, matrix @ np.array([4, 3, 2, 1.0]))
