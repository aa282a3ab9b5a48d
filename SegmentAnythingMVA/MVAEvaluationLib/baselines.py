"""Baselines the smart tools must beat: Slicer's own effects and simple slice propagation, arrays in/out.

- `growcut`: Segment Editor "Grow from seeds" (`slicer.vtkImageGrowCutSegment`, from slicer-core).
- `fill_between_slices`: "Fill between slices" (`slicer.vtkITKMorphologicalContourInterpolator`).
- `copy_propagation` / `demons_propagation`: slice-to-slice propagation by copying the previous mask or by
  warping it with SimpleITK demons registration between adjacent slices.

Each has a driver (`growcut_dab_curve`, `fill_between_curve`, `propagation_curve`) that runs the protocol of
EVALUATION.md and returns a `BaselineCurve` for `mva eval` / `mva report`. Arrays are (k, j, i).
slicer and vtk are imported on first use, so the propagation baselines also run without slicer-core.
"""
import os
import time
from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk

from MVAEvaluationLib.metrics import dice
from MVAEvaluationLib.simulated_user import DAB_RADIUS_VOXELS, SimulatedUser, dab_mask

FOREGROUND_SEED = 1
BACKGROUND_SEED = 2
PROPAGATION_DISTANCES = (1, 5, 10, 20)
FILL_GAPS = (2, 3, 5, 10)
GROWCUT_REPORTED_DABS = (1, 5, 10, 20, 30)


class BaselineInputError(ValueError):
    """Arrays given to a baseline do not have the shapes or contents it needs."""


@dataclass
class BaselineCurve:
    """Dice as a function of one protocol variable (interactions, slice gap or distance from the seed).

    `x[n]` goes with `dice[n]`; `seconds` holds the time of each update (empty if not timed); `details` holds
    extra per-protocol series (e.g. each propagation direction).
    """
    name: str
    x: list
    dice: list
    seconds: list = field(default_factory=list)
    details: dict = field(default_factory=dict)


def _slicer():
    # ITK's default TBB threader crashes slicer-core 5.11 at interpreter exit (SLICER_GUIDE.md section 8).
    os.environ.setdefault("ITK_GLOBAL_DEFAULT_THREADER", "Pool")
    import slicer
    return slicer


def _to_vtk(array_kji, spacing_kji=(1.0, 1.0, 1.0)):
    from vtk.util import numpy_support
    import vtk
    array_kji = np.ascontiguousarray(array_kji)
    if array_kji.dtype == bool:
        array_kji = array_kji.astype(np.uint8)
    image = vtk.vtkImageData()
    image.SetDimensions(*array_kji.shape[::-1])
    image.SetSpacing(*(float(s) for s in spacing_kji[::-1]))
    scalars = numpy_support.numpy_to_vtk(array_kji.ravel(), deep=True,
                                         array_type=numpy_support.get_vtk_array_type(array_kji.dtype))
    image.GetPointData().SetScalars(scalars)
    return image


def _from_vtk(image):
    from vtk.util import numpy_support
    i, j, k = image.GetDimensions()
    return numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(k, j, i).copy()


def _check_3d(name, array, shape=None):
    array = np.asarray(array)
    if array.ndim != 3:
        raise BaselineInputError(f"{name} must be a 3D (k, j, i) array, got shape {array.shape}")
    if shape is not None and array.shape != tuple(shape):
        raise BaselineInputError(f"{name} has shape {array.shape} but the image has shape {tuple(shape)}")
    return array


# ---------------------------------------------------------------- Grow from seeds
def growcut(image, seeds, spacing_kji=(1.0, 1.0, 1.0), mask=None, distance_penalty=0.0):
    """Slicer's "Grow from seeds" on a 3D array.

    Parameters
    ----------
    image : ndarray, shape (K, J, I), any real dtype
        Intensities; each dimension at least 3 voxels.
    seeds : ndarray of int, shape (K, J, I)
        0 for unlabelled voxels, else the label to grow (at least two distinct labels).
    spacing_kji : tuple of 3 float
        Voxel size in mm.
    mask : ndarray of bool, shape (K, J, I), optional
        True where voxels are excluded from growing (they come back as 0), as the editor's mask does.
    distance_penalty : float
        Slicer's "seed locality": extra cost per unit distance; 0 is the editor's default.

    Returns
    -------
    ndarray of uint8, shape (K, J, I)
        The seed label each voxel was reached from.

    Raises
    ------
    BaselineInputError
        If the shapes differ, a dimension is under 3 voxels, or the seeds have fewer than two labels.
    """
    image = _check_3d("image", image)
    seeds = _check_3d("seeds", seeds, image.shape)
    if min(image.shape) < 3:
        raise BaselineInputError(f"Grow from seeds needs at least 3 voxels along every axis, got {image.shape}")
    if len(np.unique(seeds[seeds != 0])) < 2:
        raise BaselineInputError("Grow from seeds needs seeds of at least two labels (e.g. foreground and "
                                 "background); paint a background seed as well")
    if seeds.max() > 255 or seeds.min() < 0:
        raise BaselineInputError("Seed labels must lie in 0..255")
    slicer = _slicer()
    grower = slicer.vtkImageGrowCutSegment()
    if image.dtype == bool:
        image = image.astype(np.uint8)
    grower.SetIntensityVolume(_to_vtk(image, spacing_kji))
    grower.SetSeedLabelVolume(_to_vtk(seeds.astype(np.uint8), spacing_kji))
    if mask is not None:
        grower.SetMaskVolume(_to_vtk(_check_3d("mask", mask, image.shape).astype(np.uint8), spacing_kji))
    grower.SetDistancePenalty(float(distance_penalty))
    grower.Update()
    return _from_vtk(grower.GetOutput()).astype(np.uint8)


def growcut_slice(image, slice_index, seeds_2d, spacing_kji=(1.0, 1.0, 1.0), background_frame=True,
                  distance_penalty=0.0):
    """The 2D protocol: grow on a 3-slice slab around `slice_index` from seeds on its middle slice.

    Parameters
    ----------
    image : ndarray, shape (K, J, I)
    slice_index : int
        The slice (k) being segmented; edge slices are padded by repetition.
    seeds_2d : ndarray of int, shape (J, I)
        `FOREGROUND_SEED`, `BACKGROUND_SEED` or 0.
    background_frame : bool
        Also seed a two-voxel frame along the slice's border as background. Grow from seeds needs two labels, and
        this stands in for the background seed a user paints around the object; it makes the first,
        positive-only interaction usable and reproduces the anchor figures of EVALUATION.md.

    Returns
    -------
    ndarray of bool, shape (J, I)
        Foreground on the middle slice.
    """
    image = _check_3d("image", image)
    seeds_2d = np.asarray(seeds_2d)
    if seeds_2d.shape != image.shape[1:]:
        raise BaselineInputError(f"seeds_2d has shape {seeds_2d.shape}, the slices are {image.shape[1:]}")
    if not 0 <= slice_index < image.shape[0]:
        raise BaselineInputError(f"Slice {slice_index} is outside the volume (0..{image.shape[0] - 1})")
    rows = np.clip(np.arange(slice_index - 1, slice_index + 2), 0, image.shape[0] - 1)
    slab = image[rows]
    seeds = np.zeros(slab.shape, np.uint8)
    if background_frame:
        # Growcut never grows out of the volume's outermost voxels, so the ring one voxel inside carries
        # the frame; the outermost ring is labelled too, so the whole border ends up background.
        for ring in (0, 1):
            seeds[1, [ring, -1 - ring], ring:seeds.shape[2] - ring] = BACKGROUND_SEED
            seeds[1, ring:seeds.shape[1] - ring, [ring, -1 - ring]] = BACKGROUND_SEED
    seeds[1][seeds_2d != 0] = seeds_2d[seeds_2d != 0]
    return growcut(slab, seeds, spacing_kji, distance_penalty=distance_penalty)[1] == FOREGROUND_SEED


def growcut_dab_curve(image, truth, slice_index, n_dabs=30, radius=DAB_RADIUS_VOXELS, seed=None,
                      background_frame=True):
    """Dice after each simulated dab for Grow from seeds on one slice (EVALUATION.md protocol).

    The simulated user (RITM rule, or the random variant with `seed`) places a dab of `radius` voxels,
    labelled as the click; growcut runs from all dabs so far; its result drives the next click.

    Parameters
    ----------
    image, truth : ndarray, shape (K, J, I)
    slice_index : int
    n_dabs : int

    Returns
    -------
    BaselineCurve
        x = 1..n (dabs), dice per dab, seconds per growcut update.
    """
    truth_2d = np.asarray(_check_3d("truth", truth, np.shape(image))[slice_index], bool)
    user = SimulatedUser(truth_2d, seed=seed)
    seeds = np.zeros(truth_2d.shape, np.uint8)
    click = user.first_click()
    scores, seconds = [], []
    for _ in range(n_dabs):
        if click is None:
            scores.append(scores[-1])
            continue
        seeds[dab_mask(truth_2d.shape, click.index, radius)] = FOREGROUND_SEED if click.positive else BACKGROUND_SEED
        if not background_frame and len(np.unique(seeds[seeds != 0])) < 2:
            prediction = seeds == FOREGROUND_SEED  # growcut cannot run yet: the dabs are the mask
            seconds.append(0.0)
        else:
            start = time.perf_counter()
            prediction = growcut_slice(image, slice_index, seeds, background_frame=background_frame)
            seconds.append(time.perf_counter() - start)
        scores.append(dice(prediction, truth_2d))
        click = user.next_click(prediction)
    return BaselineCurve("growcut", list(range(1, n_dabs + 1)), scores, seconds,
                         {"slice_index": int(slice_index), "background_frame": bool(background_frame)})


# ---------------------------------------------------------------- Fill between slices
def fill_between_slices(sparse_labelmap):
    """Slicer's "Fill between slices": morphological contour interpolation of a sparse labelmap.

    Parameters
    ----------
    sparse_labelmap : ndarray of int, shape (K, J, I)
        Labels on some slices, 0 elsewhere (values 0..255).

    Returns
    -------
    ndarray of uint8, shape (K, J, I)
        Labels on the given slices and interpolated between them (nothing beyond the outermost ones).
    """
    sparse_labelmap = _check_3d("sparse_labelmap", sparse_labelmap)
    if sparse_labelmap.min() < 0 or sparse_labelmap.max() > 255:
        raise BaselineInputError("Labels must lie in 0..255")
    interpolator = _slicer().vtkITKMorphologicalContourInterpolator()
    interpolator.SetInputData(_to_vtk(sparse_labelmap.astype(np.uint8)))
    interpolator.Update()
    return _from_vtk(interpolator.GetOutput()).astype(np.uint8)


def keep_every_gth_slice(truth, gap):
    """Keep the truth on slices k0, k0 + gap, ... of its axial extent [k0, k1].

    Returns
    -------
    sparse : ndarray of uint8, shape (K, J, I)
    kept : ndarray of int
        Slices that keep the truth.
    scored : ndarray of int
        The other slices of the extent: where the interpolation is judged.
    """
    truth = _check_3d("truth", truth).astype(bool)
    if int(gap) < 2:
        raise BaselineInputError(f"The gap must be at least 2 slices, got {gap}")
    occupied = np.flatnonzero(truth.any(axis=(1, 2)))
    if occupied.size == 0:
        raise BaselineInputError("The truth is empty: nothing to interpolate")
    extent = np.arange(occupied[0], occupied[-1] + 1)
    kept = extent[::int(gap)]
    sparse = np.zeros(truth.shape, np.uint8)
    sparse[kept] = truth[kept]
    return sparse, kept, np.setdiff1d(extent, kept)


def fill_between_curve(truth, gaps=FILL_GAPS):
    """Dice of Fill between slices with the truth kept on every g-th slice.

    `dice` is the 3D Dice over the slices that were not kept (within the truth's axial extent);
    `details["volume_dice"]` is the Dice over the whole volume, kept slices included.
    """
    scores, volume_scores, seconds = [], [], []
    truth = _check_3d("truth", truth).astype(bool)
    for gap in gaps:
        sparse, _, scored = keep_every_gth_slice(truth, gap)
        start = time.perf_counter()
        filled = fill_between_slices(sparse).astype(bool)
        seconds.append(time.perf_counter() - start)
        scores.append(dice(filled[scored], truth[scored]))
        volume_scores.append(dice(filled, truth))
    return BaselineCurve("fill_between", list(gaps), scores, seconds, {"volume_dice": volume_scores})


# ---------------------------------------------------------------- Slice-to-slice propagation
def copy_propagation(seed_mask, seed_slice, n_slices):
    """Propagation by copying the previous slice's mask: every slice gets the seed mask.

    Parameters
    ----------
    seed_mask : ndarray of bool, shape (J, I)
    seed_slice : int
    n_slices : int
        K, the number of slices of the result.

    Returns
    -------
    ndarray of bool, shape (K, J, I)
    """
    seed_mask = np.asarray(seed_mask, bool)
    if seed_mask.ndim != 2 or not 0 <= seed_slice < n_slices:
        raise BaselineInputError(f"Need a 2D seed mask and a seed slice in 0..{n_slices - 1}")
    return np.broadcast_to(seed_mask, (int(n_slices),) + seed_mask.shape).copy()


def demons_propagation(image, seed_mask, seed_slice, spacing_kji=(1.0, 1.0, 1.0), max_distance=None,
                       iterations=50, smoothing_mm=1.0):
    """Propagate a mask slice by slice, warping it with SimpleITK demons between adjacent slices.

    Each step registers slice k (moving) to slice k +- 1 (fixed) and resamples the current mask through the
    displacement field (linear interpolation, threshold 0.5); errors accumulate, as in interactive use.

    Parameters
    ----------
    image : ndarray, shape (K, J, I)
    seed_mask : ndarray of bool, shape (J, I)
    seed_slice : int
    spacing_kji : tuple of 3 float
        Voxel size in mm (the in-plane part sets the registration's physical units).
    max_distance : int, optional
        Stop this many slices from the seed in each direction (default: the whole volume).
    iterations : int
        Demons iterations per slice pair.
    smoothing_mm : float
        Standard deviation of the Gaussian that regularises the displacement field.

    Returns
    -------
    ndarray of bool, shape (K, J, I)
        The seed mask on `seed_slice`, propagated masks elsewhere (empty beyond `max_distance`).
    """
    image = _check_3d("image", image).astype(np.float32)
    seed_mask = np.asarray(seed_mask, bool)
    if seed_mask.shape != image.shape[1:] or not 0 <= seed_slice < image.shape[0]:
        raise BaselineInputError(f"Need a seed mask of shape {image.shape[1:]} and a seed slice in "
                                 f"0..{image.shape[0] - 1}")
    spacing_ji = tuple(float(s) for s in spacing_kji[1:][::-1])
    result = np.zeros(image.shape, bool)
    result[seed_slice] = seed_mask
    limit = image.shape[0] if max_distance is None else int(max_distance)
    for step in (1, -1):
        mask = seed_mask
        k = seed_slice
        while 0 <= k + step < image.shape[0] and abs(k + step - seed_slice) <= limit:
            mask = _demons_step(mask, image[k], image[k + step], spacing_ji, iterations, smoothing_mm)
            k += step
            result[k] = mask
    return result


def _demons_step(mask, moving_slice, fixed_slice, spacing_ji, iterations, smoothing_mm):
    fixed = sitk.GetImageFromArray(fixed_slice)
    moving = sitk.GetImageFromArray(moving_slice)
    for item in (fixed, moving):
        item.SetSpacing(spacing_ji)
    demons = sitk.DemonsRegistrationFilter()
    demons.SetNumberOfIterations(int(iterations))
    demons.SetStandardDeviations(float(smoothing_mm))
    field = demons.Execute(fixed, moving)
    transform = sitk.DisplacementFieldTransform(sitk.Cast(field, sitk.sitkVectorFloat64))
    moving_mask = sitk.GetImageFromArray(mask.astype(np.float32))
    moving_mask.SetSpacing(spacing_ji)
    warped = sitk.Resample(moving_mask, fixed, transform, sitk.sitkLinear, 0.0)
    return sitk.GetArrayFromImage(warped) >= 0.5


def propagation_curve(method, image, truth, distances=PROPAGATION_DISTANCES, seed_slice=None,
                      spacing_kji=(1.0, 1.0, 1.0), axis=0):
    """Dice at each distance (slices) from the seed, for "copy" or "demons" propagation.

    The seed is the truth on `seed_slice` (default: the slice with the largest truth area). Slices are taken
    along array `axis` (0: k, axial for an axial volume; 1: j; 2: i). `dice` is the mean of the two
    directions; `details` has "up" (increasing index), "down", "seed_slice" and "axis". A direction that
    leaves the volume scores NaN at that distance.
    """
    image = _check_3d("image", image)
    truth = _check_3d("truth", truth, image.shape).astype(bool)
    if axis not in (0, 1, 2):
        raise BaselineInputError(f"axis must be 0, 1 or 2, got {axis}")
    image, truth = np.moveaxis(image, axis, 0), np.moveaxis(truth, axis, 0)
    spacing_kji = tuple(np.moveaxis(np.asarray(spacing_kji, float), axis, 0))
    if seed_slice is None:
        seed_slice = int(np.argmax(truth.sum(axis=(1, 2))))
    start = time.perf_counter()
    if method == "copy":
        propagated = copy_propagation(truth[seed_slice], seed_slice, image.shape[0])
    elif method == "demons":
        propagated = demons_propagation(image, truth[seed_slice], seed_slice, spacing_kji,
                                        max_distance=max(distances))
    else:
        raise BaselineInputError(f"Unknown propagation method {method!r}; choose 'copy' or 'demons'")
    seconds = time.perf_counter() - start
    directions = {}
    for name, step in (("up", 1), ("down", -1)):
        directions[name] = [dice(propagated[seed_slice + step * d], truth[seed_slice + step * d])
                            if 0 <= seed_slice + step * d < image.shape[0] else float("nan")
                            for d in distances]
    mean = [float(np.mean([v for v in pair if not np.isnan(v)])) if not np.isnan(pair).all() else float("nan")
            for pair in zip(directions["up"], directions["down"])]
    return BaselineCurve(method, list(distances), mean, [seconds],
                         dict(directions, seed_slice=int(seed_slice), axis=int(axis)))
