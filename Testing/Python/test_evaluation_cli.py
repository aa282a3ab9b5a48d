"""`mva eval` smoke tests on a small CT phantom written to files (the CI subset of the evaluation suite)."""
import json

import numpy as np
import pytest

from MVABridgeLib.volume_io import write_volume
from MVACommandLineLib.cli import main
from MVAEvaluationLib.phantom import make_ct_phantom

REQUIRED_KEYS = {"tool", "volume", "label", "dice", "final_dice", "noc85", "noc90", "latency_ms_p50",
                 "latency_ms_p95", "seconds_total", "peak_rss_mb"}


@pytest.fixture(scope="module")
def phantom_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("phantom")
    phantom = make_ct_phantom(shape_kji=(32, 64, 64), seed=1, oblique_degrees=15.0)
    image, labels = folder / "ct.nii.gz", folder / "labels.nrrd"
    write_volume(image, phantom.image, phantom.ijk_to_ras)
    write_volume(labels, phantom.labelmap, phantom.ijk_to_ras)
    return phantom, str(image), str(labels), folder


def run_cli(capsys, *args):
    code = main(["eval", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_growcut_on_one_slice_improves_with_clicks(phantom_files, capsys, tmp_path):
    phantom, image, labels, _ = phantom_files
    liver = phantom.labels["liver"]
    k = int(np.argmax((phantom.labelmap == liver).sum(axis=(1, 2))))
    out_json = tmp_path / "growcut.json"
    code, out, _ = run_cli(capsys, "growcut", "--volume", image, "--truth", labels, "--label", str(liver),
                           "--slice", str(k), "--interactions", "6", "--json", str(out_json))
    assert code == 0
    result = json.loads(out)
    assert REQUIRED_KEYS <= set(result) and result == json.loads(out_json.read_text())
    assert len(result["dice"]) >= 3 and result["final_dice"] > 0.8
    assert result["dice"][-1] >= result["dice"][0]


def test_propagation_reports_dice_by_distance_and_extent(phantom_files, capsys):
    phantom, image, labels, _ = phantom_files
    code, out, _ = run_cli(capsys, "propagate", "--volume", image, "--truth", labels,
                           "--label", str(phantom.labels["nodule"]))
    assert code == 0
    result = json.loads(out)
    assert set(result["dice_by_distance"]) >= {"1", "5"}
    assert result["dice_by_distance"]["1"] > 0.7
    assert result["extent_error_slices"] <= 4


@pytest.mark.parametrize("tool", ["copy", "interpolate", "fillbetween"])
def test_propagation_and_interpolation_baselines_run_through_the_bridge(phantom_files, capsys, tool):
    phantom, image, labels, _ = phantom_files
    code, out, _ = run_cli(capsys, tool, "--volume", image, "--truth", labels,
                           "--label", str(phantom.labels["liver"]), "--gap", "3")
    assert code == 0
    result = json.loads(out)
    assert 0.5 < result["final_dice"] <= 1.0


def test_bad_inputs_exit_with_code_2_and_a_message(phantom_files, capsys, tmp_path):
    phantom, image, labels, folder = phantom_files
    cases = [
        (["nosuchtool", "--volume", image, "--truth", labels], "Unknown tool"),
        (["growcut", "--volume", str(tmp_path / "missing.nii.gz"), "--truth", labels], "No such file"),
        (["growcut", "--volume", image, "--truth", labels, "--label", "9"], "Label 9 is absent"),
    ]
    other = tmp_path / "other.nii.gz"
    write_volume(other, np.zeros((5, 6, 7), np.uint8), np.eye(4))
    cases.append((["growcut", "--volume", image, "--truth", str(other)], "not on the volume's grid"))
    for args, message in cases:
        code, _, err = run_cli(capsys, *args)
        assert code == 2 and message in err, (args, err)


def test_sam_runs_at_a_smaller_encoder_input_and_refuses_an_impossible_one(phantom_files, capsys):
    phantom, image, labels, _ = phantom_files
    liver = phantom.labels["liver"]
    k = int(np.argmax((phantom.labelmap == liver).sum(axis=(1, 2))))
    common = ["sam", "--volume", image, "--truth", labels, "--label", str(liver), "--slice", str(k),
              "--interactions", "2"]
    code, out, _ = run_cli(capsys, *common, "--input-size", "128")
    assert code == 0
    result = json.loads(out)
    assert result["encoder_input_size"] == 128 and len(result["dice"]) == 2
    code, _, err = run_cli(capsys, *common, "--input-size", "100")
    assert code == 2 and "multiple of 16" in err


def test_bench_writes_json_and_the_readme_table(tmp_path, capsys):
    json_path, table_path = tmp_path / "bench.json", tmp_path / "bench.md"
    assert main(["bench", "--only", "bridge", "--quick", "--json", str(json_path), "--markdown", str(table_path)]) in (0, None)
    rows = json.loads(json_path.read_text())
    table = table_path.read_text().splitlines()
    assert len(table) == 2 + len(rows) >= 3
    for entry, line in zip(rows, table[2:]):
        assert entry["p50_ms"] > 0 and line.startswith(f"| {entry['name']} | {entry['p50_ms']} / ")
