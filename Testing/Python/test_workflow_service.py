"""Workflow service: roles, sessions, the case life cycle, forms and the audit log (SQLite and PostgreSQL)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "SegmentAnythingMVA"))

import pytest  # noqa: E402

from MVAWorkflowLib.errors import (AuthenticationError, ConflictError, InvalidInputError,  # noqa: E402
                                   InvalidStateError, PermissionDeniedError)
from MVAWorkflowLib.testing import (PASSWORD, box_labelmap, cheap_password_hashing, database_url,  # noqa: E402,F401
                                    service, team)


def first_case(service, team):
    return service.queue(team["ann"], team["project"].id).available[0]


def test_passwords_are_stored_as_argon2_hashes_not_plain_text(service, team):
    from sqlalchemy import select
    from MVAWorkflowLib.models import User
    with service.database.transaction() as session:
        stored = session.scalar(select(User.password_hash).where(User.username == "ann"))
    assert stored.startswith("$argon2id$") and PASSWORD not in stored


def test_login_with_a_wrong_password_is_refused(service, team):
    with pytest.raises(AuthenticationError, match="Wrong user name or password"):
        service.login("ann", "not the password")


def test_a_token_stops_working_after_logout_and_after_the_user_is_disabled(service, team):
    token = service.login("bob", PASSWORD).token
    assert service.whoami(token).username == "bob"
    service.logout(token)
    with pytest.raises(AuthenticationError):
        service.whoami(token)
    service.update_user(team["admin"], "ann", active=False)
    with pytest.raises(AuthenticationError):
        service.queue(team["ann"], team["project"].id)
    with pytest.raises(AuthenticationError):
        service.login("ann", PASSWORD)


def test_only_admins_manage_users_and_labels(service, team):
    for token in (team["ann"], team["rita"]):
        with pytest.raises(PermissionDeniedError, match="needs role admin"):
            service.create_user(token, "eve", PASSWORD, "admin")
        with pytest.raises(PermissionDeniedError):
            service.add_labels(token, team["project"].id, ["3:Vessel:#0000ff"])
        with pytest.raises(PermissionDeniedError):
            service.update_label(token, team["project"].id, 1, color="#000000")
    assert [label.name for label in service.list_labels(team["ann"], team["project"].id)] == ["Liver", "Tumor"]
    assert service.update_label(team["admin"], team["project"].id, 1, color="#123456").color == "#123456"


def test_bad_labels_and_roles_are_rejected_with_a_reason(service, team):
    with pytest.raises(InvalidInputError, match="colour must be #rrggbb"):
        service.add_labels(team["admin"], team["project"].id, ["3:Vessel:blue"])
    with pytest.raises(InvalidInputError, match="already has a label with that value or name"):
        service.add_labels(team["admin"], team["project"].id, ["1:Other:#000000"])
    with pytest.raises(InvalidInputError, match="Unknown role"):
        service.create_user(team["admin"], "eve", PASSWORD, "superuser")


def test_double_annotated_case_goes_to_review_after_both_submit_and_is_accepted(service, team):
    case = first_case(service, team)
    service.claim(team["ann"], case.id)
    service.claim(team["bob"], case.id)
    with pytest.raises(InvalidStateError, match="already has 2 annotator"):
        service.claim(team["admin"], case.id)
    first = service.submit(team["ann"], case.id, box_labelmap(), {"quality": "good", "lesions": "2"})
    assert first.status == "to_annotate"
    second = service.submit(team["bob"], case.id, box_labelmap(), {"quality": "poor"})
    assert second.status == "in_review"
    to_review = service.queue(team["rita"], team["project"].id).to_review
    assert [c.id for c in to_review] == [case.id]
    accepted = service.review(team["rita"], case.id, "accept", expected_version=to_review[0].version)
    assert accepted.status == "accepted"
    assert {a.status for a in accepted.assignments} == {"accepted"}
    assert service.answers(team["rita"], case.id, "ann") == {"quality": "good", "lesions": 2.0}


def test_an_annotator_cannot_accept_their_own_case_and_nobody_reviews_their_own_work(service, team):
    case = first_case(service, team)
    service.claim(team["ann"], case.id)
    service.claim(team["admin"], case.id)
    service.submit(team["ann"], case.id, box_labelmap(), {"quality": "good"})
    service.submit(team["admin"], case.id, box_labelmap(), {"quality": "good"})
    with pytest.raises(PermissionDeniedError, match="needs role"):
        service.review(team["ann"], case.id, "accept")
    with pytest.raises(PermissionDeniedError, match="annotated case"):
        service.review(team["admin"], case.id, "accept")
    assert service.get_case(team["rita"], case.id).status == "in_review"


def test_a_returned_case_carries_the_comment_back_and_can_be_resubmitted(service, team):
    case = first_case(service, team)
    for who in ("ann", "bob"):
        service.claim(team[who], case.id)
        service.submit(team[who], case.id, box_labelmap(), {"quality": "good"})
    with pytest.raises(InvalidInputError, match="needs a comment"):
        service.review(team["rita"], case.id, "return")
    service.review(team["rita"], case.id, "return", "Tumor missed on slice 3")
    mine = service.queue(team["ann"], team["project"].id).mine
    assert [c.id for c in mine] == [case.id]
    assert mine[0].status == "returned" and mine[0].reviews[-1].comment == "Tumor missed on slice 3"
    service.submit(team["ann"], case.id, box_labelmap(value=2))
    assert service.get_case(team["ann"], case.id).status == "returned"
    assert service.submit(team["bob"], case.id).status == "in_review"
    assert service.load_annotation(team["rita"], case.id, "ann").label_values() == [2]


def test_submit_requires_the_form_and_checks_answer_types(service, team):
    case = first_case(service, team)
    service.claim(team["ann"], case.id)
    with pytest.raises(InvalidInputError, match="save an annotation first"):
        service.submit(team["ann"], case.id)
    with pytest.raises(InvalidInputError, match="Answer the case form before submitting: quality"):
        service.submit(team["ann"], case.id, box_labelmap())
    with pytest.raises(InvalidInputError, match="must be one of good, poor"):
        service.submit(team["ann"], case.id, box_labelmap(), {"quality": "great"})
    with pytest.raises(InvalidInputError, match="must be a number"):
        service.save_answers(team["ann"], case.id, {"lesions": "many"})
    with pytest.raises(InvalidInputError, match="not in the project's label set"):
        service.save_annotation(team["ann"], case.id, box_labelmap(value=7))
    service.add_question(team["admin"], team["project"].id, "contrast", "Contrast agent?", "yes_no")
    assert service.save_answers(team["ann"], case.id, {"contrast": "Yes", "quality": "poor"}) == {
        "contrast": True, "quality": "poor"}


def test_a_stale_annotation_version_is_refused_instead_of_overwriting(service, team):
    case = first_case(service, team)
    service.claim(team["ann"], case.id)
    seen = service.save_annotation(team["ann"], case.id, box_labelmap()).version
    service.save_annotation(team["ann"], case.id, box_labelmap(value=2), expected_version=seen)
    with pytest.raises(ConflictError, match="reload"):
        service.save_annotation(team["ann"], case.id, box_labelmap(), expected_version=seen)
    assert service.load_annotation(team["ann"], case.id).label_values() == [2]


def test_the_audit_log_records_who_changed_what(service, team):
    case = first_case(service, team)
    service.claim(team["ann"], case.id)
    service.submit(team["ann"], case.id, box_labelmap(), {"quality": "good"})
    with pytest.raises(PermissionDeniedError):
        service.audit_log(team["rita"])
    entries = service.audit_log(team["admin"], entity="case", entity_id=case.id)
    assert [(e.actor, e.action) for e in entries][:2] == [("ann", "submit"), ("ann", "claim")]
    assert entries[0].detail["revision"] == 1
    actions = {(e.actor, e.action) for e in service.audit_log(team["admin"])}
    assert {("ada", "create_user"), ("ada", "add_label"), ("ada", "add_case")} <= actions


def test_a_text_longer_than_its_column_is_refused_with_a_message_and_nothing_is_stored(service, team):
    from sqlalchemy import func, select
    from MVAWorkflowLib.models import ToolEvent
    case = first_case(service, team)
    service.claim(team["ann"], case.id)
    long_tool = "trame_slicer.segmentation.segmentation_effect_no_tool.SegmentationEffectNoTool"
    with pytest.raises(InvalidInputError, match="tool is too long: at most 50 characters"):
        service.record_tool_usage(team["ann"], case.id, long_tool, 3.0, 1)
    service.record_tool_usage(team["ann"], case.id, "Smart Brush", 3.0, 1)  # the session still works
    with service.database.transaction() as session:
        assert session.scalar(select(func.count(ToolEvent.id))) == 1
    with pytest.raises(InvalidInputError, match="name is too long"):
        service.create_project(team["admin"], "P" * 201)
