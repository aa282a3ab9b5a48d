"""Slice planes: the 2D image of a volume in any slice view and the way back to voxels.

A `SlicePlane` is a grid of pixels in 3D. Pixel (row, col) maps to RAS through `pixel_to_ras`, with row 0 at
the top of the view, as the user sees it. Volume arrays are (k, j, i) and `index_to_ras` maps a 0-based array
index (i, j, k) to RAS (see image_data.index_to_ras).

For planes whose normal is parallel to a volume axis, `voxel_aligned` puts pixel centres exactly on voxel centres
of one voxel slice, so slicing and writing back are exact. On every plane, aligned or oblique, pixel (row, col)
stands for its centre point: `mask_to_volume` writes the voxel that contains each mask pixel's centre, which is
the voxel `sample(..., order=0)` reads there, so what a tool reads at a pixel is what its edit changes.
Oblique planes are sampled at half the finest voxel spacing so that nearly every voxel the plane cuts holds a
pixel centre. A plane may carry `world_to_segmentation` (world RAS -> the plane's frame, e.g. under a
segmentation's parent transform) for `world_to_pixel`; the view -> voxel functions are in view_geometry.py.
"""
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from MVABridgeLib.errors import InvalidMaskError, OutsideVolumeError
from MVABridgeLib.oblique_voxels import oblique_mask_voxels
from MVABridgeLib.plane_axes import (ALIGNED_DRIFT_VOXELS, ANATOMICAL_AXES, AXIS_ALIGNED_TOLERANCE,  # noqa: F401
                                     SLICE_ORIENTATIONS, aligned_volume_axis, nearest_volume_axis, slice_to_ras_for)

OBLIQUE_OVERSAMPLING = 2  # oblique pixels per finest voxel spacing


@dataclass
class VoxelPatch:
    """A boolean block of a volume: `mask_kji` placed at `start_kji` (a sub-extent, for local edits)."""
    start_kji: tuple
    mask_kji: np.ndarray

    def full(self, shape_kji):
        out = np.zeros(shape_kji, bool)
        k, j, i = self.start_kji
        dk, dj, di = self.mask_kji.shape
        out[k:k + dk, j:j + dj, i:i + di] = self.mask_kji
        return out


def _homogeneous(points):
    points = np.atleast_2d(np.asarray(points, float))
    return np.hstack([points, np.ones((len(points), 1))])


class SlicePlane:
    """A 2D pixel grid in RAS space.

    Parameters
    ----------
    pixel_to_ras : (4, 4) array mapping (col, row, 0, 1) to RAS.
    shape : (rows, cols)
    world_to_segmentation : (4, 4) array, optional
        World RAS -> the RAS frame of `pixel_to_ras` (a segmentation's coordinates under its parent
        transform); identity by default. Only `world_to_pixel` uses it.
    """

    def __init__(self, pixel_to_ras, shape, aligned_axis=None, slice_index=None, world_to_segmentation=None):
        self.pixel_to_ras_matrix = np.asarray(pixel_to_ras, float)
        self.shape = (int(shape[0]), int(shape[1]))
        self.aligned_axis = aligned_axis  # array axis (0=k, 1=j, 2=i) when the plane is one voxel slice
        self.slice_index = slice_index
        self.world_to_segmentation = np.eye(4) if world_to_segmentation is None \
            else np.asarray(world_to_segmentation, float)
        basis = self.pixel_to_ras_matrix[:3, :3].copy()
        self.normal_ras = np.cross(basis[:, 0], basis[:, 1])
        self.normal_ras /= np.linalg.norm(self.normal_ras)
        basis[:, 2] = self.normal_ras
        self._ras_to_pixel = np.linalg.inv(np.vstack([np.hstack([basis, self.pixel_to_ras_matrix[:3, 3:]]),
                                                      [0, 0, 0, 1]]))

    @property
    def is_voxel_aligned(self):
        return self.aligned_axis is not None

    # --- construction -----------------------------------------------------------------------------------
    @classmethod
    def from_slice_view(cls, xy_to_ras, dimensions_xy, world_to_segmentation=None):
        """The view's own pixel grid (vtkMRMLSliceNode.GetXYToRAS(), GetDimensions()[:2]); row 0 at the top.

        With `world_to_segmentation` the plane is in that frame (pixel (row, col) is view XY (col, height-1-row)).
        """
        width, height = int(dimensions_xy[0]), int(dimensions_xy[1])
        flip = np.array([[1, 0, 0, 0], [0, -1, 0, height - 1], [0, 0, 1, 0], [0, 0, 0, 1]], float)
        to_frame = np.eye(4) if world_to_segmentation is None else np.asarray(world_to_segmentation, float)
        return cls(to_frame @ np.asarray(xy_to_ras, float) @ flip, (height, width),
                   world_to_segmentation=to_frame)

    @classmethod
    def voxel_aligned(cls, slice_to_ras, index_to_ras, shape_kji):
        """A plane through slice_to_ras's origin with slice_to_ras's orientation, at voxel resolution.

        If the slice normal is parallel to a volume axis, the plane snaps to the nearest voxel slice and pixels
        are exactly its voxels. Otherwise an oblique grid at half the finest voxel spacing covers the volume.

        Raises
        ------
        OutsideVolumeError
            The plane does not cut the volume.
        """
        slice_to_ras = np.asarray(slice_to_ras, float)
        x_ras, y_ras = slice_to_ras[:3, 0], slice_to_ras[:3, 1]
        index_to_ras = np.asarray(index_to_ras, float)
        n_ijk = np.array(shape_kji[::-1])
        axis = aligned_volume_axis(slice_to_ras, index_to_ras, shape_kji)
        if axis is not None:
            origin_ijk = np.linalg.solve(index_to_ras, np.append(slice_to_ras[:3, 3], 1.0))[:3]
            index = int(np.floor(origin_ijk[axis] + 0.5))
            if not 0 <= index < n_ijk[axis]:
                raise OutsideVolumeError(
                    f"The slice is outside the volume (slice {index} of {n_ijk[axis]} along the normal)")
            col_axis, col_sign, _ = nearest_volume_axis(x_ras, index_to_ras)
            row_axis, row_sign, _ = nearest_volume_axis(-y_ras, index_to_ras)
            if len({axis, col_axis, row_axis}) != 3:
                row_axis = ({0, 1, 2} - {axis, col_axis}).pop()
            pixel_to_index = np.zeros((4, 4))
            pixel_to_index[3, 3] = 1
            pixel_to_index[axis, 3] = index
            for plane_axis, volume_axis, sign in ((0, col_axis, col_sign), (1, row_axis, row_sign)):
                pixel_to_index[volume_axis, plane_axis] = sign
                pixel_to_index[volume_axis, 3] = 0 if sign > 0 else n_ijk[volume_axis] - 1
            pixel_to_index[axis, 2] = 1.0
            shape = (n_ijk[row_axis], n_ijk[col_axis])
            return cls(index_to_ras @ pixel_to_index, shape, aligned_axis=2 - axis, slice_index=index)
        return cls._oblique(slice_to_ras, index_to_ras, n_ijk)

    @classmethod
    def _oblique(cls, slice_to_ras, index_to_ras, n_ijk):
        spacing = float(np.linalg.norm(index_to_ras[:3, :3], axis=0).min()) / OBLIQUE_OVERSAMPLING
        u = slice_to_ras[:3, 0] / np.linalg.norm(slice_to_ras[:3, 0]) * spacing
        v = -slice_to_ras[:3, 1] / np.linalg.norm(slice_to_ras[:3, 1]) * spacing
        return cls.covering_grid(u, v, slice_to_ras[:3, 3], index_to_ras, n_ijk)

    @classmethod
    def covering_grid(cls, u_ras, v_ras, origin_ras, index_to_ras, n_ijk, max_pixels=None, focus_ras=None,
                      world_to_segmentation=None):
        """The pixels of the lattice origin_ras + col * u_ras + row * v_ras that cover the volume's projection.

        Every lattice point stays a pixel centre (the grid starts at a whole number of steps from
        `origin_ras`). With `max_pixels`, a larger grid is cropped to a window of about that size around
        `focus_ras`.

        Raises
        ------
        OutsideVolumeError
            The plane does not cut the volume.
        """
        u, v, origin = (np.asarray(a, float) for a in (u_ras, v_ras, origin_ras))
        corners = np.array([[a, b, c] for a in (-0.5, n_ijk[0] - 0.5) for b in (-0.5, n_ijk[1] - 0.5)
                            for c in (-0.5, n_ijk[2] - 0.5)])
        corners_ras = (index_to_ras @ _homogeneous(corners).T).T[:, :3]
        normal = np.cross(u, v)
        normal /= np.linalg.norm(normal)
        distances = (corners_ras - origin) @ normal
        if distances.min() > 0 or distances.max() < 0:
            raise OutsideVolumeError("The oblique slice does not cut the volume")
        in_plane = np.stack([u, v], 1)
        plane_coords = np.linalg.lstsq(in_plane, (corners_ras - origin).T, rcond=None)[0]
        low = np.floor(plane_coords.min(axis=1))
        high = np.ceil(plane_coords.max(axis=1))
        if max_pixels is not None and np.prod(high - low + 1) > max_pixels:
            centre = np.round(np.linalg.lstsq(in_plane, np.asarray(focus_ras, float) - origin, rcond=None)[0])
            half = np.floor(np.sqrt(max_pixels) / 2)
            low, high = np.maximum(low, centre - half), np.minimum(high, centre + half)
            if np.any(high < low):
                raise OutsideVolumeError("The visible part of the slice does not cut the volume")
        pixel_to_ras = np.eye(4)
        pixel_to_ras[:3, 0], pixel_to_ras[:3, 1] = u, v
        pixel_to_ras[:3, 2] = normal * float(min(np.linalg.norm(u), np.linalg.norm(v)))
        pixel_to_ras[:3, 3] = origin + low[0] * u + low[1] * v
        shape = (int(high[1] - low[1]) + 1, int(high[0] - low[0]) + 1)
        return cls(pixel_to_ras, shape, world_to_segmentation=world_to_segmentation)

    @classmethod
    def for_anatomical_axis(cls, orientation, index, index_to_ras, shape_kji):
        """Voxel slice `index` along the volume axis closest to the anatomical `orientation`'s normal.

        The plane follows the volume's axes (closest to the view's x and y), so oblique volumes give exact voxel
        slices too.
        """
        view = slice_to_ras_for(orientation)[:3, :3]
        index_to_ras = np.asarray(index_to_ras, float)
        unit_axes = index_to_ras[:3, :3] / np.linalg.norm(index_to_ras[:3, :3], axis=0)
        normal_axis, _, _ = nearest_volume_axis(view[:, 2], index_to_ras)
        count = shape_kji[2 - normal_axis]
        if not 0 <= index < count:
            raise OutsideVolumeError(f"Slice {index} is outside the volume: the {orientation} axis has {count} slices")
        snapped = np.zeros((3, 3))
        used = {normal_axis}
        for column in (0, 1):
            cosines = unit_axes.T @ view[:, column]
            cosines[list(used)] = 0
            axis = int(np.argmax(np.abs(cosines)))
            used.add(axis)
            snapped[:, column] = unit_axes[:, axis] * np.sign(cosines[axis])
        snapped[:, 2] = unit_axes[:, normal_axis]
        center_ijk = (np.array(shape_kji[::-1], float) - 1) / 2
        center_ijk[normal_axis] = index
        slice_to_ras = np.eye(4)
        slice_to_ras[:3, :3] = snapped
        slice_to_ras[:3, 3] = (index_to_ras @ np.append(center_ijk, 1.0))[:3]
        return cls.voxel_aligned(slice_to_ras, index_to_ras, shape_kji)

    def neighbour(self, delta):
        """The voxel-aligned plane `delta` slices further along the volume axis (same pixel layout)."""
        if not self.is_voxel_aligned:
            raise ValueError("Only voxel-aligned planes have neighbouring voxel slices")
        matrix = self.pixel_to_ras_matrix.copy()
        matrix[:3, 3] += delta * matrix[:3, 2]
        return SlicePlane(matrix, self.shape, self.aligned_axis, self.slice_index + delta, self.world_to_segmentation)

    def as_one_slice_volume(self):
        """IJK->RAS of a one-slice volume whose voxels are this plane's pixels (column = i, row = j), e.g. to
        show a 2D overlay as a labelmap in any slice view."""
        matrix = self.pixel_to_ras_matrix.copy()
        matrix[:3, 2] = self.normal_ras * float(np.linalg.norm(matrix[:3, 0]))
        matrix[3] = (0, 0, 0, 1)
        return matrix

    # --- mapping ------------------------------------------------------------------------------------------
    def pixel_to_ras(self, points_rc):
        """(N, 2) pixel (row, col) -> (N, 3) RAS."""
        points_rc = np.atleast_2d(np.asarray(points_rc, float))
        cols_rows = np.stack([points_rc[:, 1], points_rc[:, 0], np.zeros(len(points_rc))], 1)
        return (self.pixel_to_ras_matrix @ _homogeneous(cols_rows).T).T[:, :3]

    def ras_to_pixel(self, points_ras):
        """(N, 3) RAS -> ((N, 2) pixel (row, col) as floats, (N,) signed distance from the plane in mm)."""
        local = (self._ras_to_pixel @ _homogeneous(points_ras).T).T
        return np.stack([local[:, 1], local[:, 0]], 1), local[:, 2]

    def world_to_pixel(self, points_world):
        """(N, 3) world RAS (e.g. a slice view's cursor) -> ((N, 2) pixel (row, col) floats, (N,) distance in mm),
        through `world_to_segmentation`."""
        return self.ras_to_pixel((self.world_to_segmentation @ _homogeneous(points_world).T).T[:, :3])

    def pixel_to_index_kji(self, points_rc, index_to_ras):
        """(N, 2) pixel (row, col) -> (N, 3) fractional array index (k, j, i)."""
        ijk = np.linalg.solve(index_to_ras, _homogeneous(self.pixel_to_ras(points_rc)).T).T[:, :3]
        return ijk[:, ::-1]

    def index_kji_to_pixel(self, index_kji, index_to_ras):
        """(N, 3) array index (k, j, i) -> ((N, 2) pixel (row, col), (N,) distance from the plane in mm)."""
        ras = (index_to_ras @ _homogeneous(np.atleast_2d(index_kji)[:, ::-1]).T).T[:, :3]
        return self.ras_to_pixel(ras)

    def pixel_grid_index_kji(self, index_to_ras):
        """(3, rows, cols) fractional array index of every pixel centre."""
        rows, cols = np.mgrid[0:self.shape[0], 0:self.shape[1]]
        index = self.pixel_to_index_kji(np.stack([rows.ravel(), cols.ravel()], 1), index_to_ras)
        return index.T.reshape(3, *self.shape)

    def check_pixel(self, point_rc):
        """Raise OutsideVolumeError unless (row, col) lies inside the plane's grid."""
        row, col = point_rc
        if not (-0.5 <= row < self.shape[0] - 0.5 and -0.5 <= col < self.shape[1] - 0.5):
            raise OutsideVolumeError(f"Point (row {row:.1f}, col {col:.1f}) is outside the slice image "
                                     f"of {self.shape[0]} x {self.shape[1]} pixels")

    # --- volume <-> plane -------------------------------------------------------------------------------------
    def _aligned_index(self, index_to_ras):
        pixel_to_index = np.linalg.solve(index_to_ras, self.pixel_to_ras_matrix)
        return np.round(pixel_to_index).astype(int)

    def sample(self, volume_kji, index_to_ras, order=1, fill=0.0):
        """The 2D image (rows, cols) of `volume_kji` in this plane (exact voxels when voxel-aligned).

        order=0 reads, at each pixel, the voxel that contains its centre (the voxel `mask_to_volume` writes
        for it); order=1 interpolates linearly. Pixels beyond the volume's outer voxel faces get `fill`.
        """
        if self.is_voxel_aligned:
            return self._aligned_view(volume_kji, index_to_ras).copy()
        if order == 0:
            # not map_coordinates: its 'constant' mode gives cval on the outer half of the border voxels
            rows, cols = np.mgrid[0:self.shape[0], 0:self.shape[1]]
            voxels = self.pixel_voxels_kji(np.stack([rows.ravel(), cols.ravel()], 1), index_to_ras)
            volume_kji = np.asarray(volume_kji)
            inside = np.all((voxels >= 0) & (voxels < np.asarray(volume_kji.shape)), axis=1)
            image = np.full(len(voxels), fill, float)
            image[inside] = volume_kji[tuple(voxels[inside].T)]
            return image.reshape(self.shape)
        coordinates = self.pixel_grid_index_kji(index_to_ras)
        volume_kji = np.asarray(volume_kji, float)
        # the border voxels reach half a voxel beyond the outermost centres: read them there too
        limits = (np.asarray(volume_kji.shape, float) - 0.5).reshape(3, 1, 1)
        outside = np.any((coordinates < -0.5) | (coordinates >= limits), axis=0)
        image = ndimage.map_coordinates(volume_kji, coordinates, order=order, mode="nearest")
        image[outside] = fill
        return image

    def _aligned_view(self, volume_kji, index_to_ras):
        """A view of the voxel slice arranged as (rows, cols); no copy."""
        m = self._aligned_index(index_to_ras)  # rows: i, j, k; columns: col, row, normal, offset
        axis_kji = self.aligned_axis
        index = [slice(None)] * 3
        index[axis_kji] = self.slice_index
        view = np.asarray(volume_kji)[tuple(index)]
        remaining = [a for a in range(3) if a != axis_kji]  # kji axes left, in order
        # which remaining axis runs along the columns
        col_ijk = int(np.flatnonzero(m[:3, 0])[0])
        col_axis = remaining.index(2 - col_ijk)
        if col_axis == 0:
            view = view.T
        row_ijk = int(np.flatnonzero(m[:3, 1])[0])
        if m[col_ijk, 0] < 0:
            view = view[:, ::-1]
        if m[row_ijk, 1] < 0:
            view = view[::-1, :]
        return view

    def voxel_slice_to_plane(self, slice_2d, index_to_ras):
        """Arrange a 2D array of this plane's voxel slice (the volume indexed at `slice_index` along
        `aligned_axis`, remaining axes in (k, j, i) order) as the plane's (rows, cols); a view, no copy."""
        if not self.is_voxel_aligned:
            raise ValueError("Only voxel-aligned planes are voxel slices")
        plane = SlicePlane(self.pixel_to_ras_matrix, self.shape, self.aligned_axis, 0)
        return plane._aligned_view(np.expand_dims(np.asarray(slice_2d), self.aligned_axis), index_to_ras)

    def pixel_voxels_kji(self, pixels_rc, index_to_ras):
        """(N, 2) pixel (row, col), integer or fractional -> (N, 3) int index (k, j, i) of the voxel that contains
        each point (Slicer's rounding, XyzToIjk); may lie outside the volume."""
        return np.floor(self.pixel_to_index_kji(pixels_rc, index_to_ras) + 0.5).astype(int)

    def mask_to_volume(self, mask_2d, index_to_ras, shape_kji, region_2d=None):
        """Voxels of the volume grid that a 2D mask in this plane covers.

        Each mask pixel stands for its centre point and selects the voxel containing it (the voxel
        `sample(..., order=0)` reads there): one pixel is one voxel, on aligned and oblique planes alike.
        Pixels whose centre lies outside the volume select nothing. On oblique planes, a voxel the plane cuts
        that holds no pixel centre (a thin corner) is added when the mask covers ORPHAN_FILL_PIXELS pixels all
        around where it projects, so painted areas have no holes.

        Returns
        -------
        selected : VoxelPatch
            The voxels of the mask's pixels.
        covered : VoxelPatch
            Same block: voxel-aligned planes: the whole voxel slice; oblique planes: the voxels of the mask's and
            `region_2d`'s pixels, i.e. what a "replace" edit in this plane may clear.
        """
        mask_2d = np.asarray(mask_2d)
        if mask_2d.shape != self.shape:
            raise InvalidMaskError(f"Mask shape {mask_2d.shape} differs from the slice shape {self.shape}")
        mask_2d = mask_2d.astype(bool)
        if self.is_voxel_aligned:
            start = [0, 0, 0]
            size = list(shape_kji)
            start[self.aligned_axis], size[self.aligned_axis] = self.slice_index, 1
            block = np.zeros(size, bool)
            # the block is the voxel slice: the same view with the slice index at 0
            plane = SlicePlane(self.pixel_to_ras_matrix, self.shape, self.aligned_axis, 0)
            plane._aligned_view(block, index_to_ras)[...] = mask_2d
            return VoxelPatch(tuple(start), block), VoxelPatch(tuple(start), np.ones(size, bool))
        region_2d = mask_2d if region_2d is None else (np.asarray(region_2d, bool) | mask_2d)
        return self._oblique_mask_to_volume(mask_2d, region_2d, index_to_ras, shape_kji)

    def _oblique_mask_to_volume(self, mask_2d, region_2d, index_to_ras, shape_kji):
        found = oblique_mask_voxels(self, mask_2d, region_2d, index_to_ras, shape_kji)
        if found is None:
            empty = VoxelPatch((0, 0, 0), np.zeros((0, 0, 0), bool))
            return empty, empty
        start, selected, covered = found
        return VoxelPatch(start, selected), VoxelPatch(start, covered)
