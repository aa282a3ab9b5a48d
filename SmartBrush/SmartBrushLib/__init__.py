"""Smart Brush: online pixel classifier trained by brush strokes (algorithms) and its Slicer logic."""
