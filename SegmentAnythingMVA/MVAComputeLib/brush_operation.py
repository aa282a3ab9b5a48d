"""The Smart Brush's 3D prediction as a compute request: a SmartBrushModel's state as arrays and plain values.

`brush_box_request` (GUI thread) crops the model's image to the box plus the feature context its filters read,
and lists every stroke voxel with its label; `brush_predict` (worker) rebuilds the model on that crop with the
whole volume's intensity map and predicts the same box. The crop holds every voxel the box features and the
stroke features read, so the labels equal the in-process ones exactly (the 2D stroke features of a one-label
model read up to 4 sigma of the largest feature scale: exact while the box margin plus the context covers it,
which holds for spacings above 0.3 mm with the default scales).
"""
import dataclasses

import numpy as np

from MVAComputeLib.compute_errors import ComputeError

OPERATION = "brush_predict"


def brush_box_request(model, box_kji):
    """(op, params, arrays) that predict `box_kji` of `model` (a SmartBrushModel) in the compute worker.

    Parameters
    ----------
    model : SmartBrushModel
    box_kji : ((k0, k1), (j0, j1), (i0, i1))
        Half-open box in the model's image.
    """
    box = tuple((int(a), int(b)) for a, b in box_kji)
    indices, labels = model.stroke_voxels()
    margin = model.settings.margin_voxels(model.spacing_kji)
    low = np.array([a for a, _ in box]) - margin
    high = np.array([b for _, b in box]) + margin
    if len(indices):
        low, high = np.minimum(low, indices.min(0) - margin), np.maximum(high, indices.max(0) + 1 + margin)
    low, high = np.maximum(low, 0), np.minimum(high, model.image.shape)
    crop = np.ascontiguousarray(model.image[tuple(slice(a, b) for a, b in zip(low, high))])
    params = {"spacing_kji": [float(s) for s in model.spacing_kji], "seed": int(model.seed),
              "box_kji": [[a - int(o), b - int(o)] for (a, b), o in zip(box, low)],
              "settings": _plain(dataclasses.asdict(model.settings)),
              "classifier_options": _plain(model.classifier_options),
              "intensity_map": _plain(dataclasses.asdict(model.normalisation))}
    return OPERATION, params, {"image": crop, "stroke_kji": (indices - low).astype(np.int32),
                               "stroke_labels": labels.astype(np.int32)}


def brush_predict(params, arrays, context):
    """The compute worker's handler of `brush_predict` (see operations): labels and probability of the box."""
    from SmartBrushLib.algorithms.features import FeatureSettings, IntensityMap
    from SmartBrushLib.algorithms.model import SmartBrushModel
    for name in ("image", "stroke_kji", "stroke_labels"):
        if name not in arrays:
            raise ComputeError(f"The brush_predict request carries no {name!r} array")
    image, indices, labels = arrays["image"], arrays["stroke_kji"], arrays["stroke_labels"]
    if indices.ndim != 2 or indices.shape[1:] != (3,) or labels.shape != indices.shape[:1]:
        raise ComputeError(f"stroke_kji must be (N, 3) and stroke_labels (N,); got {indices.shape}, {labels.shape}")
    if len(indices) and (indices.min() < 0 or (indices.max(0) >= image.shape).any()):
        raise ComputeError("A stroke voxel of the brush_predict request lies outside its image")
    settings = FeatureSettings(**{key: tuple(value) if isinstance(value, list) else value
                                  for key, value in (params.get("settings") or {}).items()})
    # the crop is the model's image, its bias field already divided out
    model = SmartBrushModel(image, params["spacing_kji"], int(params.get("seed", 0)), settings,
                            params.get("classifier_options") or None, bias_correction=False)
    if params.get("intensity_map"):  # the whole volume's, not the crop's
        fields = params["intensity_map"]
        model.normalisation = IntensityMap(**{key: tuple(value) if isinstance(value, list) else value
                                              for key, value in fields.items()})
    for label in np.unique(labels):
        mask = np.zeros(image.shape, bool)
        chosen = indices[labels == label]
        mask[chosen[:, 0], chosen[:, 1], chosen[:, 2]] = True
        model.add_stroke(mask, int(label))
    box = tuple(tuple(int(v) for v in pair) for pair in params["box_kji"])
    predicted, probability = model.predict_box(box, progress=context.progress, cancel=context.cancelled)
    return {}, {"labels": predicted.astype(np.int32), "probability": probability.astype(np.float32)}


def _plain(value):
    """JSON-ready copy: tuples as lists, numpy scalars as Python numbers."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
