"""`mva report --quick`, the CI smoke test of the full report: every part writes its rows, the worst_drop column and
its plots, and report.md gathers them with what each part cost; the helpers that decide what the tables say."""
import json
import os

import numpy as np
import pytest

from MVACommandLineLib.cli import main
from MVAEvaluationLib.report import PARTS, ReportError, run_report
from MVAEvaluationLib.report_cases import axial_slab, crop
from MVAEvaluationLib.report_variants import QUICK_TOOLS, brush_above_growcut, variants_table
from MVAEvaluationLib.tool_runners import TOOLS
from MVAEvaluationLib.variants import Labelled


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    lines = []
    results = run_report(str(folder), TOOLS, quick=True, budget=4, log=lines.append)
    return folder, results, lines


def test_the_quick_report_runs_every_part_and_report_md_gathers_their_tables_and_costs(quick_report):
    folder, results, lines = quick_report
    assert list(results) == list(PARTS)
    report = (folder / "report.md").read_text()
    for heading in ("## 3D annotation sessions on the standard cases", "## 2D tools on the robustness variants",
                    "## Supervoxels vs SimpleITK SLIC", "## 3D annotation sessions on the robustness variants",
                    "## Each tool on one slice"):
        assert report.count(heading) == 1, heading
    costs = [line for line in report.splitlines() if line.split("|")[1:2] and line.split("|")[1].strip() in PARTS]
    assert [line.split("|")[1].strip() for line in costs] == list(PARTS)
    assert all(int(line.split("|")[2]) == len(results[part]) for line, part in zip(costs, PARTS))
    assert "on commit " in report and sum("report part" in line for line in lines) == len(PARTS)
    for image in (line[line.index("](") + 2:-1] for line in report.splitlines() if line.startswith("![")):
        assert os.path.getsize(folder / image) > 1000, image


@pytest.mark.parametrize("part, family, name", [("sessions", "standard", "annotate3d"),
                                                ("session-variants", "oblique", "annotate3d_variants")])
def test_the_3d_sessions_have_a_row_per_case_and_combination_with_worst_drop(quick_report, part, family, name):
    folder, results, _ = quick_report
    rows = results[part]
    cases = {(r["family"], r["volume"]) for r in rows}
    tools = {r["tool"] for r in rows}
    assert {f for f, _ in cases} == {family} and len(rows) == len(cases) * len(tools) and len(tools) >= 3
    assert all(len(r["dice"]) <= 4 and isinstance(r["worst_drop"], float) for r in rows)
    table = (folder / f"{name}.md").read_text()
    assert "worst_drop" in table and table.count("| brush3d |") == len(cases)
    assert "Interactions to 3D Dice 0.90" in table and table.count(f"| {family} |") == len(cases) + len(rows)
    assert json.loads((folder / f"{name}.json").read_text()) == rows
    assert all(os.path.getsize(folder / f"annotate3d_{r['volume']}_{r['structure']}.png") > 1000 for r in rows)


def test_the_2d_variants_run_each_tool_on_the_standard_crop_and_its_variant(quick_report):
    folder, results, _ = quick_report
    rows = results["variants"]
    assert sorted((r["family"], r["tool"]) for r in rows) == sorted(
        (family, tool) for family in ("standard", "oblique") for tool in QUICK_TOOLS)
    by_tool = {(r["family"], r["tool"]): r for r in rows}
    assert "5" in by_tool["oblique", "propagate"]["dice_by_distance"]
    assert 0 < by_tool["standard", "brush"]["final_dice"] <= 1 and "worst_drop" in by_tool["standard", "brush"]
    table = (folder / "variants2d.md").read_text()
    assert table.count("| oblique |") == 1 and "brush above growcut from 5" in table
    assert (folder / "variants2d_wm_brush.png").exists() and (folder / "variants2d_wm_propagation.png").exists()


def test_the_supervoxel_part_puts_ours_next_to_slic_on_every_case_and_measures_the_grid(quick_report):
    folder, results, _ = quick_report
    rows = results["supervoxels"]
    measured = [r for r in rows if "boundary_recall" in r]
    assert {r["method"] for r in measured} == {"ours", "SimpleITK SLIC"}
    assert len(measured) == 2 * len({r["case"] for r in measured}) >= 4
    assert all(0 <= r["boundary_recall"] <= 1 and r["regions"] > 1 for r in measured)
    grid = {r["method"]: r["boundary_fraction"] for r in rows if "boundary_fraction" in r}
    assert set(grid) == {"ours", "SimpleITK SLIC"}
    assert "time ours / SLIC" in (folder / "supervoxels.md").read_text()


def test_the_slice_part_scores_each_tool_and_its_baseline_with_worst_drop_for_interactive_tools(quick_report):
    _, results, _ = quick_report
    rows = results["slices"]
    assert {(r["structure"], r["tool"]) for r in rows} == {
        (s, t) for s in ("effusion", "liver") for t in ("brush", "growcut", "regions", "propagate", "copy",
                                                        "interpolate", "fillbetween")}
    assert all("worst_drop" in r for r in rows if r["tool"] in ("brush", "growcut", "regions"))


def test_an_unknown_part_is_refused_before_anything_runs(tmp_path, capsys):
    with pytest.raises(ReportError, match="choose from sessions"):
        run_report(str(tmp_path / "out"), TOOLS, parts=("sessions", "everything"))
    assert not (tmp_path / "out").exists()
    with pytest.raises(SystemExit) as exit_info:
        main(["report", "--output", str(tmp_path / "cli"), "--parts", "everything"])
    assert exit_info.value.code == 2 and "invalid choice" in capsys.readouterr().err


def test_the_brush_is_above_growcut_only_when_it_is_above_at_every_count_from_five():
    above = {"dice": [0.5, 0.6, 0.7, 0.8, 0.9, 0.95]}
    below_once = {"dice": [0.5, 0.6, 0.7, 0.8, 0.9, 0.7, 0.95]}
    growcut = {"dice": [0.9, 0.9, 0.9, 0.85, 0.85, 0.88, 0.9]}
    assert brush_above_growcut(above, growcut)  # a run that ended early keeps its last Dice
    assert not brush_above_growcut(below_once, growcut)
    assert brush_above_growcut(above, None) is None
    row = dict(family="oblique", structure="wm", case="c", tool="brush", worst_drop=0.2, **below_once)
    assert "| oblique | c | 0.900 / 0.950 | - / - | - |" in variants_table([row])


def test_an_axial_slab_keeps_every_voxel_at_its_ras_position_and_holds_the_largest_slice():
    labelmap = np.zeros((30, 8, 9), np.uint8)
    labelmap[4:20, 2:6, 2:7] = 1
    labelmap[11, 1:8, 1:9] = 1  # the largest axial slice
    matrix = np.array([[0.8, 0, 0, -5], [0, 0.9, 0, 3], [0, 0, 2.5, 7], [0, 0, 0, 1.0]])
    image = np.arange(labelmap.size, dtype=np.int16).reshape(labelmap.shape)
    slab, largest = axial_slab(Labelled("v", image, labelmap, matrix, {"x": 1}), 1, 4)
    assert slab.image.shape == (9, 8, 9) and largest == 4 and slab.labelmap[largest].sum() == 7 * 8
    assert np.array_equal(slab.image, image[7:16])
    ras = lambda m, kji: (m @ np.array([kji[2], kji[1], kji[0], 1.0]))[:3]  # noqa: E731
    assert np.allclose(ras(slab.ijk_to_ras, (0, 3, 4)), ras(matrix, (7, 3, 4)))
    edge, at = axial_slab(Labelled("v", image, labelmap, matrix, {}), 1, 20)
    assert edge.image.shape[0] == 30 and at == 11  # clipped to the volume
    assert crop(Labelled("v", image, labelmap, matrix, {}), (slice(None), slice(2, None), slice(-3, None))
                ).image.shape == (30, 6, 3)


def test_the_3d_summary_puts_interactions_to_90_or_the_final_dice_under_each_combination():
    from MVAEvaluationLib.report_3d import summary_table
    rows = [dict(family="standard", volume="v", structure="wm", tool="brush3d", interactions_to_90=None,
                 final_dice=0.8876, worst_drop=0.0),
            dict(family="standard", volume="v", structure="wm", tool="regions", interactions_to_90=2, final_dice=0.91,
                 worst_drop=0.012),
            dict(family="oblique", volume="w", structure="wm", tool="regions", interactions_to_90=7, final_dice=0.9,
                 worst_drop=0.0)]
    lines = summary_table(rows).splitlines()
    assert lines[0] == "| family | case | structure | brush3d: to 0.90 | regions: to 0.90 |"
    assert lines[2:] == ["| standard | v | wm | - 0.888 (0.0) | 2 (0.012) |", "| oblique | w | wm |  | 7 (0.0) |"]
