"""Segments <-> numpy masks (k, j, i) in any grid, e.g. the source volume's, whatever the segmentation's
reference geometry (spacing, extent, rotation) is."""
import numpy as np

import slicer

from MVABridgeLib.errors import InvalidMaskError, InvalidSegmentationError
from MVABridgeLib.image_data import array_to_matrix, array_view, oriented_image_from_array
from MVABridgeLib.volumes import volume_ijk_to_ras

SegmentationsLogic = slicer.vtkSlicerSegmentationsModuleLogic


def check_segment(segmentation_node, segment_id):
    """Raise InvalidSegmentationError unless the node exists and holds `segment_id`."""
    if segmentation_node is None:
        raise InvalidSegmentationError("No segmentation is selected")
    segmentation = segmentation_node.GetSegmentation()
    if segmentation.GetNumberOfSegments() == 0:
        raise InvalidSegmentationError(
            f"Segmentation '{segmentation_node.GetName()}' has no segments; add a segment first")
    if not segment_id or segmentation.GetSegment(segment_id) is None:
        raise InvalidSegmentationError(
            f"Segmentation '{segmentation_node.GetName()}' has no segment with id {segment_id!r}")


def volume_grid_image(volume_node):
    """An empty vtkOrientedImageData with the volume's extent and IJK->RAS (a resampling reference)."""
    dims = volume_node.GetImageData().GetDimensions()
    return grid_image((dims[2], dims[1], dims[0]), volume_ijk_to_ras(volume_node))


def grid_image(shape_kji, index_to_ras):
    image = slicer.vtkOrientedImageData()
    image.SetExtent(0, shape_kji[2] - 1, 0, shape_kji[1] - 1, 0, shape_kji[0] - 1)
    image.SetImageToWorldMatrix(array_to_matrix(index_to_ras))
    return image


def segment_mask(segmentation_node, segment_id, shape_kji, index_to_ras, apply_parent_transform=True):
    """The segment as a uint8 (k, j, i) mask resampled (nearest) into the grid (shape_kji, index_to_ras).

    With `apply_parent_transform` the grid is in world (RAS) coordinates, else in the segmentation's own.
    """
    check_segment(segmentation_node, segment_id)
    labelmap = slicer.vtkOrientedImageData()
    SegmentationsLogic.GetSegmentBinaryLabelmapRepresentation(segmentation_node, segment_id, labelmap,
                                                               bool(apply_parent_transform))
    reference = grid_image(shape_kji, index_to_ras)
    if labelmap.IsEmpty() or labelmap.GetPointData().GetScalars() is None:
        return np.zeros(shape_kji, np.uint8)
    resampled = slicer.vtkOrientedImageData()
    slicer.vtkOrientedImageDataResample.ResampleOrientedImageToReferenceOrientedImage(
        labelmap, reference, resampled, False, True)
    mask = np.zeros(shape_kji, np.uint8)
    extent = resampled.GetExtent()
    if extent[1] < extent[0]:
        return mask
    values = array_view(resampled)
    k0, j0, i0 = extent[4], extent[2], extent[0]
    window = values[max(0, -k0):, max(0, -j0):, max(0, -i0):]
    k0, j0, i0 = max(k0, 0), max(j0, 0), max(i0, 0)
    window = window[:shape_kji[0] - k0, :shape_kji[1] - j0, :shape_kji[2] - i0]
    # segments may share one labelmap: this segment's voxels hold its label value
    label_value = segmentation_node.GetSegmentation().GetSegment(segment_id).GetLabelValue()
    mask[k0:k0 + window.shape[0], j0:j0 + window.shape[1], i0:i0 + window.shape[2]] = window == label_value
    return mask


def segment_block(segmentation_node, segment_id, shape_kji, index_to_ras, start_kji, block_shape_kji):
    """One block of a segment as bool (k, j, i), in the grid (shape_kji, index_to_ras) of the work volume.

    The grid is in the segmentation's own (untransformed) coordinates, as the editor's aligned source volume and
    its modifiers are. When the segment's internal labelmap lies on that grid (the usual case: the editor writes
    in the reference geometry), the block is read straight from it, without copying the labelmap; otherwise the
    segment is resampled.
    """
    check_segment(segmentation_node, segment_id)
    start = np.asarray(start_kji, int)
    size = np.asarray(block_shape_kji, int)
    block = np.zeros(tuple(size), bool)
    if block.size == 0:
        return block
    segment = segmentation_node.GetSegmentation().GetSegment(segment_id)
    labelmap = segment.GetRepresentation(slicer.vtkSegmentationConverter.GetBinaryLabelmapRepresentationName())
    if labelmap is None:
        whole = segment_mask(segmentation_node, segment_id, shape_kji, index_to_ras, apply_parent_transform=False)
        return whole[tuple(slice(a, a + n) for a, n in zip(start, size))].astype(bool)
    if labelmap.IsEmpty() or labelmap.GetPointData().GetScalars() is None:
        return block
    offset = _grid_offset_kji(labelmap, index_to_ras)
    if offset is None:
        whole = segment_mask(segmentation_node, segment_id, shape_kji, index_to_ras, apply_parent_transform=False)
        return whole[tuple(slice(a, a + n) for a, n in zip(start, size))].astype(bool)
    values = array_view(labelmap)
    low_in_map = start - offset
    high_in_map = low_in_map + size
    lo = np.maximum(low_in_map, 0)
    hi = np.minimum(high_in_map, values.shape)
    if np.any(hi <= lo):
        return block
    part = values[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] == segment.GetLabelValue()
    at = lo - low_in_map
    block[at[0]:at[0] + part.shape[0], at[1]:at[1] + part.shape[1], at[2]:at[2] + part.shape[2]] = part
    return block


def _grid_offset_kji(labelmap, index_to_ras):
    """(k, j, i) index of the labelmap's first voxel in the grid `index_to_ras`, or None if the grids differ."""
    from MVABridgeLib.image_data import index_to_ras as image_index_to_ras
    relative = np.linalg.solve(np.asarray(index_to_ras, float), image_index_to_ras(labelmap))
    if not np.allclose(relative[:3, :3], np.eye(3), atol=1e-6):
        return None
    shift = relative[:3, 3]
    if not np.allclose(shift, np.round(shift), atol=1e-4):
        return None
    return np.round(shift[::-1]).astype(int)


def segment_mask_in_volume(segmentation_node, segment_id, volume_node):
    """The segment as a uint8 (k, j, i) mask in `volume_node`'s voxel grid."""
    dims = volume_node.GetImageData().GetDimensions()
    return segment_mask(segmentation_node, segment_id, (dims[2], dims[1], dims[0]), volume_ijk_to_ras(volume_node))


def replace_segment_from_mask(segmentation_node, segment_id, mask_kji, index_to_ras):
    """Replace a segment's content by `mask_kji` (for imports and test set-up; bypasses the editor:
    no masking, no overwrite, no undo). Edits made by tools go through `edit_backend` instead."""
    check_segment(segmentation_node, segment_id)
    mask_kji = np.asarray(mask_kji)
    if mask_kji.ndim != 3:
        raise InvalidMaskError(f"Mask has {mask_kji.ndim} dimensions; a (k, j, i) mask is needed")
    image = oriented_image_from_array((mask_kji > 0).astype(np.uint8), index_to_ras)
    SegmentationsLogic.SetBinaryLabelmapToSegment(
        image, segmentation_node, segment_id, SegmentationsLogic.MODE_REPLACE, image.GetExtent())
