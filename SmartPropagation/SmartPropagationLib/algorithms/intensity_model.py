"""Intensity model of one object learned from annotated slices, and the image-driven mask refinement.

The model is a smoothed histogram log-likelihood ratio, object vs. its local surroundings (a ring around
the mask), so it adapts to whatever contrast the object has (bright white matter in T1, a 40 HU nodule in
-800 HU lung). Refinement combines that evidence with a shape prior given as a signed distance map.
"""
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

_BINS = 64
_LLR_CLIP = 4.0


@dataclass
class IntensityModel:
    """Log-likelihood ratio log p(v | object) - log p(v | surroundings), tabulated on `_BINS` bins.

    Attributes
    ----------
    low, high : float
        Intensity range covered by the table; values outside use the edge bins.
    table : ndarray of float, shape (_BINS,)
        Log-likelihood ratio per bin, clipped to +-4.
    """
    low: float
    high: float
    table: np.ndarray

    def log_likelihood_ratio(self, image_2d):
        """Per-pixel log-likelihood ratio (float32, same shape as `image_2d`)."""
        scale = (_BINS - 1) / max(self.high - self.low, 1e-6)
        index = np.clip(np.rint((np.asarray(image_2d, np.float32) - self.low) * scale), 0, _BINS - 1)
        return self.table[index.astype(np.intp)]


def surroundings(mask_2d, ring_px):
    """Pixels within `ring_px` of the mask but outside it (bool, same shape)."""
    grown = ndimage.binary_dilation(mask_2d, iterations=max(int(ring_px), 1))
    return grown & ~mask_2d


def fit_intensity_model(images, masks, ring_px=8):
    """Learn an `IntensityModel` from one or more annotated slices.

    Parameters
    ----------
    images : sequence of ndarray (J, I)
        Slices (any real dtype).
    masks : sequence of ndarray of bool (J, I)
        The object on each slice; at least one must be non-empty.
    ring_px : int
        Width of the background ring around each mask, in pixels.

    Returns
    -------
    IntensityModel
    """
    inside, outside = [], []
    for image, mask in zip(images, masks):
        mask = np.asarray(mask, bool)
        if not mask.any():
            continue
        image = np.asarray(image, np.float32)
        inside.append(image[mask])
        outside.append(image[surroundings(mask, ring_px)])
    inside = np.concatenate(inside)
    outside = np.concatenate(outside) if outside else inside[:0]
    both = np.concatenate([inside, outside])
    low, high = np.percentile(both, [0.5, 99.5])
    margin = 0.05 * max(high - low, 1e-3)
    low, high = float(low - margin), float(high + margin)
    edges = np.linspace(low, high, _BINS + 1)
    # Laplace counts keep empty bins finite; histogram smoothing stands in for a kernel density estimate.
    p_in = ndimage.gaussian_filter1d(np.histogram(np.clip(inside, low, high), edges)[0] + 0.5, 1.5)
    p_out = ndimage.gaussian_filter1d(np.histogram(np.clip(outside, low, high), edges)[0] + 0.5, 1.5)
    table = np.log(p_in / p_in.sum()) - np.log(p_out / p_out.sum())
    return IntensityModel(low, high, np.clip(table, -_LLR_CLIP, _LLR_CLIP).astype(np.float32))


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
        The slice to segment.
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
    posterior = model.log_likelihood_ratio(image_2d) + prior
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
