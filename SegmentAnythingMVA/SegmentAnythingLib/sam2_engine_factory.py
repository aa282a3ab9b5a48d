"""Build a Sam2Engine by model name: the tiny random test model, SAM 2.1 or MedSAM2 (downloaded or a local file)."""
SAM2_TINY_NAME = "sam2_tiny"
SAM2_MODEL_NAMES = (SAM2_TINY_NAME, "sam2.1_tiny", "sam2.1_small", "sam2.1_base_plus", "sam2.1_large", "medsam2")


def is_sam2_model(model_name):
    """True for the names this factory builds."""
    return model_name in SAM2_MODEL_NAMES


def create_sam2_engine(model_name=SAM2_TINY_NAME, checkpoint=None, device="auto", allow_download=True,
                       progress=None, cancel=None, cache_mb=1024, cache_folder=None, bf16=None, random_weights=False):
    """A Sam2Engine for `model_name` (see SAM2_MODEL_NAMES).

    Released checkpoints are downloaded on first use (progress, cancel, resume, structural check) unless
    `allow_download` is False; `checkpoint` gives a local file instead. `random_weights` builds the named
    architecture untrained (speed and memory measurements only). `bf16`: None uses bf16 autocast where it is
    native (CPUs with AVX512-BF16 or AMX, Ampere and later GPUs), as for SAM 1.

    Raises
    ------
    UnknownModelError, CheckpointMissingError, CheckpointDownloadError, DownloadCancelledError,
    ChecksumMismatchError, CheckpointLoadError, DeviceUnavailableError
    """
    from SegmentAnythingLib.algorithms.sam_embedding_cache import EmbeddingCache
    from SegmentAnythingLib.algorithms.sam_errors import UnknownModelError
    from SegmentAnythingLib.algorithms.sam_models import bf16_is_fast, choose_device
    from SegmentAnythingLib.algorithms.sam2_engine import Sam2Engine
    from SegmentAnythingLib.algorithms import sam2_models
    if not is_sam2_model(model_name):
        raise UnknownModelError(f"Unknown SAM 2 model {model_name!r}; choose one of {', '.join(SAM2_MODEL_NAMES)}")
    target = choose_device(device)
    if model_name == SAM2_TINY_NAME:
        model = sam2_models.build_tiny_sam2(seed=0, device=target)
        bf16 = False if bf16 is None else bf16
    elif random_weights:
        model = sam2_models.build_random_sam2(model_name, device=target)
    else:
        from SegmentAnythingLib.algorithms.sam2_checkpoints import ensure_sam2_checkpoint
        path = ensure_sam2_checkpoint(model_name, path=checkpoint, allow_download=allow_download, progress=progress,
                                      cancel=cancel)
        model = sam2_models.build_sam2_model(model_name, path, target)
    engine = Sam2Engine(model, EmbeddingCache(max_memory_mb=cache_mb, folder=cache_folder),
                        bf16=bf16_is_fast(target) if bf16 is None else bf16)
    engine.model_name = model_name
    return engine
