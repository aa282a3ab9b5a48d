"""The voxels a 2D mask on an oblique SlicePlane stands for.

Each mask pixel is its centre point and selects the voxel that contains it, the voxel the plane's nearest
sampling reads there: one pixel is exactly one voxel. The plane also cuts thin corners of voxels that hold no
pixel centre at all ("orphans"); left alone they would show as holes in a painted area when the view is zoomed
in, so an orphan is added when the mask covers ORPHAN_FILL_PIXELS pixels all around where the plane cuts it.
A lone pixel or a line narrower than 2 * ORPHAN_FILL_PIXELS + 1 pixels therefore writes only its own voxels.
"""
import numpy as np
from scipy import ndimage

ORPHAN_FILL_PIXELS = 1
CUT_POINT_ITERATIONS = 12


def oblique_mask_voxels(plane, mask_2d, region_2d, index_to_ras, shape_kji):
    """The voxels of `mask_2d` and of `region_2d` (a superset of it) on `plane`, as two blocks.

    Parameters
    ----------
    plane : SlicePlane
    mask_2d, region_2d : bool (rows, cols) arrays of the plane's shape; pass the same object twice when there
        is no separate region.
    index_to_ras : (4, 4) array of the volume grid; shape_kji : its shape.

    Returns
    -------
    (start_kji, selected, covered) with two bool (k, j, i) blocks of the same shape placed at `start_kji`, or
    None when no pixel of the region lies inside the volume.
    """
    mask_2d, region = np.asarray(mask_2d, bool), np.asarray(region_2d, bool)
    rows, cols = np.nonzero(region)
    if len(rows) == 0:
        return None
    # the pixels around the region too, so the voxels that hold no pixel centre at all are known
    margin = ORPHAN_FILL_PIXELS + 1
    top, left = max(rows.min() - margin, 0), max(cols.min() - margin, 0)
    bottom, right = min(rows.max() + margin + 1, plane.shape[0]), min(cols.max() + margin + 1, plane.shape[1])
    window_rows, window_cols = np.mgrid[top:bottom, left:right]
    voxels = plane.pixel_voxels_kji(np.stack([window_rows.ravel(), window_cols.ravel()], 1), index_to_ras)
    inside = np.all((voxels >= 0) & (voxels < np.asarray(shape_kji)), axis=1)
    in_region = region[top:bottom, left:right].ravel() & inside
    if not in_region.any():
        return None
    low = np.maximum(voxels[in_region].min(0) - 1, 0)
    high = np.minimum(voxels[in_region].max(0) + 2, np.asarray(shape_kji))
    size = tuple(int(v) for v in high - low)
    in_block = inside & np.all((voxels >= low) & (voxels < high), axis=1)
    held = np.zeros(size, bool)  # voxels holding some pixel centre of this plane
    held[tuple((voxels[in_block] - low).T)] = True
    in_mask = mask_2d[top:bottom, left:right].ravel() & in_region
    selected, covered = np.zeros(size, bool), np.zeros(size, bool)
    selected[tuple((voxels[in_mask] - low).T)] = True
    covered[tuple((voxels[in_region] - low).T)] = True
    window = (slice(top, bottom), slice(left, right))  # beyond it both masks are empty: erode only the window
    selected |= _orphans_inside(plane, mask_2d[window], (top, left), held, low, index_to_ras)
    if region_2d is mask_2d:
        covered |= selected
    else:
        covered |= _orphans_inside(plane, region[window], (top, left), held, low, index_to_ras)
    return tuple(int(v) for v in low), selected, covered


def _orphans_inside(plane, mask_window, window_start, held, low, index_to_ras):
    """Voxels of the block (`held`'s shape at `low`) that the plane cuts but that hold no pixel centre, where the
    mask (`mask_window`: the plane's pixels from `window_start` on) covers ORPHAN_FILL_PIXELS pixels all around
    the cut."""
    # an orphan touches voxels that hold pixel centres: only their neighbours are candidates
    candidates = np.argwhere(ndimage.binary_dilation(held, np.ones((3, 3, 3), bool)) & ~held) + low
    if len(candidates) == 0:
        return np.zeros(held.shape, bool)
    index_to_ras = np.asarray(index_to_ras, float)
    # the plane in continuous index (i, j, k): normal_ijk . x = offset
    normal_ijk = index_to_ras[:3, :3].T @ plane.normal_ras
    offset = float(plane.normal_ras @ (plane.pixel_to_ras_matrix[:3, 3] - index_to_ras[:3, 3]))
    centre_ijk = candidates[:, ::-1].astype(float)
    # a voxel (a box of half-width 0.5 in index units) meets the plane when |distance| <= its half extent
    cuts = np.abs(centre_ijk @ normal_ijk - offset) <= 0.5 * np.abs(normal_ijk).sum()
    centre_ijk, candidates = centre_ijk[cuts], candidates[cuts]
    # a point where the plane cuts the box: alternate projections onto the plane and into the box
    point = centre_ijk.copy()
    for _ in range(CUT_POINT_ITERATIONS):
        point -= np.outer((point @ normal_ijk - offset) / (normal_ijk @ normal_ijk), normal_ijk)
        point = np.clip(point, centre_ijk - 0.5, centre_ijk + 0.5)
    point_ras = (index_to_ras @ np.column_stack([point, np.ones(len(point))]).T).T[:, :3]
    pixel = np.floor(plane.ras_to_pixel(point_ras)[0] + 0.5).astype(int) - np.asarray(window_start)
    width = 2 * ORPHAN_FILL_PIXELS + 1
    interior = ndimage.binary_erosion(mask_window, np.ones((width, width), bool), border_value=0)
    on_mask = np.all((pixel >= 0) & (pixel < np.asarray(interior.shape)), 1)
    on_mask[on_mask] = interior[pixel[on_mask, 0], pixel[on_mask, 1]]
    orphans = np.zeros(held.shape, bool)
    orphans[tuple((candidates[on_mask] - low).T)] = True
    return orphans
