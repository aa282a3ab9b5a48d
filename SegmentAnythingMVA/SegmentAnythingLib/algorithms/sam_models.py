"""Building Segment Anything models: registry models with checkpoints, tiny and random test models.

Builders stay apart from the engine (as in segment_anything's ``build_sam.py``): they return a
``segment_anything.modeling.Sam`` in eval mode on the chosen device, and the engine takes it as is.
"""
from __future__ import annotations

import os
import pickle
import struct
import zipfile
from functools import partial
from pathlib import Path
from typing import Optional, Union

import torch
from segment_anything import sam_model_registry
from segment_anything.modeling import (
    ImageEncoderViT,
    MaskDecoder,
    PromptEncoder,
    Sam,
    TwoWayTransformer,
)

from .sam_checkpoints import check_checkpoint_file
from .sam_errors import CheckpointLoadError, DeviceUnavailableError, UnknownModelError

# Width of the ViT encoder -> registry model type, used to name the model a checkpoint belongs to.
_ENCODER_WIDTH_TO_TYPE = {768: "vit_b", 1024: "vit_l", 1280: "vit_h"}
MODEL_TYPES = ("vit_b", "vit_l", "vit_h")


def choose_device(preferred: str = "auto") -> torch.device:
    """Return the compute device: "auto" picks CUDA, then Apple MPS, then CPU.

    Parameters
    ----------
    preferred : {"auto", "cpu", "cuda", "mps"} or a torch device string such as "cuda:1"

    Raises
    ------
    DeviceUnavailableError
        If a named accelerator is not present.
    """
    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps is not None and mps.is_available())
    if preferred == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if has_mps else torch.device("cpu")
    try:
        device = torch.device(preferred)
    except RuntimeError:
        raise DeviceUnavailableError(
            f"Unknown device '{preferred}'; use auto, cpu, cuda or mps.") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailableError("CUDA was requested but no CUDA GPU is available; use auto or cpu.")
    if device.type == "mps" and not has_mps:
        raise DeviceUnavailableError("Apple MPS was requested but is not available; use auto or cpu.")
    return device


def build_sam(
    model_type: str,
    checkpoint_path: Union[str, os.PathLike],
    device: Union[str, torch.device] = "auto",
) -> Sam:
    """Build a registry model ("vit_b", "vit_l", "vit_h") and load its checkpoint.

    Parameters
    ----------
    model_type : str
        Key of segment_anything's ``sam_model_registry``.
    checkpoint_path : path-like
        A state-dict file (plain, or wrapped under "model" / "state_dict" as some fine-tunes do).
    device : str or torch.device
        Passed to :func:`choose_device` when a string.

    Raises
    ------
    UnknownModelError
        Unknown model type.
    CheckpointLoadError
        Corrupt file, not a PyTorch checkpoint, or a checkpoint of another model type.
    """
    if model_type not in MODEL_TYPES:
        raise UnknownModelError(f"Unknown model type '{model_type}'; use one of {', '.join(MODEL_TYPES)}.")
    state_dict = load_state_dict(checkpoint_path)
    width = _encoder_width(state_dict)
    expected = {v: k for k, v in _ENCODER_WIDTH_TO_TYPE.items()}[model_type]
    if width != expected:
        # Checked before building, so a wrong choice costs no multi-second model construction.
        raise _mismatch_error(checkpoint_path, model_type, width)
    model = sam_model_registry[model_type]()
    load_weights(model, checkpoint_path, state_dict)
    return _to_device(model, device)


def load_weights(model: Sam, checkpoint_path: Union[str, os.PathLike],
                 state_dict: Optional[dict] = None) -> Sam:
    """Load a checkpoint into an already built ``model`` (any architecture, e.g. the tiny SAM).

    Raises
    ------
    CheckpointLoadError
        Unreadable file, or keys / tensor shapes that do not fit ``model``.
    """
    if state_dict is None:
        state_dict = load_state_dict(checkpoint_path)
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as error:
        raise _mismatch_error(checkpoint_path, None, _encoder_width(state_dict)) from error
    return model


def _mismatch_error(checkpoint_path, model_type: Optional[str], width: Optional[int]) -> CheckpointLoadError:
    other = _ENCODER_WIDTH_TO_TYPE.get(width)
    hint = f" It looks like a {other} checkpoint." if other and other != model_type else ""
    target = f"a {model_type} model" if model_type else "this model"
    return CheckpointLoadError(
        f"{Path(checkpoint_path).name} does not fit {target} (missing keys or tensor shapes differ)."
        f"{hint} Choose the matching model type or checkpoint.")


def load_state_dict(checkpoint_path: Union[str, os.PathLike]) -> dict:
    """Read a checkpoint's state dict on the CPU without executing pickled code.

    Raises
    ------
    CheckpointLoadError
        The file cannot be read as a PyTorch checkpoint or holds no tensors.
    """
    path = Path(checkpoint_path)
    check_checkpoint_file(path)
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, ValueError, zipfile.BadZipFile, UnicodeDecodeError,
            AttributeError, TypeError, KeyError, IndexError, struct.error, OverflowError) as error:
        # the weights-only unpickler raises KeyError / IndexError on garbage that merely starts like a pickle
        raise CheckpointLoadError(
            f"{path.name} is not a readable PyTorch checkpoint (corrupt or incomplete file?); choose a SAM "
            f"checkpoint (.pth), or download it again. Details: {type(error).__name__}: {error}"
        ) from error
    if isinstance(loaded, dict):
        for wrapper_key in ("model", "state_dict"):
            if isinstance(loaded.get(wrapper_key), dict):
                loaded = loaded[wrapper_key]
                break
    if not isinstance(loaded, dict) or not any(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise CheckpointLoadError(f"{path.name} holds no model weights (found {type(loaded).__name__}).")
    return loaded


def _encoder_width(state_dict: dict) -> Optional[int]:
    weight = state_dict.get("image_encoder.patch_embed.proj.weight")
    return int(weight.shape[0]) if isinstance(weight, torch.Tensor) else None


def build_tiny_sam(seed: int = 0, device: Union[str, torch.device] = "cpu", decoder_depth: int = 1) -> Sam:
    """A tiny randomly initialised SAM (about 170 k parameters) for tests and demos.

    Same modules and data flow as the real models, at 256 x 256 input: encoder ViT with
    embed_dim 64 and depth 2, 32-channel embeddings on a 16 x 16 grid, one-layer two-way
    transformer (``decoder_depth`` layers; the released models have 2), 64 x 64 low-resolution
    masks. Weights depend only on ``seed``.
    """
    prompt_dim, image_size, patch = 32, 256, 16
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Sam(
            image_encoder=ImageEncoderViT(
                img_size=image_size, patch_size=patch, embed_dim=64, depth=2, num_heads=2,
                mlp_ratio=2.0, out_chans=prompt_dim, qkv_bias=True,
                norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), use_rel_pos=True,
                window_size=8, global_attn_indexes=(1,),
            ),
            prompt_encoder=PromptEncoder(
                embed_dim=prompt_dim,
                image_embedding_size=(image_size // patch, image_size // patch),
                input_image_size=(image_size, image_size), mask_in_chans=8,
            ),
            mask_decoder=MaskDecoder(
                num_multimask_outputs=3, transformer_dim=prompt_dim,
                transformer=TwoWayTransformer(depth=decoder_depth, embedding_dim=prompt_dim, mlp_dim=64,
                                              num_heads=2),
                iou_head_depth=2, iou_head_hidden_dim=32,
            ),
        )
        randomise_positions(model)
    return _to_device(model, device)


def build_random_sam(model_type: str = "vit_b", seed: int = 0,
                     device: Union[str, torch.device] = "cpu") -> Sam:
    """A full-size registry model with random weights (positions included), for latency measurements only."""
    if model_type not in MODEL_TYPES:
        raise UnknownModelError(f"Unknown model type '{model_type}'; use one of {', '.join(MODEL_TYPES)}.")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = sam_model_registry[model_type]()
        randomise_positions(model)
    return _to_device(model, device)


def randomise_positions(model: Sam, std: float = 0.02) -> Sam:
    """Fill the encoder's position embeddings, which segment_anything initialises to zeros, with random
    values (from torch's current seed): otherwise an untrained model ignores positions and tests of position
    handling (relative terms, resized embeddings) would pass whatever the code does."""
    encoder = model.image_encoder
    with torch.no_grad():
        tables = [encoder.pos_embed] if encoder.pos_embed is not None else []
        for block in encoder.blocks:
            if block.attn.use_rel_pos:
                tables += [block.attn.rel_pos_h, block.attn.rel_pos_w]
        for table in tables:
            table.normal_(0.0, std)
    return model


def _to_device(model: Sam, device: Union[str, torch.device]) -> Sam:
    target = choose_device(device) if isinstance(device, str) else device
    return model.to(target).eval()


def parameter_count(model: torch.nn.Module) -> int:
    """Number of parameters of ``model``."""
    return sum(p.numel() for p in model.parameters())


def bf16_is_fast(device: torch.device) -> bool:
    """True where bfloat16 autocast speeds SAM up: CPUs with native bf16 and CUDA GPUs that support it
    (Ampere and later). Apple MPS and other CPUs keep fp32."""
    if device.type == "cpu":
        return cpu_supports_bf16()
    if device.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    return False


def cpu_supports_bf16() -> bool:
    """True when this CPU runs bfloat16 matrix products natively (AVX512-BF16 or AMX): bf16 autocast is then
    faster than fp32; elsewhere it is emulated and slower, so fp32 is kept."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False
