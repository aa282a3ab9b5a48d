"""Workflow cases in a real MRML scene: open, edit through the bridge, save, submit, review, reopen."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "SegmentAnythingMVA"))

import numpy as np  # noqa: E402

from MVABridgeLib.editor_session import SegmentEditorSession  # noqa: E402
from MVABridgeLib.slice_geometry import SlicePlane  # noqa: E402
from MVAWorkflowLib.scene_cases import open_case  # noqa: E402
from MVAWorkflowLib.testing import (cheap_password_hashing, database_url, service,  # noqa: E402,F401
                                    team)


def test_a_case_opened_in_a_scene_is_edited_saved_submitted_and_reviewed(team, service, headless):
    project = team["project"]
    case = service.claim_next(team["ann"], project.id)
    opened = open_case(service, team["ann"], project.id, case.id, headless.scene)
    assert set(opened.segments) == {1, 2} and opened.labelmap().array_kji.sum() == 0
    session = SegmentEditorSession(opened.volume_node, opened.segmentation_node, opened.segments[2], headless.scene)
    volume = session.bridge.work_volume()
    plane = SlicePlane.for_anatomical_axis("axial", 3, volume.index_to_ras, volume.shape)
    drawn = np.zeros(plane.shape, bool)
    drawn[2:5, 3:7] = True
    session.bridge.apply_slice_mask(plane, drawn)
    labelmap = opened.labelmap()
    assert (labelmap.array_kji == 2).sum() == drawn.sum() and (labelmap.array_kji == 1).sum() == 0
    service.save_answers(team["ann"], case.id, {"quality": "good"})
    service.submit(team["ann"], case.id, labelmap)
    reopened = open_case(service, team["rita"], project.id, case.id, headless.scene, annotator="ann")
    assert np.array_equal(reopened.labelmap().array_kji, labelmap.array_kji)
    assert np.allclose(reopened.labelmap().ijk_to_ras, labelmap.ijk_to_ras)


def test_a_stale_save_keeps_neither_the_labelmap_nor_the_answers(team, service, headless):
    import pytest
    from MVAWorkflowLib.errors import ConflictError
    project = team["project"]
    case = service.claim_next(team["ann"], project.id)
    opened = open_case(service, team["ann"], project.id, case.id, headless.scene)
    first = service.save_annotation(team["ann"], case.id, opened.labelmap(), answers={"quality": "good"})
    service.save_annotation(team["ann"], case.id, opened.labelmap(), expected_version=first.version)
    with pytest.raises(ConflictError):
        service.save_annotation(team["ann"], case.id, opened.labelmap(), expected_version=first.version,
                                answers={"quality": "poor"})
    assert service.answers(team["ann"], case.id)["quality"] == "good"


def test_an_earlier_revision_opens_in_a_scene_and_a_missing_one_is_refused(team, service, headless):
    import pytest
    from MVAWorkflowLib.errors import NotFoundError
    from MVAWorkflowLib.testing import box_labelmap
    project = team["project"]
    case = service.claim_next(team["ann"], project.id)
    service.save_annotation(team["ann"], case.id, box_labelmap(value=1))
    service.save_annotation(team["ann"], case.id, box_labelmap(value=2))
    opened = open_case(service, team["ann"], project.id, case.id, headless.scene, revision=1)
    assert opened.labelmap().label_values() == [1]
    with pytest.raises(NotFoundError, match="no revision 7"):
        open_case(service, team["ann"], project.id, case.id, headless.scene, revision=7)
