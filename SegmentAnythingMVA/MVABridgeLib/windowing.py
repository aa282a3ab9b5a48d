"""Model input windowing: what the user sees in the slice view, as uint8."""
import numpy as np


def auto_window_level(image, low_percentile=0.5, high_percentile=99.5):
    """A (window, level) covering the given percentiles of `image`, like Slicer's automatic W/L."""
    values = np.asarray(image, float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return 1.0, 0.0
    low, high = np.percentile(values, [low_percentile, high_percentile])
    return max(float(high - low), 1e-6), float((high + low) / 2)


def sampled_auto_window_level(image, max_values=2_000_000):
    """`auto_window_level` of `image` from at most `max_values` evenly strided values: the same window when the
    image has no more values, a close one on larger volumes at a fraction of the cost (all the values of a
    512 x 512 x 300 CT take seconds)."""
    values = np.asarray(image).reshape(-1)
    step = max(1, -(-values.size // int(max_values)))
    return auto_window_level(values[::step])


def display_window_level(volume_node, array_kji=None):
    """(window, level) of a scalar volume node's display node; automatic from the data if there is none."""
    display = volume_node.GetDisplayNode() if volume_node is not None else None
    if display is not None and hasattr(display, "GetWindow") and display.GetWindow() > 0 and not display.GetAutoWindowLevel():
        return float(display.GetWindow()), float(display.GetLevel())
    if array_kji is None:
        from MVABridgeLib.volumes import volume_array
        array_kji, _ = volume_array(volume_node, check=False)
    return auto_window_level(array_kji)


def window_to_uint8(image, window, level):
    """Map [level - window/2, level + window/2] linearly to [0, 255] (clipped), as a uint8 array."""
    if not window > 0:
        raise ValueError(f"Window width must be positive, got {window}")
    low = level - window / 2.0
    scaled = (np.asarray(image, np.float32) - low) * (255.0 / window)
    return np.clip(np.nan_to_num(scaled), 0, 255).astype(np.uint8)


def window_stack_to_uint8(image, window, level):
    """`window_to_uint8` of a whole stack, the same values several times faster: through a lookup table for 8 / 16-bit
    integer images (each value maps on its own, so the table holds exactly what window_to_uint8 gives it), in place
    for others (clipping maps infinities as nan_to_num then clipping does; NaN is replaced only when present)."""
    image = np.ascontiguousarray(image)
    bits = {np.dtype(np.int8): np.uint8, np.dtype(np.uint8): np.uint8, np.dtype(np.int16): np.uint16,
            np.dtype(np.uint16): np.uint16}.get(image.dtype)
    if bits is not None:
        every_value = np.arange(np.iinfo(bits).max + 1, dtype=bits).view(image.dtype)
        return window_to_uint8(every_value, window, level)[image.view(bits)]
    if not window > 0:
        raise ValueError(f"Window width must be positive, got {window}")
    scaled = (np.asarray(image, np.float32) - (level - window / 2.0)) * (255.0 / window)
    if np.isnan(scaled).any():
        np.nan_to_num(scaled, copy=False)
    return np.clip(scaled, 0, 255, out=scaled).astype(np.uint8)


def window_to_rgb(image, window, level):
    """(rows, cols, 3) uint8 grey-level RGB of a 2D image, for models that expect colour input."""
    grey = window_to_uint8(image, window, level)
    return np.repeat(grey[..., None], 3, axis=2)
