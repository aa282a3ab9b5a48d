"""Segment Anything prompts on slice planes, as SAM 2 propagation's conditioning frames.

The user's points and box live in a plane's pixels (x = column, y = row of `SlicePlane`, as the Segment Anything
logic keeps them); propagation works on the volume's slices along one array axis, whose rows and columns may be
the plane's transposed or flipped (LPS, oblique directions). Each prompt is mapped through the plane's pixel ->
voxel index transform, so a point lands on the voxel the user clicked whatever the volume's orientation.
"""
from dataclasses import dataclass

import numpy as np

from SmartPropagationLib.algorithms.sam2_video import SlicePrompts


@dataclass(frozen=True)
class PlanePrompts:
    """Prompts on one slice plane, in its pixels.

    Attributes
    ----------
    plane : SlicePlane
        A voxel-aligned plane (for propagation: one slice along the propagation axis).
    points_xy : tuple of (x, y)
        (column, row) of each point.
    labels : tuple of int
        1 (positive) or 0 (negative), one per point.
    box_xyxy : (x_min, y_min, x_max, y_max) or None
    """
    plane: object
    points_xy: tuple = ()
    labels: tuple = ()
    box_xyxy: tuple = None


def prompts_of_sam_session(session, segment_id=None):
    """The prompts of a Segment Anything object (SegmentAnythingLogic.session), or None when it has none.

    With `segment_id`, only an object that wrote into that segment counts (the prompts of another segment's
    object never condition this one's propagation).
    """
    if session is None or not (session.points_xy or session.box_xyxy is not None):
        return None
    if segment_id is not None and segment_id not in session.edits.segment_ids():
        return None
    return PlanePrompts(session.plane, tuple(map(tuple, session.points_xy)), tuple(session.labels),
                        tuple(session.box_xyxy) if session.box_xyxy is not None else None)


def stack_prompts(plane_prompts, axis, index_to_ras):
    """Prompts per slice of the stack along array `axis`, in the stack slices' pixels.

    Parameters
    ----------
    plane_prompts : iterable of PlanePrompts
    axis : int
        Array axis (0 = k, 1 = j, 2 = i) the slices are taken along; the stack's slice is the volume indexed at the
        slice along `axis`, the two other axes in (k, j, i) order.
    index_to_ras : (4, 4) array
        The voxel grid the planes were made for (the work volume's).

    Returns
    -------
    (dict of int -> SlicePrompts, list of PlanePrompts)
        The prompts of the planes on that axis by slice index, and the prompts left out (other orientation).
    """
    remaining = [a for a in range(3) if a != axis]
    by_slice, skipped = {}, []
    for prompts in plane_prompts:
        plane = prompts.plane
        if not plane.is_voxel_aligned or plane.aligned_axis != axis:
            skipped.append(prompts)
            continue

        def to_stack(points_xy):
            points_rc = np.asarray(points_xy, float).reshape(-1, 2)[:, ::-1]
            index = plane.pixel_to_index_kji(points_rc, index_to_ras)
            return index[:, remaining[::-1]]  # (x, y) of the stack slice: its column axis, then its row axis

        points = to_stack(prompts.points_xy) if len(prompts.points_xy) else np.zeros((0, 2))
        box = None
        if prompts.box_xyxy is not None:
            corners = to_stack(np.reshape(prompts.box_xyxy, (2, 2)))
            box = tuple(corners.min(axis=0).tolist() + corners.max(axis=0).tolist())
        by_slice[int(plane.slice_index)] = SlicePrompts(tuple(map(tuple, points.tolist())),
                                                        tuple(int(v) for v in prompts.labels), box)
    return by_slice, skipped
