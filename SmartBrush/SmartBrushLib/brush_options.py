"""Smart Brush options (no heavy imports: the Qt effect reads the defaults at startup)."""
from dataclasses import dataclass


@dataclass
class BrushOptions:
    seed: int = 0
    mode: str = "fill"  # "fill": preview the prediction, write on Apply; "assist": edge-aware brush
    # Keep only predicted pieces connected to the segment's strokes on the slice ("similar tissue around it"):
    # tissue of the same intensity elsewhere (a nodule's HU is the chest wall's) is not taken.
    connected_to_strokes: bool = True
