"""Smart Brush model: strokes per label, cached features, slice / box prediction and the edge-aware assist.

Arrays are in (k, j, i) order, spacing in mm in the same order. Label 0 is background (erase strokes);
any other non-negative integer is a segment. The model holds only strokes and caches: every prediction is a
function of the image and the strokes painted so far.
"""
import numpy as np
from scipy import ndimage

from .bias_field import estimate_bias_field
from .classifier import BACKGROUND, KernelDensityClassifier
from .errors import SmartBrushCancelled, SmartBrushInputError
from .features import FeatureCache, FeatureSettings, compute_features, intensity_map, sanitize

# One painted label on a noisy image: the region checked against a smoother copy replaces the plain one when
# the plain one is this many times larger (a flood into a neighbour of slightly different intensity).
FLOOD_RATIO = 1.5
# One-class fallback and classifier-free assist: normalised intensity distance (or 3 robust stroke std).
SIMILARITY_TOLERANCE = 0.1
# An edge whose far side is this many times three noise deviations (of the stroked voxels) from the strokes'
# tissue is sharp enough to split its partial-volume rim pixels by value, up to this many pixels deep.
EDGE_CONTRAST = 2.0
# ... and CT's sharp edges are those with air, lung or bone: soft tissues and fat lie within 200 HU of each other,
# so a thin layer of muscle between liver and fat is not taken for the liver's partial volume.
SHARP_EDGE_HU = 400.0
PARTIAL_VOLUME_PIXELS = 3


def _validated_spacing(spacing, ndim):
    spacing = tuple(float(s) for s in spacing)
    if len(spacing) != ndim or not all(np.isfinite(spacing)) or min(spacing) <= 0:
        raise SmartBrushInputError(f"Spacing must be {ndim} positive mm values in (k, j, i) order, got {spacing}")
    return spacing


def _stroke_depth_weights(mask_2d):
    """Squared in-plane depth of each stroke pixel: rims, where users overshoot edges, count least."""
    depth = ndimage.distance_transform_edt(np.pad(mask_2d, 1))[1:-1, 1:-1]
    return depth[mask_2d] ** 2


def _similar_band(strokes):
    """(low, high) band of similar intensity from the stroke values [(values, weights) per stroke].

    The centre is the densest stroke value (weighted by depth in the stroke and by the stroke's homogeneity),
    the half-width three times the image's noise (the spread of the most homogeneous stroke), at least
    `SIMILARITY_TOLERANCE`. A dab on an edge or on partial
    volume, whose values lie between two tissues, then neither moves the centre nor widens the band to both
    sides of the edge (a median and MAD over all strokes would).
    """
    spreads = [1.4826 * float(np.median(np.abs(v - np.median(v)))) for v, _ in strokes]
    noise = min(spreads)
    values = np.concatenate([v for v, _ in strokes])
    # homogeneous strokes count more: several dabs on one blurred rim must not outvote one inside the tissue
    weights = np.concatenate([w / max(spread, 0.1 * SIMILARITY_TOLERANCE) ** 2
                              for (_, w), spread in zip(strokes, spreads)])
    order = np.argsort(values)
    values, weights = values[order], weights[order]
    cumulative = np.concatenate([[0.0], np.cumsum(weights)])
    low = np.searchsorted(values, values - 0.5 * SIMILARITY_TOLERANCE, "left")
    high = np.searchsorted(values, values + 0.5 * SIMILARITY_TOLERANCE, "right")
    densest = values[int(np.argmax(cumulative[high] - cumulative[low]))]
    near = np.abs(values - densest) <= 0.5 * SIMILARITY_TOLERANCE
    centre = float(_weighted_median(values[near], weights[near]))
    half_width = max(3.0 * noise, SIMILARITY_TOLERANCE)
    return centre - half_width, centre + half_width


def _weighted_median(values, weights):
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order])
    return values[order][min(int(np.searchsorted(cumulative, 0.5 * cumulative[-1])), values.size - 1)]


def _same_side(piece, smoothed):
    """The pixels of one stroke piece whose smoothed intensity is like the piece's depth-weighted median: where a
    dab spills over an edge, the other side does not teach the classifier (the stroke still paints there)."""
    values = smoothed[piece]
    centre = _weighted_median(values, _stroke_depth_weights(piece))
    kept = np.zeros(piece.shape, bool)
    kept[piece] = np.abs(values - centre) <= SIMILARITY_TOLERANCE
    return kept


def _pieces(mask_2d):
    """The connected pieces of a 2D stroke mask (a stroke slice may hold several dabs)."""
    labelled, count = ndimage.label(mask_2d)
    return [labelled == n for n in range(1, count + 1)]


def _partial_volume_rim(region, values, centre, min_contrast):
    """`region` and the pixels just outside it that are mostly its tissue: at a strong edge (a pixel within two of
    it outside the region at least `min_contrast` from `centre`), a rim pixel whose value is nearer `centre` than
    the mean of the pixels one further out is more than half the region's (partial volume: fluid beside lung is
    200 HU darker than the fluid, and the blur between them can span two pixels)."""
    square = np.ones((3,) * region.ndim, bool)
    rim = ndimage.binary_dilation(region, square) & ~region
    beyond = ndimage.binary_dilation(region | rim, square) & ~(region | rim)
    count = ndimage.correlate(beyond.astype(np.float32), square.astype(np.float32), mode="constant")
    total = ndimage.correlate(np.where(beyond, values, 0).astype(np.float32), square.astype(np.float32),
                              mode="constant")
    outside = np.divide(total, count, out=np.full(values.shape, centre, np.float32), where=count > 0)
    farthest = ndimage.maximum_filter(np.where(region, 0, np.abs(values - centre)).astype(np.float32), size=5)
    strong = rim & (farthest >= min_contrast)
    return region | (strong & (np.abs(values - centre) < np.abs(values - outside)))


def _bounding_box(mask, margin):
    """Slices of the box around the True voxels of `mask`, `margin` voxels wider (inside the array)."""
    where = np.argwhere(mask)
    low, high = where.min(0) - margin, where.max(0) + margin + 1
    return tuple(slice(max(int(a), 0), min(int(b), n)) for a, b, n in zip(low, high, mask.shape))


def _component_touching(region, seeds):
    """Voxels of `region` connected to any voxel of `seeds` (both bool, same shape)."""
    labelled, _ = ndimage.label(region)
    keep = np.unique(labelled[seeds & region])
    return np.isin(labelled, keep[keep > 0])


class SmartBrushModel:
    """Online pixel classifier trained by brush strokes on a 3D volume.

    Parameters
    ----------
    image_kji : ndarray, 3D (k, j, i)
        Any real dtype; NaN/inf voxels are replaced by the median for features (count in `nan_voxel_count`).
    spacing_kji : sequence of 3 float
        Voxel size in mm.
    seed : int
        Seed of the (only) random step, the subsampling of large strokes.
    settings : FeatureSettings or None
    classifier_options : dict or None
        Keyword arguments of `KernelDensityClassifier` (bandwidth, max_samples_per_label, outlier_distance).
    bias_correction : bool
        Divide an MRI's smooth multiplicative bias field out of the image first (`estimate_bias_field`; CT keeps
        its Hounsfield units, and an image too small for a field is left as it is); `bias_corrected` says whether
        it was.
    """

    def __init__(self, image_kji, spacing_kji=(1.0, 1.0, 1.0), seed=0, settings=None, classifier_options=None,
                 bias_correction=True):
        image = np.asarray(image_kji)
        if image.ndim != 3:
            raise SmartBrushInputError(f"SmartBrushModel needs a 3D (k, j, i) image, got shape {image.shape}; "
                                       "use SliceBrushModel for a single 2D slice")
        if image.size == 0 or not np.issubdtype(image.dtype, np.number) or np.iscomplexobj(image):
            raise SmartBrushInputError(f"The image must be a non-empty real array, got {image.dtype} {image.shape}")
        self.image, self.nan_voxel_count = sanitize(image)
        self.spacing_kji = _validated_spacing(spacing_kji, 3)
        self.seed = int(seed)
        self.settings = settings or FeatureSettings()
        self.classifier_options = dict(classifier_options or {})
        self.normalisation = intensity_map(self.image)
        field = estimate_bias_field(self.image, self.spacing_kji) \
            if bias_correction and self.normalisation.window is None else None
        self.bias_corrected = field is not None
        if self.bias_corrected:  # one tissue looks alike across the image (see `bias_field`)
            self.image /= field
            self.normalisation = intensity_map(self.image)
        self.features = FeatureCache()
        self._strokes = {}  # label -> {k: bool (j, i) mask}
        self._slice_classifier = None

    # ---- strokes -------------------------------------------------------------------------------------------
    def add_stroke(self, mask_kji, label):
        """Add the voxels of `mask_kji` (bool, image shape) to `label`, taking them from any other label.

        Returns the number of voxels painted; an empty mask changes nothing and returns 0.

        Raises
        ------
        SmartBrushInputError
            If the mask shape differs from the image or the label is not a non-negative integer.
        """
        mask = np.asarray(mask_kji)
        if mask.shape != self.image.shape:
            raise SmartBrushInputError(f"Stroke mask shape {mask.shape} differs from image shape {self.image.shape}")
        if isinstance(label, bool) or not isinstance(label, (int, np.integer)) or label < 0:
            raise SmartBrushInputError(f"Label must be a non-negative integer (0 = background), got {label!r}")
        mask = mask.astype(bool, copy=False)
        painted = 0
        for k in np.flatnonzero(mask.any(axis=(1, 2))):
            stroke = mask[k]
            for other, slices in self._strokes.items():
                if other != label and k in slices:
                    slices[k] &= ~stroke
            slices = self._strokes.setdefault(int(label), {})
            slices[int(k)] = slices[int(k)] | stroke if k in slices else stroke.copy()
            painted += int(stroke.sum())
        if painted:
            self._slice_classifier = None
        return painted

    def clear(self, label=None):
        """Forget the strokes of `label`, or of every label when None. Feature caches are kept."""
        if label is None:
            self._strokes.clear()
        else:
            self._strokes.pop(int(label), None)
        self._slice_classifier = None

    def stroke_voxels(self):
        """(index_kji (N, 3) int64, labels (N,) int64) of every painted voxel: all the model's training state
        besides the image and its settings (a voxel holds one label at a time)."""
        indices, labels = [np.zeros((0, 3), np.int64)], [np.zeros(0, np.int64)]
        for label, slices in sorted(self._strokes.items()):
            for k, mask in sorted(slices.items()):
                j, i = np.nonzero(mask)
                indices.append(np.stack([np.full(j.size, k), j, i], axis=1))
                labels.append(np.full(j.size, label, np.int64))
        return np.concatenate(indices), np.concatenate(labels)

    def painted_labels(self):
        """Sorted labels that currently have at least one stroke voxel."""
        return sorted(label for label, slices in self._strokes.items() if any(m.any() for m in slices.values()))

    def training_state(self):
        """'empty', 'background_only', 'one_label' (similar-region fallback) or 'ready' (classifier)."""
        labels = self.painted_labels()
        if not labels:
            return "empty"
        if labels == [BACKGROUND]:
            return "background_only"
        return "one_label" if len(labels) == 1 else "ready"

    # ---- features ------------------------------------------------------------------------------------------
    def slice_features(self, k):
        """2D features (j, i, f) of axial slice `k` (in-plane spacing), cached per slice."""
        k = self._checked_slice(k)
        return self.features.get(("slice", k), lambda: compute_features(
            self.image[k], self.spacing_kji[1:], self.settings, self.normalisation))

    def slice_edges(self, k):
        """Gradient magnitude (j, i) float32 of axial slice `k` at the finest smoothing scale, in normalised
        intensity per mm: where strokes compete for territory in a correction."""
        smoothed = self.slice_features(k)[..., self._smallest_gaussian_column()]
        return np.hypot(*np.gradient(smoothed, *self.spacing_kji[1:])).astype(np.float32)

    def box_features(self, box_kji):
        """3D features (k, j, i, f) of a half-open box ((k0, k1), (j0, j1), (i0, i1)), cached per box."""
        box = self._checked_box(box_kji)
        return self.features.get(("box", box), lambda: self._compute_box_features(box))

    def _compute_box_features(self, box):
        margin = self.settings.margin_voxels(self.spacing_kji)
        outer = tuple((max(a - m, 0), min(b + m, n)) for (a, b), m, n in zip(box, margin, self.image.shape))
        region = self.image[tuple(slice(a, b) for a, b in outer)]
        stack = compute_features(region, self.spacing_kji, self.settings, self.normalisation)
        inner = tuple(slice(a - oa, b - oa) for (a, b), (oa, _) in zip(box, outer))
        return np.ascontiguousarray(stack[inner])

    # ---- prediction ----------------------------------------------------------------------------------------
    def predict_slice(self, k):
        """Labels and their probability on axial slice `k`, from 2D features.

        Returns
        -------
        labels_2d : ndarray (j, i) int32
            0 where nothing is predicted (also when only background or nothing is painted).
        probability_2d : ndarray (j, i) float32
            Probability of the predicted label (0 where nothing is painted); see `uncertainty`.
        """
        k = self._checked_slice(k)
        shape = self.image.shape[1:]
        state = self.training_state()
        if state in ("empty", "background_only"):
            return np.zeros(shape, np.int32), np.zeros(shape, np.float32)
        if state == "one_label":
            return self._grow_similar(self.slice_features(k), self._slice_seeds(k), self.image[k])
        classifier = self._fitted_slice_classifier()
        features = self.slice_features(k)
        labels, probability = classifier.predict(features.reshape(-1, features.shape[-1]))
        return labels.reshape(shape).astype(np.int32), probability.reshape(shape)

    def predict_box(self, box_kji, progress=None, cancel=None):
        """Labels and probabilities in a 3D box, from 3D features.

        Parameters
        ----------
        box_kji : ((k0, k1), (j0, j1), (i0, i1))
            Half-open voxel ranges inside the image.
        progress : callable(float) or None
            Called with the fraction done, 0..1.
        cancel : callable() -> bool or None
            Polled between steps; when it returns True, SmartBrushCancelled is raised.

        Returns
        -------
        labels : ndarray (box shape) int32
        probability : ndarray (box shape) float32

        Raises
        ------
        SmartBrushInputError
            If the box is not inside the image.
        SmartBrushCancelled
            If `cancel()` returned True.
        """
        box = self._checked_box(box_kji)
        report = progress or (lambda fraction: None)
        stop = cancel or (lambda: False)

        def checkpoint(fraction):
            if stop():
                raise SmartBrushCancelled("Smart Brush 3D prediction cancelled")
            report(fraction)

        checkpoint(0.0)
        shape = tuple(b - a for a, b in box)
        state = self.training_state()
        if state in ("empty", "background_only"):
            report(1.0)
            return np.zeros(shape, np.int32), np.zeros(shape, np.float32)
        features = self.box_features(box)
        checkpoint(0.4)
        if state == "one_label":
            seeds = self._stroke_volume(box)
            result = self._grow_similar(features, seeds, self.image[tuple(slice(a, b) for a, b in box)])
            report(1.0)
            return result
        classifier = self._fit(*self._box_training_samples(box, features))
        checkpoint(0.5)
        labels = np.empty(shape, np.int32)
        probability = np.empty(shape, np.float32)
        step = max(1, 262144 // max(1, shape[1] * shape[2]))
        for start in range(0, shape[0], step):
            chunk = features[start:start + step]
            values, proba = classifier.predict(chunk.reshape(-1, chunk.shape[-1]))
            labels[start:start + step] = values.reshape(chunk.shape[:-1])
            probability[start:start + step] = proba.reshape(chunk.shape[:-1])
            checkpoint(0.5 + 0.5 * min(start + step, shape[0]) / shape[0])
        return labels, probability

    def assist(self, footprint_kji, start_index_kji):
        """Edge-aware brush: the part of `footprint_kji` classified like the start voxel and connected to it.

        Without a trained classifier (fewer than two labels painted), voxels of intensity similar to the start
        voxel are kept instead.

        Parameters
        ----------
        footprint_kji : ndarray bool, image shape
        start_index_kji : (k, j, i) int, inside the footprint

        Returns
        -------
        ndarray bool, image shape
        """
        footprint = np.asarray(footprint_kji)
        if footprint.shape != self.image.shape:
            raise SmartBrushInputError(f"Footprint shape {footprint.shape} differs from image {self.image.shape}")
        footprint = footprint.astype(bool, copy=False)
        start = tuple(int(v) for v in start_index_kji)
        if len(start) != 3 or not all(0 <= v < n for v, n in zip(start, self.image.shape)):
            raise SmartBrushInputError(f"Start index {start_index_kji} is outside the image {self.image.shape}")
        if not footprint[start]:
            raise SmartBrushInputError(f"Start index {start} is not inside the brush footprint")
        classifier = self._fitted_slice_classifier() if self.training_state() == "ready" else None
        point = np.zeros(self.image.shape[1:], bool)
        point[start[1:]] = True
        start_value = self._assist_values(start[0], point, classifier)[0]
        keep = np.zeros(self.image.shape, bool)
        for k in np.flatnonzero(footprint.any(axis=(1, 2))):
            values = self._assist_values(k, footprint[k], classifier)
            if classifier is not None:
                keep[k][footprint[k]] = values == start_value
            else:
                keep[k][footprint[k]] = np.abs(values - start_value) <= SIMILARITY_TOLERANCE
        seed = np.zeros(self.image.shape, bool)
        seed[start] = True
        return _component_touching(keep, seed)

    def _assist_values(self, k, mask_2d, classifier):
        features = self.slice_features(k)[mask_2d]
        if classifier is None:
            return features[:, self._smallest_gaussian_column()]
        return classifier.predict(features)[0]

    # ---- training ------------------------------------------------------------------------------------------
    def _fit(self, features, labels, weights):
        options = dict(self.classifier_options)
        options.setdefault("seed", self.seed)
        return KernelDensityClassifier(**options).fit(features, labels, weights)

    def _fitted_slice_classifier(self):
        if self._slice_classifier is None:
            self._slice_classifier = self._fit(*self._slice_training_samples())
        return self._slice_classifier

    def _slice_training_samples(self):
        features, labels, weights = [], [], []
        column = self._smallest_gaussian_column()
        for label, slices in sorted(self._strokes.items()):
            for k, mask in sorted(slices.items()):
                if mask.any():
                    stack = self.slice_features(k)
                    for piece in _pieces(mask):
                        kept = _same_side(piece, stack[..., column])
                        features.append(stack[kept])
                        labels.append(np.full(int(kept.sum()), label))
                        weights.append(_stroke_depth_weights(piece)[kept[piece]])
        return np.concatenate(features), np.concatenate(labels), np.concatenate(weights)

    def _box_training_samples(self, box, box_features):
        """Stroke samples with 3D features: from the box stack, or from a stack around strokes outside it."""
        strokes = self._stroke_volume(None)
        ks, js, is_ = (np.flatnonzero(strokes.any(axis=axes)) for axes in ((1, 2), (0, 2), (0, 1)))
        stroke_box = ((ks[0], ks[-1] + 1), (js[0], js[-1] + 1), (is_[0], is_[-1] + 1))
        inside = all(a >= ba and b <= bb for (a, b), (ba, bb) in zip(stroke_box, box))
        region = box if inside else stroke_box
        stack = box_features if inside else self.box_features(stroke_box)
        origin = [a for a, _ in region]
        features, labels, weights = [], [], []
        for label, slices in sorted(self._strokes.items()):
            for k, mask in sorted(slices.items()):
                if mask.any():
                    j, i = np.nonzero(mask)
                    features.append(stack[k - origin[0], j - origin[1], i - origin[2]])
                    labels.append(np.full(j.size, label))
                    weights.append(_stroke_depth_weights(mask))
        return np.concatenate(features), np.concatenate(labels), np.concatenate(weights)

    def _stroke_volume(self, box):
        """Bool mask of all strokes, whole image (box None) or cropped to `box`."""
        volume = np.zeros(self.image.shape, bool)
        for slices in self._strokes.values():
            for k, mask in slices.items():
                volume[k] |= mask
        return volume if box is None else volume[tuple(slice(a, b) for a, b in box)]

    def _slice_seeds(self, k):
        seeds = np.zeros(self.image.shape[1:], bool)
        for slices in self._strokes.values():
            if k in slices:
                seeds |= slices[k]
        return seeds

    def _smallest_gaussian_column(self):
        names = self.settings.names(2)
        return names.index(f"gaussian_{min(self.settings.sigmas_mm)}")

    def _grow_similar(self, features, seeds, image):
        """One label painted: the region of similar smoothed intensity connected to its strokes, with the
        partial-volume pixels of its sharp edges (`image`: the voxel values where `features` are)."""
        label = self.painted_labels()[0]
        fine, *coarser = self._similar_columns()
        low, high = self._stroke_band(label, fine)
        values = features[..., fine]
        similar = (values >= low) & (values <= high)
        region = _component_touching(similar, seeds) | seeds
        if high - low > 2 * SIMILARITY_TOLERANCE + 1e-6:
            # On a noisy image (a band wider than its floor) three noise widths reach a neighbour of slightly
            # different intensity (CT liver beside muscle); a smoother copy tells them apart: a pixel whose
            # smoothed value is still in the fine band but out of the smoothed strokes' band belongs to that
            # neighbour. Where the smoothed value has left the fine band altogether it is mixed with a very
            # different tissue across an edge (thin fluid beside lung), and says nothing about the pixel.
            # A thin ribbon (cortex between white matter and fluid) also has smoothed values of its two sides:
            # a checked region is used only when the region so far floods, and each coarser scale is tried in
            # turn (the more noise, the coarser the scale that separates the neighbour).
            checked = similar
            # CT only goes past the second scale: at 40-60 HU of noise only 3.5 mm tells liver from muscle (20 HU
            # apart), while an MRI's grey matter ribbon at 3.5 mm holds the values of its neighbours (MNI grey
            # matter slice, first dab 0.946 -> 0.796 with every scale)
            for coarse in coarser if self.normalisation.window is not None else coarser[:1]:
                smooth_low, smooth_high = self._stroke_band(label, coarse)
                smoothed = features[..., coarse]
                neighbour = (smoothed >= low) & (smoothed <= high) & \
                    ((smoothed < smooth_low) | (smoothed > smooth_high))
                tested = _component_touching(checked & ~neighbour, seeds) | seeds
                if region.sum() > FLOOD_RATIO * tested.sum():
                    region, checked = tested, checked & ~neighbour
        region = self._with_sharp_edges(region, seeds, similar, image)
        return np.where(region, label, 0).astype(np.int32), region.astype(np.float32)

    def _with_sharp_edges(self, region, seeds, similar, image):
        """CT: `region` without the dab pixels across a sharp edge (a dab on fluid that spills into lung) and
        with the partial-volume pixels of its sharp edges, judged in the image's own units (the intensity map
        compresses values outside the soft-tissue window). CT values are tissue fractions times attenuation,
        so a pixel nearer the strokes' tissue than the far side's is mostly that tissue; on the MNI T1 the pixels
        this adds were half wrong (its labels do not follow the intensity midpoint), so MRI is left as it is."""
        if self.normalisation.window is None or not region.any():
            return region
        inside = seeds & similar
        stroked = image[inside if inside.any() else seeds]
        centre = float(np.median(stroked))
        min_contrast = max(EDGE_CONTRAST * 3.0 * 1.4826 * float(np.median(np.abs(stroked - centre))), SHARP_EDGE_HU)
        box = _bounding_box(region, PARTIAL_VOLUME_PIXELS + 2)
        values = image[box].astype(np.float32)
        across = seeds[box] & ~similar[box] & (np.abs(values - centre) > min_contrast)  # dab pixels over the edge
        part = region[box] & ~across
        # the rim grows from the region's body, not from a one-pixel strip of similar values along another edge
        # (lung beside muscle passes through fluid's 10 HU): a rim there would thicken the strip into tissue
        grown = ndimage.binary_opening(part)
        for _ in range(PARTIAL_VOLUME_PIXELS):
            grown = _partial_volume_rim(grown, values, centre, min_contrast)
        region = region.copy()
        region[box] = part | grown
        return region

    def _similar_columns(self):
        """Feature columns of the smoothing scales, finest first."""
        names = self.settings.names(2)
        return [names.index(f"gaussian_{sigma}") for sigma in sorted(self.settings.sigmas_mm)]

    def _stroke_band(self, label, column):
        """`_similar_band` of the strokes of `label` in feature `column`."""
        return _similar_band([(self.slice_features(k)[piece, column], _stroke_depth_weights(piece))
                              for k, mask in self._strokes[label].items() for piece in _pieces(mask)])

    # ---- validation ----------------------------------------------------------------------------------------
    def _checked_slice(self, k):
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k < self.image.shape[0]:
            raise SmartBrushInputError(f"Slice index {k!r} is outside 0..{self.image.shape[0] - 1}")
        return int(k)

    def _checked_box(self, box_kji):
        try:
            box = tuple((int(a), int(b)) for a, b in box_kji)
        except (TypeError, ValueError) as error:
            raise SmartBrushInputError(f"Box must be ((k0, k1), (j0, j1), (i0, i1)), got {box_kji!r}") from error
        if len(box) != 3 or not all(0 <= a < b <= n for (a, b), n in zip(box, self.image.shape)):
            raise SmartBrushInputError(f"Box {box} must be non-empty half-open ranges inside {self.image.shape}")
        return box


class SliceBrushModel:
    """The Smart Brush on one 2D image (any orientation, extracted by the caller).

    Parameters
    ----------
    image_ji : ndarray 2D (j, i)
    spacing_ji : sequence of 2 float, mm
    seed : int
    settings, classifier_options : as for `SmartBrushModel`
    """

    def __init__(self, image_ji, spacing_ji=(1.0, 1.0), seed=0, settings=None, classifier_options=None):
        image = np.asarray(image_ji)
        if image.ndim != 2:
            raise SmartBrushInputError(f"SliceBrushModel needs a 2D (j, i) image, got shape {image.shape}")
        spacing = _validated_spacing(spacing_ji, 2)
        self._model = SmartBrushModel(image[None], (1.0,) + spacing, seed, settings, classifier_options)
        self.nan_voxel_count = self._model.nan_voxel_count

    def add_stroke(self, mask_ji, label):
        """Add a 2D stroke (bool, image shape) to `label`; returns the number of pixels painted."""
        return self._model.add_stroke(self._lifted(mask_ji, "Stroke mask"), label)

    def clear(self, label=None):
        self._model.clear(label)

    def training_state(self):
        return self._model.training_state()

    def predict(self):
        """(labels_2d int32, probability_2d float32) of the whole image; see `SmartBrushModel.predict_slice`."""
        return self._model.predict_slice(0)

    def edges(self):
        """Gradient magnitude of the image; see `SmartBrushModel.slice_edges`."""
        return self._model.slice_edges(0)

    def assist(self, footprint_ji, start_index_ji):
        """2D edge-aware brush footprint; see `SmartBrushModel.assist`."""
        start = tuple(start_index_ji)
        if len(start) != 2:
            raise SmartBrushInputError(f"Start index must be (j, i), got {start_index_ji!r}")
        return self._model.assist(self._lifted(footprint_ji, "Footprint"), (0,) + start)[0]

    @property
    def features(self):
        return self._model.features

    def _lifted(self, mask, what):
        mask = np.asarray(mask)
        if mask.shape != self._model.image.shape[1:]:
            raise SmartBrushInputError(f"{what} shape {mask.shape} differs from image {self._model.image.shape[1:]}")
        return mask[None]
