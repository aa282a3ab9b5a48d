"""The steps `mva demo` runs: each smart tool, driven by the simulated user, writing one segment through
the same bridge and logic the Segment Editor effects use."""
from dataclasses import dataclass
from typing import Callable

import numpy as np

from MVABridgeLib.slice_geometry import SlicePlane
from MVAEvaluationLib.metrics import dice
from MVAEvaluationLib.simulated_user import SimulatedUser, dab_mask

DEMO_SLICE = 97  # axial slice with the most white matter


@dataclass
class DemoStep:
    title: str
    segment_name: str
    colour: tuple
    run: Callable


def _plane(session):
    volume = session.bridge.work_volume()
    return SlicePlane.for_anatomical_axis("axial", DEMO_SLICE, volume.index_to_ras, volume.shape)


def _clicks(session, plane, truth_kji, interactions, act):
    """Let the simulated user click `interactions` times; `act(click)` edits; returns the slice Dice."""
    volume = session.bridge.work_volume()
    truth = plane.sample(truth_kji, volume.index_to_ras, order=0) > 0
    user = SimulatedUser(truth)
    click = user.first_click()
    for _ in range(interactions):
        act(click)
        predicted = plane.sample(session.bridge.selected_mask(), volume.index_to_ras, order=0) > 0
        click = user.next_click(predicted)
        if click is None:
            break
    return dice(plane.sample(session.bridge.selected_mask(), volume.index_to_ras, order=0) > 0, truth)


def smart_brush(session, data):
    from SmartBrushLib.smart_brush_logic import SmartBrushLogic
    logic, plane = SmartBrushLogic(session.bridge), _plane(session)

    def dab(click):
        logic.add_stroke(plane, dab_mask(plane.shape, click.index), erase=not click.positive)
        logic.apply()
    return f"10 dabs on axial slice {DEMO_SLICE}: Dice {_clicks(session, plane, data['wm'], 10, dab):.3f}"


def smart_propagation(session, data):
    from MVABridgeLib.segments import replace_segment_from_mask
    from SmartPropagationLib.smart_propagation_logic import PropagationOptions, SmartPropagationLogic
    volume = session.bridge.work_volume()
    seed = np.zeros(volume.shape, bool)
    seed[DEMO_SLICE] = data["wm"][DEMO_SLICE]
    replace_segment_from_mask(session.editor_node.GetSegmentationNode(), session.segment_id, seed, volume.index_to_ras)
    logic = SmartPropagationLogic(session.bridge, PropagationOptions(max_slices=volume.shape[0]))
    preview = logic.compute_preview(_plane(session))
    logic.apply()
    result = session.bridge.selected_mask().astype(bool)
    return (f"slices {min(preview.masks)}-{max(preview.masks)} from slice {DEMO_SLICE}, 3D Dice "
            f"{dice(result, data['wm']):.3f}; " + "; ".join(preview.stop_messages()))


def smart_regions(session, data):
    from SmartRegionsLib.smart_regions_logic import SmartRegionsLogic
    logic, plane = SmartRegionsLogic(session.bridge), _plane(session)
    labels = logic.volume_labels()
    score = _clicks(session, plane, data["gm"], 10,
                    lambda click: logic.click(plane, click.index, add=click.positive))
    return f"{int(labels.max())} supervoxels; 10 clicks on grey matter, slice Dice {score:.3f}"


def segment_anything(session, data):
    from SegmentAnythingLib.algorithms.sam_checkpoints import ensure_checkpoint
    from SegmentAnythingLib.algorithms.sam_errors import CheckpointError
    try:
        ensure_checkpoint("vit_b", allow_download=False)
    except CheckpointError as error:
        return f"skipped: {error}"
    from SegmentAnythingLib.engine_factory import create_engine
    from SegmentAnythingLib.segment_anything_logic import SegmentAnythingLogic
    logic, plane = SegmentAnythingLogic(session.bridge, create_engine("vit_b", allow_download=False)), _plane(session)
    score = _clicks(session, plane, data["wm"], 5,
                    lambda click: logic.add_point(plane, click.index, positive=click.positive))
    return f"5 points on axial slice {DEMO_SLICE} (ViT-B): Dice {score:.3f}"


DEMO_STEPS = [
    DemoStep("Smart Brush", "White matter (Smart Brush)", (0.95, 0.76, 0.31), smart_brush),
    DemoStep("Smart Propagation", "White matter 3D (Smart Propagation)", (0.31, 0.65, 0.95), smart_propagation),
    DemoStep("Smart Regions", "Grey matter (Smart Regions)", (0.89, 0.33, 0.48), smart_regions),
    DemoStep("Segment Anything", "White matter (Segment Anything)", (0.42, 0.84, 0.54), segment_anything),
]
