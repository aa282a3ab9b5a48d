"""Intensity model of one object learned from annotated slices, and the image-driven mask refinement.

The model is a kernel density log-likelihood ratio, object vs. its local surroundings (a ring around the mask),
so it adapts to whatever contrast the object has (bright white matter in T1, a 40 HU nodule in -800 HU lung, a
liver 20 HU above the soft tissue around it). Each density's kernel width follows its own samples' spread
(Silverman's rule), on a table fine enough that a bone or air in the ring, which widens the intensity range, does
not blur two close tissues into one bin. The model and the refinement may read the slices denoised in-plane
(`denoised`; `fit_checked_intensity_model` lets the annotated slices choose how much): one pixel's noise often
hides a contrast that its neighbourhood shows clearly.
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
    """
    low: float
    high: float
    table: np.ndarray
    denoise_sigma_px: float = 0.0

    def log_likelihood_ratio(self, image_2d):
        """Per-pixel log-likelihood ratio (float32, same shape as `image_2d`, already `denoised`)."""
        bins = self.table.size
        scale = (bins - 1) / max(self.high - self.low, 1e-6)
        index = np.clip(np.rint((np.asarray(image_2d, np.float32) - self.low) * scale), 0, bins - 1)
        return self.table[index.astype(np.intp)]


def denoised(image_2d, sigma_px):
    """`image_2d` (float32) smoothed in-plane by a Gaussian of `sigma_px` pixels (unchanged when 0)."""
    image_2d = np.asarray(image_2d, np.float32)
    return ndimage.gaussian_filter(image_2d, float(sigma_px)) if sigma_px > 0 else image_2d


def _kernel_width(values):
    """Silverman's rule-of-thumb bandwidth of a 1D sample (in its own units; 0 for a constant sample)."""
    if values.size < 2:
        return 0.0
    q25, q75 = np.percentile(values, [25, 75])
    spread = min(float(values.std()), float(q75 - q25) / 1.34) or float(values.std())
    return 0.9 * spread * values.size ** -0.2


def surroundings(mask_2d, ring_px):
    """Pixels within `ring_px` of the mask but outside it (bool, same shape)."""
    grown = ndimage.binary_dilation(mask_2d, iterations=max(int(ring_px), 1))
    return grown & ~mask_2d


def fit_intensity_model(images, masks, ring_px=8, denoise_sigma_px=0.0, bins=_BINS, kernel_bins=None):
    """Learn an `IntensityModel` from one or more annotated slices.

    Parameters
    ----------
    images : sequence of ndarray (J, I)
        Slices (any real dtype), as they are in the volume (`denoised` here when `denoise_sigma_px` > 0).
    masks : sequence of ndarray of bool (J, I)
        The object on each slice; at least one must be non-empty.
    ring_px : int
        Width of the background ring around each mask, in pixels.
    denoise_sigma_px : float
        In-plane denoising of the slices (0: none); the model remembers it for the slices it is applied to.
    bins : int
        Size of the log-likelihood table over the object's and the ring's intensity range.
    kernel_bins : float, optional
        A fixed kernel width in bins for both densities instead of each one's own (Silverman's rule).

    Returns
    -------
    IntensityModel
    """
    inside, outside = [], []
    for image, mask in zip(images, masks):
        mask = np.asarray(mask, bool)
        if not mask.any():
            continue
        image = denoised(image, denoise_sigma_px)
        inside.append(image[mask])
        outside.append(image[surroundings(mask, ring_px)])
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
    return IntensityModel(low, high, np.clip(table, -_LLR_CLIP, _LLR_CLIP).astype(np.float32), float(denoise_sigma_px))


def fit_checked_intensity_model(images, masks, candidates=DENOISE_CANDIDATES_PX, shift_px=CHECK_SHIFT_PX,
                                settings=None, ring_px=8):
    """The `IntensityModel` whose denoising best restores the annotated slices from a wrong shape prior.

    A check on the user's own drawing only: each candidate model refines every annotated slice from its mask grown
    and shrunk by `shift_px`, and the one that gives the masks back best is kept; more denoising only when it
    gives them back better by `CHECK_MARGIN` (mean Dice).
    Noisy, low-contrast objects so get denoised slices, and thin, sharp ones keep their edges.

    Parameters
    ----------
    images, masks : sequences of ndarray (J, I)
        As in `fit_intensity_model`.
    candidates : sequence of float
        Denoising sigmas (pixels) to choose from, in increasing order.
    shift_px : float
        How far (pixels) the check's shape prior is grown and shrunk from each annotation.
    settings : RefinementSettings, optional
        The refinement the model will be used with.
    ring_px : int
        As in `fit_intensity_model`.

    Returns
    -------
    IntensityModel
    """
    checks = []
    for image, mask in zip(images, masks):
        mask = np.asarray(mask, bool)
        if mask.any() and not mask.all():
            box = crop_box(mask, int(np.ceil(2 * shift_px)) + 8)
            checks.append((np.asarray(image, np.float32)[box], mask[box], signed_distance(mask[box])))
    best = None
    for sigma in candidates:
        model = fit_intensity_model(images, masks, ring_px, denoise_sigma_px=sigma)
        score = np.mean([_dice(refine_mask(image, sdf + shift, model, settings), mask)
                         for image, mask, sdf in checks for shift in (-shift_px, shift_px)] or [1.0])
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


def refine_mask(image_2d, prior_sdf_px, model, settings=None):
    """Combine the shape prior with the intensity evidence of one slice.

    Parameters
    ----------
    image_2d : ndarray (J, I)
        The slice to segment, as it is in the volume (read through the model's own denoising).
    prior_sdf_px : ndarray of float (J, I)
        Signed distance to the prior boundary in pixels, positive inside.
    model : IntensityModel
    settings : RefinementSettings, optional

    Returns
    -------
    mask : ndarray of bool (J, I)
        Refined mask, restricted to connected components that touch the prior.
    """
    settings = settings or RefinementSettings()
    prior = np.clip(prior_sdf_px / settings.prior_scale_px, -settings.prior_clip, settings.prior_clip)
    posterior = model.log_likelihood_ratio(denoised(image_2d, model.denoise_sigma_px)) + prior
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
