"""Fuzz suite, bridge and node inputs: each bad volume node, array or matrix is refused with its own error class
before VTK or Slicer computes on it, and the segments, the undo history and the scene stay as they were."""
import numpy as np
import pytest
import vtk
from fuzz_support import MATRIX, SHAPE_KJI, Work, disc_image

from MVABridgeLib.errors import (IntensityRangeError, InvalidGeometryError, InvalidMaskError, InvalidVolumeError,
                                 VectorVolumeError)
from MVABridgeLib.image_data import oriented_image_from_array
from MVABridgeLib.slice_geometry import VoxelPatch
from MVABridgeLib.volumes import add_volume_node, check_source_array


@pytest.fixture
def work(headless):
    return Work(headless)


def a_block():
    block = np.zeros(SHAPE_KJI, bool)
    block[1:7, 2:20, 2:20] = True
    return block


def refuse_write(work, error_class, match=None):
    """A plain write over most of the volume raises `error_class` and changes nothing."""
    before = work.snapshot()
    with pytest.raises(error_class, match=match) as raised:
        work.bridge.write_blocks((0, 0, 0), add=a_block(), remove=~a_block())
    assert type(raised.value) is error_class
    work.assert_unchanged(before)


def rereference(work):
    """The user picks the (now broken) volume again as the segmentation's geometry: what aborted Slicer."""
    work.segmentation.SetReferenceImageGeometryParameterFromVolumeNode(work.volume)


# --- geometry of the source node ------------------------------------------------------------------------------
def test_zero_spacing_node_as_reference_geometry_is_refused_instead_of_aborting(work):
    work.volume.SetSpacing(0.0, 1.0, 1.0)
    rereference(work)
    refuse_write(work, InvalidGeometryError, "spacing")


def test_negative_spacing_node_is_refused(work):
    work.volume.SetSpacing(-1.0, 1.0, 1.0)
    refuse_write(work, InvalidGeometryError, "positive")


def test_nan_spacing_node_is_refused(work):
    work.volume.SetSpacing(float("nan"), 1.0, 1.0)
    refuse_write(work, InvalidGeometryError, "spacing")


def test_infinite_origin_node_is_refused(work):
    work.volume.SetOrigin(float("inf"), 0.0, 0.0)
    refuse_write(work, InvalidGeometryError, "infinite")


def test_nanometre_spacing_node_is_refused_naming_the_unit(work):
    work.volume.SetSpacing(1e-9, 1e-9, 1e-9)
    rereference(work)
    refuse_write(work, InvalidGeometryError, "millimetres")


def test_kilometre_spacing_node_is_refused(work):
    work.volume.SetSpacing(1e7, 1.0, 1.0)
    refuse_write(work, InvalidGeometryError, "millimetres")


def test_parallel_direction_axes_node_is_refused(work):
    directions = vtk.vtkMatrix4x4()
    for row, values in enumerate(([1, 1, 0], [0, 0, 0], [0, 0, 1])):
        for column, value in enumerate(values):
            directions.SetElement(row, column, value)
    work.volume.SetIJKToRASDirectionMatrix(directions)
    refuse_write(work, InvalidGeometryError, "parallel")


# --- content of the source node ---------------------------------------------------------------------------------
def test_rgb_vector_volume_node_is_refused_not_reduced_to_its_first_channel(work):
    rgb = work.headless.scene.AddNewNodeByClass("vtkMRMLVectorVolumeNode", "RGB")
    image = vtk.vtkImageData()
    image.SetDimensions(SHAPE_KJI[2], SHAPE_KJI[1], SHAPE_KJI[0])
    image.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 3)
    rgb.SetAndObserveImageData(image)
    work.session.logic.SetSourceVolumeNode(rgb)
    refuse_write(work, VectorVolumeError, "3 components")


def test_scalar_node_holding_three_components_is_refused(work):
    image = vtk.vtkImageData()
    image.SetDimensions(SHAPE_KJI[2], SHAPE_KJI[1], SHAPE_KJI[0])
    image.AllocateScalars(vtk.VTK_SHORT, 3)
    work.volume.SetAndObserveImageData(image)
    refuse_write(work, VectorVolumeError, "RGB/vector")


def test_node_without_image_data_is_refused(work):
    work.volume.SetAndObserveImageData(None)
    refuse_write(work, InvalidVolumeError, "no image data")


@pytest.mark.parametrize("name, image", [
    ("uint32_extremes", disc_image(np.uint32, 2 ** 32 - 1, 0)),
    ("int64_extremes", disc_image(np.int64, 2 ** 63 - 1, -2 ** 63)),
    ("uint64_extremes", disc_image(np.uint64, 2 ** 64 - 1, 0)),
    ("int32_extremes", disc_image(np.int32, 2 ** 31 - 1, -2 ** 31)),
    ("float64_1e300", disc_image(np.float64, 1e300, -1e300)),
    ("float32_max", disc_image(np.float32, 3.4e38, 0)),
])
def test_values_beyond_the_tools_float32_range_are_refused(headless, name, image):
    work = Work(headless, image)
    refuse_write(work, IntensityRangeError, "rescale")


@pytest.mark.parametrize("bad_value", [np.nan, np.inf, -np.inf])
def test_nan_or_infinite_voxels_are_refused(headless, bad_value):
    image = disc_image(np.float32)
    image[3, 4, 5] = bad_value
    work = Work(headless, image)
    refuse_write(work, InvalidVolumeError, "1 NaN or infinite")


def test_single_slice_volume_is_refused(headless):
    work = Work(headless, disc_image()[:1])
    before = work.snapshot()
    with pytest.raises(InvalidVolumeError, match="single slice"):
        work.bridge.work_volume()
    work.assert_unchanged(before)


@pytest.mark.parametrize("thin", ["one_row", "one_column"])
def test_a_single_slice_stored_along_another_axis_is_refused(headless, thin):
    image = disc_image()[:, :1] if thin == "one_row" else disc_image()[:, :, :1]
    work = Work(headless, np.ascontiguousarray(image))
    before = work.snapshot()
    with pytest.raises(InvalidVolumeError, match="one voxel thick") as raised:
        work.bridge.work_volume()  # the 3D brush raised numpy's "too small to calculate a numerical gradient"
    assert type(raised.value) is InvalidVolumeError
    work.assert_unchanged(before)


def test_volume_of_largest_ordinary_ct_values_is_accepted(headless):
    work = Work(headless, disc_image(np.int16, 32767, -32768))
    assert work.bridge.work_volume().array.max() == 32767


# --- arrays and matrices handed to the bridge -------------------------------------------------------------------
@pytest.mark.parametrize("name, matrix, error_class", [
    ("zero_matrix", np.zeros((4, 4)), InvalidGeometryError),
    ("nan_matrix", np.full((4, 4), np.nan), InvalidGeometryError),
    ("three_by_three", np.eye(3), InvalidGeometryError),
    ("projective_last_row", np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 1, 1.0]]), InvalidGeometryError),
])
def test_add_volume_node_with_a_bad_matrix_adds_no_node(headless, name, matrix, error_class):
    nodes = headless.scene.GetNumberOfNodes()
    with pytest.raises(error_class) as raised:
        add_volume_node(headless.scene, disc_image(), matrix)
    assert type(raised.value) is error_class
    assert headless.scene.GetNumberOfNodes() == nodes


def test_add_volume_node_with_a_2d_array_adds_no_node(headless):
    nodes = headless.scene.GetNumberOfNodes()
    with pytest.raises(InvalidVolumeError, match="2 dimensions"):
        add_volume_node(headless.scene, np.zeros((5, 6)), MATRIX)
    assert headless.scene.GetNumberOfNodes() == nodes


@pytest.mark.parametrize("name, array, error_class, message", [
    ("four_d", np.zeros((3, 4, 5, 2)), VectorVolumeError, "4D"),
    ("empty", np.zeros((0, 4, 5)), InvalidVolumeError, "empty"),
    ("complex", np.zeros((3, 4, 5), np.complex64), InvalidVolumeError, "real scalar"),
    ("strings", np.full((3, 4, 5), "a"), InvalidVolumeError, "real scalar"),
])
def test_source_arrays_that_are_no_scalar_volume_are_refused(name, array, error_class, message):
    with pytest.raises(error_class, match=message) as raised:
        check_source_array(array)
    assert type(raised.value) is error_class


def test_modifier_image_with_a_zero_matrix_is_refused_before_vtk():
    with pytest.raises(InvalidGeometryError, match="zero voxel spacing"):
        oriented_image_from_array(np.ones((2, 2, 2), np.uint8), np.diag([0.0, 1.0, 1.0, 1.0]))


def test_write_block_reaching_outside_the_volume_changes_nothing(work):
    before = work.snapshot()
    with pytest.raises(InvalidMaskError, match="outside"):
        work.bridge.apply(VoxelPatch((6, 20, 20), np.ones((4, 8, 8), bool)))
    work.assert_unchanged(before)


def test_write_block_of_two_dimensions_changes_nothing(work):
    before = work.snapshot()
    with pytest.raises(InvalidMaskError, match="3D"):
        work.bridge.write_blocks((0, 0, 0), add=np.ones((4, 4), bool))
    work.assert_unchanged(before)
