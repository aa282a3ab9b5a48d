"""SAM 2 engine: slice image in, cached multi-level features, prompt in, candidate masks out.

The same interface as :class:`sam_engine.SamEngine` (``embed``, ``predict``, ``has_embedding``, ``cache``,
``frame_of``), so the Segment Anything logic and the SAM 1 propagation run on it unchanged; it also hands its
cached features to the video tracker (:mod:`sam2_video_tracker`).

Frames: SAM 2 resizes the slice image to a square ``image_size`` x ``image_size`` input (no padding, aspect not
kept, as its own transforms do); prompts are scaled per axis; low-res masks are ``image_size / 4`` px square.
"""
from __future__ import annotations

import threading
from collections import namedtuple
from typing import Hashable, Optional

import numpy as np
import torch
import torch.nn.functional as F

from .sam_embedding_cache import CachedEmbedding, EmbeddingCache
from .sam_engine import MULTIMASK_CHOICES, ImageSource, SamEngine, SamPrediction
from .sam_errors import InvalidPromptError, MissingEmbeddingError
from .sam_image import prompt_to_model_frame, validate_slice_image
from .torch_threads import default_decoder_threads, thread_count, torch_threads

_IMAGE_MEAN = (0.485, 0.456, 0.406)  # SAM 2's transforms normalise with the ImageNet statistics
_IMAGE_STD = (0.229, 0.224, 0.225)

Sam2Features = namedtuple("Sam2Features", "top high_res top_pos original_size")
Sam2Features.__doc__ = """One slice's backbone features on the model's device, float32.

top : (1, C, g, g) top-level feature, before any memory or no-memory embedding
high_res : [(1, C/8, 4g, 4g), (1, C/4, 2g, 2g)] already projected for the mask decoder
top_pos : (1, C, g, g) sine position encoding of the top level
original_size : (rows, columns) of the slice image
"""


class Sam2Engine:
    """Embeds slices with SAM 2's image encoder (cached, memory-bounded) and decodes prompts.

    Parameters
    ----------
    model : sam2.modeling.sam2_base.SAM2Base
        Built with :mod:`sam2_models`, in eval mode.
    cache : EmbeddingCache, optional
        A 1024 MB in-memory one by default. An entry is the three feature levels packed into one float16 tensor
        (about 8 MB at 1024 px, 2 MB at 512 px).
    bf16 : bool
        bfloat16 autocast for the encoder, the decoder and the memory attention.
    decoder_threads : int, optional
        Torch threads of a click's decoding, as :class:`SamEngine`'s (default ``$MVA_DECODER_THREADS``, else 1).
    """

    def __init__(self, model, cache: Optional[EmbeddingCache] = None, *, bf16: bool = False,
                 num_threads: Optional[int] = None, decoder_threads: Optional[int] = None) -> None:
        self.model = model.eval()
        self.cache = cache if cache is not None else EmbeddingCache()
        self.bf16 = bool(bf16)
        self.native_size = int(model.image_size)
        self.img_size = self.native_size  # part of the Segment Anything logic's cache keys
        self.input_size = None
        self.grid = int(model.sam_image_embedding_size)
        self.last_embedding = None
        self.model_name = "sam2"
        channels = int(model.hidden_dim)
        self._level_shapes = [(channels // 8, 4 * self.grid), (channels // 4, 2 * self.grid), (channels, self.grid)]
        self._top_pos = None
        self._lock = threading.Lock()
        self._inflight: dict = {}
        if num_threads is not None:
            torch.set_num_threads(int(num_threads))
        self.decoder_threads = (default_decoder_threads() if decoder_threads is None
                                else thread_count(decoder_threads, "decoder thread count"))

    # --- geometry ---------------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.model.device

    def encoder_size_for(self, original_size) -> int:
        return self.native_size

    def frame_of(self, entry: CachedEmbedding):
        """(model input side, low-res mask side)."""
        return self.native_size, 4 * self.grid

    def autocast(self):
        """The autocast context of this engine (bf16 when asked, else a no-op)."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    # --- embeddings ---------------------------------------------------------------------------------------
    def preprocess(self, image: np.ndarray) -> torch.Tensor:
        """uint8 (rows, columns, 3) -> normalised float32 (1, 3, S, S) on the device, as SAM 2's transforms do."""
        validate_slice_image(image)
        pixels = torch.from_numpy(np.ascontiguousarray(image)).to(self.device).permute(2, 0, 1)[None].float() / 255.0
        pixels = F.interpolate(pixels, size=(self.native_size, self.native_size), mode="bilinear",
                               align_corners=False, antialias=True)
        mean = torch.tensor(_IMAGE_MEAN, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(_IMAGE_STD, device=self.device).view(1, 3, 1, 1)
        return (pixels - mean) / std

    def compute_embedding(self, image: np.ndarray):
        """Run the image encoder on one slice; returns (packed features (1, N) float32, input size)."""
        with torch.inference_mode(), self.autocast():
            backbone = self.model.forward_image(self.preprocess(image))
        levels = backbone["backbone_fpn"][-3:]
        if self._top_pos is None:
            self._top_pos = backbone["vision_pos_enc"][-1].float()
        packed = torch.cat([level.float().flatten(1) for level in levels], dim=1)
        return packed, (self.native_size, self.native_size)

    def has_embedding(self, key: Hashable) -> bool:
        return key in self.cache

    # The cached, one-thread-per-key embedding of SAM 1's engine: it needs only cache, _lock, _inflight,
    # compute_embedding and frame_of, which this engine has with the same meaning.
    embed = SamEngine.embed

    def features(self, key: Hashable, image: Optional[ImageSource] = None) -> Sam2Features:
        """Unpacked features of ``key`` (embedded from ``image`` when missing).

        Raises
        ------
        MissingEmbeddingError
            Not cached and no image given.
        """
        entry = self.cache.get(key)
        if entry is None:
            if image is None:
                raise MissingEmbeddingError(
                    "This slice has no image embedding yet; pass its image or wait for the prefetch.")
            entry = self.embed(key, image)
        flat = entry.embedding.to(self.device, torch.float32)[0]
        levels, start = [], 0
        for channels, side in self._level_shapes:
            size = channels * side * side
            levels.append(flat[start:start + size].view(1, channels, side, side))
            start += size
        if self._top_pos is None:  # features read from a disk cache before any encoding in this process
            self._top_pos = self.model.image_encoder.neck.position_encoding(levels[-1]).float()
        return Sam2Features(levels[-1], levels[:2], self._top_pos, entry.original_size)

    # --- prompts ----------------------------------------------------------------------------------------------
    def predict(self, key: Hashable, points_xy: Optional[np.ndarray] = None,
                labels: Optional[np.ndarray] = None, box_xyxy: Optional[np.ndarray] = None, *,
                previous_logits: Optional[np.ndarray] = None, image: Optional[ImageSource] = None,
                multimask: str = "auto") -> SamPrediction:
        """Decode a prompt on slice ``key``; the same parameters and result as :meth:`SamEngine.predict`.

        Raises
        ------
        EmptyPromptError, PromptOutsideImageError, InvalidPromptError, MissingEmbeddingError, InvalidImageError
        """
        if multimask not in MULTIMASK_CHOICES:
            raise InvalidPromptError(f"multimask must be one of {MULTIMASK_CHOICES}, got {multimask!r}.")
        if image is not None and not self.has_embedding(key):
            self.embed(key, image)
        features = self.features(key)
        size = self.native_size
        points, point_labels, box = prompt_to_model_frame(features.original_size, (size, size), points_xy, labels,
                                                          box_xyxy)
        lowres_size = 4 * self.grid
        mask_input = None
        if previous_logits is not None:
            previous = np.asarray(previous_logits, np.float32)
            if previous.shape != (lowres_size, lowres_size):
                raise InvalidPromptError(
                    f"previous_logits must have shape ({lowres_size}, {lowres_size}), got {previous.shape}.")
            mask_input = torch.from_numpy(previous).to(self.device)[None, None]
        with torch_threads(self.decoder_threads):
            logits, scores = self._decode(features, points, point_labels, box, mask_input)
        single_point = points is not None and len(points) == 1 and box is None
        use_multimask = multimask == "always" or (multimask == "auto" and single_point)
        ranked = sorted((1, 2, 3), key=lambda token: -scores[token])
        tokens = tuple(ranked) if use_multimask else (0, ranked[0], ranked[1])
        return SamPrediction(logits[list(tokens)], scores[list(tokens)].astype(np.float32), tokens,
                             tuple(features.original_size), (size, size), size, self.decoder_threads)

    def _decode(self, features: Sam2Features, points, point_labels, box, mask_input):
        """All four decoder outputs: (low-res logits (4, L, L) float32 on the CPU, predicted IoU (4,))."""
        model = self.model
        coords_t, codes_t = prompt_tensors(points, point_labels, box, self.device)
        image_embed = features.top
        if model.directly_add_no_mem_embed:  # what SAM 2 adds to a frame seen without memory (its image predictor)
            image_embed = image_embed + model.no_mem_embed.view(1, -1, 1, 1)
        with torch.inference_mode(), self.autocast():
            sparse, dense = model.sam_prompt_encoder(points=(coords_t, codes_t), boxes=None, masks=mask_input)
            masks, iou, _, _ = model.sam_mask_decoder.predict_masks(
                image_embeddings=image_embed, image_pe=model.sam_prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense, repeat_image=False,
                high_res_features=features.high_res)
        return masks[0].float().clamp(-32.0, 32.0).cpu(), iou[0].float().cpu().numpy()


def prompt_tensors(points, point_labels, box, device):
    """SAM 2's point inputs (1, N, 2) and labels (1, N) int32: the box as corner labels 2 / 3 first, then points."""
    coords, codes = [], []
    if box is not None:
        coords.append(box)
        codes.append(np.array([2, 3], np.float32))
    if points is not None:
        coords.append(points)
        codes.append(point_labels)
    return (torch.from_numpy(np.concatenate(coords)).to(device)[None],
            torch.from_numpy(np.concatenate(codes)).to(device, torch.int32)[None])
