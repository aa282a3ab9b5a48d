"""A smooth multiplicative intensity field of an MRI (coil bias), estimated from the image itself.

The same tissue can be 20 % brighter on one side of an MRI than on the other; a classifier trained on strokes in
one place then takes far grey matter for white matter. N4 (SimpleITK) estimates the field on a copy of about
`COARSE_CELLS_PER_AXIS` voxels along each axis (a few tens of thousands of voxels: a second or two), and the field is
interpolated back onto the image grid. Nothing here applies to CT: Hounsfield units are absolute; nor to an image
exported through a display window (clipped at both ends), whose values no longer scale with a field.
"""
import numpy as np
from scipy import ndimage

# The coarse copy has about this many voxels along each axis, whatever the voxel size: N4's mesh spans the image's
# extent, so the field it fits is a fraction of that extent too. (Sized in mm, 6 mm, a 0.4 mm-voxel copy of MNI was
# shrunk 15-fold and its one-level field spanned 4.5 % instead of 0.5 %.) Chosen on the tuning family bias: the 3D
# brush on MNI WM bias20 / bias20 + rician5 reached 3D Dice 0.90 in 8 / 7 interactions with 32, 14 / - with 24,
# - / 6 with 20, 8 / 9 with 28 (6 mm cells: 8 / 10).
COARSE_CELLS_PER_AXIS = 32
# A display window clips both ends of the range: CT exported as uint8 through a soft-tissue window holds its air
# and lung at the lowest value (59 % of the CT phantom's voxels) and its bone at the highest (1.2 %). Such values
# do not scale with a field (N4 took that phantom's anatomy for a 9 % bias). A magnitude MRI has a plateau at one
# end at most: a dark background at 0, or, with noise and storage saturating, a few voxels at the top (MNI with
# 10 % Rician noise in uint8: 1.3 % at 255, no voxel at its minimum 0; MNI with a 20 % bias: 0.1 % at 255).
MIN_CLIPPED_LOW_FRACTION = 0.01
MIN_CLIPPED_HIGH_FRACTION = 0.005
MAX_COARSE_VOXELS = 100_000
# N4's smoothest field (one fitting level of a 4-point B-spline mesh) tells whether there is a bias: on the
# bias-free MNI template it stays within 0.3 %, while finer meshes take tissue structure for bias (two levels bent
# that template's field by 10 %, three by 20 %). A field spanning less than MIN_FIELD_RATIO (1st to 99th
# percentile) is noise, not bias: the image is left as it is. On the MNI central crop every variant but bias stays
# within 1.1 % and a 20 % bias spans 14 %; a thinner volume (the 2D brush's 41-slice slabs of the tuning variants)
# holds more anatomy the mesh can bend to: the bias-free grey matter slabs with Rician noise spanned up to 5.7 %,
# the 10 % bias slab 8.5 %.
MIN_FIELD_RATIO = 1.07
# Where there is one, two levels estimate it (MNI with a 20 % bias and 5 % noise: the 3D brush reached 3D Dice
# 0.90 in 11 interactions, 14 with one level, never uncorrected).
FITTING_LEVELS = 2
ITERATIONS = 50


def _shrink_factors(shape):
    """Shrink factor per axis: about `COARSE_CELLS_PER_AXIS` coarse voxels along each axis (at most
    `MAX_COARSE_VOXELS` in all; each axis keeps at least 4)."""
    shape = np.array(shape)
    factors = np.maximum(1, np.round(shape / COARSE_CELLS_PER_AXIS)).astype(int)
    while np.prod(shape // factors) > MAX_COARSE_VOXELS:
        factors += 1
    return [int(f) for f in np.minimum(factors, np.maximum(shape // 4, 1))]


def clipped_at_both_ends(image_kji):
    """Whether `image_kji` looks exported through a display window: at least `MIN_CLIPPED_LOW_FRACTION` of its
    voxels at its lowest value and `MIN_CLIPPED_HIGH_FRACTION` at its highest (every 2nd voxel along each axis)."""
    values = np.asarray(image_kji)[::2, ::2, ::2]
    low, high = values.min(), values.max()
    return bool(low < high and np.mean(values <= low) >= MIN_CLIPPED_LOW_FRACTION
                and np.mean(values >= high) >= MIN_CLIPPED_HIGH_FRACTION)


def _log_field(coarse, foreground, inside, levels):
    """N4's log field of the coarse image (numpy), 0 at its median over the foreground."""
    import SimpleITK as sitk
    n4 = sitk.N4BiasFieldCorrectionImageFilter()
    n4.SetMaximumNumberOfIterations([ITERATIONS] * levels)
    n4.SetNumberOfControlPoints([4, 4, 4])
    n4.SetNumberOfThreads(1)  # a small image: a thread pool only waits for busy cores
    n4.Execute(coarse, foreground)
    log_field = sitk.GetArrayFromImage(n4.GetLogBiasFieldAsImage(coarse)).astype(np.float32)
    return log_field - np.float32(np.median(log_field[inside]))


def estimate_bias_field(image_kji, spacing_kji=(1.0, 1.0, 1.0)):
    """float32 field of `image_kji`'s shape, median 1 over the foreground, such that ``image / field`` is the image
    without its smooth multiplicative bias; None when the image cannot have one (a negative 0.5 percentile, fewer
    than 16 voxels along an axis, values clipped by a display window (`clipped_at_both_ends`), or no foreground)
    or its field is flat (within `MIN_FIELD_RATIO`). `spacing_kji` (mm) is the coarse copy's geometry; its grid is
    sized in voxels, not mm."""
    import SimpleITK as sitk
    image = np.asarray(image_kji, np.float32)
    if image.ndim != 3 or min(image.shape) < 16 or float(np.percentile(image[::4, ::4, ::4], 0.5)) < 0:
        return None
    if clipped_at_both_ends(image):
        return None
    factors = _shrink_factors(image.shape)
    coarse = sitk.GetImageFromArray(image)
    coarse.SetSpacing([float(s) for s in spacing_kji[::-1]])
    coarse = sitk.Shrink(coarse, factors[::-1])
    coarse = sitk.Cast(coarse, sitk.sitkFloat32) + 1e-3  # N4 works on the logarithm
    foreground = sitk.OtsuThreshold(coarse, 0, 1, 200)
    inside = sitk.GetArrayViewFromImage(foreground) > 0
    if inside.sum() < 64:
        return None
    low, high = np.percentile(_log_field(coarse, foreground, inside, 1), [1, 99])
    if high - low < np.log(MIN_FIELD_RATIO):
        return None
    log_field = _log_field(coarse, foreground, inside, FITTING_LEVELS)
    zoom = [n / m for n, m in zip(image.shape, log_field.shape)]
    full = ndimage.zoom(log_field, zoom, order=1, mode="nearest", grid_mode=True)
    return np.exp(full[:image.shape[0], :image.shape[1], :image.shape[2]])
