"""What makes a volume's geometry or voxel values unusable for the tools (numpy only, no Slicer import).

Each function returns None when the input is fine, or a sentence a user can act on; the callers
(`volumes.py` for nodes, `volume_io.py` for files) raise their own error classes with it.
"""
import numpy as np

# Below 1 nm or above 1 km per voxel the tools' millimetre maths (brush radius, region size, distances)
# degenerates, and VTK's geometry tolerances no longer hold.
MIN_SPACING_MM = 1e-6
MAX_SPACING_MM = 1e6
MAX_ORIGIN_MM = 1e9
# Directions whose parallelepiped has less than this fraction of the box volume are (nearly) parallel.
MIN_ORTHOGONALITY = 1e-6
# The tools compute in float32: beyond this magnitude differences between neighbouring intensities vanish
# (float32 steps of 64 at 1e9) and propagation's arithmetic overflows (measured at +-1e9).
MAX_ABS_INTENSITY = 1e8


def geometry_problem(ijk_to_ras, name="volume"):
    """Why a 4x4 IJK->RAS matrix cannot be used, or None.

    Parameters
    ----------
    ijk_to_ras : array-like, shape (4, 4)
        Columns 0-2 are the voxel axes (direction times spacing in mm), column 3 the origin in mm.
    name : str
        How the message names the volume.

    Returns
    -------
    str or None
    """
    try:
        matrix = np.asarray(ijk_to_ras, float)
    except (TypeError, ValueError):
        return f"{name} has an IJK->RAS matrix that is not numeric"
    if matrix.shape != (4, 4):
        return f"{name} has an IJK->RAS matrix of shape {matrix.shape}; a 4x4 matrix is needed"
    if not np.all(np.isfinite(matrix)):
        return (f"{name} has NaN or infinite values in its spacing, origin or directions; "
                "fix the image header (spacing, origin, direction) and load it again")
    if not np.allclose(matrix[3], (0, 0, 0, 1)):
        return f"{name} has an IJK->RAS matrix whose last row is {matrix[3].tolist()}, not [0, 0, 0, 1]"
    spacing = np.linalg.norm(matrix[:3, :3], axis=0)
    listed = ", ".join(f"{s:g}" for s in spacing)
    if np.any(spacing == 0):
        return f"{name} has zero voxel spacing ({listed} mm); set a positive spacing in the image header"
    if np.any(spacing < MIN_SPACING_MM) or np.any(spacing > MAX_SPACING_MM):
        return (f"{name} has voxel spacing {listed} mm, outside {MIN_SPACING_MM:g} to {MAX_SPACING_MM:g} mm; "
                "the header's spacing is probably in the wrong unit: set it in millimetres")
    orthogonality = abs(np.linalg.det(matrix[:3, :3])) / float(np.prod(spacing))
    if orthogonality < MIN_ORTHOGONALITY:
        return f"{name} has parallel (degenerate) voxel axes; fix the direction matrix in the image header"
    if np.any(np.abs(matrix[:3, 3]) > MAX_ORIGIN_MM):
        return (f"{name} has its origin {matrix[:3, 3].tolist()} mm more than {MAX_ORIGIN_MM:g} mm away; "
                "fix the origin in the image header")
    return None


def spacing_problem(spacing_ijk, name="volume"):
    """Why a node's own spacing triple (i, j, k) is unusable (zero, negative, NaN), or None."""
    spacing = np.asarray(spacing_ijk, float)
    if not np.all(np.isfinite(spacing)) or np.any(spacing <= 0):
        listed = ", ".join(f"{s:g}" for s in spacing)
        return (f"{name} has voxel spacing {listed} mm; every spacing must be a positive number "
                "(flips belong in the direction matrix)")
    return None


def intensity_problem(array_kji, name="volume"):
    """Why voxel values are beyond what the tools' float32 maths handles, or None.

    Only called on real numeric arrays; NaN and infinite values are reported by the caller's own check.
    """
    array = np.asarray(array_kji)
    if array.size == 0 or array.dtype == bool:
        return None
    if np.issubdtype(array.dtype, np.integer) and np.iinfo(array.dtype).max <= MAX_ABS_INTENSITY:
        return None  # (u)int8 / (u)int16 cannot exceed the limit: skip the scan
    low, high = float(np.min(array)), float(np.max(array))
    if not (np.isfinite(low) and np.isfinite(high)):
        return None
    if max(abs(low), abs(high)) > MAX_ABS_INTENSITY:
        return (f"{name} has voxel values from {low:g} to {high:g}; the tools handle values within "
                f"+-{MAX_ABS_INTENSITY:g}: rescale the volume (e.g. divide by a constant) first")
    return None
