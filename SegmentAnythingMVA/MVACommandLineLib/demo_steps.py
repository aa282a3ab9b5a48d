"""The steps `mva demo` runs, one per smart tool, each writing one segment through the bridge."""
from dataclasses import dataclass
from typing import Callable

import numpy as np
from skimage.segmentation import flood

from MVABridgeLib.edit_backend import EditMode
from MVABridgeLib.slice_geometry import SlicePlane
from MVAEvaluationLib.metrics import dice
from MVAEvaluationLib.simulated_user import SimulatedUser


@dataclass
class DemoStep:
    title: str
    segment_name: str
    colour: tuple
    run: Callable


def seeded_fill(session, data):
    """A seeded intensity fill on the axial slice with most white matter (the bridge's simplest edit)."""
    volume = session.bridge.work_volume()
    plane = SlicePlane.for_anatomical_axis("axial", 97, volume.index_to_ras, volume.shape)
    image = plane.sample(volume.array, volume.index_to_ras)
    truth = plane.sample(data.truth, data.ijk_to_ras, order=0) > 0
    seed = SimulatedUser(truth).first_click().index
    mask = flood(image, seed, tolerance=float(np.std(image[truth])) * 1.5)
    session.bridge.apply_slice_mask(plane, mask, EditMode.REPLACE)
    return f"seed {seed}, slice Dice {dice(mask, truth):.3f}"


DEMO_STEPS = [DemoStep("Seeded fill (bridge)", "Seeded fill", (0.95, 0.76, 0.31), seeded_fill)]
