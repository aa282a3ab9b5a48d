"""Segment Anything engine: slice image in, cached embedding, prompt in, candidate masks out.

Qt- and Slicer-free. The bridge supplies a windowed (rows, columns, 3) uint8 slice image and a
hashable cache key; prompts are pixel coordinates of that image (x = column, y = row).
"""
from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Hashable, Optional, Tuple, Union

import numpy as np
import torch
from segment_anything.modeling import Sam

from .sam_decoder import FastMaskDecoder, PreparedEmbedding
from .sam_embedding_cache import CachedEmbedding, EmbeddingCache
from .sam_encoder import FastImageEncoder
from .sam_errors import InvalidPromptError, MissingEmbeddingError, SamInputError
from .sam_image import preprocess_image, prompt_to_model_frame, upsample_logits, validate_slice_image

ImageSource = Union[np.ndarray, Callable[[], np.ndarray]]
MULTIMASK_CHOICES = ("auto", "always", "never")
BACKENDS = ("torch", "onnx")
_LOG = logging.getLogger(__name__)


@dataclass
class SamPrediction:
    """Candidate masks of one prompt, best first; index 1 and 2 are the alternatives to cycle.

    Attributes
    ----------
    lowres_logits : torch.Tensor float32 (3, L, L), candidate order
    scores : np.ndarray float32 (3,), predicted IoU per candidate
    tokens : tuple of int, decoder mask token of each candidate (0 = single-mask output)
    original_size, input_size : (rows, columns) of the slice and of the resized model input
    img_size : int, side of the padded model input
    """

    lowres_logits: torch.Tensor
    scores: np.ndarray
    tokens: Tuple[int, ...]
    original_size: Tuple[int, int]
    input_size: Tuple[int, int]
    img_size: int

    def __len__(self) -> int:
        return len(self.tokens)

    def logits(self, index: int = 0) -> np.ndarray:
        """Logits (rows, columns) float32 of candidate ``index`` at the slice's resolution."""
        self._check(index)
        full = upsample_logits(self.lowres_logits[index], self.img_size, self.input_size, self.original_size)
        return full.cpu().numpy()

    def mask(self, index: int = 0) -> np.ndarray:
        """Boolean mask (rows, columns) of candidate ``index`` (logit > 0)."""
        return self.logits(index) > 0.0

    def lowres(self, index: int = 0) -> np.ndarray:
        """Low-res logits (L, L) of candidate ``index``: pass as ``previous_logits`` to refine."""
        self._check(index)
        return self.lowres_logits[index].cpu().numpy()

    def _check(self, index: int) -> None:
        if not -len(self.tokens) <= index < len(self.tokens):
            raise SamInputError(f"Candidate index {index} out of range; there are {len(self.tokens)}.")


class SamEngine:
    """Embeds slices (cached) and decodes prompts fast.

    Parameters
    ----------
    model : segment_anything.modeling.Sam
        Built with :mod:`sam_models` (registry checkpoint, tiny or random), in eval mode.
    cache : EmbeddingCache, optional
        Shared cache; a 1024 MB in-memory one by default.
    bf16_encoder, bf16_decoder : bool
        bfloat16 autocast for the image encoder (about 2x faster on CPUs with BF16 support,
        embedding error under 1 %) and for the prompt decoder.
    input_size : int, optional
        Side of the encoder input (multiple of 16, at most the model's 1024). Smaller is faster
        (ViT-B 512: about 6x) but departs from how the released weights were trained; see
        :mod:`sam_encoder`. The model's own size when omitted.
    num_threads : int, optional
        Calls ``torch.set_num_threads`` (process-wide) when given; also ONNX Runtime's threads.
    backend : {"torch", "onnx"}
        Prompt decoder runtime. "onnx" exports the fast decoder to ONNX Runtime (CPU, fp32; a few
        seconds for ViT-B, here in the constructor) and falls back to torch with a warning when
        onnxruntime or the export is unavailable; ``self.backend`` tells which one runs.
    """

    def __init__(self, model: Sam, cache: Optional[EmbeddingCache] = None, *,
                 bf16_encoder: bool = False, bf16_decoder: bool = False,
                 num_threads: Optional[int] = None, prepared_slots: int = 4,
                 backend: str = "torch", input_size: Optional[int] = None) -> None:
        if backend not in BACKENDS:
            raise SamInputError(f"backend must be one of {BACKENDS}, got {backend!r}.")
        self.model = model.eval()
        self.cache = cache if cache is not None else EmbeddingCache()
        try:
            self.encoder = FastImageEncoder(model.image_encoder, input_size, bf16=bf16_encoder)
        except ValueError as error:
            raise SamInputError(str(error)) from None
        if num_threads is not None:
            torch.set_num_threads(int(num_threads))
        self.img_size = self.encoder.input_size
        self.decoder = FastMaskDecoder(model, bf16=bf16_decoder, grid=(self.encoder.grid, self.encoder.grid))
        self.lowres_size = self.decoder.lowres_size
        # Prompts go to the prompt encoder in the model's native input frame (1024 px).
        self._prompt_scale = np.float32(model.image_encoder.img_size / self.img_size)
        self._prepared: "OrderedDict[Hashable, PreparedEmbedding]" = OrderedDict()
        self._prepared_slots = max(1, int(prepared_slots))
        self._lock = threading.Lock()
        self._inflight: dict = {}
        self.backend = "torch"
        self._onnx = None
        if backend == "onnx":
            self._onnx = self._onnx_decoder(num_threads, bf16_decoder)
            self.backend = "onnx" if self._onnx is not None else "torch"

    def _onnx_decoder(self, threads: Optional[int], bf16: bool):
        if bf16 or self.device.type != "cpu":
            _LOG.warning("The ONNX decoder runs fp32 on the CPU only; using torch.")
            return None
        from .sam_onnx_decoder import OnnxMaskDecoder  # onnx and onnxruntime load only when asked

        try:
            return OnnxMaskDecoder(self.decoder, threads)
        except (ImportError, RuntimeError, ValueError, TypeError) as error:
            _LOG.warning("ONNX Runtime decoder unavailable (%s); using torch.", error)
            return None

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def bf16_encoder(self) -> bool:
        return self.encoder.bf16

    @bf16_encoder.setter
    def bf16_encoder(self, value: bool) -> None:
        self.encoder.bf16 = bool(value)

    def has_embedding(self, key: Hashable) -> bool:
        """True if ``key`` is cached (memory or disk)."""
        return key in self.cache

    def compute_embedding(self, image: np.ndarray) -> Tuple[torch.Tensor, Tuple[int, int]]:
        """Run the image encoder on one slice image without caching.

        Returns
        -------
        embedding : torch.Tensor float32 (1, C, g, g) on the model's device
        input_size : (rows, columns) of the resized image

        Raises
        ------
        InvalidImageError
        """
        validate_slice_image(image)
        model = self.model
        with torch.inference_mode():
            pixels, input_size = preprocess_image(image, self.img_size, model.pixel_mean, model.pixel_std,
                                                  model.device)
            embedding = self.encoder(pixels)
        return embedding.float(), input_size

    def embed(self, key: Hashable, image: ImageSource) -> CachedEmbedding:
        """Return the cached embedding of ``key``, computing it from ``image`` when missing.

        ``image`` may be the array or a callable returning it (called only on a miss). A key being
        computed by another thread (the prefetcher) is waited for, not computed twice.
        """
        while True:
            entry = self.cache.get(key)
            if entry is not None:
                return entry
            with self._lock:
                event = self._inflight.get(key)
                if event is None:
                    event = threading.Event()
                    self._inflight[key] = event
                    owner = True
                else:
                    owner = False
            if not owner:
                event.wait()
                continue  # the owner cached it, or failed and this thread tries itself
            try:
                pixels = image() if callable(image) else image
                embedding, input_size = self.compute_embedding(pixels)
                return self.cache.put(key, embedding, pixels.shape[:2], input_size)
            finally:
                with self._lock:
                    self._inflight.pop(key, None)
                event.set()

    def predict(self, key: Hashable, points_xy: Optional[np.ndarray] = None,
                labels: Optional[np.ndarray] = None, box_xyxy: Optional[np.ndarray] = None, *,
                previous_logits: Optional[np.ndarray] = None, image: Optional[ImageSource] = None,
                multimask: str = "auto") -> SamPrediction:
        """Decode a prompt on the slice ``key``.

        Parameters
        ----------
        key : hashable
            Cache key of the slice.
        points_xy : array-like (N, 2), optional
            (x = column, y = row) pixel coordinates in the slice image.
        labels : array-like (N,), optional
            1 for positive (include), 0 for negative (exclude); all positive when omitted.
        box_xyxy : array-like (4,), optional
            (x_min, y_min, x_max, y_max) pixel coordinates.
        previous_logits : np.ndarray (L, L), optional
            ``SamPrediction.lowres(i)`` of the previous prediction on this slice, to refine it.
        image : array or callable, optional
            The slice image, used only when the embedding is not cached yet.
        multimask : {"auto", "always", "never"}
            Which output comes first. "auto": for a single point without a box the three
            multimask outputs sorted by predicted IoU (SAM's advice for ambiguous prompts),
            otherwise the single-mask output first, then the two best multimask outputs.
            "always" / "never" force either ordering.

        Returns
        -------
        SamPrediction

        Raises
        ------
        EmptyPromptError, PromptOutsideImageError, InvalidPromptError, MissingEmbeddingError,
        InvalidImageError
        """
        if multimask not in MULTIMASK_CHOICES:
            raise InvalidPromptError(f"multimask must be one of {MULTIMASK_CHOICES}, got {multimask!r}.")
        entry = self.cache.get(key)
        if entry is None:
            if image is None:
                raise MissingEmbeddingError(
                    "This slice has no image embedding yet; pass its image or wait for the prefetch.")
            entry = self.embed(key, image)
        if tuple(entry.embedding.shape[-2:]) != self.decoder.grid:
            raise SamInputError(
                f"The cached embedding of this slice has a {tuple(entry.embedding.shape[-2:])} token grid but the "
                f"engine decodes {self.decoder.grid}: it was computed at another encoder input size. "
                f"Use separate cache keys (or caches) per input size.")
        points, point_labels, box = prompt_to_model_frame(entry.original_size, entry.input_size,
                                                          points_xy, labels, box_xyxy)
        if points is not None:
            points = self._to_native_frame(points)
        if box is not None:
            box = self._to_native_frame(box)
        mask_input = self._mask_input(previous_logits)
        prepared = self._prepare(key, entry)
        if self._onnx is not None:
            logits, iou = self._onnx.decode(prepared, points, point_labels, box, mask_input)
        else:
            device = self.device
            as_tensor = (lambda a: None if a is None else torch.from_numpy(a).unsqueeze(0).to(device))
            logits, iou = self.decoder.decode(prepared, as_tensor(points), as_tensor(point_labels),
                                              as_tensor(box), mask_input)
        scores = iou.cpu().numpy()
        single_point = points is not None and len(points) == 1 and box is None
        use_multimask = multimask == "always" or (multimask == "auto" and single_point)
        ranked = sorted((1, 2, 3), key=lambda token: -scores[token])
        tokens = tuple(ranked) if use_multimask else (0, ranked[0], ranked[1])
        return SamPrediction(logits[list(tokens)], scores[list(tokens)].astype(np.float32), tokens,
                             entry.original_size, entry.input_size, self.img_size)

    def _to_native_frame(self, coordinates: np.ndarray) -> np.ndarray:
        # The prompt encoder shifts coordinates to pixel centres (+0.5) before dividing by its input size.
        if self._prompt_scale == 1:
            return coordinates
        return (coordinates + np.float32(0.5)) * self._prompt_scale - np.float32(0.5)

    def _mask_input(self, previous_logits: Optional[np.ndarray]) -> Optional[torch.Tensor]:
        if previous_logits is None:
            return None
        logits = np.asarray(previous_logits, dtype=np.float32)
        expected = (self.lowres_size, self.lowres_size)
        if logits.shape != expected or not np.all(np.isfinite(logits)):
            raise InvalidPromptError(
                f"previous_logits must be finite low-res logits of shape {expected} "
                f"(SamPrediction.lowres()), got shape {logits.shape}.")
        return torch.from_numpy(logits).view(1, 1, *expected).to(self.device)

    def _prepare(self, key: Hashable, entry: CachedEmbedding) -> PreparedEmbedding:
        with self._lock:
            prepared = self._prepared.get(key)
            if prepared is not None and prepared.source is entry.embedding:
                self._prepared.move_to_end(key)
                return prepared
        prepared = self.decoder.prepare(entry.embedding)
        prepared.source = entry.embedding
        with self._lock:
            self._prepared[key] = prepared
            while len(self._prepared) > self._prepared_slots:
                self._prepared.popitem(last=False)
        return prepared
