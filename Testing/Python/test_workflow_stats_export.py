"""Statistics (time, interactions, throughput, Dice agreement) and export (.seg.nrrd, NIfTI, DICOM SEG)."""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "SegmentAnythingMVA"))

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from MVAWorkflowLib.errors import PermissionDeniedError  # noqa: E402
from MVAWorkflowLib.statistics import dice, format_table, project_statistics, write_plots  # noqa: E402
from MVAWorkflowLib.storage import Labelmap  # noqa: E402
from MVAWorkflowLib.testing import (box_labelmap, cheap_password_hashing, database_url,  # noqa: E402,F401
                                    service, team)


def accepted_double_annotation(service, team):
    """Case 1 annotated by ann (box of 3x4x5 = 60 voxels) and bob (box shifted by one slice: 2x4x5 overlap)."""
    case = service.queue(team["ann"], team["project"].id).available[0]
    shifted = (slice(2, 5), slice(2, 6), slice(3, 8))
    for who, box in (("ann", (slice(1, 4), slice(2, 6), slice(3, 8))), ("bob", shifted)):
        service.claim(team[who], case.id)
        service.record_tool_usage(team[who], case.id, "smart_brush", 30.0, 4)
        service.record_tool_usage(team[who], case.id, "segment_anything", 10.0, 3)
        service.submit(team[who], case.id, box_labelmap(box=box), {"quality": "good", "lesions": 1})
    service.review(team["rita"], case.id, "accept")
    return case


def test_dice_of_known_masks():
    a = np.zeros((4, 4, 4), bool)
    b = np.zeros((4, 4, 4), bool)
    a[:2], b[1:3] = True, True
    assert dice(a, b) == pytest.approx(0.5)
    assert dice(np.zeros(3, bool), np.zeros(3, bool)) == 1.0


def test_statistics_count_time_interactions_throughput_and_agreement(service, team):
    accepted_double_annotation(service, team)
    with pytest.raises(PermissionDeniedError):
        project_statistics(service, team["ann"], team["project"].id)
    stats = project_statistics(service, team["rita"], team["project"].id)
    tools = {row["tool"]: row for row in stats["tools"]}
    assert tools["smart_brush"]["time_s"] == 60.0 and tools["smart_brush"]["interactions"] == 8
    assert tools["smart_brush"]["time_per_case_s"] == 60.0
    assert tools["segment_anything"]["events"] == 2
    annotators = {row["annotator"]: row for row in stats["annotators"]}
    assert annotators["ann"]["submitted"] == 1 and annotators["ann"]["accepted"] == 1
    assert annotators["bob"]["time_s"] == 40.0 and annotators["bob"]["supplier"] == "Acme"
    assert stats["suppliers"] == [{"supplier": "Acme", "annotators": 2, "submitted": 2, "accepted": 2,
                                   "time_s": 80.0}]
    liver = [row for row in stats["agreement"] if row["label"] == "Liver"]
    assert len(liver) == 1 and liver[0]["dice"] == pytest.approx(2 * 40 / 120, abs=1e-4)
    assert [row["case"] for row in stats["cases"] if row["status"] == "accepted"] == ["case_a"]
    assert "smart_brush" in format_table(stats["tools"])


def test_plots_are_written_as_png(service, team, tmp_path):
    accepted_double_annotation(service, team)
    paths = write_plots(project_statistics(service, team["admin"], team["project"].id), str(tmp_path / "plots"))
    assert {os.path.basename(p) for p in paths} == {"time_per_tool.png", "interactions_per_tool.png",
                                                    "throughput_per_annotator.png", "agreement_dice.png"}
    for path in paths:
        assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_export_writes_nifti_seg_nrrd_dicom_seg_and_answers(service, team, tmp_path):
    import highdicom as hd
    import SimpleITK as sitk
    from MVAWorkflowLib.export import export_project
    case = accepted_double_annotation(service, team)
    truth = service.load_annotation(team["rita"], case.id, "ann")
    out = tmp_path / "export"
    manifest = export_project(service, team["rita"], team["project"].id, str(out))
    assert len(manifest["annotations"]) == 2
    folder = out / next(r["folder"] for r in manifest["annotations"] if r["annotator"] == "ann")
    assert folder == out / f"case-{case.id}" / f"user-{service.whoami(team['ann']).id}"
    nifti = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "labelmap.nii.gz")))
    np.testing.assert_array_equal(nifti, truth.array_kji)

    seg = hd.seg.segread(str(folder / "segmentation.dcm"))
    assert [seg.get_segment_description(n).segment_label for n in seg.segment_numbers] == ["Liver", "Tumor"]
    assert seg.get_segment_description(1).segmented_property_type.value == "10200004"
    frames = np.asarray(seg.pixel_array)
    assert frames.shape[0] == 2 * truth.array_kji.shape[0]  # one frame per segment per source slice
    assert int(frames.astype(bool).sum()) == int((truth.array_kji > 0).sum()) == 60

    header = open(folder / "segmentation.seg.nrrd", "rb").read(4000).decode("latin-1")
    assert "Segment0_Name:=Liver" in header and "10200004" in header
    answers = json.loads((folder / "answers.json").read_text())
    assert answers["answers"] == {"quality": "good", "lesions": 1.0}
    assert (out / "answers.csv").read_text().splitlines()[0] == \
        "case_id,case,annotator_id,annotator,status,quality,lesions"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_dicom_folder_becomes_one_case_per_series_and_exports_dicom_seg_on_it(service, team, tmp_path):
    import highdicom as hd
    from MVAWorkflowLib.dicom_io import write_dicom_series
    from MVAWorkflowLib.export import export_project
    volume = np.arange(4 * 6 * 5, dtype=np.int16).reshape(4, 6, 5)
    matrix = np.array([[-0.7, 0, 0, 20], [0, -0.6, 0, 10], [0, 0, 1.5, -4], [0, 0, 0, 1]])
    write_dicom_series(volume, matrix, str(tmp_path / "dicom" / "series1"))
    assert service.add_cases(team["admin"], team["project"].id, str(tmp_path / "dicom")) == ["series1"]
    case = service.case_by_name(team["ann"], team["project"].id, "series1")
    array, ijk_to_ras = service.load_volume(team["ann"], case.id)
    assert array.shape == (4, 6, 5)
    project = service.create_project(team["admin"], "single", str(tmp_path / "s2"))
    service.add_labels(team["admin"], project.id, ["1:Liver:#dd8065:SCT:10200004:Liver"])
    service.add_cases(team["admin"], project.id, str(tmp_path / "dicom"))
    single = service.case_by_name(team["ann"], project.id, "series1")
    service.claim(team["ann"], single.id)
    mask = np.zeros(array.shape, np.uint8)
    mask[1:3, 2:4, 1:4] = 1
    service.submit(team["ann"], single.id, Labelmap(mask, ijk_to_ras))
    service.review(team["rita"], single.id, "accept")
    manifest = export_project(service, team["rita"], project.id, str(tmp_path / "out"), formats=["dicom-seg"])
    seg = hd.seg.segread(str(tmp_path / "out" / manifest["annotations"][0]["folder"] / "segmentation.dcm"))
    source_uids = {ref.ReferencedSOPInstanceUID for item in seg.ReferencedSeriesSequence
                   for ref in item.ReferencedInstanceSequence}
    import pydicom
    written = {pydicom.dcmread(str(p)).SOPInstanceUID for p in (tmp_path / "dicom" / "series1").iterdir()}
    assert source_uids == written
    assert int(np.asarray(seg.pixel_array).astype(bool).sum()) == int(mask.sum())
