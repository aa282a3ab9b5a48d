"""Viewer settings of the original annotator, applied to MRML display nodes (no UI code here)."""
from dataclasses import dataclass

# (window, level) for CT in Hounsfield units; "Auto" restores the volume's automatic window/level.
WINDOW_LEVEL_PRESETS = {
    "Auto": None,
    "CT brain": (80.0, 40.0),
    "CT soft tissue": (400.0, 40.0),
    "CT lung": (1500.0, -600.0),
    "CT bone": (2000.0, 400.0),
    "MR full range": "full",
}

KEYBOARD_SHORTCUTS = (
    ("Ctrl+Z / Ctrl+Y", "undo / redo"),
    ("Up / Down", "previous / next slice (scroll speed slices per key)"),
    ("B, R, P, S", "Smart Brush, Smart Regions, Smart Propagation, Segment Anything"),
    ("Escape", "no tool; Segment Anything: start a new object"),
    ("C", "Segment Anything: next candidate mask"),
    ("E", "Smart Propagation: End here (the object is not on this slice: take back propagation there and beyond)"),
    ("O", "overlays on/off"),
    ("F", "fullscreen"),
    ("?", "this help"),
    ("Shift+click", "remove / negative point (all smart tools)"),
    ("Ctrl+drag", "Segment Anything: box prompt"),
)


@dataclass
class ViewerSettings:
    label_fill: bool = True  # False: outlines only
    label_opacity: float = 0.5
    overlays_visible: bool = True
    interpolate: bool = True  # linear (True) or nearest (False) image interpolation
    scroll_speed: int = 1  # slices per key press
    window_level_preset: str = "Auto"


class UnknownPresetError(ValueError):
    """A window/level preset name that is not in WINDOW_LEVEL_PRESETS."""


def apply_segmentation_display(segmentation_node, settings):
    """Fill or outline, opacity and visibility of the segmentation's 2D display."""
    if segmentation_node is None:
        return
    display = segmentation_node.GetDisplayNode()
    if display is None:
        return
    display.SetVisibility(bool(settings.overlays_visible))
    display.SetVisibility2DFill(bool(settings.label_fill))
    display.SetVisibility2DOutline(True)
    display.SetOpacity2DFill(float(settings.label_opacity))
    display.SetOpacity2DOutline(1.0 if not settings.label_fill else min(1.0, float(settings.label_opacity) + 0.3))


def apply_volume_display(volume_node, settings):
    """Interpolation and window/level preset of the volume's display node."""
    if volume_node is None or volume_node.GetDisplayNode() is None:
        return
    display = volume_node.GetDisplayNode()
    display.SetInterpolate(1 if settings.interpolate else 0)
    if settings.window_level_preset not in WINDOW_LEVEL_PRESETS:
        raise UnknownPresetError(f"Unknown window/level preset {settings.window_level_preset!r}; "
                                 f"choose one of {', '.join(WINDOW_LEVEL_PRESETS)}")
    preset = WINDOW_LEVEL_PRESETS[settings.window_level_preset]
    if preset is None:
        display.AutoWindowLevelOn()
    elif preset == "full":
        low, high = volume_node.GetImageData().GetScalarRange()
        display.AutoWindowLevelOff()
        display.SetWindowLevel(high - low, (high + low) / 2.0)
    else:
        display.AutoWindowLevelOff()
        display.SetWindowLevel(*preset)


def step_slice(slice_node, volume_node, slices):
    """Move a slice view by `slices` voxel slices along its normal (keyboard scrolling)."""
    import numpy as np
    from slicer.util import arrayFromVTKMatrix
    slice_to_ras = arrayFromVTKMatrix(slice_node.GetSliceToRAS())
    normal = slice_to_ras[:3, 2]
    spacing = np.array(volume_node.GetSpacing())
    step_mm = float(np.min(spacing))
    slice_node.SetSliceOffset(slice_node.GetSliceOffset() + slices * step_mm)
    return normal
