"""`mva eval propagate --strategy sam2`: SAM 2 propagation scored through the CLI on a small CT phantom."""
import json

import pytest

from MVABridgeLib.volume_io import write_volume
from MVACommandLineLib.cli import main
from MVAEvaluationLib.phantom import make_ct_phantom
from SmartPropagationLib.algorithms import sam2_video


@pytest.fixture
def phantom_files(tmp_path, monkeypatch):
    monkeypatch.setattr(sam2_video, "_VIDEO_STRATEGIES", {})  # what the CLI registers stays in this test
    phantom = make_ct_phantom(shape_kji=(20, 48, 48), seed=2)
    image, labels = tmp_path / "ct.nii.gz", tmp_path / "labels.nii.gz"
    write_volume(image, phantom.image, phantom.ijk_to_ras)
    write_volume(labels, phantom.labelmap, phantom.ijk_to_ras)
    return phantom, str(image), str(labels)


def test_eval_propagate_with_strategy_sam2_runs_the_tiny_sam2_and_reports_where_it_stopped(phantom_files, capsys):
    phantom, image, labels = phantom_files
    code = main(["eval", "propagate", "--strategy", "sam2", "--model", "tiny", "--volume", image, "--truth", labels,
                 "--label", str(phantom.labels["liver"])])
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["tool"] == "propagate"
    assert "sam2" in sam2_video.video_strategies()
    assert len(result["stops"]) == 2 and all("stopped" in stop or "reached" in stop for stop in result["stops"])


def test_eval_strategy_sam2_with_a_sam1_model_is_a_clear_error(phantom_files, capsys):
    phantom, image, labels = phantom_files
    code = main(["eval", "propagate", "--strategy", "sam2", "--model", "vit_b", "--volume", image, "--truth", labels,
                 "--label", str(phantom.labels["liver"])])
    assert code == 2 and "needs a SAM 2 model" in capsys.readouterr().err


def test_eval_propagate_sam2_from_a_simulated_box_and_click_on_the_start_slice_only(phantom_files, capsys):
    phantom, image, labels = phantom_files
    code = main(["eval", "propagate", "--strategy", "sam2", "--model", "tiny", "--prompt", "box+click", "--volume",
                 image, "--truth", labels, "--label", str(phantom.labels["liver"])])
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["conditioning"] == "box+click" and len(result["stops"]) == 2
    assert 0.0 <= result["final_dice"] <= 1.0


def test_eval_prompts_without_strategy_sam2_are_a_clear_error(phantom_files, capsys):
    phantom, image, labels = phantom_files
    code = main(["eval", "propagate", "--prompt", "click", "--volume", image, "--truth", labels,
                 "--label", str(phantom.labels["liver"])])
    assert code == 2 and "conditions SAM 2 only" in capsys.readouterr().err
