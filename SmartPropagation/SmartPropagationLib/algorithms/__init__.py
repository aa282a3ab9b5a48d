"""Smart Propagation algorithms: numpy / scipy / SimpleITK only, arrays in (k, j, i) order.

The caller resamples the volume so that the propagation axis is axis 0.
"""
from .intensity_model import IntensityModel, RefinementSettings, fit_intensity_model, refine_mask
from .propagation import BOTH, PropagationResult, StopEvent, propagate, repropagate
from .propagation_errors import (
    EmptySeedMaskError, NonFiniteImageError, PropagationCancelled, PropagationInputError, ShapeMismatchError,
    SliceOutOfRangeError, UnknownStrategyError)
from .slice_interpolation import interpolate_between_slices
from .slice_predictors import (
    RegistrationPredictor, available_strategies, build_predictor, copy_predictor, register_strategy)
from .slice_registration import RegistrationSettings, register_and_warp, signed_distance
from .stop_rule import StopReason, StopRule

__all__ = [
    "BOTH", "EmptySeedMaskError", "IntensityModel", "NonFiniteImageError", "PropagationCancelled",
    "PropagationInputError", "PropagationResult", "RefinementSettings", "RegistrationPredictor",
    "RegistrationSettings", "ShapeMismatchError", "SliceOutOfRangeError", "StopEvent", "StopReason", "StopRule",
    "UnknownStrategyError", "available_strategies", "build_predictor", "copy_predictor", "fit_intensity_model",
    "interpolate_between_slices", "propagate", "refine_mask", "register_and_warp", "register_strategy",
    "repropagate", "signed_distance",
]
