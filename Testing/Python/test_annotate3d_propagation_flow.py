"""annotate3d slice tool + propagation: which button the simulated person presses after a correction."""
from types import SimpleNamespace

import numpy as np

from MVAEvaluationLib.annotate3d import Session
from MVAEvaluationLib.annotate3d_tools import _propagate


class RecordingPropagation:
    """Stands in for SmartPropagationLogic: remembers which button was pressed."""

    def __init__(self):
        self.pressed = []

    def compute_preview(self, plane):
        self.pressed.append("propagate")
        return SimpleNamespace(masks={}, drawn=set())

    def repropagate_from(self, plane):
        self.pressed.append("re-propagate from here")
        return SimpleNamespace(masks={}, drawn=set())

    def apply(self):
        self.pressed.append("apply")


def press(annotated, slice_index):
    truth = np.zeros((8, 4, 4), bool)
    truth[2:6, 1:3, 1:3] = True
    case = SimpleNamespace(segment=lambda: np.zeros_like(truth))
    session = Session(SimpleNamespace(truth=truth), budget=10)
    logic = RecordingPropagation()
    _propagate(case, session, logic, SimpleNamespace(aligned_axis=0, slice_index=slice_index), annotated)
    return logic.pressed, session.actions


def test_the_first_propagation_is_a_plain_propagate_and_apply():
    pressed, actions = press({3}, 3)
    assert pressed == ["propagate", "apply"] and actions == ["propagate", "apply"]


def test_a_correction_between_two_drawn_slices_re_propagates_from_it_instead_of_interpolating_far_slices():
    # With two drawn slices a plain Propagate would interpolate between them, however far apart they are.
    pressed, _ = press({1, 3, 7}, 3)
    assert pressed == ["re-propagate from here", "apply"]


def test_a_slice_given_up_on_is_not_chosen_again_the_worst_other_slice_is():
    from MVAEvaluationLib.annotate3d import Annotator
    truth = np.zeros((8, 10, 10), bool)
    truth[1:7, 2:8, 2:8] = True
    shown = truth.copy()
    shown[2, 2:8, 2:6] = False  # the largest error, on slice 2
    shown[5, 2:8, 2:5] = False  # a smaller one, on slice 5
    annotator = Annotator(SimpleNamespace(truth=truth))
    assert annotator.slice_to_fix(shown) == (0, 2)
    assert annotator.slice_to_fix(shown, skip={(0, 2)}) == (0, 5)
    assert annotator.slice_to_fix(shown, skip={(0, 2), (0, 5)}) is None
