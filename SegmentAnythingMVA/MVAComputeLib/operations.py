"""What a compute worker can do: one handler per operation, arrays and plain parameters in and out.

Every handler takes ``(params, arrays, context)`` and returns ``(params, arrays)``. ``context.cancelled()``
is polled between steps and ``context.progress(fraction)`` reports progress. The same handlers run in the
local worker process and behind the inference service.

Operations
----------
ping
    ``{}`` -> ``{"pid", "python", "threads"}``: which process answers.
embed
    params ``model`` (a model spec, below); arrays ``image`` uint8 (rows, columns, 3), windowed ->
    arrays ``embedding`` float16 (1, C, g, g); params ``original_size``, ``input_size`` (rows, columns of the
    resized image), ``seconds``.
decode
    params ``model``, ``original_size``, ``input_size``, ``multimask``; arrays ``embedding`` and optional
    ``points_xy`` (N, 2), ``labels`` (N,), ``box_xyxy`` (4,), ``previous_logits`` (L, L) ->
    arrays ``lowres_logits`` float32 (3, L, L), ``scores`` float32 (3,); params ``tokens``, ``img_size``.
supervoxels
    params ``spacing_kji``, optional ``parameters`` (SupervoxelParameters fields), ``box_kji``;
    arrays ``image`` (k, j, i) -> arrays ``labels`` int32.
brush_predict
    The Smart Brush's Predict 3D (MVAComputeLib.brush_operation builds it from a SmartBrushModel):
    params ``spacing_kji``, ``box_kji`` (in the crop), ``seed``, ``settings`` (FeatureSettings fields),
    ``classifier_options``, ``intensity_map`` (the whole volume's IntensityMap fields); arrays ``image`` float32
    (the crop: box plus feature context), ``stroke_kji`` int32 (N, 3) and ``stroke_labels`` int32 (N,) (every
    painted voxel of the crop, 0 = an erase stroke) -> arrays ``labels`` int32 and ``probability`` float32 of
    the box, equal to the in-process prediction.
propagate
    A Smart Propagation preview or re-propagation (MVAComputeLib.propagation_operation builds it from a
    PropagationRun): params ``strategy`` (registration, copy, interpolation, sam, sam2), ``seed_k``, ``low``
    (index of the first slice sent), ``direction`` (1, -1 or "both"), ``max_slices``, ``spacing`` (propagation
    axis first), ``stop_rule`` (StopRule fields), ``mask_slices`` (the slice of each mask), ``window_level``,
    ``drawn``, ``repropagating`` and, for sam / sam2, ``model`` (a model spec); arrays ``image`` (n, J, I) (the
    reachable slices along the axis, the volume's dtype) and ``masks`` bool (len(mask_slices), J, I) (the seed
    and, for interpolation and sam2, every drawn slice) -> arrays ``masks`` bool (m, J, I), ``slices`` int32
    (m,), ``quality`` float32 (m,); params ``seed_k``, ``stops`` ([{direction, slice_k, reason}]), ``strategy``.

A model spec is ``{"name": "tiny" | "vit_b" | ... | "sam2.1_tiny" | "medsam2" | ..., "checkpoint": path or None,
"input_size": None | "auto" | int, "device": "auto"}``; checkpoints must already be on the worker's machine (no
download in a worker). The random test models ("tiny", "sam2_tiny") are offered by the front ends in developer
mode only.
"""
from __future__ import annotations

import json
import os
import sys
import time
from collections import OrderedDict

import numpy as np

from MVAComputeLib.compute_errors import ComputeError, RequestCancelledError, UnknownOperationError

ENGINE_SLOTS = 2


class OperationContext:
    """What a handler may ask of the request it runs for."""

    def __init__(self, cancelled=None, progress=None):
        self.cancelled = cancelled or (lambda: False)
        self.progress = progress or (lambda fraction: None)

    def check_cancelled(self):
        if self.cancelled():
            raise RequestCancelledError("cancelled")


class Operations:
    """The worker's handlers, with the SAM engines it has built (at most ENGINE_SLOTS, least recent dropped)."""

    def __init__(self, threads=None):
        self.threads = threads
        self._engines = OrderedDict()
        from MVAComputeLib import brush_operation, propagation_operation
        self._handlers = {"ping": self.ping, "embed": self.embed, "decode": self.decode,
                          "supervoxels": self.supervoxels, "brush_predict": brush_operation.brush_predict,
                          "propagate": lambda params, arrays, context: propagation_operation.propagate(
                              params, arrays, context, self.engine)}

    @property
    def names(self):
        return tuple(self._handlers)

    def run(self, op, params, arrays, context):
        """Run operation `op`; raises UnknownOperationError for a name it does not know."""
        handler = self._handlers.get(op)
        if handler is None:
            raise UnknownOperationError(f"Unknown compute operation {op!r}; this worker has {', '.join(self.names)}")
        return handler(params or {}, arrays or {}, context)

    # --- SAM --------------------------------------------------------------------------------------------------
    def engine(self, spec):
        """The SamEngine of a model spec (built on first use)."""
        spec = normalised_model_spec(spec)
        key = json.dumps(spec, sort_keys=True)
        engine = self._engines.get(key)
        if engine is None:
            engine = self._engines[key] = engine_for_spec(spec)
            while len(self._engines) > ENGINE_SLOTS:
                self._engines.popitem(last=False)
        self._engines.move_to_end(key)
        return engine

    def ping(self, params, arrays, context):
        torch = sys.modules.get("torch")  # not imported for a ping: the worker loads it for its first SAM request
        threads = torch.get_num_threads() if torch is not None else self.threads
        return {"pid": os.getpid(), "python": sys.executable, "threads": threads}, {}

    def embed(self, params, arrays, context):
        image = _required(arrays, "image", "embed")
        engine = self.engine(params.get("model"))
        context.check_cancelled()
        tic = time.perf_counter()
        embedding, input_size = engine.compute_embedding(image)
        seconds = time.perf_counter() - tic
        half = embedding.detach().to("cpu").half().numpy()
        return {"original_size": list(image.shape[:2]), "input_size": list(input_size), "seconds": seconds,
                "encoder_side": int(embedding.shape[-1] * engine.patch_size)}, {"embedding": half}

    def decode(self, params, arrays, context):
        import hashlib
        import torch
        engine = self.engine(params.get("model"))
        embedding = _required(arrays, "embedding", "decode")
        key = ("wire", hashlib.sha1(embedding.tobytes()).hexdigest())
        if not engine.has_embedding(key):
            engine.cache.put(key, torch.from_numpy(np.ascontiguousarray(embedding)),
                             tuple(params["original_size"]), tuple(params["input_size"]))
        prediction = engine.predict(key, arrays.get("points_xy"), arrays.get("labels"), arrays.get("box_xyxy"),
                                    previous_logits=arrays.get("previous_logits"),
                                    multimask=params.get("multimask", "auto"))
        return ({"tokens": list(prediction.tokens), "img_size": prediction.img_size,
                 "original_size": list(prediction.original_size), "input_size": list(prediction.input_size)},
                {"lowres_logits": prediction.lowres_logits.float().cpu().numpy(),
                 "scores": np.asarray(prediction.scores, np.float32)})

    # --- Smart Regions / Smart Brush ----------------------------------------------------------------------------
    def supervoxels(self, params, arrays, context):
        from SmartRegionsLib.algorithms.supervoxels import SupervoxelParameters, compute_supervoxels
        image = _required(arrays, "image", "supervoxels")
        parameters = SupervoxelParameters(**(params.get("parameters") or {}))
        labels = compute_supervoxels(image, params["spacing_kji"], parameters, box_kji=_box(params.get("box_kji")),
                                     progress=context.progress, cancel=context.cancelled)
        return {"regions": int(labels.max())}, {"labels": labels.astype(np.int32)}


def engine_for_spec(spec, cache_mb=256):
    """A SamEngine (or Sam2Engine for SAM 2 names) for a model spec; "vit_b-random" (any registry type +
    "-random") is a random-weight model for speed measurements only. Checkpoints are never downloaded here."""
    spec = normalised_model_spec(spec)
    name = spec["name"]
    from SegmentAnythingLib.sam2_engine_factory import is_sam2_model
    if is_sam2_model(name):
        from SegmentAnythingLib.sam2_engine_factory import create_sam2_engine
        return create_sam2_engine(name, spec["checkpoint"], spec["device"], allow_download=False,
                                  cache_mb=cache_mb)
    if name.endswith("-random"):
        from SegmentAnythingLib.algorithms.sam_embedding_cache import EmbeddingCache
        from SegmentAnythingLib.algorithms.sam_engine import SamEngine
        from SegmentAnythingLib.algorithms.sam_models import bf16_is_fast, build_random_sam, choose_device
        device = choose_device(spec["device"])
        model = build_random_sam(name[:-len("-random")], seed=0, device=device)
        fast = bf16_is_fast(model.device)
        side = spec["input_size"]
        engine = SamEngine(model, EmbeddingCache(max_memory_mb=cache_mb), bf16_encoder=fast, bf16_decoder=fast,
                           input_size=side if side in (None, "auto") else min(int(side), 1024))
        engine.model_name = name
        return engine
    from SegmentAnythingLib.engine_factory import create_engine
    return create_engine(name, checkpoint=spec["checkpoint"], device=spec["device"], allow_download=False,
                         input_size=spec["input_size"], cache_mb=cache_mb)


def normalised_model_spec(spec):
    """A model spec with every field present; a bare name is accepted."""
    if isinstance(spec, str):
        spec = {"name": spec}
    if not isinstance(spec, dict) or not spec.get("name"):
        raise ComputeError("A SAM request needs a model spec such as {'name': 'vit_b'}")
    input_size = spec.get("input_size")
    return {"name": str(spec["name"]), "checkpoint": spec.get("checkpoint") or None,
            "input_size": input_size if input_size in (None, "auto") else int(input_size),
            "device": spec.get("device") or "auto"}


def _required(arrays, name, op):
    if name not in arrays:
        raise ComputeError(f"The {op} request carries no {name!r} array")
    return arrays[name]


def _box(box):
    return None if box is None else tuple(tuple(int(v) for v in pair) for pair in box)
