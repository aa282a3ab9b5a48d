"""Geometry end to end with an oracle predictor: a click at a RAS point in any view segments exactly the
expected voxels of an LPS, anisotropic volume."""
import numpy as np
import pytest
from conftest import GEOMETRIES, add_segmentation, rotation
from skimage.segmentation import flood

from MVABridgeLib.editor_session import SegmentEditorSession
from MVABridgeLib.segments import segment_mask_in_volume
from MVABridgeLib.slice_geometry import SlicePlane, slice_to_ras_for
from MVABridgeLib.volumes import add_volume_node
from SegmentAnythingLib.segment_anything_logic import SegmentAnythingLogic

MATRIX = GEOMETRIES["lps_anisotropic"]


class OraclePrediction:
    def __init__(self, mask):
        self._mask = mask
        self.scores = np.array([1.0, 0.5, 0.25], np.float32)

    def __len__(self):
        return 3

    def mask(self, index=0):
        return self._mask if index == 0 else np.zeros_like(self._mask)

    def lowres(self, index=0):
        return np.zeros((4, 4), np.float32)


class OracleEngine:
    """Same interface as SamEngine.predict: the mask is the flood fill of the clicked pixel's grey level."""

    def __init__(self):
        self.points = []

    def predict(self, key, points_xy=None, labels=None, box_xyxy=None, *, previous_logits=None, image=None):
        rgb = image()
        x, y = (int(round(v)) for v in points_xy[-1])
        self.points.append((y, x))
        return OraclePrediction(flood(rgb[..., 0], (y, x)))


@pytest.fixture
def block_volume(headless):
    image = np.zeros((14, 30, 26), np.int16)
    image[3:11, 8:20, 6:17] = 500  # the object: a block of known voxels
    volume = add_volume_node(headless.scene, image, MATRIX)
    segmentation, (segment_id,) = add_segmentation(headless, volume)
    session = SegmentEditorSession(volume, segmentation, segment_id, headless.scene)
    logic = SegmentAnythingLogic(session.bridge, OracleEngine(), "oracle", window_level=(1000.0, 250.0))
    return image, volume, segmentation, segment_id, logic


def view(orientation, point_ras):
    if orientation != "oblique":
        return slice_to_ras_for(orientation, point_ras)
    matrix = slice_to_ras_for("axial", point_ras)
    matrix[:3, :3] = rotation(0, 30) @ rotation(1, 20) @ matrix[:3, :3]
    return matrix


@pytest.mark.parametrize("orientation", ["axial", "coronal", "sagittal", "oblique"])
def test_click_at_a_ras_point_segments_the_expected_voxels(block_volume, orientation):
    image, volume, segmentation, segment_id, logic = block_volume
    point_ras = (MATRIX @ np.array([11.0, 13.0, 6.0, 1.0]))[:3]  # voxel (i, j, k) = (11, 13, 6), inside
    plane = SlicePlane.voxel_aligned(view(orientation, point_ras), MATRIX, image.shape)
    pixel, distance = plane.ras_to_pixel([point_ras])
    assert abs(distance[0]) < 1e-6 or plane.is_voxel_aligned
    logic.add_point(plane, tuple(pixel[0]))
    written = segment_mask_in_volume(segmentation, segment_id, volume).astype(bool)
    clicked = tuple(int(round(v)) for v in pixel[0])
    assert logic.engine.points[-1] == clicked  # the model saw the click where the RAS point is
    expected_2d = flood(logic.slice_image(plane)[..., 0], clicked)
    expected, _ = plane.mask_to_volume(expected_2d, MATRIX, image.shape)
    assert written.sum() > 0 and np.array_equal(written, expected.full(image.shape))
    assert written[6, 13, 11]
    outside = (written & (image == 0)).sum() / written.sum()
    assert outside == 0 if plane.is_voxel_aligned else outside < 0.1
    if plane.is_voxel_aligned:
        axis_slices = np.flatnonzero(written.any(axis=tuple(a for a in range(3) if a != plane.aligned_axis)))
        assert list(axis_slices) == [[6, 13, 11][plane.aligned_axis]]
