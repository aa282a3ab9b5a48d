"""Smart Brush in 3D, as ilastik does it: strokes on any slices train one classifier that predicts the object in 3D.

Strokes are voxel sets of the volume grid (from axial, coronal, sagittal or oblique planes alike). The prediction
covers a region of interest (ROI) around all strokes, grown when the object reaches its faces; features of the
ROI are computed once per ROI and cached with the ROI's feature cells (voxels grouped by quarter-bandwidth cells
in feature space), and the classifier labels each cell once, which keeps an update on a 128^3 ROI interactive
on a CPU (`prediction="coarse_to_fine"`, the earlier per-voxel evaluation, is kept for comparison). Features of
an MRI come from the image with its smooth bias field divided out (`bias_field`), so that one tissue looks alike
across the volume.
Arrays are (k, j, i), spacing in mm in the same order; label 0 is background (erase strokes).
"""

import numpy as np
import torch
from scipy import ndimage

from .bias_field import estimate_bias_field
from .classifier import BACKGROUND, KernelDensityClassifier
from .errors import SmartBrushInputError
from .feature_cells import feature_cells
from .features import FeatureSettings, compute_features, intensity_map, sanitize

# ROI faces snap to multiples of this many voxels, so that a new stroke near the old ones reuses the features.
ROI_QUANTUM_VOXELS = 16
# Kernel centres per label: the prediction costs (feature cells x centres), and the density of a stroke's feature
# cluster at the classifier's bandwidth barely changes with more.
CENTRES_PER_LABEL = 64
# Feature cell edge in classifier bandwidths (the classifier merges its own samples on the same cells).
CELL_BANDWIDTHS = 0.25
PREDICTION_MODES = ("cells", "coarse_to_fine")
# In 3D, voxels near an object's surface have multi-scale features unlike a dab's deep interior samples; the 2D
# brush's "none of the above" floor at 3 bandwidths called them background (a clean ball: Dice 0.75 from one
# dab inside and one outside); at 6 bandwidths they take the nearer label (Dice 1.0).
OUTLIER_DISTANCE = 6.0
# ... but such a voxel's label is a guess. The classifier is sure of a voxel only where it is like the stroke
# samples of its label: the label's density there is at least what the samples themselves have, but for the least
# typical SURE_QUANTILE of the label's stroke weight (a kernel density's usual novelty test). Voxels less like
# every label (grey matter when white matter and a few background dabs were painted) flip from one retraining to
# the next, so a correction takes the classifier's word far from its stroke only where it is sure (`sure`).
SURE_QUANTILE = 0.05
# One painted label only (no background example yet): similar intensity smoothed at the middle feature scale
# (1.6 mm: a 3D Gaussian of that size averages dozens of voxels, so noise hardly widens the band), 3 robust
# deviations wide and at least SIMILARITY_TOLERANCE (normalised units; 7.5 HU on CT) for noise-free images.
SIMILARITY_DEVIATIONS = 3.0
SIMILARITY_TOLERANCE = 0.05


def _stroke_weights(block):
    """Squared in-plane depth of each stroke voxel (rims count least); the plane is the block's thin axis."""
    block = np.asarray(block, bool)
    thin = int(np.argmin(block.shape))
    if block.shape[thin] == 1:
        plane = np.take(block, 0, axis=thin)
        depth = ndimage.distance_transform_edt(np.pad(plane, 1))[1:-1, 1:-1]
        return np.expand_dims(depth, thin)[block] ** 2
    depth = ndimage.distance_transform_edt(np.pad(block, 1))[1:-1, 1:-1, 1:-1]
    return depth[block] ** 2


def bounding_box(mask):
    """The smallest tuple of slices holding every True voxel of `mask`, or None when it has none."""
    box = []
    for axis in range(mask.ndim):
        present = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        if present.size == 0:
            return None
        box.append(slice(int(present[0]), int(present[-1]) + 1))
    return tuple(box)


def connected_to(region, seeds):
    """The components of `region` (bool) holding a voxel of `seeds` (bool, same shape); labelled in the region's
    bounding box only (a correction's region is often a small part of the ROI)."""
    region = np.asarray(region, bool)
    out = np.zeros(region.shape, bool)
    box = bounding_box(region)
    if box is None:
        return out
    labelled, count = ndimage.label(region[box])
    keep = np.zeros(count + 1, bool)
    keep[labelled[np.asarray(seeds, bool)[box]]] = True
    keep[0] = False
    out[box] = keep[labelled]
    return out


class _DensityClassifier(KernelDensityClassifier):
    """The brush's classifier, also giving each label's kernel density (no floor) at a few thousand rows."""

    def typical_densities(self, quantile):
        """(labels,) per label, the density at its own samples below which `quantile` of its stroke weight lies
        (inf for a label without samples: nothing is like it)."""
        painted = [n for n, samples in enumerate(self._samples) if samples is not None]
        density = self.densities(torch.cat([self._samples[n] for n in painted]).numpy())
        out = np.full(self.labels_.size, np.inf)
        row = 0
        for column in painted:
            weights = self._weights[column].numpy().astype(np.float64)
            own = density[row:row + weights.size, column]
            row += weights.size
            order = np.argsort(own)
            below = np.cumsum(weights[order])
            out[column] = own[order][min(int(np.searchsorted(below, quantile * below[-1])), own.size - 1)]
        return out

    def densities(self, features):
        """(m, labels) kernel density of each label in `labels_` order (0 where a label has no samples)."""
        rows = torch.from_numpy(np.ascontiguousarray(features, np.float32))
        out = torch.zeros((rows.shape[0], self.labels_.size))
        with torch.no_grad():
            for column, (samples, weights) in enumerate(zip(self._samples, self._weights)):
                if samples is not None:
                    kernel = torch.cdist(rows, samples, compute_mode="use_mm_for_euclid_dist").square_()
                    out[:, column] = kernel.mul_(-0.5 / self.bandwidth ** 2).exp_() @ weights
        return out.numpy()


def _floor(distance):
    """The kernel of a sample `distance` bandwidths away."""
    return float(np.exp(-0.5 * distance ** 2))


class VolumeBrushModel:
    """One online classifier for a 3D volume, trained by strokes drawn in any orientation.

    Parameters
    ----------
    image_kji : ndarray, 3D
        Any real dtype; NaN/inf voxels are replaced for the features.
    spacing_kji : sequence of 3 float
        Voxel size in mm.
    seed : int
        Seed of the classifier's subsampling of large strokes.
    margin_mm : float
        Context around the strokes that the ROI covers (each side), and the step by which it grows.
    max_roi_voxels : int
        The ROI stops growing at this size.
    settings : FeatureSettings or None
    classifier_options : dict or None
        Keyword arguments of `KernelDensityClassifier`.
    prediction : {"cells", "coarse_to_fine"}
        "cells" labels each feature cell of the ROI once; "coarse_to_fine" (the earlier way, 10-50 times slower)
        labels every other voxel, then every voxel where those labels change.
    bias_correction : bool
        Features of an image that is not CT come from the image divided by its estimated smooth multiplicative
        field (`estimate_bias_field`); `bias_corrected` says whether it was.
    """

    def __init__(self, image_kji, spacing_kji=(1.0, 1.0, 1.0), seed=0, margin_mm=20.0, max_roi_voxels=12_000_000,
                 settings=None, classifier_options=None, prediction="cells", bias_correction=True):
        image = np.asarray(image_kji)
        if image.ndim != 3 or image.size == 0 or not np.issubdtype(image.dtype, np.number):
            raise SmartBrushInputError(f"The 3D brush needs a non-empty real 3D (k, j, i) image, got "
                                       f"{image.dtype} {image.shape}")
        spacing = tuple(float(s) for s in spacing_kji)
        if len(spacing) != 3 or not all(np.isfinite(spacing)) or min(spacing) <= 0:
            raise SmartBrushInputError(f"Spacing must be 3 positive mm values in (k, j, i) order, got {spacing_kji}")
        if margin_mm <= 0 or max_roi_voxels < 1:
            raise SmartBrushInputError("margin_mm and max_roi_voxels must be positive")
        if prediction not in PREDICTION_MODES:
            raise SmartBrushInputError(f"Unknown prediction mode {prediction!r}; choose from {PREDICTION_MODES}")
        self.prediction = prediction
        self.image, self.nan_voxel_count = sanitize(image)
        self.spacing_kji = spacing
        self.seed = int(seed)
        self.margin_voxels = np.array([max(2, int(np.ceil(margin_mm / s))) for s in spacing])
        self.max_roi_voxels = int(max_roi_voxels)
        self.settings = settings or FeatureSettings()
        self.classifier_options = dict(classifier_options or {})
        self.normalisation = intensity_map(self.image)
        field = estimate_bias_field(self.image, spacing) if bias_correction and self.normalisation.window is None \
            else None  # CT (a soft-tissue window) keeps its Hounsfield units
        self.bias_corrected = field is not None
        if self.bias_corrected:
            self.image /= field
            self.normalisation = intensity_map(self.image)
        # Coarse prediction grid: every 2nd voxel along axes finer than 1.5 mm (thick CT slices stay whole).
        self.coarse_step = tuple(2 if s <= 1.5 else 1 for s in spacing)
        self._index = np.zeros(0, np.int64)  # flat voxel index of each stroke voxel
        self._label = np.zeros(0, np.int64)
        self._weight = np.zeros(0, np.float64)
        self._stroke = np.zeros(0, np.int64)  # which stroke painted each voxel (0, 1, ...)
        self._strokes_painted = 0
        self._features = (None, None, None)  # (roi, feature stack, its FeatureCells or None)
        self.roi = None
        # after `predict`: (label, other) bool ROI masks of the voxels the classifier is sure are / are not the
        # label (see SURE_QUANTILE); None where every voxel counts as sure (one label painted, coarse_to_fine)
        self.sure = None

    # ---- strokes -------------------------------------------------------------------------------------------
    def add_stroke(self, start_kji, block_kji, label):
        """Paint the True voxels of `block_kji` (placed at `start_kji`) with `label`, taking them from others.

        Returns the number of voxels painted.

        Raises
        ------
        SmartBrushInputError
            If the block lies outside the image or the label is not a non-negative integer.
        """
        if isinstance(label, bool) or not isinstance(label, (int, np.integer)) or label < 0:
            raise SmartBrushInputError(f"Label must be a non-negative integer (0 = background), got {label!r}")
        block = np.asarray(block_kji, bool)
        start = np.asarray(start_kji, int)
        if block.ndim != 3 or np.any(start < 0) or np.any(start + block.shape > np.array(self.image.shape)):
            raise SmartBrushInputError(f"Stroke block at {tuple(start)} of shape {block.shape} is outside the "
                                       f"image {self.image.shape}")
        where = np.argwhere(block)
        if len(where) == 0:
            return 0
        flat = np.ravel_multi_index(tuple((where + start).T), self.image.shape)
        keep = ~np.isin(self._index, flat)
        self._index = np.concatenate([self._index[keep], flat])
        self._label = np.concatenate([self._label[keep], np.full(flat.size, int(label))])
        self._weight = np.concatenate([self._weight[keep], np.maximum(_stroke_weights(block), 1e-3)])
        self._stroke = np.concatenate([self._stroke[keep], np.full(flat.size, self._strokes_painted)])
        self._strokes_painted += 1
        return int(flat.size)

    def painted_labels(self):
        return sorted(int(v) for v in np.unique(self._label))

    def clear(self, label=None):
        """Forget the strokes of `label`, or all strokes when None (the feature cache is kept)."""
        keep = np.zeros(self._index.size, bool) if label is None else self._label != int(label)
        self._index, self._label, self._weight = self._index[keep], self._label[keep], self._weight[keep]
        self._stroke = self._stroke[keep]

    def stroke_mask(self, label=None):
        """Bool (k, j, i) mask of the strokes of `label` (all labels when None)."""
        mask = np.zeros(self.image.size, bool)
        mask[self._index if label is None else self._index[self._label == label]] = True
        return mask.reshape(self.image.shape)

    # ---- ROI -------------------------------------------------------------------------------------------------
    def _stroke_box(self):
        where = np.array(np.unravel_index(self._index, self.image.shape)).T
        return where.min(0), where.max(0) + 1

    def _snapped(self, low, high):
        shape = np.array(self.image.shape)
        low = np.maximum((np.maximum(low, 0) // ROI_QUANTUM_VOXELS) * ROI_QUANTUM_VOXELS, 0)
        high = np.minimum(-(-np.minimum(high, shape) // ROI_QUANTUM_VOXELS) * ROI_QUANTUM_VOXELS, shape)
        return tuple((int(a), int(b)) for a, b in zip(low, high))

    def _roi_for_strokes(self):
        low, high = self._stroke_box()
        box = self._snapped(low - self.margin_voxels, high + self.margin_voxels)
        if self.roi is not None:  # never shrink: a grown ROI stays grown
            box = tuple((min(a, c), max(b, d)) for (a, b), (c, d) in zip(box, self.roi))
        return box

    def _roi_features(self, roi):
        if self._features[0] != roi:
            margin = self.settings.margin_voxels(self.spacing_kji)
            outer = tuple((max(a - m, 0), min(b + m, n)) for (a, b), m, n in zip(roi, margin, self.image.shape))
            region = self.image[tuple(slice(a, b) for a, b in outer)]
            stack = compute_features(region, self.spacing_kji, self.settings, self.normalisation)
            inner = tuple(slice(a - oa, b - oa) for (a, b), (oa, _) in zip(roi, outer))
            self._features = (roi, np.ascontiguousarray(stack[inner]), None)
        return self._features[1]

    def smoothed(self):
        """The ROI of the last `predict` (None before) at the middle smoothing scale (1.6 mm by default, the one
        `_similar` bands on), in normalised intensity: a feature column, no new filtering."""
        if self.roi is None:
            return None
        sigmas = sorted(self.settings.sigmas_mm)
        column = self.settings.names(3).index(f"gaussian_{sigmas[len(sigmas) // 2]}")
        return self._roi_features(self.roi)[..., column]

    def _roi_cells(self, roi):
        features = self._roi_features(roi)
        if self._features[2] is None:
            bandwidth = KernelDensityClassifier(**self._classifier_arguments()).bandwidth
            self._features = (roi, features, feature_cells(features, CELL_BANDWIDTHS * bandwidth))
        return self._features[2]

    # ---- prediction ----------------------------------------------------------------------------------------
    def predict(self, label, max_growth=3):
        """The object of `label` in 3D, connected to its strokes, in the ROI (grown while the object reaches it).

        Returns
        -------
        roi : ((k0, k1), (j0, j1), (i0, i1))
            Half-open voxel ranges of the prediction block.
        mask : ndarray of bool, ROI shape
            Predicted voxels of `label` connected to its strokes (empty if it has no stroke).
        """
        if not np.any(self._label == label):
            return None, None
        roi = self._roi_for_strokes()
        mask, sure = self._predict_in(roi, label)
        for _ in range(max_growth):
            grown = self._grown(roi, mask)
            if grown == roi:
                break
            roi, (mask, sure) = grown, self._predict_in(grown, label)
        self.roi, self.sure = roi, sure
        return roi, mask

    def _grown(self, roi, mask):
        """The ROI pushed out by one margin on each face the mask touches (unless at the image border)."""
        if not mask.any() or np.prod([b - a for a, b in roi]) >= self.max_roi_voxels:
            return roi
        low, high = np.array([a for a, _ in roi]), np.array([b for _, b in roi])
        for axis in range(3):
            if np.take(mask, 0, axis=axis).any() and low[axis] > 0:
                low[axis] -= self.margin_voxels[axis]
            if np.take(mask, -1, axis=axis).any() and high[axis] < self.image.shape[axis]:
                high[axis] += self.margin_voxels[axis]
        return self._snapped(low, high)

    def _roi_strokes(self, roi):
        where = np.array(np.unravel_index(self._index, self.image.shape)).T - np.array([a for a, _ in roi])
        return where, self._label, self._weight

    def _predict_in(self, roi, label):
        features = self._roi_features(roi)
        where, labels, weights = self._roi_strokes(roi)
        stroke = np.zeros(features.shape[:3], bool)
        stroke[tuple(where[labels == label].T)] = True
        painted = self.painted_labels()
        sure = None
        if painted == [label]:
            region = self._similar(features, where, self._stroke)
        else:
            classifier = self._fit(features[tuple(where.T)], labels, weights)
            if self.prediction == "cells":
                cells = self._roi_cells(roi)
                # one small matrix (cells x centres): a second thread cannot pay for its synchronisation, and on a
                # loaded 2-core machine waiting for it made this step 13 times slower (277 vs 21 ms, 128^3 MNI ROI)
                from SegmentAnythingLib.algorithms.torch_threads import torch_threads
                with torch_threads(1):
                    density = classifier.densities(cells.means)
                    typical = classifier.typical_densities(SURE_QUANTILE)
                floor = np.where(classifier.labels_ == BACKGROUND, _floor(classifier.outlier_distance), 0.0)
                column = int(np.flatnonzero(classifier.labels_ == label)[0])
                best = np.argmax(density, 1)
                certain = density[np.arange(best.size), best] >= typical[best]
                # one lookup for the three per-cell answers: bit 0 the label, bit 1 sure it is, bit 2 sure it is not
                code = cells.voxel_values(((np.argmax(density + floor, 1) == column)
                                           | ((certain & (best == column)) << 1)
                                           | ((certain & (best != column)) << 2)).astype(np.uint8))
                region, sure = (code & 1) > 0, ((code & 2) > 0, (code & 4) > 0)
            else:
                region = self._coarse_to_fine(classifier, features) == label
        region |= stroke
        region[tuple(where[labels != label].T)] = False
        return connected_to(region, stroke), sure

    def _classifier_arguments(self):
        options = dict(self.classifier_options)
        options.setdefault("seed", self.seed)
        options.setdefault("max_samples_per_label", CENTRES_PER_LABEL)
        options.setdefault("outlier_distance", OUTLIER_DISTANCE)
        return options

    def _fit(self, samples, labels, weights):
        return _DensityClassifier(**self._classifier_arguments()).fit(samples, labels, weights)

    def _similar(self, features, where, stroke_ids):
        """One label painted: voxels of smoothed intensity like one of the strokes (its median +- 3 MAD).

        Each stroke has its own band: two dabs on differently bright parts of an object take both parts, not
        everything between and around them as one wide band would. The core band is on the 1.6 mm smoothing
        (noise-robust); the 0.7 mm band adds the partial-volume shell within two voxels of the core, which the
        wider smoothing blurs away.
        """
        sigmas = sorted(self.settings.sigmas_mm)
        names = self.settings.names(3)
        core = self._bands(features[..., names.index(f"gaussian_{sigmas[len(sigmas) // 2]}")], where, stroke_ids,
                           SIMILARITY_TOLERANCE)
        fine = self._bands(features[..., names.index(f"gaussian_{sigmas[0]}")], where, stroke_ids,
                           2 * SIMILARITY_TOLERANCE)
        strokes = np.zeros(core.shape, bool)
        strokes[tuple(where.T)] = True
        core = connected_to(core | strokes, strokes)  # only the core reached from the strokes grows a shell
        return core | (fine & ndimage.binary_dilation(core, iterations=2))

    @staticmethod
    def _bands(values, where, stroke_ids, tolerance):
        similar = np.zeros(values.shape, bool)
        for stroke in np.unique(stroke_ids):
            painted = values[tuple(where[stroke_ids == stroke].T)]
            centre = float(np.median(painted))
            spread = 1.4826 * float(np.median(np.abs(painted - centre)))
            similar |= np.abs(values - centre) <= max(SIMILARITY_DEVIATIONS * spread, tolerance)
        return similar

    def _coarse_to_fine(self, classifier, features):
        """Labels of every ROI voxel: classified on the coarse grid, exactly where the coarse labels change."""
        shape = features.shape[:3]
        step = self.coarse_step
        coarse = features[::step[0], ::step[1], ::step[2]]
        coarse_labels = classifier.predict_labels(coarse.reshape(-1, coarse.shape[-1])).reshape(coarse.shape[:3])
        # fine voxels of the cell between coarse voxels c and c + 1 are unsure when the labels there differ
        window = [2 if n > 1 else 1 for n in step]
        origin = [-1 if n > 1 else 0 for n in step]
        band = ndimage.maximum_filter(coarse_labels, window, origin=origin) != \
            ndimage.minimum_filter(coarse_labels, window, origin=origin)
        labels = coarse_labels
        for axis, n in enumerate(step):
            labels = np.repeat(labels, n, axis=axis)
            band = np.repeat(band, n, axis=axis)
        labels = np.ascontiguousarray(labels[:shape[0], :shape[1], :shape[2]])
        band = band[:shape[0], :shape[1], :shape[2]]
        band[::step[0], ::step[1], ::step[2]] = False  # the coarse samples themselves are exact already
        if band.any():
            labels[band] = classifier.predict_labels(features[band])
        return labels


__all__ = ["BACKGROUND", "VolumeBrushModel", "bounding_box", "connected_to"]
