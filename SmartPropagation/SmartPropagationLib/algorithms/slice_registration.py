"""Slice-to-slice deformable registration (SimpleITK demons) on a crop around the mask."""
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage


@dataclass
class RegistrationSettings:
    """Demons settings for neighbouring slices, where displacements are a few pixels.

    Attributes
    ----------
    iterations : int
        Demons iterations (each costs about one pass over the crop).
    field_sigma_px : float
        Gaussian smoothing of the displacement field, in pixels (elastic regularisation).
    margin_px : int
        Crop margin around the mask's bounding box, in pixels.
    shrink : int
        Registration runs on the crop shrunk by this factor (the refinement restores the detail).
    """
    iterations: int = 20
    field_sigma_px: float = 1.5
    margin_px: int = 16
    shrink: int = 2


def signed_distance(mask_2d, sampling=None):
    """Signed distance to the mask boundary, positive inside (float32, in the units of `sampling`)."""
    mask_2d = np.asarray(mask_2d, bool)
    if not mask_2d.any():
        return np.full(mask_2d.shape, -1e3, np.float32)
    if mask_2d.all():
        return np.full(mask_2d.shape, 1e3, np.float32)
    inside = ndimage.distance_transform_edt(mask_2d, sampling=sampling)
    outside = ndimage.distance_transform_edt(~mask_2d, sampling=sampling)
    # Half a pixel each side puts the zero level on the boundary between pixels.
    return (inside - outside + np.where(mask_2d, -0.5, 0.5)).astype(np.float32)


def crop_box(mask_2d, margin_px):
    """Bounding box of the mask grown by `margin_px`, clipped: a tuple of two slices (rows, columns)."""
    rows = np.flatnonzero(mask_2d.any(axis=1))
    cols = np.flatnonzero(mask_2d.any(axis=0))
    shape = mask_2d.shape
    return (slice(max(rows[0] - margin_px, 0), min(rows[-1] + margin_px + 1, shape[0])),
            slice(max(cols[0] - margin_px, 0), min(cols[-1] + margin_px + 1, shape[1])))


def _normalised(image_2d, low, high):
    scaled = (np.asarray(image_2d, np.float32) - low) / max(high - low, 1e-6)
    return sitk.GetImageFromArray(np.clip(scaled, -0.5, 1.5) * 100.0)


def register_and_warp(image_from, image_to, fields_from, settings=None):
    """Register `image_to` (fixed) to `image_from` (moving) and warp maps of `image_from` onto `image_to`.

    Parameters
    ----------
    image_from, image_to : ndarray (J, I)
        Two neighbouring slices, already cropped to the same box.
    fields_from : sequence of ndarray of float (J, I)
        Maps defined on `image_from` (e.g. a signed distance); warped with linear interpolation.
    settings : RegistrationSettings, optional

    Returns
    -------
    warped : list of ndarray of float32 (J, I)
        The maps resampled on the grid of `image_to`.
    similarity : float
        Normalised cross-correlation between the warped `image_from` and `image_to` (1 is identical).
    """
    settings = settings or RegistrationSettings()
    low, high = np.percentile(np.concatenate([image_from.ravel(), image_to.ravel()]), [1, 99])
    moving = _normalised(image_from, low, high)
    fixed = _normalised(image_to, low, high)
    shrink = max(int(settings.shrink), 1)
    # Tiny crops are registered at full resolution: demons needs a few pixels per side.
    shrink = [shrink if min(image_to.shape) >= 8 * shrink else 1] * 2
    demons = sitk.FastSymmetricForcesDemonsRegistrationFilter()
    demons.SetNumberOfIterations(settings.iterations)
    # Field smoothing in physical units of the shrunk grid, i.e. pixels of the shrunk image.
    demons.SetStandardDeviations(settings.field_sigma_px)
    field = demons.Execute(sitk.Shrink(fixed, shrink), sitk.Shrink(moving, shrink))
    transform = sitk.DisplacementFieldTransform(sitk.Cast(field, sitk.sitkVectorFloat64))
    warped = []
    for values in list(fields_from) + [image_from]:
        source = sitk.GetImageFromArray(np.asarray(values, np.float32))
        resampled = sitk.Resample(source, fixed, transform, sitk.sitkLinear, float(np.min(values)))
        warped.append(sitk.GetArrayViewFromImage(resampled).astype(np.float32))
    warped_image = warped.pop()
    return warped, _correlation(warped_image, np.asarray(image_to, np.float32))


def _correlation(a, b):
    a = a - a.mean()
    b = b - b.mean()
    norm = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / norm) if norm > 0 else 1.0
