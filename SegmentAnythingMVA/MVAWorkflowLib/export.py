"""Export annotations of a project: `.seg.nrrd` (Slicer, via MVABridgeLib.node_io), NIfTI labelmaps
(SimpleITK) and DICOM SEG (highdicom), with the form answers as JSON and one CSV for the project.

Layout: `<output>/case-<case id>/user-<user id>/{segmentation.seg.nrrd, labelmap.nii.gz, segmentation.dcm,
answers.json}`, `<output>/answers.csv`, `<output>/labels.json`, `<output>/manifest.json`. Folder names come from
database ids only: case and user names are chosen by people (a case file `...nii.gz` is case "..", "a b" and
"a_b" are different users) and appear only inside the files (manifest, answers, DICOM tags). Files are 0600,
folders 0700.
"""
import csv
import dataclasses
import json
import os
import re

import numpy as np
from sqlalchemy import select

from MVAWorkflowLib.case_sources import dicom_files, read_case_volume
from MVAWorkflowLib.errors import InvalidInputError
from MVAWorkflowLib.models import Assignment, Case, FormQuestion, User
from MVAWorkflowLib.service_base import audit, require
from MVAWorkflowLib.storage import FILE_MODE, atomic_write, private_folder, read_labelmap

FORMATS = ("seg.nrrd", "nifti", "dicom-seg")


def _safe(name):
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "case"


def _terminology(label):
    # Slicer's terminology entry string: context~category~type~modifier~anatomic context~region~modifier
    return (f"Segmentation category and type - 3D Slicer General Anatomy list~SCT^{label.category_code_value}"
            f"^{label.category_code_meaning}~{label.code_scheme}^{label.code_value}^{label.code_meaning}~^^~"
            "Anatomic codes - DICOM master list~^^~^^")


def write_seg_nrrd(labelmap, labels, path):
    """Write a `.seg.nrrd` with one segment per label (name, colour, terminology) through a headless scene."""
    from MVABridgeLib.headless_scene import create_headless_scene
    from MVABridgeLib.node_io import save_segmentation_node
    from MVABridgeLib.segments import replace_segment_from_mask
    from MVABridgeLib.volumes import add_volume_node
    headless = create_headless_scene()
    try:
        scene = headless.scene
        reference = add_volume_node(scene, labelmap.array_kji.astype(np.int16), labelmap.ijk_to_ras, "Reference")
        node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Segmentation")
        node.CreateDefaultDisplayNodes()
        node.SetReferenceImageGeometryParameterFromVolumeNode(reference)
        segmentation = node.GetSegmentation()
        for label in labels:
            color = [int(label.color[i:i + 2], 16) / 255.0 for i in (1, 3, 5)]
            segment_id = segmentation.AddEmptySegment(label.name, label.name, color)
            segmentation.GetSegment(segment_id).SetTag("TerminologyEntry", _terminology(label))
            replace_segment_from_mask(node, segment_id, labelmap.array_kji == label.value, labelmap.ijk_to_ras)
        atomic_write(path, lambda temporary: save_segmentation_node(scene, node, temporary))
    finally:
        headless.clear()
    return path


def write_nifti(labelmap, path):
    """Write the labelmap as NIfTI (label values kept)."""
    from MVABridgeLib.volume_io import write_volume
    return atomic_write(path, lambda temporary: write_volume(temporary, labelmap.array_kji, labelmap.ijk_to_ras))


def case_folder(output, case_id):
    """`<output>/case-<id>`: the export folder of one case."""
    return os.path.join(output, f"case-{int(case_id)}")


def annotation_folder(output, case_id, user_id):
    """`<output>/case-<id>/user-<id>`: the export folder of one annotator's work on one case."""
    return os.path.join(case_folder(output, case_id), f"user-{int(user_id)}")


def _source_series(case, work_folder):
    """DICOM files of the case's image in k order (written from the volume for non-DICOM cases)."""
    from MVAWorkflowLib.dicom_io import write_dicom_series
    if case.source_kind == "dicom":
        return dicom_files(case.source_path, case.series_uid)
    array, ijk_to_ras = read_case_volume(case.source_path, case.source_kind)
    private_folder(work_folder)
    paths = write_dicom_series(array, ijk_to_ras, work_folder, patient_id=_safe(case.name)[:64],
                               series_description=case.name[:64])
    for path in paths:
        os.chmod(path, FILE_MODE)
    return paths


def export_project(service, actor, project, output, formats=FORMATS, statuses=("accepted",)):
    """Export every submitted annotation of the cases whose status is in `statuses` (reviewers, admins).

    Parameters
    ----------
    formats : sequence of {"seg.nrrd", "nifti", "dicom-seg"}
    statuses : sequence of str
        Case statuses to export; default only accepted cases.

    Returns
    -------
    dict
        The manifest: per exported annotation the case, annotator, status and files written.
    """
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise InvalidInputError(f"Unknown export formats {unknown}; use {', '.join(FORMATS)}")

    def work(session):
        user = require(session, actor, "export")
        row = service._project(session, project)
        labels = service._labels(session, row.id)
        keys = [q.key for q in session.scalars(select(FormQuestion).where(FormQuestion.project_id == row.id)
                                               .order_by(FormQuestion.position))]
        items = []
        query = (select(Case, Assignment, User.username).join(Assignment, Assignment.case_id == Case.id)
                 .join(User, User.id == Assignment.annotator_id)
                 .where(Case.project_id == row.id, Case.status.in_(list(statuses)),
                        Assignment.submitted_at.is_not(None)).order_by(Case.id, Assignment.id))
        for case, assignment, username in session.execute(query):
            items.append((case, assignment, username, service._answers(session, assignment)))
        audit(session, user, "export", "project", row.id, formats=list(formats), cases=len(items))
        return row, labels, keys, items
    row, labels, keys, items = service._run(work)

    private_folder(output)
    manifest = {"project": row.name, "formats": list(formats), "annotations": []}
    series_cache = {}
    answer_rows = []
    for case, assignment, username, answers in items:
        folder = annotation_folder(output, case.id, assignment.annotator_id)
        private_folder(folder)
        labelmap = read_labelmap(assignment.annotation_path, assignment.annotation_sha256)
        files = []
        if "seg.nrrd" in formats:
            files.append(write_seg_nrrd(labelmap, labels, os.path.join(folder, "segmentation.seg.nrrd")))
        if "nifti" in formats:
            files.append(write_nifti(labelmap, os.path.join(folder, "labelmap.nii.gz")))
        if "dicom-seg" in formats:
            from MVAWorkflowLib.dicom_io import write_dicom_seg
            if case.id not in series_cache:
                series_cache[case.id] = _source_series(case, os.path.join(case_folder(output, case.id),
                                                                          "image-dicom"))
            target = os.path.join(folder, "segmentation.dcm")
            files.append(atomic_write(target, lambda temporary: write_dicom_seg(
                labelmap, labels, series_cache[case.id], temporary)))
        record = {"case": case.name, "case_id": case.id, "annotator": username,
                  "annotator_id": assignment.annotator_id, "status": case.status,
                  "revision": assignment.annotation_revision, "answers": answers,
                  "folder": os.path.relpath(folder, output), "files": [os.path.relpath(f, output) for f in files]}
        atomic_write(os.path.join(folder, "answers.json"), lambda temporary: _write_json(temporary, record))
        manifest["annotations"].append(record)
        answer_rows.append({"case_id": case.id, "case": case.name, "annotator_id": assignment.annotator_id,
                            "annotator": username, "status": case.status, **{key: answers.get(key) for key in keys}})
    atomic_write(os.path.join(output, "labels.json"),
                 lambda temporary: _write_json(temporary, [dataclasses.asdict(label) for label in labels]))
    atomic_write(os.path.join(output, "answers.csv"),
                 lambda temporary: _write_csv(temporary, ["case_id", "case", "annotator_id", "annotator", "status", *keys],
                                                 answer_rows))
    atomic_write(os.path.join(output, "manifest.json"), lambda temporary: _write_json(temporary, manifest))
    return manifest


def _write_json(path, value):
    with open(path, "w") as stream:
        json.dump(value, stream, indent=2, default=str)


def _write_csv(path, columns, rows):
    with open(path, "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
