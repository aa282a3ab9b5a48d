"""Build a SamEngine by model name: the tiny test model, or an official/MedSAM checkpoint."""
from SegmentAnythingLib.algorithms.sam_checkpoints import CHECKPOINTS, ensure_checkpoint
from SegmentAnythingLib.algorithms.sam_errors import UnknownModelError
from SegmentAnythingLib.sam2_engine_factory import SAM2_MODEL_NAMES, is_sam2_model

MODEL_NAMES = ("tiny",) + tuple(CHECKPOINTS) + SAM2_MODEL_NAMES
# Encoder input choices offered by the Slicer module, the browser and `mva serve` (ViT-B, 2-core CPU: 4.1, 1.9, 0.7 s).
INPUT_SIZE_LABELS = {"full": "1024 px, as trained", "auto": "auto: 512 / 768 / 1024 px, the smallest holding the slice",
                     "768": "768 px (faster)", "512": "512 px (fastest)"}


def input_size_from_text(text):
    """A setting or option ("full", "auto", "512", ...) as create_engine's `input_size`: None, "auto" or an int.

    Raises
    ------
    ValueError
        Anything else.
    """
    if text in (None, "", "full"):
        return None
    if text == "auto":
        return text
    try:
        value = int(text)
    except (TypeError, ValueError):
        value = 0
    if value <= 0:
        raise ValueError(f"expected full, auto or a side in pixels such as 512, got {text!r}")
    return value


def create_engine(model_name="tiny", checkpoint=None, device="auto", allow_download=True, progress=None,
                  cancel=None, cache_mb=1024, cache_folder=None, input_size=None, remote_url=None, remote_token=None,
                  decoder_threads=None):
    """A SamEngine for `model_name` ("tiny", "vit_b", "vit_l", "vit_h", "medsam_vit_b").

    Official checkpoints are downloaded on first use (progress, cancel, resume, checksum) unless
    `allow_download` is False; `checkpoint` gives a local file instead (required for MedSAM).
    `input_size`: None runs the image encoder at the model's own size (1024; 256 for "tiny"), as trained;
    an int (e.g. 512, capped at that size) or "auto" (smallest of 1/2, 3/4, 1 x that size holding the slice) is faster on a CPU
    (ViT-B bf16: 4.1 s -> 0.7 s at 512) with quality not yet verified on real weights.
    `remote_url` / `remote_token`: encode slices on the inference service (`mva inference-service`), falling
    back to this machine with a message when it is unreachable (MVAComputeLib.remote_encoding).
    `decoder_threads`: torch threads of a click's decoding on the calling thread (None: $MVA_DECODER_THREADS,
    else 1), apart from the encoder's, so a click does not wait for an encoder busy elsewhere.
    """
    if is_sam2_model(model_name):  # SAM 2.1 and MedSAM2: a Sam2Engine, same interface (no input-size choice)
        from SegmentAnythingLib.sam2_engine_factory import create_sam2_engine
        engine = create_sam2_engine(model_name, checkpoint, device, allow_download, progress, cancel, cache_mb,
                                    cache_folder)
        return _with_decoder_threads(engine, decoder_threads)
    from SegmentAnythingLib.algorithms.sam_embedding_cache import EmbeddingCache
    from SegmentAnythingLib.algorithms.sam_engine import SamEngine
    from SegmentAnythingLib.algorithms.sam_models import bf16_is_fast, build_sam, build_tiny_sam, choose_device
    cache = EmbeddingCache(max_memory_mb=cache_mb, folder=cache_folder)
    if model_name == "tiny":
        model = build_tiny_sam(seed=0, device=choose_device(device))
        engine = SamEngine(model, cache, input_size=_capped(input_size, model), decoder_threads=decoder_threads)
        engine.model_name = model_name
        return _with_remote(engine, remote_url, remote_token)
    if model_name not in CHECKPOINTS:
        raise UnknownModelError(f"Unknown model {model_name!r}; choose one of {', '.join(MODEL_NAMES)}")
    path = ensure_checkpoint(model_name, path=checkpoint, allow_download=allow_download, progress=progress,
                             cancel=cancel)
    model = build_sam(CHECKPOINTS[model_name].model_type, path, device)
    # bf16 on CPUs with native bf16: encoder 1.9x faster than fp32 (embedding error 0.8 %), decoder 44 -> 36 ms per
    # click (masks agree on 99.6 % of pixels with fp32 on random weights); see `mva bench`. Also on bf16 GPUs.
    fast = bf16_is_fast(model.device)
    engine = SamEngine(model, cache, bf16_encoder=fast, bf16_decoder=fast, input_size=_capped(input_size, model),
                       decoder_threads=decoder_threads)
    engine.model_name = model_name
    return _with_remote(engine, remote_url, remote_token)


def _with_decoder_threads(engine, decoder_threads):
    if decoder_threads is not None:
        from SegmentAnythingLib.algorithms.torch_threads import thread_count
        engine.decoder_threads = thread_count(decoder_threads, "decoder thread count")
    return engine


def _with_remote(engine, remote_url, remote_token):
    if remote_url:
        from MVAComputeLib.remote_encoding import remote_encoder
        engine.remote_encoder = remote_encoder(remote_url, remote_token, engine.model_name,
                                               input_size=engine.input_size)
    return engine


def _capped(input_size, model):
    if input_size is None or input_size == "auto":
        return input_size
    return min(int(input_size), int(model.image_encoder.img_size))
