"""Synthetic CT phantom of a lower chest (numpy/scipy only, arrays in (k, j, i) order).

The phantom exercises what real CT does to segmentation tools: realistic Hounsfield units, noise and partial
volume, anisotropic voxels, LPS-style and oblique direction matrices, objects that touch each other (effusion
against lung, liver dome against the right lung base) and an object that ends part-way through the volume
(a lung nodule whose first and last slices are known).

Array frame: k runs inferior -> superior, j anterior -> posterior, i patient right -> patient left, the way
LPS-ordered DICOM series are stored; `ijk_to_ras` says so explicitly.
"""
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

HU = {"air": -1000, "lung": -800, "soft_tissue": 40, "liver": 60, "fluid": 10, "fat": -100, "bone": 700}
LABELS = {"lung": 1, "nodule": 2, "effusion": 3, "liver": 4}
DEFAULT_SHAPE_KJI = (48, 96, 96)
DEFAULT_SPACING_KJI = (2.5, 0.8, 0.8)


class PhantomParameterError(ValueError):
    """A phantom parameter is out of its usable range."""


@dataclass
class CTPhantom:
    """A synthetic CT volume with its labelmap and geometry.

    Attributes
    ----------
    image : ndarray of int16, shape (K, J, I)
        Hounsfield units.
    labelmap : ndarray of uint8, shape (K, J, I)
        0 for unlabelled voxels, else a value of `labels`.
    labels : dict of str -> int
        Structure name -> label value ("lung", "nodule", "effusion", "liver").
    spacing_kji : tuple of float
        Voxel size in mm along (k, j, i).
    ijk_to_ras : ndarray of float, shape (4, 4)
        Voxel index (i, j, k, 1) -> RAS position in mm.
    nodule_slices : tuple of int
        First and last slice (k) containing the nodule, inclusive.
    """
    image: np.ndarray
    labelmap: np.ndarray
    labels: dict = field(default_factory=lambda: dict(LABELS))
    spacing_kji: tuple = DEFAULT_SPACING_KJI
    ijk_to_ras: np.ndarray = field(default_factory=lambda: np.eye(4))
    nodule_slices: tuple = (0, 0)

    def mask(self, name):
        """Boolean mask (K, J, I) of one structure, by name."""
        if name not in self.labels:
            raise KeyError(f"No structure {name!r} in the phantom; choose one of {sorted(self.labels)}")
        return self.labelmap == self.labels[name]


def make_ct_phantom(shape_kji=DEFAULT_SHAPE_KJI, spacing_kji=DEFAULT_SPACING_KJI, seed=0, noise_hu=20.0,
                    smoothing_voxels=0.7, oblique_degrees=0.0):
    """Generate a deterministic synthetic chest CT.

    Parameters
    ----------
    shape_kji : tuple of 3 int
        Volume size (slices, rows, columns); each at least 16.
    spacing_kji : tuple of 3 float
        Voxel size in mm (slice thickness, row spacing, column spacing).
    seed : int
        Seeds the small jitter of organ positions and sizes and the noise: equal seeds give equal phantoms.
    noise_hu : float
        Standard deviation of the additive Gaussian noise, in HU.
    smoothing_voxels : float
        Gaussian sigma (in-plane voxels; scaled by spacing along k) applied before the noise, for partial volume.
    oblique_degrees : float
        Rotation of the direction matrix about the RAS S axis; 0 gives a plain LPS-style axial volume.

    Returns
    -------
    CTPhantom

    Raises
    ------
    PhantomParameterError
        If the shape is too small to hold the organs or a spacing is not positive.
    """
    shape_kji = tuple(int(n) for n in shape_kji)
    spacing_kji = tuple(float(s) for s in spacing_kji)
    if len(shape_kji) != 3 or min(shape_kji) < 16:
        raise PhantomParameterError(f"shape_kji must be three sizes of at least 16 voxels, got {shape_kji}")
    if len(spacing_kji) != 3 or min(spacing_kji) <= 0:
        raise PhantomParameterError(f"spacing_kji must be three positive sizes in mm, got {spacing_kji}")
    rng = np.random.default_rng(seed)
    z, y, x = _centred_coordinates(shape_kji, spacing_kji)
    fov_z, fov_y, fov_x = (n * s for n, s in zip(shape_kji, spacing_kji))

    def jitter(value, fraction=0.04):
        return value * (1.0 + rng.uniform(-fraction, fraction))

    # Body outline: elliptic cylinder with a subcutaneous fat layer and a spine.
    body_rx, body_ry = jitter(0.46) * fov_x, jitter(0.38) * fov_y
    body = _ellipse(x, y, 0, 0, body_rx, body_ry, shape_kji)
    inner = _ellipse(x, y, 0, 0, body_rx * 0.9, body_ry * 0.9, shape_kji)
    spine = _ellipse(x, y, 0, 0.27 * fov_y, 0.06 * fov_x, 0.06 * fov_x, shape_kji)

    # Organs as ellipsoids in mm; the array's k axis runs up, so the liver sits at low k.
    lung_rx, lung_ry, lung_rz = 0.15 * fov_x, jitter(0.25) * fov_y, jitter(0.55) * fov_z
    lung_z = 0.22 * fov_z
    right_lung = _ellipsoid(x, y, z, -0.2 * fov_x, -0.02 * fov_y, lung_z, lung_rx, lung_ry, lung_rz)
    left_lung = _ellipsoid(x, y, z, 0.2 * fov_x, -0.02 * fov_y, lung_z, lung_rx, lung_ry, lung_rz)
    liver = _ellipsoid(x, y, z, -0.14 * fov_x, 0.0, jitter(-0.38) * fov_z,
                       0.26 * fov_x, 0.26 * fov_y, 0.42 * fov_z) & inner
    # The liver dome pushes up into the right lung base, so the two share a surface.
    right_lung &= ~liver
    # A dependent (posterior, lower) effusion replaces the bottom of the left lung.
    effusion = left_lung & (y > (-0.02 + jitter(0.12)) * fov_y) & (z < lung_z)
    left_lung &= ~effusion
    nodule_radius = 0.075 * fov_x
    nodule = _ellipsoid(x, y, z, jitter(-0.2) * fov_x, jitter(-0.04) * fov_y, 0.2 * fov_z,
                        nodule_radius, nodule_radius, nodule_radius)
    lung = (right_lung | left_lung) & ~nodule

    labelmap = np.zeros(shape_kji, np.uint8)
    for name, region in (("lung", lung), ("liver", liver), ("effusion", effusion), ("nodule", nodule)):
        labelmap[region] = LABELS[name]

    hu = np.full(shape_kji, HU["air"], np.float32)
    hu[body] = HU["fat"]
    hu[inner] = HU["soft_tissue"]
    hu[spine & inner] = HU["bone"]
    for name, tissue in (("lung", "lung"), ("liver", "liver"), ("effusion", "fluid"), ("nodule", "soft_tissue")):
        hu[labelmap == LABELS[name]] = HU[tissue]
    if smoothing_voxels > 0:
        sigma_kji = (smoothing_voxels * spacing_kji[2] / spacing_kji[0], smoothing_voxels, smoothing_voxels)
        hu = ndimage.gaussian_filter(hu, sigma_kji)
    hu += rng.normal(0.0, noise_hu, shape_kji).astype(np.float32)
    image = np.clip(np.round(hu), -1024, 3071).astype(np.int16)

    nodule_k = np.flatnonzero(nodule.any(axis=(1, 2)))
    return CTPhantom(image=image, labelmap=labelmap, labels=dict(LABELS), spacing_kji=spacing_kji,
                     ijk_to_ras=phantom_ijk_to_ras(shape_kji, spacing_kji, oblique_degrees),
                     nodule_slices=(int(nodule_k[0]), int(nodule_k[-1])))


def phantom_ijk_to_ras(shape_kji, spacing_kji, oblique_degrees=0.0):
    """IJK->RAS matrix with LPS-style axes (i -> left, j -> posterior, k -> superior), centred on the origin.

    Parameters
    ----------
    shape_kji, spacing_kji : tuple of 3
        Volume size in voxels and voxel size in mm, both in (k, j, i) order.
    oblique_degrees : float
        Rotation about the S axis applied to the direction matrix.

    Returns
    -------
    ndarray of float, shape (4, 4)
    """
    angle = np.deg2rad(oblique_degrees)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    directions = rotation @ np.diag([-1.0, -1.0, 1.0])
    ijk_to_ras = np.eye(4)
    ijk_to_ras[:3, :3] = directions * np.asarray(spacing_kji[::-1], float)
    centre_ijk = (np.asarray(shape_kji[::-1], float) - 1) / 2
    ijk_to_ras[:3, 3] = -ijk_to_ras[:3, :3] @ centre_ijk
    return ijk_to_ras


def _centred_coordinates(shape_kji, spacing_kji):
    """Open grids of voxel-centre positions in mm, relative to the volume centre, in (k, j, i) order."""
    axes = [(np.arange(n, dtype=np.float32) - (n - 1) / 2) * s for n, s in zip(shape_kji, spacing_kji)]
    return axes[0][:, None, None], axes[1][None, :, None], axes[2][None, None, :]


def _ellipse(x, y, cx, cy, rx, ry, shape_kji):
    """Elliptic cylinder along k, as a full (K, J, I) mask."""
    inside = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1.0
    return np.broadcast_to(inside, shape_kji).copy()


def _ellipsoid(x, y, z, cx, cy, cz, rx, ry, rz):
    return ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 + ((z - cz) / rz) ** 2 <= 1.0
