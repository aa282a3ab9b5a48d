"""Building SAM 2 models: SAM 2.1 (tiny, small, base+, large), MedSAM2 and a tiny random test model.

Every model is built from the ``sam2`` package's own Hydra configs and modules (``SAM2Base`` in eval
mode on the chosen device). MedSAM2 is SAM 2.1 Hiera-tiny trained at 512 px: its weights load without
complaint into the 1024 px config and then predict garbage, so its spec carries the 512 px overrides
and every build checks the built model's image size and memory-attention grid against the spec.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple, Union

import torch

from .sam_errors import CheckpointLoadError, UnknownModelError
from .sam_models import choose_device, load_state_dict

# Overrides that SAM 2's own builders add for inference (sam2.build_sam): fall back to the multimask output when
# the single mask is unstable, and binarise prompted masks before the memory encoder.
_INFERENCE_OVERRIDES = (
    "++model.sam_mask_decoder_extra_args.dynamic_multimask_via_stability=true",
    "++model.sam_mask_decoder_extra_args.dynamic_multimask_stability_delta=0.05",
    "++model.sam_mask_decoder_extra_args.dynamic_multimask_stability_thresh=0.98",
    "++model.binarize_mask_from_pts_for_mem_enc=true",
)


def _grid_overrides(image_size: int) -> Tuple[str, ...]:
    grid = image_size // 16
    return (f"++model.image_size={image_size}",
            f"++model.memory_attention.layer.self_attention.feat_sizes=[{grid},{grid}]",
            f"++model.memory_attention.layer.cross_attention.feat_sizes=[{grid},{grid}]")


@dataclass(frozen=True)
class Sam2ModelSpec:
    """One SAM 2 architecture: the sam2 package config, overrides, and what a fitting checkpoint looks like.

    Attributes
    ----------
    name : str
        Our model name ("sam2.1_tiny", ..., "medsam2").
    config : str
        Config path inside the sam2 package.
    image_size : int
        Side of the square model input in pixels (1024; 512 for MedSAM2).
    trunk_width : int
        Hiera embedding width (first stage channels): 96 tiny/small, 112 base+, 144 large.
    trunk_blocks : int
        Number of Hiera blocks: 12 tiny, 16 small, 24 base+, 48 large.
    overrides : tuple of str
        Hydra overrides on top of ``config``.
    description : str
    """

    name: str
    config: str
    image_size: int
    trunk_width: int
    trunk_blocks: int
    overrides: Tuple[str, ...] = ()
    description: str = ""


_CONFIG = "configs/sam2.1/sam2.1_hiera_{}.yaml"
SAM2_MODELS = {
    "sam2.1_tiny": Sam2ModelSpec("sam2.1_tiny", _CONFIG.format("t"), 1024, 96, 12,
                                 description="SAM 2.1 Hiera-tiny (39 M parameters), fastest"),
    "sam2.1_small": Sam2ModelSpec("sam2.1_small", _CONFIG.format("s"), 1024, 96, 16,
                                  description="SAM 2.1 Hiera-small (46 M parameters)"),
    "sam2.1_base_plus": Sam2ModelSpec("sam2.1_base_plus", _CONFIG.format("b+"), 1024, 112, 24,
                                      description="SAM 2.1 Hiera-base+ (81 M parameters)"),
    "sam2.1_large": Sam2ModelSpec("sam2.1_large", _CONFIG.format("l"), 1024, 144, 48,
                                  description="SAM 2.1 Hiera-large (224 M parameters), most accurate"),
    # MedSAM2's own config (bowang-lab/MedSAM2 sam2/configs/sam2.1_hiera_t512.yaml) is the SAM 2.1 tiny config
    # at 512 px: image_size 512 and a 32 x 32 RoPE grid in the memory attention.
    "medsam2": Sam2ModelSpec("medsam2", _CONFIG.format("t"), 512, 96, 12, _grid_overrides(512),
                             description="MedSAM2 (SAM 2.1 Hiera-tiny fine-tuned on CT, MRI and ultrasound, 512 px)"),
}
TINY_MODEL_NAME = "sam2_tiny"


def sam2_spec(name: str) -> Sam2ModelSpec:
    """The spec of ``name``.

    Raises
    ------
    UnknownModelError
    """
    try:
        return SAM2_MODELS[name]
    except KeyError:
        raise UnknownModelError(
            f"Unknown SAM 2 model '{name}'; choose one of {', '.join(SAM2_MODELS)} (or {TINY_MODEL_NAME}).") from None


def _compose(config: str, overrides) -> torch.nn.Module:
    import sam2  # noqa: F401  (initialises Hydra's search path to the package's configs)
    from hydra import compose
    from hydra.utils import instantiate
    from omegaconf import OmegaConf
    cfg = compose(config_name=config, overrides=list(overrides))
    OmegaConf.resolve(cfg)
    return instantiate(cfg.model, _recursive_=True)


def build_sam2_model(name: Union[str, Sam2ModelSpec], checkpoint_path: Optional[Union[str, os.PathLike]] = None,
                     device: Union[str, torch.device] = "auto") -> torch.nn.Module:
    """Build SAM 2 model ``name`` and load its checkpoint (random weights when ``checkpoint_path`` is None).

    Parameters
    ----------
    name : str or Sam2ModelSpec
        Key of :data:`SAM2_MODELS` (or a spec, e.g. :func:`tiny_sam2_spec`).
    checkpoint_path : path-like, optional
        A SAM 2 checkpoint (``{"model": state_dict}`` as released, or a plain state dict).
    device : str or torch.device

    Returns
    -------
    sam2.modeling.sam2_base.SAM2Base
        In eval mode on ``device``.

    Raises
    ------
    UnknownModelError
        Unknown name.
    CheckpointLoadError
        Unreadable file, a SAM 1 checkpoint, a checkpoint of another size, a MedSAM2 file chosen as SAM 2.1 (or the
        reverse), or keys that do not fit.
    """
    spec = name if isinstance(name, Sam2ModelSpec) else sam2_spec(name)
    state_dict = None
    if checkpoint_path is not None:
        state_dict = load_state_dict(checkpoint_path)
        check_sam2_state_dict(spec, state_dict, Path(checkpoint_path).name)
    model = _compose(spec.config, _INFERENCE_OVERRIDES + spec.overrides)
    check_model_geometry(model, spec.image_size)
    if state_dict is not None:
        missing, unexpected = model.load_state_dict(state_dict, strict=False)
        if missing or unexpected:
            raise CheckpointLoadError(
                f"{Path(checkpoint_path).name} does not fit {spec.description}: {len(missing)} missing and "
                f"{len(unexpected)} unexpected weights (first: {(list(missing) + list(unexpected))[0]}). "
                f"Choose the matching SAM 2 model or checkpoint.")
    return _to_device(model, device)


def check_sam2_state_dict(spec: Sam2ModelSpec, state_dict: dict, file_name: str) -> None:
    """Structural check of a checkpoint against ``spec`` before the model is built.

    Raises
    ------
    CheckpointLoadError
        Says which model the file is for when it is recognisably another one.
    """
    if "image_encoder.patch_embed.proj.weight" in state_dict:
        raise CheckpointLoadError(
            f"{file_name} is a Segment Anything (SAM 1) checkpoint, not SAM 2; choose it as a vit_b / vit_l / "
            f"vit_h (or MedSAM) model instead.")
    weight = state_dict.get("image_encoder.trunk.patch_embed.proj.weight")
    if not isinstance(weight, torch.Tensor) or "memory_attention.norm.weight" not in state_dict:
        raise CheckpointLoadError(
            f"{file_name} holds no SAM 2 image encoder and memory attention weights; choose a SAM 2.1 or MedSAM2 "
            f"checkpoint (.pt).")
    width = int(weight.shape[0])
    blocks = 1 + max((int(key.split(".")[3]) for key in state_dict if key.startswith("image_encoder.trunk.blocks.")),
                     default=-1)
    if (width, blocks) != (spec.trunk_width, spec.trunk_blocks):
        fitting = [s.name for s in SAM2_MODELS.values() if (s.trunk_width, s.trunk_blocks) == (width, blocks)]
        hint = f" It looks like a {' or '.join(fitting)} checkpoint." if fitting else ""
        raise CheckpointLoadError(
            f"{file_name} has a Hiera encoder of width {width} with {blocks} blocks, but {spec.name} needs width "
            f"{spec.trunk_width} with {spec.trunk_blocks} blocks.{hint} Choose the matching model.")
    # MedSAM2 and SAM 2.1 tiny have identical weights' shapes; only the image size differs, which the file does not
    # record. Loading one into the other's config works and predicts garbage, so the file name must not contradict.
    looks_medsam = "medsam" in file_name.lower()
    if looks_medsam and spec.name != "medsam2":
        raise CheckpointLoadError(
            f"{file_name} looks like a MedSAM2 checkpoint (trained at 512 px) but was chosen as {spec.name} "
            f"({spec.image_size} px): it would load and predict garbage. Choose the model medsam2.")
    if spec.name == "medsam2" and not looks_medsam and file_name.lower().startswith("sam2"):
        raise CheckpointLoadError(
            f"{file_name} looks like a SAM 2 checkpoint (1024 px) but was chosen as MedSAM2 (512 px); choose "
            f"sam2.1_tiny for it.")


def check_model_geometry(model: torch.nn.Module, image_size: int) -> None:
    """The built model really works at ``image_size``: its input side and its memory attention's RoPE grid.

    Raises
    ------
    CheckpointLoadError
        The config and the spec disagree (a wrong or edited config).
    """
    grid = image_size // 16
    sizes = {int(model.image_size)}
    for layer in model.memory_attention.layers:
        for attention in (layer.self_attn, layer.cross_attn_image):
            if hasattr(attention, "freqs_cis"):
                tokens = attention.freqs_cis.shape[0]
                sizes.add(int(round(tokens ** 0.5)) * 16)
    if sizes != {image_size}:
        raise CheckpointLoadError(
            f"The SAM 2 config builds a model for {sorted(sizes)} px but this model needs {image_size} px "
            f"({grid} x {grid} memory grid); the config does not match the checkpoint.")


def tiny_sam2_spec(image_size: int = 128) -> Sam2ModelSpec:
    """The spec of the tiny test architecture at ``image_size`` px (a multiple of 64)."""
    if image_size % 64 or image_size < 64:
        raise ValueError(f"The tiny SAM 2 works at a multiple of 64 px; got {image_size}")
    d_model, mem_dim = 32, 16
    overrides = _grid_overrides(image_size) + (
        "++model.image_encoder.trunk.embed_dim=16", "++model.image_encoder.trunk.num_heads=1",
        "++model.image_encoder.trunk.stages=[1,1,2,1]", "++model.image_encoder.trunk.global_att_blocks=[3]",
        "++model.image_encoder.trunk.window_spec=[8,4,4,2]",
        f"++model.image_encoder.neck.d_model={d_model}", "++model.image_encoder.neck.backbone_channel_list=[128,64,32,16]",
        f"++model.image_encoder.neck.position_encoding.num_pos_feats={d_model}",
        f"++model.memory_attention.d_model={d_model}", "++model.memory_attention.num_layers=1",
        f"++model.memory_attention.layer.d_model={d_model}", "++model.memory_attention.layer.dim_feedforward=64",
        f"++model.memory_attention.layer.self_attention.embedding_dim={d_model}",
        f"++model.memory_attention.layer.cross_attention.embedding_dim={d_model}",
        f"++model.memory_attention.layer.cross_attention.kv_in_dim={mem_dim}",
        f"++model.memory_encoder.out_dim={mem_dim}", f"++model.memory_encoder.in_dim={d_model}",
        f"++model.memory_encoder.position_encoding.num_pos_feats={mem_dim}",
        f"++model.memory_encoder.mask_downsampler.embed_dim={d_model}",
        f"++model.memory_encoder.fuser.layer.dim={d_model}", "++model.memory_encoder.fuser.num_layers=1",
    )
    return Sam2ModelSpec(TINY_MODEL_NAME, _CONFIG.format("t"), image_size, 16, 5, overrides,
                         f"the tiny random SAM 2 at {image_size} px")


def build_tiny_sam2(seed: int = 0, device: Union[str, torch.device] = "cpu", image_size: int = 128) -> torch.nn.Module:
    """A tiny randomly initialised SAM 2 (about 0.9 M parameters, mostly the mask decoder) for tests and demos.

    Same modules and data flow as SAM 2.1 (Hiera trunk, FPN neck, RoPE memory attention, memory encoder, object
    pointers, object scores), built from the sam2 package's tiny config with small widths: Hiera width 16 with
    5 blocks, 32 model channels, 16 memory channels, one memory-attention layer, at ``image_size`` px (a multiple
    of 64). Weights depend only on ``seed``.
    """
    spec = tiny_sam2_spec(image_size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _compose(spec.config, _INFERENCE_OVERRIDES + spec.overrides)
        with torch.no_grad():  # untrained position tables are zeros; random ones make position handling matter
            model.image_encoder.trunk.pos_embed.normal_(0.0, 0.02)
            model.image_encoder.trunk.pos_embed_window.normal_(0.0, 0.02)
            # An untrained object-score head says "absent" about half the time, and SAM 2 then blanks the mask;
            # a positive bias makes the random model track, so that tests see masks flow through the memory.
            head = model.sam_mask_decoder.pred_obj_score_head
            (head.layers[-1] if hasattr(head, "layers") else head).bias.fill_(4.0)
    check_model_geometry(model, image_size)
    return _to_device(model, device)


def build_random_sam2(name: str = "sam2.1_tiny", seed: int = 0, device: Union[str, torch.device] = "cpu"):
    """A full-size SAM 2 model with random weights, for latency and memory measurements only."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_sam2_model(name, None, device)


def _to_device(model: torch.nn.Module, device: Union[str, torch.device]) -> torch.nn.Module:
    target = choose_device(device) if isinstance(device, str) else device
    return model.to(target).eval()
