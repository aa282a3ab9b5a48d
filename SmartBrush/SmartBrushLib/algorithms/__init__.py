"""Smart Brush algorithms: features, online classifier and model (numpy / scipy / torch; no slicer, vtk, qt).

`evaluation` (simulated-user loop and forest anchor) also needs MVAEvaluationLib and is imported on demand.
"""
from .classifier import BACKGROUND, KernelDensityClassifier, uncertainty
from .errors import SmartBrushCancelled, SmartBrushInputError
from .features import (FeatureCache, FeatureSettings, IntensityMap, compute_features, intensity_map,
                       intensity_normalisation, sanitize)
from .model import SliceBrushModel, SmartBrushModel

__all__ = [
    "BACKGROUND", "FeatureCache", "FeatureSettings", "IntensityMap", "KernelDensityClassifier", "SliceBrushModel",
    "SmartBrushCancelled", "SmartBrushInputError", "SmartBrushModel", "compute_features",
    "intensity_map", "intensity_normalisation", "sanitize", "uncertainty",
]
