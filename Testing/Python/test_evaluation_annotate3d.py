"""`mva eval annotate3d`: whole simulated 3D sessions on a small CT phantom, the annotator's rules, the report."""
import json
import os

import numpy as np
import pytest

from MVABridgeLib.volume_io import write_volume
from MVACommandLineLib.cli import main
from MVAEvaluationLib.annotate3d import Annotator
from MVAEvaluationLib.metrics import worst_drop
from MVAEvaluationLib.phantom import make_ct_phantom

KEYS = {"tool", "dice", "actions", "interactions_to_90", "worst_drop", "seconds_total", "latency_ms_p50",
        "latency_ms_p95", "final_dice", "budget"}


@pytest.fixture(scope="module")
def phantom_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("phantom3d")
    phantom = make_ct_phantom(shape_kji=(24, 48, 48), seed=2, oblique_degrees=10.0)
    image, labels = folder / "ct.nii.gz", folder / "labels.nii.gz"
    write_volume(image, phantom.image, phantom.ijk_to_ras)
    write_volume(labels, phantom.labelmap, phantom.ijk_to_ras)
    return phantom, str(image), str(labels)


def test_a_session_of_each_kind_reports_dice_after_every_interaction_within_the_budget(phantom_files, capsys, tmp_path):
    phantom, image, labels = phantom_files
    out_json = tmp_path / "sessions.json"
    code = main(["eval", "annotate3d", "--volume", image, "--truth", labels, "--label", str(phantom.labels["liver"]),
                 "--tools", "brush3d,paint+fillbetween,growcut3d", "--budget", "6", "--json", str(out_json)])
    results = json.loads(capsys.readouterr().out)
    assert code == 0 and results == json.loads(out_json.read_text())
    assert [r["tool"] for r in results] == ["brush3d", "paint+fillbetween", "growcut3d"]
    for result in results:
        assert KEYS <= set(result)
        assert 1 <= len(result["dice"]) <= 6 and len(result["actions"]) == len(result["dice"])
        assert result["worst_drop"] == worst_drop(result["dice"])
        reached = [n for n, (d, action) in enumerate(zip(result["dice"], result["actions"]), 1)
                   if d >= 0.9 and action not in ("dab", "erase dab", "stroke", "fill between", "roi", "propagate")]
        assert result["interactions_to_90"] == (reached[0] if reached else None)
        assert result["actions"][-1] == "apply", "a pending preview must be applied to count"
    assert results[1]["actions"][0] == "stroke" and results[2]["actions"][:2] == ["roi", "dab"]


def test_an_unknown_combination_exits_with_code_2_and_names_the_choices(phantom_files, capsys):
    _, image, labels = phantom_files
    code = main(["eval", "annotate3d", "--volume", image, "--truth", labels, "--label", "4", "--tools", "magic"])
    assert code == 2 and "brush3d" in capsys.readouterr().err


class _FakeCase:
    def __init__(self, truth):
        self.truth = truth
        self.ijk_to_ras = np.eye(4)


def test_the_annotator_fixes_the_largest_error_component_on_its_slice_with_most_error():
    truth = np.zeros((10, 20, 20), bool)
    truth[2:8, 5:15, 5:15] = True
    visible = truth.copy()
    visible[6, 5:15, 5:15] = False  # the larger miss: one whole slice
    visible[3, 5:7, 5:7] = False
    annotator = Annotator(_FakeCase(truth))
    assert annotator.slice_to_fix(visible, axes=(0,)) == (0, 6)
    assert annotator.slice_to_fix(truth) is None
    assert annotator.first_slice(0) in range(2, 8)


def test_the_first_slice_is_the_same_whichever_way_the_slices_are_stored():
    truth = np.zeros((12, 20, 20), bool)
    truth[2:10, 5:15, 5:15] = True
    truth[2:5, 2:5, 2:5] = True  # slices 2-4 the largest, and the structure's centre below the stack's middle
    first = Annotator(_FakeCase(truth)).first_slice(0)
    reversed_first = Annotator(_FakeCase(truth[::-1])).first_slice(0)
    assert first in (2, 3, 4) and reversed_first == truth.shape[0] - 1 - first


def test_paint_strokes_land_on_the_structure_in_a_volume_stored_ras(tmp_path):
    from MVAEvaluationLib.annotate3d import evaluate_annotate3d
    phantom = make_ct_phantom(shape_kji=(16, 40, 40), seed=3)
    rows, cols = phantom.image.shape[1:]
    flip = np.array([[-1.0, 0, 0, cols - 1], [0, -1.0, 0, rows - 1], [0, 0, 1.0, 0], [0, 0, 0, 1.0]])
    label = phantom.labels["liver"]
    curves = {}
    for name, index, matrix in (("lps", np.s_[:, :, :], phantom.ijk_to_ras),
                                ("ras", np.s_[:, ::-1, ::-1], phantom.ijk_to_ras @ flip)):  # same voxels, i/j reversed
        image, labels = tmp_path / f"{name}.nii.gz", tmp_path / f"{name}_labels.nii.gz"
        write_volume(image, np.ascontiguousarray(phantom.image[index]), matrix)
        write_volume(labels, np.ascontiguousarray(phantom.labelmap[index]), matrix)
        curves[name] = evaluate_annotate3d(str(image), str(labels), label, ("paint+fillbetween",), 6)[0]["dice"]
    assert curves["ras"] == curves["lps"] and max(curves["ras"]) > 0.5


def test_the_paint_stroke_fills_the_largest_error_component_and_the_roi_holds_the_structure():
    truth = np.zeros((6, 30, 30), bool)
    truth[1:5, 2:10, 2:10] = True
    truth[1:5, 20:24, 20:24] = True
    annotator = Annotator(_FakeCase(truth))

    class Plane:
        def sample(self, volume, matrix, order=0):
            return volume[3].astype(float)
    mask, positive = annotator.stroke(Plane(), np.zeros((30, 30), bool))
    assert positive and mask.sum() == 64
    roi = annotator.roi()
    assert all(a <= lo and b >= hi for (a, b), lo, hi in zip(roi, (1, 2, 2), (5, 24, 24)))


def test_the_quick_3d_report_has_a_row_per_case_and_tool_the_worst_drop_column_and_plots(tmp_path):
    from MVAEvaluationLib.report_3d import run_annotate3d_report
    rows, plots = run_annotate3d_report(str(tmp_path), quick=True, budget=4,
                                        combinations=("brush3d", "paint+fillbetween"), log=lambda text: None)
    cases = {(r["family"], r["structure"]) for r in rows}
    assert cases == {("standard", "liver"), ("oblique", "liver")}
    assert len(rows) == 2 * len(cases) and all("worst_drop" in r for r in rows)
    table = (tmp_path / "annotate3d.md").read_text()
    assert "worst_drop" in table and table.count("| brush3d |") == len(cases)
    assert len(plots) == len(cases) and all(os.path.getsize(p) > 1000 for p in plots)
