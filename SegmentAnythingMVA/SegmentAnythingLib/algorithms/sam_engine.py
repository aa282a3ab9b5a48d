"""Segment Anything engine: slice image in, cached embedding, prompt in, candidate masks out.

Qt- and Slicer-free. The bridge supplies a windowed (rows, columns, 3) uint8 slice image and a
hashable cache key; prompts are pixel coordinates of that image (x = column, y = row).
"""
from __future__ import annotations

import logging
import threading
import time
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
from .torch_threads import default_decoder_threads, thread_count, torch_threads

ImageSource = Union[np.ndarray, Callable[[], np.ndarray]]
InputSize = Union[None, int, str]
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
    threads : int or None, torch threads of the upsampling in `logits` / `mask` (the engine's decoder threads)
    """

    lowres_logits: torch.Tensor
    scores: np.ndarray
    tokens: Tuple[int, ...]
    original_size: Tuple[int, int]
    input_size: Tuple[int, int]
    img_size: int
    threads: Optional[int] = None

    def __len__(self) -> int:
        return len(self.tokens)

    def logits(self, index: int = 0) -> np.ndarray:
        """Logits (rows, columns) float32 of candidate ``index`` at the slice's resolution."""
        self._check(index)
        with torch_threads(self.threads):
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
    input_size : None, int or "auto"
        Side of the encoder input. None: the model's own (1024 for the released models). An int
        (multiple of 16, at most that): every slice at this size; smaller is faster (ViT-B at 512:
        about 6x) but departs from how the released weights were trained (see :mod:`sam_encoder`).
        "auto": the smallest of half, three quarters and all of the model's size that holds the
        slice without shrinking it (512 px for a 512 x 512 CT slice, 768 for 513-768 px, else
        1024). Embeddings of any size decode, whatever this setting.
    num_threads : int, optional
        Calls ``torch.set_num_threads`` (process-wide) when given; also ONNX Runtime's threads.
    decoder_threads : int, optional
        Torch threads of a prompt's decoding and mask upsampling, set on the calling thread for that call only
        (:mod:`torch_threads`), so a click does not contend with an encoder busy elsewhere. Default
        ``$MVA_DECODER_THREADS``, else 1; ``engine.decoder_threads`` may be changed later (None: as the thread
        is).
    backend : {"torch", "onnx"}
        Prompt decoder runtime. "onnx" exports the fast decoder to ONNX Runtime (CPU, fp32; a few
        seconds for ViT-B, here in the constructor) and falls back to torch with a warning when
        onnxruntime or the export is unavailable; ``self.backend`` tells which one runs.
    """

    def __init__(self, model: Sam, cache: Optional[EmbeddingCache] = None, *,
                 bf16_encoder: bool = False, bf16_decoder: bool = False,
                 num_threads: Optional[int] = None, prepared_slots: int = 4,
                 backend: str = "torch", input_size: InputSize = None,
                 decoder_threads: Optional[int] = None) -> None:
        if backend not in BACKENDS:
            raise SamInputError(f"backend must be one of {BACKENDS}, got {backend!r}.")
        self.model = model.eval()
        self.cache = cache if cache is not None else EmbeddingCache()
        self.last_embedding: Optional[Tuple[float, int]] = None  # (seconds, encoder input side) of the last one
        self.remote_encoder = None  # an object whose encode(image) returns (embedding, input_size) or None
        self.native_size = int(model.image_encoder.img_size)
        self.patch_size = int(model.image_encoder.patch_embed.proj.kernel_size[0])
        self.input_size = input_size
        self._bf16_encoder = bool(bf16_encoder)
        self._encoders: dict = {}
        if input_size != "auto":
            self._encoder(self.native_size if input_size is None else input_size)  # validates the size
        if num_threads is not None:
            torch.set_num_threads(int(num_threads))
        self.decoder_threads = (default_decoder_threads() if decoder_threads is None
                                else thread_count(decoder_threads, "decoder thread count"))
        self._bf16_decoder = bool(bf16_decoder)
        self._decoders: dict = {}  # FastMaskDecoder per token grid, made on first use
        self._prepared: "OrderedDict[Hashable, PreparedEmbedding]" = OrderedDict()
        self._prepared_slots = max(1, int(prepared_slots))
        self._lock = threading.Lock()
        self._inflight: dict = {}
        self.backend = "torch"
        self._threads = num_threads
        self._onnx: dict = {}
        if backend == "onnx":
            self.backend = "onnx" if self._onnx_decoder(self.native_size // self.patch_size) is not None else "torch"

    # --- per-size encoders and decoders ----------------------------------------------------------------
    def encoder_size_for(self, original_size: Tuple[int, int]) -> int:
        """Encoder input side used for a slice of ``original_size`` (rows, columns)."""
        if self.input_size is None:
            return self.native_size
        if self.input_size == "auto":
            for fraction in (2, 4 / 3):
                side = int(self.native_size / fraction) // self.patch_size * self.patch_size
                if max(original_size) <= side:
                    return side
            return self.native_size
        return int(self.input_size)

    def _encoder(self, size) -> FastImageEncoder:
        encoder = self._encoders.get(size)
        if encoder is None:
            try:
                encoder = FastImageEncoder(self.model.image_encoder, int(size), bf16=self._bf16_encoder)
            except (TypeError, ValueError) as error:
                raise SamInputError(f"{error} (input size setting: {self.input_size!r}; or use 'auto').") from None
            self._encoders[size] = encoder
        return encoder

    def _decoder(self, grid: int) -> FastMaskDecoder:
        decoder = self._decoders.get(grid)
        if decoder is None:
            decoder = self._decoders[grid] = FastMaskDecoder(self.model, bf16=self._bf16_decoder, grid=(grid, grid))
        return decoder

    def warm_up(self, grid: int) -> None:
        """Build the decoder of a token `grid` and decode one point on a zero embedding, caching nothing, so
        the first real click does not pay the decoder's construction and first-call kernel set-up."""
        decoder = self._decoder(int(grid))
        channels = int(self.model.prompt_encoder.embed_dim)
        with torch.inference_mode(), torch_threads(self.decoder_threads):
            prepared = decoder.prepare(torch.zeros(1, channels, int(grid), int(grid), device=self.device))
            point = torch.zeros(1, 1, 2, device=self.device)
            decoder.decode(prepared, point, torch.ones(1, 1, device=self.device), None)

    def prepare_embedding(self, key: Hashable) -> bool:
        """Bring ``key``'s embedding into memory (from an embedding store source) and prepare the decoder for it,
        so the first prompt there only decodes. Never encodes: False when the embedding is not available."""
        entry = self.cache.get(key)
        if entry is None:
            return False
        with torch_threads(self.decoder_threads):
            self._prepare(key, entry, self._decoder(entry.grid))
        return True

    def _onnx_decoder(self, grid: int):
        """The ONNX Runtime decoder of ``grid`` (exported on first use), or None to use torch."""
        if grid in self._onnx:
            return self._onnx[grid]
        decoder = None
        if self._bf16_decoder or self.device.type != "cpu":
            _LOG.warning("The ONNX decoder runs fp32 on the CPU only; using torch.")
        else:
            from .sam_onnx_decoder import OnnxMaskDecoder  # onnx and onnxruntime load only when asked
            try:
                decoder = OnnxMaskDecoder(self._decoder(grid), self._threads)
            except (ImportError, RuntimeError, ValueError, TypeError) as error:
                _LOG.warning("ONNX Runtime decoder unavailable (%s); using torch.", error)
        self._onnx[grid] = decoder
        return decoder

    def frame_of(self, entry: CachedEmbedding) -> Tuple[int, int]:
        """(padded encoder input side, low-res mask side) of a cached embedding."""
        return entry.grid * self.patch_size, 4 * entry.grid

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def bf16_encoder(self) -> bool:
        return self._bf16_encoder

    @bf16_encoder.setter
    def bf16_encoder(self, value: bool) -> None:
        self._bf16_encoder = bool(value)
        for encoder in self._encoders.values():
            encoder.bf16 = self._bf16_encoder

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
        if self.remote_encoder is not None:  # e.g. MVAComputeLib.remote_encoding; None back: encode here
            remote = self.remote_encoder.encode(image)
            if remote is not None:
                return remote[0].to(self.device).float(), tuple(remote[1])
        model = self.model
        with torch.inference_mode():
            side = self.encoder_size_for(image.shape[:2])
            encoder = self._encoder(side)
            pixels, input_size = preprocess_image(image, side, model.pixel_mean, model.pixel_std, model.device)
            embedding = encoder(pixels)
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
                tic = time.perf_counter()
                embedding, input_size = self.compute_embedding(pixels)
                entry = self.cache.put(key, embedding, pixels.shape[:2], input_size)
                self.last_embedding = (time.perf_counter() - tic, self.frame_of(entry)[0])
                return entry
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
        with torch_threads(self.decoder_threads):
            return self._decode(key, entry, points_xy, labels, box_xyxy, previous_logits, multimask)

    def _decode(self, key, entry, points_xy, labels, box_xyxy, previous_logits, multimask) -> SamPrediction:
        points, point_labels, box = prompt_to_model_frame(entry.original_size, entry.input_size,
                                                          points_xy, labels, box_xyxy)
        img_size, lowres_size = self.frame_of(entry)
        scale = np.float32(self.native_size / img_size)
        if points is not None:
            points = _to_native_frame(points, scale)
        if box is not None:
            box = _to_native_frame(box, scale)
        mask_input = self._mask_input(previous_logits, lowres_size)
        decoder = self._decoder(entry.grid)
        prepared = self._prepare(key, entry, decoder)
        onnx = self._onnx_decoder(entry.grid) if self.backend == "onnx" else None
        if onnx is not None:
            logits, iou = onnx.decode(prepared, points, point_labels, box, mask_input)
        else:
            device = self.device
            as_tensor = (lambda a: None if a is None else torch.from_numpy(a).unsqueeze(0).to(device))
            logits, iou = decoder.decode(prepared, as_tensor(points), as_tensor(point_labels),
                                         as_tensor(box), mask_input)
        scores = iou.cpu().numpy()
        single_point = points is not None and len(points) == 1 and box is None
        use_multimask = multimask == "always" or (multimask == "auto" and single_point)
        ranked = sorted((1, 2, 3), key=lambda token: -scores[token])
        tokens = tuple(ranked) if use_multimask else (0, ranked[0], ranked[1])
        return SamPrediction(logits[list(tokens)], scores[list(tokens)].astype(np.float32), tokens,
                             entry.original_size, entry.input_size, img_size, self.decoder_threads)

    def _mask_input(self, previous_logits: Optional[np.ndarray], lowres_size: int) -> Optional[torch.Tensor]:
        if previous_logits is None:
            return None
        logits = np.asarray(previous_logits, dtype=np.float32)
        expected = (lowres_size, lowres_size)
        if logits.shape != expected or not np.all(np.isfinite(logits)):
            raise InvalidPromptError(
                f"previous_logits must be finite low-res logits of shape {expected} "
                f"(SamPrediction.lowres()), got shape {logits.shape}.")
        return torch.from_numpy(logits).view(1, 1, *expected).to(self.device)

    def _prepare(self, key: Hashable, entry: CachedEmbedding, decoder: FastMaskDecoder) -> PreparedEmbedding:
        with self._lock:
            prepared = self._prepared.get(key)
            if prepared is not None and prepared.source is entry.embedding:
                self._prepared.move_to_end(key)
                return prepared
        prepared = decoder.prepare(entry.embedding)
        prepared.source = entry.embedding
        with self._lock:
            self._prepared[key] = prepared
            while len(self._prepared) > self._prepared_slots:
                self._prepared.popitem(last=False)
        return prepared


def _to_native_frame(coordinates: np.ndarray, scale: np.float32) -> np.ndarray:
    """Model-input coordinates -> the prompt encoder's native frame (it adds 0.5 before dividing by its size)."""
    if scale == 1:
        return coordinates
    return (coordinates + np.float32(0.5)) * scale - np.float32(0.5)
