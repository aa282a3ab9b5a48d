"""Validation shared by propagation and interpolation (raises the specific errors of propagation_errors)."""
import numpy as np

from .propagation_errors import (
    EmptySeedMaskError, NonFiniteImageError, PropagationInputError, ShapeMismatchError, SliceOutOfRangeError)


def check_volume(image_kji, spacing_kji):
    """Return (image as a 3D array, spacing as a float tuple) or raise."""
    image_kji = np.asarray(image_kji)
    if image_kji.ndim != 3:
        raise ShapeMismatchError(
            f"The image must be a 3D array (k, j, i) with the propagation axis first; got shape {image_kji.shape}")
    if not np.issubdtype(image_kji.dtype, np.number) or np.iscomplexobj(image_kji):
        raise PropagationInputError(f"The image must hold real numbers; got dtype {image_kji.dtype}")
    if np.issubdtype(image_kji.dtype, np.floating) and not np.isfinite(image_kji).all():
        bad = int(np.count_nonzero(~np.isfinite(image_kji)))
        raise NonFiniteImageError(
            f"The image has {bad} NaN or infinite voxels; replace them (e.g. with the background value) first")
    spacing = np.asarray(spacing_kji, float).ravel()
    if spacing.shape != (3,) or not np.all(np.isfinite(spacing)) or np.any(spacing <= 0):
        raise ShapeMismatchError(f"spacing_kji must be three positive numbers in mm; got {spacing_kji!r}")
    return image_kji, tuple(float(s) for s in spacing)


def check_slice_index(k, image_kji, what="seed slice"):
    """Return `k` as an int inside [0, K) or raise SliceOutOfRangeError."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise SliceOutOfRangeError(f"The {what} index must be an integer; got {k!r}")
    count = image_kji.shape[0]
    if not 0 <= int(k) < count:
        raise SliceOutOfRangeError(f"The {what} {int(k)} is outside the volume (slices 0 to {count - 1})")
    return int(k)


def check_slice_mask(mask_2d, image_kji, what="seed mask", allow_empty=False):
    """Return the mask as a bool (J, I) array or raise (wrong shape, empty)."""
    mask_2d = np.asarray(mask_2d)
    if mask_2d.shape != image_kji.shape[1:]:
        raise ShapeMismatchError(
            f"The {what} has shape {mask_2d.shape} but a slice of the image has shape {image_kji.shape[1:]}")
    mask_2d = mask_2d.astype(bool)
    if not allow_empty and not mask_2d.any():
        raise EmptySeedMaskError(f"The {what} is empty: paint the object on that slice first")
    return mask_2d
