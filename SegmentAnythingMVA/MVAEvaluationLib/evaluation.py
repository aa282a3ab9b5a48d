"""`mva eval`: score one tool on one labelled volume, through the bridge, in a real slicer-core scene."""
import os
import resource
import time
from dataclasses import dataclass, field

import numpy as np

from MVABridgeLib.editor_session import SegmentEditorSession
from MVABridgeLib.errors import BridgeError
from MVABridgeLib.headless_scene import create_headless_scene
from MVABridgeLib.segments import replace_segment_from_mask, segment_mask_in_volume
from MVABridgeLib.slice_geometry import ANATOMICAL_AXES, SlicePlane, nearest_volume_axis, slice_to_ras_for
from MVABridgeLib.volume_io import VolumeFileError, read_volume
from MVABridgeLib.volumes import add_volume_node
from MVAEvaluationLib.metrics import dice, number_of_clicks, worst_drop
from MVAEvaluationLib.simulated_user import Click, SimulatedUser, slice_to_correct


class EvaluationError(ValueError):
    """Bad evaluation input (unknown tool, missing file, absent label, grid mismatch): exit code 2."""


@dataclass
class EvalOptions:
    tool: str
    volume: str = None
    truth: str = None
    label: int = 1
    interactions: int = 20
    axis: str = "axial"
    slice: int = None
    gap: int = 5
    seed: int = None
    model: str = "tiny"
    checkpoint: str = None
    input_size: int = None
    extra: dict = field(default_factory=dict)


class Case:
    """A labelled volume loaded into a headless scene with one empty segment to edit."""

    def __init__(self, name, image, truth, ijk_to_ras):
        self.name = name
        self.image = image
        self.truth = truth.astype(bool)
        self.ijk_to_ras = np.asarray(ijk_to_ras, float)
        self.headless = create_headless_scene()
        scene = self.headless.scene
        self.volume_node = add_volume_node(scene, image, ijk_to_ras, name)
        self.segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Evaluation")
        self.segmentation.CreateDefaultDisplayNodes()
        self.segmentation.SetReferenceImageGeometryParameterFromVolumeNode(self.volume_node)
        self.segment_id = self.segmentation.GetSegmentation().AddEmptySegment("Structure", "Structure")
        self.session = SegmentEditorSession(self.volume_node, self.segmentation, self.segment_id, scene)

    @property
    def bridge(self):
        return self.session.bridge

    def segment(self):
        """The evaluated segment as a bool (k, j, i) mask in the volume grid."""
        return segment_mask_in_volume(self.segmentation, self.segment_id, self.volume_node).astype(bool)

    def set_segment(self, mask_kji):
        replace_segment_from_mask(self.segmentation, self.segment_id, mask_kji, self.ijk_to_ras)

    def axis_of(self, orientation):
        """Array axis (0=k, 1=j, 2=i) closest to an anatomical orientation's normal."""
        if orientation not in ANATOMICAL_AXES:
            raise EvaluationError(f"Unknown axis {orientation!r}; choose one of {', '.join(ANATOMICAL_AXES)}")
        axis_ijk, _, _ = nearest_volume_axis(slice_to_ras_for(orientation)[:3, 2], self.ijk_to_ras)
        return 2 - axis_ijk

    def largest_slice(self, orientation):
        axis = self.axis_of(orientation)
        areas = self.truth.sum(axis=tuple(a for a in range(3) if a != axis))
        return int(np.argmax(areas))

    def plane(self, orientation, index):
        return SlicePlane.for_anatomical_axis(orientation, index, self.ijk_to_ras, self.image.shape)

    def close(self):
        self.session.close()
        self.headless.clear()


def load_case(volume_path, truth_path, label=1):
    """Read a volume and its labelmap (same grid) into a Case whose truth is `labelmap == label`."""
    try:
        image, ijk_to_ras = read_volume(volume_path)
        labels, truth_matrix = read_volume(truth_path)
    except VolumeFileError as error:
        raise EvaluationError(str(error)) from None
    if labels.shape != image.shape or not np.allclose(truth_matrix, ijk_to_ras, atol=1e-4):
        raise EvaluationError(f"The truth {truth_path} is not on the volume's grid "
                              f"(shape {labels.shape} vs {image.shape}); resample it first")
    truth = labels == label
    if not truth.any():
        present = [int(v) for v in np.unique(labels) if v != 0][:10]
        raise EvaluationError(f"Label {label} is absent from {truth_path}; labels present: {present}")
    return Case(os.path.basename(volume_path).split(".")[0], image, truth, ijk_to_ras)


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def summarise(tool, case, label, dice_values, latencies_s, seconds_total, **extra):
    latencies_ms = np.asarray(latencies_s, float) * 1000.0
    result = {
        "tool": tool, "volume": case.name, "label": label,
        "dice": [round(float(d), 4) for d in dice_values],
        "final_dice": round(float(dice_values[-1]), 4) if len(dice_values) else None,
        "noc85": number_of_clicks(list(dice_values), 0.85), "noc90": number_of_clicks(list(dice_values), 0.90),
        "latency_ms_p50": round(float(np.percentile(latencies_ms, 50)), 1) if len(latencies_ms) else None,
        "latency_ms_p95": round(float(np.percentile(latencies_ms, 95)), 1) if len(latencies_ms) else None,
        "seconds_total": round(seconds_total, 2), "peak_rss_mb": round(peak_rss_mb(), 1),
    }
    if "dice_by_distance" not in extra and "gap" not in extra:  # interactive: Dice after each interaction
        result["worst_drop"] = worst_drop(dice_values)
    result.update(extra)
    return result


def run_interactive(case, tool, options):
    """Simulated clicks on one slice (`options.slice`) or in 3D (slice chosen per interaction, rule 6).

    `tool.interact(plane, click)` must write its result through `case.bridge`; latency is measured around it.
    """
    orientation = options.axis
    slice_index = options.slice
    if slice_index is None:
        slice_index = case.largest_slice(orientation)
    axis = case.axis_of(orientation)
    if not 0 <= slice_index < case.image.shape[axis]:
        raise EvaluationError(f"Slice {slice_index} is outside the volume ({case.image.shape[axis]} {orientation} slices)")
    plane = case.plane(orientation, slice_index)
    users = {}
    dice_values, latencies = [], []
    prediction = np.zeros(case.truth.shape, bool)
    for step in range(options.interactions):
        if options.slice is None and step > 0:
            k = slice_to_correct(np.moveaxis(case.truth, axis, 0), np.moveaxis(prediction, axis, 0))
            if k is None:
                break
            plane = case.plane(orientation, k)
        truth_2d = plane.sample(case.truth, case.ijk_to_ras, order=0) > 0
        key = plane.slice_index
        if key not in users:
            if not truth_2d.any() and step == 0:
                raise EvaluationError(f"The structure is absent from {orientation} slice {key}")
            users[key] = SimulatedUser(truth_2d, options.seed) if truth_2d.any() else None
        user = users[key]
        predicted_2d = plane.sample(prediction, case.ijk_to_ras, order=0) > 0
        if user is None:  # leakage onto a slice without the structure: a negative click where it leaked
            click = Click(tuple(int(v) for v in np.argwhere(predicted_2d)[0]), False)
        elif step == 0:
            click = user.first_click()
        else:
            click = user.next_click(predicted_2d)
        if click is None:
            if options.slice is not None:
                break
            continue
        tic = time.perf_counter()
        tool.interact(plane, click)
        latencies.append(time.perf_counter() - tic)
        prediction = case.segment()
        scored = prediction if options.slice is None else (plane.sample(prediction, case.ijk_to_ras, order=0) > 0)
        reference = case.truth if options.slice is None else truth_2d
        dice_values.append(dice(scored, reference))
    return dice_values, latencies


GAP_TOOLS = ("interpolate", "fillbetween")


def check_gap(case, options):
    """Raise EvaluationError unless `options.gap` keeps at least two slices of the structure to interpolate from."""
    if options.gap < 2:
        raise EvaluationError(f"--gap must be at least 2 slices, got {options.gap}")
    axis = case.axis_of(options.axis)
    occupied = np.flatnonzero(case.truth.any(axis=tuple(a for a in range(3) if a != axis)))
    span = int(occupied[-1] - occupied[0] + 1) if occupied.size else 0
    if span < 3:
        raise EvaluationError(f"The structure spans {span} {options.axis} slices: too few to interpolate between")
    if options.gap >= span:
        raise EvaluationError(f"--gap {options.gap} keeps one slice of the structure, which spans {span} "
                              f"{options.axis} slices; choose a gap from 2 to {span - 1}")


def evaluate(options, tools):
    """Run `tools[options.tool]` on the case; return the JSON-ready result dictionary."""
    if options.tool not in tools:
        raise EvaluationError(f"Unknown tool {options.tool!r}; choose one of {', '.join(sorted(tools))}")
    if not options.volume or not options.truth:
        raise EvaluationError("Both --volume and --truth are needed")
    from MVAEvaluationLib.baselines import BaselineInputError
    from SmartPropagationLib.algorithms.propagation_errors import PropagationInputError
    started = time.perf_counter()
    case = load_case(options.volume, options.truth, options.label)
    try:
        if options.tool in GAP_TOOLS:
            check_gap(case, options)
        runner = tools[options.tool]
        dice_values, latencies, extra = runner(case, options)
    except (BridgeError, BaselineInputError, PropagationInputError) as error:
        raise EvaluationError(str(error)) from None
    finally:
        case.close()
    return summarise(options.tool, case, options.label, dice_values, latencies,
                     time.perf_counter() - started, **extra)
