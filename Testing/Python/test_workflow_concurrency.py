"""Two users at once: optimistic locking loses nothing and lets no stale decision through (SQLite, PostgreSQL)."""
import os
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "SegmentAnythingMVA"))

import pytest  # noqa: E402

from MVAWorkflowLib.errors import ConflictError, InvalidStateError  # noqa: E402
from MVAWorkflowLib.service import WorkflowService  # noqa: E402
from MVAWorkflowLib.testing import (box_labelmap, cheap_password_hashing, database_url,  # noqa: E402,F401
                                    service, team)


def run_together(*calls):
    """Start every call in its own thread behind a barrier; returns results (or exceptions) in order."""
    barrier = threading.Barrier(len(calls))
    results = [None] * len(calls)

    def runner(index, call):
        barrier.wait()
        try:
            results[index] = call()
        except Exception as error:  # noqa: BLE001  (handed back to the test, which checks its type)
            results[index] = error

    threads = [threading.Thread(target=runner, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def second_service(service):
    """An independent service (own engine and connection pool) on the same database: a second user's process."""
    return WorkflowService.open(service.database.url, migrate=False)


def test_two_annotators_submitting_one_case_at_once_both_keep_their_work(service, team):
    other = second_service(service)
    case = service.queue(team["ann"], team["project"].id).available[0]
    service.claim(team["ann"], case.id)
    service.claim(team["bob"], case.id)
    results = run_together(
        lambda: service.submit(team["ann"], case.id, box_labelmap(value=1), {"quality": "good"}),
        lambda: other.submit(team["bob"], case.id, box_labelmap(value=2), {"quality": "poor"}))
    other.database.dispose()
    assert not [r for r in results if isinstance(r, Exception)], results
    final = service.get_case(team["rita"], case.id)
    assert final.status == "in_review"
    assert {a.annotator: a.status for a in final.assignments} == {"ann": "submitted", "bob": "submitted"}
    assert service.load_annotation(team["rita"], case.id, "ann").label_values() == [1]
    assert service.load_annotation(team["rita"], case.id, "bob").label_values() == [2]
    assert service.answers(team["rita"], case.id, "bob") == {"quality": "poor"}


def test_two_reviewers_deciding_on_the_same_version_one_wins_and_the_other_is_told(service, team):
    other = second_service(service)
    service.create_user(team["admin"], "rob", "another password", "reviewer")
    rob = service.login("rob", "another password").token
    case = service.queue(team["ann"], team["project"].id).available[0]
    for who in ("ann", "bob"):
        service.claim(team[who], case.id)
        service.submit(team[who], case.id, box_labelmap(), {"quality": "good"})
    seen = service.get_case(team["rita"], case.id).version
    results = run_together(
        lambda: service.review(team["rita"], case.id, "accept", expected_version=seen),
        lambda: other.review(rob, case.id, "return", "redo", expected_version=seen))
    other.database.dispose()
    failures = [r for r in results if isinstance(r, Exception)]
    winners = [r for r in results if not isinstance(r, Exception)]
    assert len(winners) == 1 and len(failures) == 1
    assert isinstance(failures[0], (ConflictError, InvalidStateError))
    assert service.get_case(team["rita"], case.id).status == winners[0].status
    assert len(service.get_case(team["rita"], case.id).reviews) == 1


def test_the_last_annotation_slot_cannot_be_claimed_twice(service, team):
    other = second_service(service)
    service.create_user(team["admin"], "cid", "another password", "annotator")
    cid = service.login("cid", "another password").token
    case = service.queue(team["ann"], team["project"].id).available[0]
    service.claim(team["ann"], case.id)
    results = run_together(lambda: service.claim(team["bob"], case.id), lambda: other.claim(cid, case.id))
    other.database.dispose()
    assert sum(isinstance(r, InvalidStateError) for r in results) == 1
    assert len(service.get_case(team["ann"], case.id).assignments) == 2


def test_a_decision_on_a_case_that_changed_meanwhile_is_a_conflict(service, team):
    case = service.queue(team["ann"], team["project"].id).available[0]
    stale = case.version
    service.claim(team["ann"], case.id)
    with pytest.raises(ConflictError, match="changed since you opened it"):
        service.review(team["rita"], case.id, "accept", expected_version=stale)
