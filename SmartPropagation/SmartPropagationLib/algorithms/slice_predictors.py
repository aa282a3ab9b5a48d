"""Slice predictors: carry a mask from one slice to its neighbour.

A slice predictor is any callable ``predictor(image_prev, mask_prev, image_next) -> (mask_next, quality)``
on 2D arrays (J, I); quality is in [0, 1] (1 = confident). Strategies are builders that make a predictor
for one propagation from its seed slice; they are registered by name so that other tools (a SAM-based
predictor) can be plugged in without changing `propagate`.
"""
from dataclasses import dataclass, field

import numpy as np

from SmartBrushLib.algorithms.ct_units import hounsfield_shift

from .intensity_model import (GAIN_DEGREE, RefinementSettings, fit_checked_intensity_model, refine_mask,
                              ring_pixels)
from .propagation_errors import UnknownStrategyError
from .slice_registration import RegistrationSettings, crop_box, register_and_warp, signed_distance


def mask_dice(a, b):
    """Dice of two boolean arrays (1.0 when both are empty)."""
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * float(np.logical_and(a, b).sum()) / total


def copy_predictor(image_prev, mask_prev, image_next):
    """Baseline: the next slice gets the previous mask unchanged (quality 1)."""
    return np.asarray(mask_prev, bool).copy(), 1.0


@dataclass
class RegistrationPredictor:
    """Demons registration of the neighbouring slice, then refinement by an intensity model.

    Attributes
    ----------
    model : IntensityModel
        Learned from the seed (or annotated) slices.
    registration : RegistrationSettings
    refinement : RefinementSettings
    reference_evidence : float or None
        The model's mean log-likelihood ratio inside the seed mask (`object_evidence`); None: not used.
    """
    model: object
    registration: RegistrationSettings = field(default_factory=RegistrationSettings)
    refinement: RefinementSettings = field(default_factory=RefinementSettings)
    reference_evidence: float = None

    def warp(self, image_prev, mask_prev, image_next):
        """Registration only: (box, warped signed distance in pixels on the crop, image similarity)."""
        box = crop_box(mask_prev, self.registration.margin_px)
        sdf_prev = signed_distance(mask_prev[box])
        (warped_sdf,), similarity = register_and_warp(
            image_prev[box], image_next[box], [sdf_prev], self.registration)
        return box, warped_sdf, similarity

    def __call__(self, image_prev, mask_prev, image_next):
        mask_prev = np.asarray(mask_prev, bool)
        if not mask_prev.any():
            return np.zeros(mask_prev.shape, bool), 0.0
        box, warped_sdf, _ = self.warp(image_prev, mask_prev, image_next)
        refined = refine_mask(image_next[box], warped_sdf, self.model, self.refinement, box)
        mask_next = np.zeros(mask_prev.shape, bool)
        mask_next[box] = refined
        # Quality: agreement of the registration (shape) with the image evidence, and how much of the seed's
        # evidence for the object the new mask still holds (it falls where the mask slid onto a neighbour after
        # the object ended).
        quality = mask_dice(warped_sdf > 0, refined)
        if self.reference_evidence:
            share = object_evidence(self.model, image_next[box], refined, box) / self.reference_evidence
            quality = min(quality, float(np.clip(share, 0.0, 1.0)))
        return mask_next, quality


def object_evidence(model, image_2d, mask_2d, box=None):
    """Mean log-likelihood ratio of `model` inside `mask_2d` on `image_2d` (0 for an empty mask); `box`: where
    `image_2d` lies in its whole slice (`IntensityModel.read`)."""
    mask_2d = np.asarray(mask_2d, bool)
    if not mask_2d.any():
        return 0.0
    return float(model.log_likelihood_ratio(model.read(image_2d, box))[mask_2d].mean())


def build_copy(image_kji, seed_k, seed_mask_2d, spacing_kji):
    """Builder of the copy baseline."""
    return copy_predictor


def build_registration(image_kji, seed_k, seed_mask_2d, spacing_kji):
    """Builder of the registration + intensity refinement predictor, model learned on the seed slice. CT, stored
    as HU or unsigned as HU + 1024, gets no gain candidates: a multiplicative bias field belongs to magnitude images
    (MRI), and CT + 1024 is no more one than CT in HU is."""
    gain_degree = 0 if hounsfield_shift(image_kji) is not None else GAIN_DEGREE
    model = fit_checked_intensity_model([image_kji[seed_k]], [seed_mask_2d], ring_px=ring_pixels(spacing_kji[1:]),
                                        gain_degree=gain_degree)
    reference = object_evidence(model, image_kji[seed_k], seed_mask_2d)
    return RegistrationPredictor(model, reference_evidence=reference if reference > 0 else None)


_STRATEGIES = {"copy": build_copy, "registration": build_registration}


def register_strategy(name, builder):
    """Make `builder(image_kji, seed_k, seed_mask_2d, spacing_kji) -> predictor` available as `name`.

    Used to plug in strategy "sam": the builder returns a callable
    ``(image_prev, mask_prev, image_next) -> (mask_next, quality)``.
    """
    _STRATEGIES[str(name)] = builder


def available_strategies():
    """Names accepted by `propagate(strategy=...)`."""
    return tuple(sorted(_STRATEGIES))


def build_predictor(strategy, image_kji, seed_k, seed_mask_2d, spacing_kji):
    """Resolve `strategy` (a registered name or a predictor callable) into a predictor."""
    if callable(strategy):
        return strategy
    builder = _STRATEGIES.get(strategy)
    if builder is None:
        raise UnknownStrategyError(
            f"Unknown propagation strategy {strategy!r}; choose one of {available_strategies()}"
            + (" (register a SAM slice predictor first with register_strategy('sam', builder))"
               if strategy == "sam" else ""))
    return builder(image_kji, seed_k, seed_mask_2d, spacing_kji)
