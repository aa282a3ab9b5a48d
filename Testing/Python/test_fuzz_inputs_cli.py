"""Fuzz suite, command line: every bad argument of `mva` ends in a one-line message and exit status 2, never in
a traceback, and leaves the files it was pointed at as they were. Each case runs `mva` in a process of its own
(forked from one driver that imported `mva` once, see fuzz_support.run_mva_cases)."""
import shutil

import numpy as np
import pytest
import SimpleITK as sitk
from fuzz_support import run_mva_cases

from MVABridgeLib.volume_io import write_volume
from MVAEvaluationLib.phantom import make_ct_phantom

EVAL = ("eval", "growcut", "--volume", "ct.nii.gz", "--truth", "labels.nii.gz", "--label", "4")
INTERPOLATE = ("eval", "interpolate", "--volume", "ct.nii.gz", "--truth", "labels.nii.gz", "--label", "4")
SAM = ("eval", "sam", "--model", "vit_b", "--volume", "ct.nii.gz", "--truth", "labels.nii.gz", "--label", "4")


ANNOTATE3D = ("eval", "annotate3d", "--volume", "ct.nii.gz", "--truth", "labels.nii.gz", "--label", "4", "--budget", "3")


def on_volume(name):
    return ("eval", "growcut", "--volume", name, "--truth", "labels.nii.gz", "--label", "4")


# name -> (arguments, what the message says, files that must stay as they are or stay absent)
CASES = {
    "eval_gap_zero": (INTERPOLATE + ("--gap", "0"), "--gap: expected a number from 2", ()),
    "eval_gap_negative": (INTERPOLATE + ("--gap", "-3"), "--gap: expected a number from 2", ()),
    "eval_gap_beyond_the_structure": (INTERPOLATE + ("--gap", "1000"), "keeps one slice of the structure", ()),
    "eval_interactions_negative": (EVAL + ("--interactions", "-5"), "--interactions: expected a number from 1", ()),
    "eval_interactions_zero": (EVAL + ("--interactions", "0"), "--interactions: expected a number from 1", ()),
    "eval_label_zero": (EVAL + ("--label", "0"), "--label: expected a number from 1", ()),
    "eval_label_not_a_number": (EVAL + ("--label", "liver"), "expected a whole number", ()),
    "eval_slice_negative": (EVAL + ("--slice", "-1"), "--slice: expected a number at least 0", ()),
    "eval_seed_negative": (EVAL + ("--seed", "-1"), "--seed: expected a number from 0", ()),
    "eval_input_size_negative": (SAM + ("--input-size", "-4"), "--input-size", ()),
    "eval_nanometre_spacing_volume": (on_volume("tiny_spacing.nii.gz"), "millimetres", ()),
    "eval_truncated_volume": (on_volume("truncated.nii.gz"), "is truncated", ()),
    "eval_empty_volume_file": (on_volume("empty.nii.gz"), "empty file", ()),
    "eval_2d_volume": (on_volume("flat.nrrd"), "2D image", ()),
    "eval_4d_volume": (on_volume("four_d.nii.gz"), "4D", ()),
    "eval_rgb_volume": (on_volume("rgb.nrrd"), "3 components", ()),
    "eval_volume_is_an_empty_folder": (on_volume("empty_folder"), "No DICOM series", ()),
    "eval_missing_truth": (("eval", "growcut", "--volume", "ct.nii.gz", "--truth", "nowhere.nii.gz"),
                           "No such file", ()),
    "eval_text_file_as_checkpoint": (SAM + ("--checkpoint", "notes.pth"), "not a PyTorch checkpoint", ()),
    "eval_folder_as_checkpoint": (SAM + ("--checkpoint", "empty_folder"), "is a folder", ()),
    "eval_json_into_a_missing_folder": (EVAL + ("--json", "no_such_folder/result.json"), "does not exist",
                                        ("no_such_folder",)),
    "eval_json_is_the_truth_file": (EVAL + ("--json", "labels.nii.gz"), "is the --truth file", ("labels.nii.gz",)),
    "annotate3d_json_is_the_volume_file": (ANNOTATE3D + ("--json", "./ct.nii.gz"), "is the --volume file",
                                           ("ct.nii.gz",)),
    "eval_json_is_a_folder": (EVAL + ("--json", "empty_folder"), "is a folder", ()),
    "data_output_is_an_existing_file": (("data", "--output", "existing.txt"), "existing file", ("existing.txt",)),
    "report_output_is_an_existing_file": (("report", "--output", "existing.txt"), "existing file",
                                          ("existing.txt",)),
    "demo_output_is_an_existing_file": (("demo", "--output", "existing.txt"), "existing file", ("existing.txt",)),
    "bench_only_an_unknown_entry": (("bench", "--only", "warp-drive"), "unknown 'warp-drive'", ()),
    "bench_json_into_a_missing_folder": (("bench", "--only", "bridge", "--json", "no_such_folder/bench.json"),
                                         "does not exist", ("no_such_folder",)),
    "serve_port_out_of_range": (("serve", "--port", "70000"), "--port: expected a number from 0 to 65535", ()),
    "eval_budget_zero": (("eval", "annotate3d", "--volume", "ct.nii.gz", "--truth", "labels.nii.gz", "--budget", "0"),
                         "--budget: expected a number from 1", ()),
    "annotate3d_no_tool_combination": (ANNOTATE3D + ("--tools", ",,"), "names no tool combination", ()),
    "annotate3d_unknown_tool_combination": (ANNOTATE3D + ("--tools", "brush3d,warp"), "Unknown tool combination 'warp'",
                                            ()),
    "annotate3d_budget_one": (ANNOTATE3D + ("--budget", "1"), "at least 2 interactions", ()),
    "annotate3d_unknown_model": (ANNOTATE3D + ("--tools", "sam+propagate", "--model", "nope"), "Unknown model 'nope'",
                                 ()),
    "annotate3d_text_file_as_checkpoint": (ANNOTATE3D + ("--tools", "sam+propagate", "--model", "vit_b",
                                                         "--checkpoint", "notes.pth"), "not a PyTorch checkpoint", ()),
    "annotate3d_nan_voxels": (("eval", "annotate3d", "--volume", "nan.nrrd", "--truth", "labels.nii.gz", "--label", "4",
                               "--tools", "paint+fillbetween", "--budget", "3"), "NaN or infinite voxels", ()),
    "annotate3d_volume_smaller_than_a_region": (("eval", "annotate3d", "--volume", "tiny.nrrd", "--truth",
                                                 "tiny_labels.nrrd", "--label", "4", "--tools",
                                                 "paint+fillbetween,regions", "--budget", "3"),
                                                "fewer voxels than one region", ()),
    "embed_workers_negative": (("embed", "--volume", "ct.nii.gz", "--workers", "-1"),
                               "--workers: expected a number from 0", ()),
    "inference_service_port_out_of_range": (("inference-service", "--port", "99999"),
                                            "--port: expected a number from 0 to 65535", ()),
    "project_audit_limit_zero": (("project", "--db", "workflow.db", "audit", "--limit", "0"),
                                 "--limit: expected a number from 1", ("workflow.db",)),
    "project_init_zero_annotations_per_case": (("project", "--db", "workflow.db", "init", "Study",
                                                "--annotations-per-case", "0"),
                                               "--annotations-per-case: expected a number from 1", ("workflow.db",)),
}


def write_inputs(folder):
    phantom = make_ct_phantom(shape_kji=(16, 32, 32), seed=1)
    write_volume(folder / "ct.nii.gz", phantom.image, phantom.ijk_to_ras)
    write_volume(folder / "labels.nii.gz", phantom.labelmap, phantom.ijk_to_ras)
    tiny = phantom.ijk_to_ras.copy()
    tiny[:3, :3] *= 1e-9
    write_volume(folder / "tiny_spacing.nii.gz", phantom.image, tiny)
    data = (folder / "ct.nii.gz").read_bytes()
    (folder / "truncated.nii.gz").write_bytes(data[:len(data) // 2])
    (folder / "empty.nii.gz").write_bytes(b"")
    sitk.WriteImage(sitk.Image([6, 5], sitk.sitkUInt8), str(folder / "flat.nrrd"))
    sitk.WriteImage(sitk.Image([6, 5, 4, 3], sitk.sitkUInt8), str(folder / "four_d.nii.gz"))
    sitk.WriteImage(sitk.Image([6, 5, 4], sitk.sitkVectorUInt8, 3), str(folder / "rgb.nrrd"))
    nan = phantom.image.astype(np.float32)
    nan[3, 5, 5] = np.nan  # NIfTI readers turn NaN into 0; NRRD keeps it
    write_volume(folder / "nan.nrrd", nan, phantom.ijk_to_ras)
    write_volume(folder / "tiny.nrrd", phantom.image[7:9, 15:17, 15:17], phantom.ijk_to_ras)
    write_volume(folder / "tiny_labels.nrrd", phantom.labelmap[7:9, 15:17, 15:17], phantom.ijk_to_ras)
    (folder / "empty_folder").mkdir()
    (folder / "notes.pth").write_text("my notes, not weights\n")
    (folder / "existing.txt").write_text("keep me\n")


def listing(folder):
    return {p.relative_to(folder).as_posix(): (p.read_bytes() if p.is_file() else None) for p in folder.rglob("*")}


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory):
    """name -> (exit code, output, files before, files after); each case in a folder of its own."""
    base = tmp_path_factory.mktemp("fuzz_cli")
    inputs = base / "inputs"
    inputs.mkdir()
    write_inputs(inputs)
    folders = {name: base / name for name in CASES}
    for folder in folders.values():
        shutil.copytree(inputs, folder)
    before = {name: listing(folder) for name, folder in folders.items()}

    outputs = base / "outputs"
    outputs.mkdir()
    done = run_mva_cases({name: (CASES[name][0], folders[name]) for name in CASES}, outputs)
    return {name: (*done[name][:2], before[name], listing(folders[name])) for name in CASES}


def test_the_suite_has_a_case_per_argument_checked():
    assert len(CASES) >= 25


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_command_line_exits_2_with_a_message_and_no_traceback(cli_runs, name):
    code, output, before, after = cli_runs[name]
    _, message, kept = CASES[name]
    assert code == 2, output
    assert "Traceback" not in output
    assert message in output, output
    for path in kept:
        assert before.get(path) == after.get(path), f"{path} changed"
    assert set(after) == set(before), "a file was created or removed"
