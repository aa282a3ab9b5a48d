"""How many `mva embed` workers fit in memory: one worker's need, the budget, and the bounded worker count.

A worker holds one SAM model (its weights, plus a bf16 copy of the encoder where bf16 is used), the encoder's
activations for one slice at its input side, and the Python/torch runtime. The estimate is deliberately on the
high side (`embed_bench` prints the measured peak beside it: random-weight ViT-B fp32 in a Ray worker peaked at
1352-1389 MB at 512 px and 1599 MB at 1024 px, estimated 1454 and 1742 MB). The budget is `--memory-mb`, else
70 % of the memory the machine has available now (a local Ray) or the cluster's memory resource (`--address`).
"""
from MVAComputeLib.embed_cases import EmbedInputError

RUNTIME_MB = 1000  # Python, torch, segment_anything, zarr, SimpleITK and Ray's worker libraries in a fresh process
ACTIVATION_COPIES = 32  # live (tokens x channels) fp32 tensors of one encoder block at its peak, with margin
AVAILABLE_SHARE = 0.7


def worker_memory_mb(engine, input_side=None):
    """Estimated peak resident memory (MB) of one embedding worker holding `engine`'s model.

    Parameters
    ----------
    engine : SamEngine
        The model the workers build (the driver builds the same one for the store's identity).
    input_side : int, optional
        Encoder input side in pixels (default the model's native side).
    """
    model = engine.model
    weights = sum(parameter.numel() * parameter.element_size() for parameter in model.parameters())
    if getattr(engine, "bf16_encoder", False):
        weights += sum(p.numel() * 2 for p in model.image_encoder.parameters())
    side = int(input_side or engine.native_size)
    tokens = (side // engine.patch_size) ** 2
    width = int(model.image_encoder.patch_embed.proj.out_channels)
    activations = tokens * width * 4 * ACTIVATION_COPIES
    return RUNTIME_MB + (weights + activations) / 2**20


def proc_status_mb(path, field):
    """A "Field:   N kB" line of a Linux /proc file in MB (MemAvailable of /proc/meminfo, VmHWM of
    /proc/PID/status), or None where it cannot be read."""
    try:
        with open(path) as lines:
            for line in lines:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def available_memory_mb():
    """MemAvailable of this machine in MB (Linux), or None where it cannot be read."""
    return proc_status_mb("/proc/meminfo", "MemAvailable")


def default_budget_mb(object_store_mb):
    """The workers' share of this machine: 70 % of what is available, less the object store; None if unknown."""
    available = available_memory_mb()
    if available is None:
        return None
    return max(0.0, AVAILABLE_SHARE * available - object_store_mb)


def bounded_workers(requested, per_worker_mb, budget_mb, where="this machine"):
    """The number of workers that fit in `budget_mb`, and a note when it is fewer than `requested`.

    Raises
    ------
    EmbedInputError
        Not even one worker fits.
    """
    if budget_mb is None:
        return requested, ""
    fitting = int(budget_mb // per_worker_mb)
    if fitting < 1:
        raise EmbedInputError(
            f"One embedding worker needs about {per_worker_mb:.0f} MB (the model and one slice's encoding) but "
            f"only {budget_mb:.0f} MB may be used on {where}: free memory, raise --memory-mb, choose a smaller "
            f"--input-size (512 needs about a quarter of the activations of 1024) or a smaller model")
    if fitting >= requested:
        return requested, ""
    return fitting, (f"{requested} workers asked, {fitting} fit in {budget_mb:.0f} MB on {where} "
                     f"(about {per_worker_mb:.0f} MB each); running {fitting}")
