"""Intensity model of one object learned from annotated slices, and the image-driven mask refinement.

The model is a kernel density log-likelihood ratio, object vs. its local surroundings (a ring around the mask),
so it adapts to whatever contrast the object has (bright white matter in T1, a 40 HU nodule in -800 HU lung, a
liver 20 HU above the soft tissue around it). Each density's kernel width follows its own samples' spread
(Silverman's rule), on a table fine enough that a bone or air in the ring, which widens the intensity range, does
not blur two close tissues into one bin. The model and the refinement may read the slices denoised in-plane
(`denoised`; `fit_checked_intensity_model` lets the annotated slices choose how much): one pixel's noise often
hides a contrast that its neighbourhood shows clearly. On magnitude images (MRI: no negative values) the model may
also read the slices divided by a smooth in-plane gain fitted to the object (`gain_field`; again the annotated
slices choose): a bias field makes the object darker on one side of a slice than its surroundings on the other, and
no single intensity table separates them.
Refinement combines that evidence with a shape prior given as a signed distance map.
"""
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .slice_registration import crop_box, signed_distance

_BINS = 256
_LLR_CLIP = 4.0
# In-plane Gaussian sigmas (pixels) of the denoising the model and the refinement may read the slices through;
# `fit_checked_intensity_model` lets the annotated slices choose (chosen on the tuning variant families).
DENOISE_CANDIDATES_PX = (0.0, 1.0, 1.5, 2.0)
# The self-check's shape prior is the annotation grown and shrunk by this much (pixels); more denoising must
# restore the annotation better by this much (mean Dice) to be chosen: blurring costs detail the check does not see
# in a smooth annotation (a brush's), so sharp slices stay sharp unless denoising clearly pays.
CHECK_SHIFT_PX = 3.0
CHECK_MARGIN = 0.01
# The surroundings the background is learned from: this many pixels around the object, but no wider than
# RING_MAX_MM: on coarse pixels (3 mm) eight of them reach other organs, and the tissue just beside the object,
# the one a mask leaks into, is then a small part of the background.
RING_PX = 8
RING_MAX_MM = 8.0
# Propagation's model leaves out the RING_GAP_PX pixels beside the mask: a drawn mask (a brush's) stops where the
# object's partial-volume edge begins, and that layer learned as surroundings moved every propagated edge inward, more
# at each slice (brush+propagate on the MNI white matter tuning variants: 0.84-0.91 -> 0.86-0.93).
RING_GAP_PX = 1
# Degree of the in-plane polynomial of log intensity that models a smooth multiplicative gain (an MRI bias field):
# 2 bends once across the slice, as a coil's sensitivity does over a few centimetres, and is too stiff to follow
# the object's own shape.
GAIN_DEGREE = 2


@dataclass
class IntensityModel:
    """Log-likelihood ratio log p(v | object) - log p(v | surroundings), tabulated on `_BINS` bins.

    Attributes
    ----------
    low, high : float
        Intensity range covered by the table; values outside use the edge bins.
    table : ndarray of float, shape (bins,)
        Log-likelihood ratio per bin, clipped to +-4.
    denoise_sigma_px : float
        The in-plane denoising (`denoised`) of the slices it was learned on; slices it is applied to are read
        through the same.
    gain : ndarray of float32 (J, I) or None
        The smooth gain the annotated slices were divided by (`gain_field`), on their whole-slice grid; slices it
        is applied to (the same volume's, same grid) are divided by it too. None: no gain.
    """
    low: float
    high: float
    table: np.ndarray
    denoise_sigma_px: float = 0.0
    gain: np.ndarray = None

    def read(self, image_2d, box=None):
        """`image_2d` as the model reads it: divided by the gain (its part `box` of the slice) and `denoised`.

        Parameters
        ----------
        image_2d : ndarray (J, I)
            A whole slice, or the part `box` of one.
        box : tuple of two slices, optional
            Where `image_2d` lies in the slice (None: it is the whole slice).
        """
        image_2d = np.asarray(image_2d, np.float64)
        if self.gain is not None:
            image_2d = image_2d / (self.gain if box is None else self.gain[box])
        return denoised(image_2d, self.denoise_sigma_px)

    def log_likelihood_ratio(self, image_2d):
        """Per-pixel log-likelihood ratio (float32, same shape as `image_2d`, already `denoised`)."""
        bins = self.table.size
        scale = (bins - 1) / max(self.high - self.low, 1e-6)
        index = np.clip(np.rint((np.asarray(image_2d, np.float64) - self.low) * scale), 0, bins - 1)
        return self.table[index.astype(np.intp)]


def denoised(image_2d, sigma_px):
    """`image_2d` (float64) smoothed in-plane by a Gaussian of `sigma_px` pixels (unchanged when 0). Float64: CT stored
    as HU + 1024 then gives the same values as in HU (float32 kept 1024 times fewer bits of the fraction)."""
    image_2d = np.asarray(image_2d, np.float64)
    return ndimage.gaussian_filter(image_2d, float(sigma_px)) if sigma_px > 0 else image_2d


def _kernel_width(values):
    """Silverman's rule-of-thumb bandwidth of a 1D sample (in its own units; 0 for a constant sample)."""
    if values.size < 2:
        return 0.0
    q25, q75 = np.percentile(values, [25, 75])
    spread = min(float(values.std()), float(q75 - q25) / 1.34) or float(values.std())
    return 0.9 * spread * values.size ** -0.2


def gain_field(images, masks, degree=GAIN_DEGREE):
    """A smooth multiplicative gain common to `images`, fitted to the object's pixels; None where none applies.

    The log intensity inside the masks is fitted (least squares, twice with outliers beyond 2.5 robust standard
    deviations left out, so that a partial-volume edge or a vessel does not bend it) by a constant plus an in-plane
    polynomial of `degree`; the gain is the exponential of the polynomial part (log mean 0 over the object), held
    within the range it takes on the object elsewhere.

    Parameters
    ----------
    images : sequence of ndarray (J, I)
        Whole slices of one volume (one grid).
    masks : sequence of ndarray of bool (J, I)
        The object on each.

    Returns
    -------
    ndarray of float32 (J, I) or None
        None for a signed image (CT in HU: a gain field is a property of magnitude images), when the object has
        too few pixels, or `degree` < 1.
    """
    images = [np.asarray(image, np.float32) for image in images]
    masks = [np.asarray(mask, bool) for mask in masks]
    if degree < 1 or not images or min(float(image.min()) for image in images) < 0:
        return None
    rows, cols = images[0].shape
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float32)
    y, x = 2 * y / max(rows - 1, 1) - 1, 2 * x / max(cols - 1, 1) - 1
    terms = [x ** a * y ** b for a in range(degree + 1) for b in range(degree + 1 - a) if a + b > 0]
    design = np.concatenate([np.stack([np.ones(int(m.sum()), np.float32)] + [t[m] for t in terms], 1) for m in masks])
    values = np.concatenate([np.log(np.maximum(image[mask], 1e-3)) for image, mask in zip(images, masks)])
    if values.size < 10 * design.shape[1]:
        return None
    keep = np.ones(values.size, bool)
    for _ in range(2):
        coefficients = np.linalg.lstsq(design[keep], values[keep], rcond=None)[0]
        residual = values - design @ coefficients
        spread = 1.4826 * float(np.median(np.abs(residual[keep] - np.median(residual[keep]))))
        keep = np.abs(residual) <= 2.5 * max(spread, 1e-6)
    log_gain = sum(float(c) * t for c, t in zip(coefficients[1:], terms))
    on_object = log_gain[np.logical_or.reduce(masks)]
    # away from the object the polynomial is extrapolated: it keeps within the values it was fitted to
    log_gain = np.clip(log_gain, on_object.min(), on_object.max()) - float(on_object.mean())
    return np.exp(log_gain).astype(np.float32)


def ring_pixels(spacing_ji):
    """The ring width in pixels for in-plane pixels of `spacing_ji` mm: RING_PX, at most RING_MAX_MM of pixels of
    that size (an oblong pixel counts as the square of the same area), at least 2."""
    return int(max(2, min(RING_PX, np.ceil(RING_MAX_MM / max(float(np.sqrt(np.prod(spacing_ji))), 1e-6) - 1e-6))))


def surroundings(mask_2d, ring_px, gap_px=0):
    """Pixels within `ring_px` of the mask but farther than `gap_px` from it (bool, same shape); the gap is at most a
    quarter of the ring (coarse pixels, a ring of 2-3: none), which keeps the tissue just beside the object."""
    grown = ndimage.binary_dilation(mask_2d, iterations=max(int(ring_px), 1))
    gap = min(int(gap_px), int(ring_px) // 4)
    return grown & ~(ndimage.binary_dilation(mask_2d, iterations=gap) if gap > 0 else np.asarray(mask_2d, bool))


def fit_intensity_model(images, masks, ring_px=RING_PX, denoise_sigma_px=0.0, bins=_BINS, kernel_bins=None, gain=None,
                        gap_px=0):
    """Learn an `IntensityModel` from one or more annotated slices.

    Parameters
    ----------
    images : sequence of ndarray (J, I)
        Slices (any real dtype), as they are in the volume (`denoised` here when `denoise_sigma_px` > 0).
    masks : sequence of ndarray of bool (J, I)
        The object on each slice; at least one must be non-empty.
    ring_px : int
        Width of the background ring around each mask, in pixels (`ring_pixels` for a given pixel size).
    denoise_sigma_px : float
        In-plane denoising of the slices (0: none); the model remembers it for the slices it is applied to.
    bins : int
        Size of the log-likelihood table over the object's and the ring's intensity range.
    kernel_bins : float, optional
        A fixed kernel width in bins for both densities instead of each one's own (Silverman's rule).
    gain : ndarray (J, I), optional
        A smooth gain (`gain_field`) the slices are divided by first; the model keeps it for the slices it reads.
    gap_px : int
        Pixels beside each mask left out of its surroundings.

    Returns
    -------
    IntensityModel
    """
    inside, outside = [], []
    reader = IntensityModel(0.0, 1.0, np.zeros(1, np.float32), float(denoise_sigma_px), gain)
    for image, mask in zip(images, masks):
        mask = np.asarray(mask, bool)
        if not mask.any():
            continue
        image = reader.read(image)
        inside.append(image[mask])
        outside.append(image[surroundings(mask, ring_px, gap_px)])
    inside = np.concatenate(inside)
    outside = np.concatenate(outside) if outside else inside[:0]
    both = np.concatenate([inside, outside])
    low, high = np.percentile(both, [0.5, 99.5])
    margin = 0.05 * max(high - low, 1e-3)
    low, high = float(low - margin), float(high + margin)
    edges = np.linspace(low, high, int(bins) + 1)
    bin_width = (high - low) / int(bins)

    def density(values):
        # A smoothed histogram is the kernel density estimate; a small count in every bin keeps the log finite.
        counts = np.histogram(np.clip(values, low, high), edges)[0] + 32.0 / int(bins)
        width = kernel_bins if kernel_bins is not None else max(_kernel_width(values) / bin_width, 1.0)
        return ndimage.gaussian_filter1d(counts.astype(np.float64), width)

    p_in = density(inside)
    p_out = density(outside) if outside.size else np.ones_like(p_in)
    table = np.log(p_in / p_in.sum()) - np.log(p_out / p_out.sum())
    return IntensityModel(low, high, np.clip(table, -_LLR_CLIP, _LLR_CLIP).astype(np.float32), float(denoise_sigma_px),
                          gain)


def fit_checked_intensity_model(images, masks, candidates=DENOISE_CANDIDATES_PX, shift_px=CHECK_SHIFT_PX,
                                settings=None, ring_px=RING_PX, gain_degree=GAIN_DEGREE, gap_px=RING_GAP_PX):
    """The `IntensityModel` whose reading of the slices (denoising, gain) best restores the annotated slices from a
    wrong shape prior.

    A check on the user's own drawing only: each candidate model refines every annotated slice from its mask grown
    and shrunk by `shift_px`, and the one that gives the masks back best is kept. Candidates come in order of how
    much they change the slices (each denoising without the gain, then each with it), and a later one is only
    chosen when it gives the masks back better by `CHECK_MARGIN` (mean Dice).
    Noisy, low-contrast objects so get denoised slices, thin, sharp ones keep their edges, and a gain is divided
    out only where the annotated object's intensity drifts across the slice enough to cost the refinement.

    Parameters
    ----------
    images, masks : sequences of ndarray (J, I)
        As in `fit_intensity_model` (whole slices of one volume).
    candidates : sequence of float
        Denoising sigmas (pixels) to choose from, in increasing order.
    shift_px : float
        How far (pixels) the check's shape prior is grown and shrunk from each annotation.
    settings : RefinementSettings, optional
        The refinement the model will be used with.
    ring_px : int
        As in `fit_intensity_model`.
    gain_degree : int
        Of `gain_field` (0: no gain candidates).
    gap_px : int
        As in `fit_intensity_model` (default RING_GAP_PX).

    Returns
    -------
    IntensityModel
    """
    checks = []
    for image, mask in zip(images, masks):
        mask = np.asarray(mask, bool)
        if mask.any() and not mask.all():
            box = crop_box(mask, int(np.ceil(2 * shift_px)) + 8)
            checks.append((np.asarray(image, np.float32)[box], mask[box], signed_distance(mask[box]), box))
    gain = gain_field(images, masks, gain_degree) if checks else None
    best = None
    for with_gain in (None, gain) if gain is not None else (None,):
        for sigma in candidates:
            model = fit_intensity_model(images, masks, ring_px, denoise_sigma_px=sigma, gain=with_gain,
                                        gap_px=gap_px)
            score = np.mean([_dice(refine_mask(image, sdf + shift, model, settings, box), mask)
                             for image, mask, sdf, box in checks for shift in (-shift_px, shift_px)] or [1.0])
            if best is None or score > best[0] + CHECK_MARGIN:
                best = (score, model)
    return best[1]


def _dice(a, b):
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * float(np.logical_and(a, b).sum()) / total


@dataclass
class RefinementSettings:
    """How strongly the shape prior is trusted against the image evidence.

    Attributes
    ----------
    prior_scale_px : float
        Signed distance (pixels) at which the prior reaches one unit of log-odds.
    prior_clip : float
        Largest prior log-odds: evidence stronger than this can override the prior.
    band_px : float
        Beyond this distance from the prior's boundary the prior label is kept unchanged.
    smoothing_px : float
        Gaussian sigma applied to the posterior log-odds (a cheap spatial regulariser).
    """
    prior_scale_px: float = 2.0
    prior_clip: float = 3.0
    band_px: float = 8.0
    smoothing_px: float = 0.8


def refine_mask(image_2d, prior_sdf_px, model, settings=None, box=None):
    """Combine the shape prior with the intensity evidence of one slice.

    Parameters
    ----------
    image_2d : ndarray (J, I)
        The slice to segment, as it is in the volume (read through the model's own denoising).
    prior_sdf_px : ndarray of float (J, I)
        Signed distance to the prior boundary in pixels, positive inside.
    model : IntensityModel
    settings : RefinementSettings, optional
    box : tuple of two slices, optional
        Where `image_2d` lies in its whole slice, for a model with a gain (None: it is the whole slice).

    Returns
    -------
    mask : ndarray of bool (J, I)
        Refined mask, restricted to connected components that touch the prior.
    """
    settings = settings or RefinementSettings()
    prior = np.clip(prior_sdf_px / settings.prior_scale_px, -settings.prior_clip, settings.prior_clip)
    posterior = model.log_likelihood_ratio(model.read(image_2d, box)) + prior
    if settings.smoothing_px > 0:
        posterior = ndimage.gaussian_filter(posterior, settings.smoothing_px)
    mask = posterior > 0
    far = np.abs(prior_sdf_px) > settings.band_px
    mask[far] = prior_sdf_px[far] > 0
    labels, count = ndimage.label(mask)
    if count > 1:
        touching = np.unique(labels[(prior_sdf_px > 0) & mask])
        mask = np.isin(labels, touching[touching > 0])
    return mask
