"""Smart Propagation options (no heavy imports: the Qt effect reads the defaults at startup)."""
from dataclasses import dataclass

STRATEGIES = ("auto", "registration", "sam", "sam2", "interpolation", "copy")


@dataclass
class PropagationOptions:
    strategy: str = "auto"
    direction: str = "both"  # "both", "forward" (towards the view normal) or "backward"
    max_slices: int = 50
    stop_rule: object = None  # a SmartPropagationLib.algorithms.StopRule; None: its defaults
