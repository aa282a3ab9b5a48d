"""Supervoxel quality next to SimpleITK SLIC in the same run: edges followed, leaks, grid over homogeneous tissue.

numpy / scipy / scikit-image / SimpleITK only; arrays (k, j, i).
"""
import time

import numpy as np
import SimpleITK as sitk
from scipy import ndimage
from skimage.segmentation import find_boundaries

from MVAEvaluationLib.metrics import oracle_dice, undersegmentation_error


def boundary_recall(regions, truth_labels, tolerance_voxels=1):
    """Fraction of the truth's boundary voxels within `tolerance_voxels` (chessboard) of a region boundary."""
    truth_edges = find_boundaries(np.asarray(truth_labels), connectivity=1, mode="inner")
    region_edges = find_boundaries(np.asarray(regions), connectivity=1, mode="inner")
    if tolerance_voxels > 0:
        region_edges = ndimage.binary_dilation(region_edges, np.ones((3, 3, 3), bool), iterations=tolerance_voxels)
    return float((truth_edges & region_edges).sum() / max(truth_edges.sum(), 1))


def boundary_fraction(regions, inside=None):
    """Fraction of voxels (of `inside`, default all) that lie on a region boundary."""
    edges = find_boundaries(np.asarray(regions), connectivity=1, mode="inner")
    inside = np.ones(edges.shape, bool) if inside is None else np.asarray(inside, bool)
    return float((edges & inside).sum() / max(inside.sum(), 1))


def slic_regions(image, spacing_kji, region_size_mm):
    """SimpleITK SLIC with grid cells of about `region_size_mm` (labels from 1)."""
    volume = sitk.GetImageFromArray(np.asarray(image, np.float32))
    volume.SetSpacing(tuple(float(s) for s in spacing_kji[::-1]))
    slic = sitk.SLICImageFilter()
    slic.SetSuperGridSize([max(2, int(round(region_size_mm / s))) for s in spacing_kji[::-1]])
    return sitk.GetArrayFromImage(slic.Execute(volume)).astype(np.int64) + 1


def compare(image, truth_labels, spacing_kji=(1.0, 1.0, 1.0), region_size_mm=None):
    """Ours and SLIC on one labelled volume: regions, seconds, boundary recall, USE and oracle Dice of each.

    Returns
    -------
    dict of method name -> dict of measures
    """
    from SmartRegionsLib.algorithms.supervoxels import SupervoxelParameters, compute_supervoxels
    parameters = SupervoxelParameters() if region_size_mm is None else SupervoxelParameters(region_size_mm)
    truth_labels = np.asarray(truth_labels)
    out = {}
    for name, make in (("ours", lambda: compute_supervoxels(image, spacing_kji, parameters)),
                       ("SimpleITK SLIC", lambda: slic_regions(image, spacing_kji, parameters.region_size_mm))):
        tic = time.perf_counter()
        regions = make()
        seconds = time.perf_counter() - tic
        out[name] = {"regions": int(len(np.unique(regions))), "seconds": round(seconds, 2),
                     "boundary_recall": round(boundary_recall(regions, truth_labels), 4),
                     "undersegmentation_error": round(undersegmentation_error(regions, truth_labels), 4),
                     "oracle_dice": round(oracle_dice(regions, truth_labels > 0), 4)}
    return out


def homogeneous_phantom(shape=(64, 64, 64), noise=10.0, seed=0):
    """A uniform 100 +- noise volume with a bright 200 ball in its centre (the ball keeps SLIC's contrast scale
    meaningful); returns (image, labels, homogeneous mask: the uniform part at least 3 voxels from the ball)."""
    grid = np.ogrid[tuple(slice(0, n) for n in shape)]
    ball = sum(((g - n / 2) / (n / 6)) ** 2 for g, n in zip(grid, shape)) <= 1.0
    rng = np.random.default_rng(seed)
    image = np.where(ball, 200.0, 100.0) + rng.normal(0, noise, shape)
    homogeneous = ~ndimage.binary_dilation(ball, iterations=3)
    return image.astype(np.float32), ball.astype(np.uint8), homogeneous


def grid_artefact(shape=(64, 64, 64), noise=10.0, region_size_mm=None):
    """Fraction of the homogeneous part of `homogeneous_phantom` that lies on region boundaries, ours vs SLIC."""
    from SmartRegionsLib.algorithms.supervoxels import SupervoxelParameters, compute_supervoxels
    parameters = SupervoxelParameters() if region_size_mm is None else SupervoxelParameters(region_size_mm)
    image, _, homogeneous = homogeneous_phantom(shape, noise)
    ours = compute_supervoxels(image, (1.0, 1.0, 1.0), parameters)
    slic = slic_regions(image, (1.0, 1.0, 1.0), parameters.region_size_mm)
    return {"ours": round(boundary_fraction(ours, homogeneous), 4),
            "SimpleITK SLIC": round(boundary_fraction(slic, homogeneous), 4)}
