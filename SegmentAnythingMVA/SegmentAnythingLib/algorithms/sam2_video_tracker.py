"""SAM 2 video tracking of one object through a volume's slices, with a bounded memory bank.

The slices along one axis are the frames of a video. Frames are embedded lazily through the engine's
bounded cache (only when tracking reaches them); the memory bank keeps the conditioning frames (the slices
the user drew) and only the last frames of the current pass that SAM 2 can attend to (6 spatial memories,
15 object pointers), stored on ``storage_device`` (the CPU by default), so memory does not grow with the
number of slices.

A tracker implements the interface that Smart Propagation's video strategy expects
(``SmartPropagationLib.algorithms.sam2_video``): ``condition(k, mask)``, ``begin_pass(direction)``,
``track(k, direction) -> FramePrediction``, and ``condition_prompts(k, points_xy, labels, box_xyxy, mask_2d)``
for frames the user prompted (points and/or a box) instead of, or on top of, a drawn mask.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Hashable, Optional, Union

import numpy as np
import torch
import torch.nn.functional as F

from .sam2_engine import prompt_tensors
from .sam_image import prompt_to_model_frame, upsample_logits

FrameSource = Callable[[int], np.ndarray]


@dataclass
class FramePrediction:
    """What tracking predicts on one frame.

    Attributes
    ----------
    mask : ndarray of bool (rows, columns)
        The object on the slice, at the slice's resolution.
    iou : float
        SAM 2's predicted IoU of the chosen mask (0..1).
    object_score : float
        SAM 2's object score logit: > 0 means the object is present on this slice.
    lowres_logits : ndarray of float32 (L, L), optional
        The mask logits at the model's low resolution (L = image size / 4).
    """
    mask: np.ndarray
    iou: float
    object_score: float
    lowres_logits: Optional[np.ndarray] = None


class Sam2VideoTracker:
    """Track one object over the frames ``0 .. num_frames - 1`` given by ``frame_source``.

    Parameters
    ----------
    engine : Sam2Engine
        Supplies the model, the feature cache and the autocast setting.
    frame_source : callable(k) -> uint8 (rows, columns, 3)
        The windowed slice image of frame ``k`` (called only for frames not cached yet).
    num_frames : int
    frame_key : callable(k) -> hashable, optional
        Cache key of frame ``k``; default ``("sam2-frame", id(frame_source), k)``.
    storage_device : str or torch.device
        Where the memory bank is kept ("cpu" keeps GPU memory flat on long volumes).
    """

    def __init__(self, engine, frame_source: FrameSource, num_frames: int,
                 frame_key: Optional[Callable[[int], Hashable]] = None,
                 storage_device: Union[str, torch.device] = "cpu") -> None:
        self.engine = engine
        self.model = engine.model
        self.frame_source = frame_source
        self.num_frames = int(num_frames)
        self.frame_key = frame_key or (lambda k, tag=id(frame_source): ("sam2-frame", tag, int(k)))
        self.storage_device = torch.device(storage_device)
        self._conditioning: "OrderedDict[int, dict]" = OrderedDict()
        self._recent: "OrderedDict[int, dict]" = OrderedDict()
        self._maskmem_pos = None
        # SAM 2 reads the previous (num_maskmem - 1) spatial memories and (max_obj_ptrs_in_encoder - 1) pointers.
        self.keep_frames = max(int(self.model.num_maskmem) - 1, int(self.model.max_obj_ptrs_in_encoder) - 1, 1)

    # --- memory bank ------------------------------------------------------------------------------------------
    @property
    def conditioning_frames(self):
        return tuple(self._conditioning)

    def memory_frames(self):
        """Frames whose outputs the bank holds now (conditioning first, then the current pass)."""
        return tuple(self._conditioning) + tuple(self._recent)

    def memory_bytes(self) -> int:
        """Bytes of the tensors the memory bank holds (the engine's feature cache is bounded on its own)."""
        tensors = {}
        for out in list(self._conditioning.values()) + list(self._recent.values()):
            for value in out.values():
                for tensor in (value if isinstance(value, (list, tuple)) else [value]):
                    if isinstance(tensor, torch.Tensor):
                        tensors[id(tensor)] = tensor.numel() * tensor.element_size()
        return sum(tensors.values())

    def begin_pass(self, direction: int) -> None:
        """Start tracking in one direction: forget the frames of the previous pass (conditioning frames stay)."""
        self._recent.clear()

    def _store(self, out: dict) -> dict:
        stored = dict(out)
        for name in ("maskmem_features",):
            if stored.get(name) is not None:
                stored[name] = stored[name].to(self.storage_device, torch.bfloat16)
        if stored.get("maskmem_pos_enc") is not None:
            # The memory's position encoding depends only on the grid: one copy serves every frame (as in SAM 2's
            # own video predictor), 1 MB per frame saved at 1024 px.
            if self._maskmem_pos is None:
                self._maskmem_pos = [p.to(self.storage_device) for p in stored["maskmem_pos_enc"]]
            stored["maskmem_pos_enc"] = self._maskmem_pos
        stored["pred_masks"] = stored["pred_masks"].to(self.storage_device)
        stored.pop("pred_masks_high_res", None)  # image-size logits: not needed as memory
        return stored

    def _frame_inputs(self, k: int):
        features = self.engine.features(self.frame_key(k), lambda: self.frame_source(k))
        levels = list(features.high_res) + [features.top]
        vision_feats = [level.flatten(2).permute(2, 0, 1) for level in levels]
        top_pos = features.top_pos.flatten(2).permute(2, 0, 1)
        feat_sizes = [(level.shape[-2], level.shape[-1]) for level in levels]
        # Only the top level's position encoding is read (memory attention); the others are placeholders.
        vision_pos = [torch.zeros_like(f) for f in vision_feats[:-1]] + [top_pos]
        return features, vision_feats, vision_pos, feat_sizes

    def condition(self, k: int, mask_2d: np.ndarray) -> None:
        """Make frame ``k`` a conditioning frame with the user's mask (empty = the object is absent there)."""
        k = self._check_frame(k)
        model = self.model
        features, vision_feats, vision_pos, feat_sizes = self._frame_inputs(k)
        mask = self._mask_at_model_size(mask_2d)
        with torch.inference_mode(), self.engine.autocast():
            out = model.track_step(frame_idx=k, is_init_cond_frame=True, current_vision_feats=vision_feats,
                                   current_vision_pos_embeds=vision_pos, feat_sizes=feat_sizes, point_inputs=None,
                                   mask_inputs=mask, output_dict={"cond_frame_outputs": {},
                                                                  "non_cond_frame_outputs": {}},
                                   num_frames=self.num_frames, track_in_reverse=False, run_mem_encoder=True)
        self._conditioning[k] = self._store(out)
        self._recent.pop(k, None)

    def condition_prompts(self, k: int, points_xy=None, labels=None, box_xyxy=None,
                          mask_2d: Optional[np.ndarray] = None) -> FramePrediction:
        """Make frame ``k`` a conditioning frame from the user's prompts, as SAM 2's ``add_new_points_or_box``.

        The frame is decoded without memory (an initial conditioning frame), the box first as corner points
        2 and 3, then the points (1 positive, 0 negative); SAM 2's multimask choice applies to one point. A drawn
        ``mask_2d`` on the same frame acts as SAM 2's earlier ``add_new_mask`` there: the prompts refine it (its
        ±10 low-res logits go in as the mask prompt). The memory is encoded from the predicted mask, binarised as
        for SAM 2's prompted frames.

        Parameters
        ----------
        points_xy : array-like (N, 2), optional
            (x = column, y = row) in the frame's pixels.
        labels : array-like (N,), optional
            1 positive, 0 negative (default all positive).
        box_xyxy : array-like (4,), optional
            (x_min, y_min, x_max, y_max) in the frame's pixels.
        mask_2d : ndarray (rows, columns) bool, optional

        Returns
        -------
        FramePrediction
            The frame's mask from the prompts.

        Raises
        ------
        EmptyPromptError, InvalidPromptError, PromptOutsideImageError, ValueError
        """
        k = self._check_frame(k)
        model = self.model
        size = int(model.image_size)
        features, vision_feats, vision_pos, feat_sizes = self._frame_inputs(k)
        points, point_labels, box = prompt_to_model_frame(tuple(features.original_size), (size, size), points_xy,
                                                          labels, box_xyxy)
        coords_t, codes_t = prompt_tensors(points, point_labels, box, self.engine.device)
        point_inputs = {"point_coords": coords_t, "point_labels": codes_t}
        previous = None
        if mask_2d is not None and np.asarray(mask_2d, bool).any():
            lowres = 4 * int(model.sam_image_embedding_size)
            full = self._mask_at_model_size(mask_2d)
            previous = F.interpolate(full, size=(lowres, lowres), mode="bilinear", align_corners=False,
                                     antialias=True) * 20.0 - 10.0  # SAM 2's mask-as-output scale and bias
        with torch.inference_mode(), self.engine.autocast():
            out, sam_outputs, _, _ = model._track_step(
                k, True, vision_feats, vision_pos, feat_sizes, point_inputs, None,
                {"cond_frame_outputs": {}, "non_cond_frame_outputs": {}}, self.num_frames, False, previous)
            _, _, ious, low_res, high_res, obj_ptr, object_score = sam_outputs
            out.update(pred_masks=low_res, obj_ptr=obj_ptr, object_score_logits=object_score)
            model._encode_memory_in_output(vision_feats, feat_sizes, point_inputs, True, high_res, object_score, out)
        self._conditioning[k] = self._store(out)
        self._recent.pop(k, None)
        return self._prediction(low_res, ious, object_score, features)

    def _mask_at_model_size(self, mask_2d) -> torch.Tensor:
        size = int(self.model.image_size)
        mask = torch.from_numpy(np.asarray(mask_2d, np.float32)).to(self.engine.device)[None, None]
        return (F.interpolate(mask, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
                >= 0.5).float()

    def _prediction(self, low_res, ious, object_score, features) -> FramePrediction:
        size = int(self.model.image_size)
        logits = upsample_logits(low_res[0, 0].float(), size, (size, size), tuple(features.original_size))
        return FramePrediction((logits > 0).cpu().numpy(), float(ious.float().max()),
                               float(object_score.float().reshape(-1)[0]), low_res[0, 0].float().cpu().numpy())

    def track(self, k: int, direction: int) -> FramePrediction:
        """Predict frame ``k`` from the memory bank, tracking in ``direction`` (+1 or -1), and remember it.

        Raises
        ------
        ValueError
            No conditioning frame yet, or ``k`` outside the video.
        """
        k = self._check_frame(k)
        if not self._conditioning:
            raise ValueError("SAM 2 tracking needs a conditioning frame: draw the object on a slice first")
        model = self.model
        features, vision_feats, vision_pos, feat_sizes = self._frame_inputs(k)
        output_dict = {"cond_frame_outputs": dict(self._conditioning), "non_cond_frame_outputs": dict(self._recent)}
        with torch.inference_mode(), self.engine.autocast():
            out, sam_outputs, _, _ = model._track_step(
                k, False, vision_feats, vision_pos, feat_sizes, None, None, output_dict, self.num_frames,
                direction < 0, None)
            _, _, ious, low_res, high_res, obj_ptr, object_score = sam_outputs
            out.update(pred_masks=low_res, obj_ptr=obj_ptr, object_score_logits=object_score)
            model._encode_memory_in_output(vision_feats, feat_sizes, None, True, high_res, object_score, out)
        self._recent[k] = self._store(out)
        while len(self._recent) > self.keep_frames:
            self._recent.popitem(last=False)
        return self._prediction(low_res, ious, object_score, features)

    def _check_frame(self, k) -> int:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= int(k) < self.num_frames:
            raise ValueError(f"Frame {k!r} is outside the video (frames 0 to {self.num_frames - 1})")
        return int(k)
