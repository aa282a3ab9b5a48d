"""Login hardening: throttling with backoff per user and per address, audited failures, the same work for
unknown and known users, the client address behind a proxy, one-time tickets (SQLite and PostgreSQL)."""
import datetime as _dt
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "SegmentAnythingMVA"))

import pytest  # noqa: E402
from sqlalchemy import func, select, update  # noqa: E402

from MVAWorkflowLib import security, service_accounts  # noqa: E402
from MVAWorkflowLib.errors import AuthenticationError, InvalidInputError, LoginThrottledError  # noqa: E402
from MVAWorkflowLib.login_throttle import ThrottlePolicy  # noqa: E402
from MVAWorkflowLib.models import LoginAttempt  # noqa: E402
from MVAWorkflowLib.security import client_address, read_secret  # noqa: E402
from MVAWorkflowLib.testing import (PASSWORD, cheap_password_hashing, database_url,  # noqa: E402,F401
                                    service, team)

POLICY = ThrottlePolicy(user_free_failures=3, address_free_failures=6, base_delay_s=30, max_delay_s=600)


def fail(service, username, address, times):
    for _ in range(times):
        with pytest.raises(AuthenticationError, match="Wrong user name or password"):
            service.login(username, "not the password", address=address)


def age_attempts(service, seconds):
    """Move every recorded attempt `seconds` into the past (as if that time had passed)."""
    with service.database.transaction() as session:
        for row in session.scalars(select(LoginAttempt)):
            row.at = row.at - _dt.timedelta(seconds=seconds)


def test_repeated_failures_for_one_user_lock_it_with_a_growing_wait_even_for_the_right_password(service, team):
    service.throttle = POLICY
    fail(service, "ann", "10.0.0.1", 3)
    with pytest.raises(LoginThrottledError) as refused:
        service.login("ann", PASSWORD, address="10.0.0.2")
    assert 25 <= refused.value.retry_after_s <= 30
    age_attempts(service, 31)
    fail(service, "ann", "10.0.0.3", 1)  # the 4th failure: the next wait doubles
    with pytest.raises(LoginThrottledError) as refused:
        service.login("ann", PASSWORD, address="10.0.0.4")
    assert 55 <= refused.value.retry_after_s <= 60
    age_attempts(service, 61)
    assert service.login("ann", PASSWORD, address="10.0.0.4").user.username == "ann"
    fail(service, "ann", "10.0.0.1", 1)  # a success starts the user's count again
    assert service.login("ann", PASSWORD).user.username == "ann"


def test_one_address_trying_many_user_names_is_throttled_but_other_addresses_are_not(service, team):
    service.throttle = POLICY
    for name in ("ann", "bob", "rita", "nobody", "eve", "mallory"):
        fail(service, name, "192.0.2.9", 1)
    with pytest.raises(LoginThrottledError):
        service.login("bob", PASSWORD, address="192.0.2.9")
    assert service.login("bob", PASSWORD, address="192.0.2.10").user.username == "bob"
    assert service.login("bob", PASSWORD).user.username == "bob"  # no address given: no address bucket


def test_failed_and_throttled_logins_are_in_the_audit_log_with_name_and_address(service, team):
    service.throttle = POLICY
    fail(service, "ann", "10.1.1.1", 1)
    fail(service, "nobody", "10.1.1.1", 3)
    with pytest.raises(LoginThrottledError):
        service.login("nobody", "whatever", address="10.1.1.1")
    entries = service.audit_log(team["admin"], entity="user")
    failed = [e for e in entries if e.action == "login_failed"]
    assert {(e.detail["username"], e.detail["address"]) for e in failed} == {("ann", "10.1.1.1"),
                                                                             ("nobody", "10.1.1.1")}
    assert len(failed) == 4 and [e for e in entries if e.action == "login_throttled"][0].detail["username"] == "nobody"
    ann_failure = next(e for e in failed if e.detail["username"] == "ann")
    assert ann_failure.entity_id is not None and ann_failure.actor is None


def test_unknown_known_and_disabled_users_cost_exactly_one_hash_verification(service, team, monkeypatch):
    calls = []
    real = security.verify_password

    def counting(password_hash, password):
        calls.append(password_hash)
        return real(password_hash, password)
    monkeypatch.setattr(security, "verify_password", counting)
    service.update_user(team["admin"], "bob", active=False)
    counts = {}
    for name, password in (("ann", "wrong password"), ("nobody", "wrong password"), ("", "x"),
                           ("bob", PASSWORD), ("ann", PASSWORD)):
        calls.clear()
        try:
            service.login(name, password)
        except AuthenticationError as error:
            assert str(error) == "Wrong user name or password"
        counts[name or "(empty)", password == PASSWORD] = len(calls)
    assert set(counts.values()) == {1}, counts
    assert calls[0].startswith("$argon2id$")


def test_a_throttled_attempt_checks_no_password_at_all(service, team, monkeypatch):
    service.throttle = POLICY
    fail(service, "ann", "10.2.2.2", 3)
    monkeypatch.setattr(security, "verify_password", lambda *_: pytest.fail("password checked while throttled"))
    with pytest.raises(LoginThrottledError):
        service.login("ann", PASSWORD, address="10.2.2.2")


def test_the_forwarded_header_counts_only_when_the_peer_is_a_trusted_proxy():
    proxies = ["127.0.0.1", "10.9.0.0/16"]
    assert client_address("203.0.113.5", "198.51.100.1", proxies) == "203.0.113.5"  # untrusted peer: ignored
    assert client_address("127.0.0.1", "198.51.100.1", proxies) == "198.51.100.1"
    # a client sending its own header: the proxy appends the real address, which is what counts
    assert client_address("127.0.0.1", "1.2.3.4, 198.51.100.1", proxies) == "198.51.100.1"
    assert client_address("127.0.0.1", "198.51.100.1, 10.9.3.4", proxies) == "198.51.100.1"
    assert client_address("127.0.0.1", "garbage", proxies) == "127.0.0.1"
    assert client_address("127.0.0.1", "198.51.100.1", []) == "127.0.0.1"
    assert client_address("::ffff:127.0.0.1", "2001:db8::7", "127.0.0.1") == "2001:db8::7"
    with pytest.raises(InvalidInputError, match="not an IP address"):
        client_address("127.0.0.1", "1.2.3.4", ["proxy.local"])


def test_a_ticket_opens_one_session_of_its_user_once(service, team):
    login = service.login("ann", PASSWORD)
    ticket = service.issue_ticket(login.token)
    opened = service.redeem_ticket(ticket)
    assert opened.user.username == "ann" and opened.token != login.token
    assert opened.expires_at <= login.expires_at
    assert service.whoami(opened.token).username == "ann"
    with pytest.raises(AuthenticationError, match="already used or has expired"):
        service.redeem_ticket(ticket)
    with pytest.raises(AuthenticationError):
        service.issue_ticket("not a token")


def test_a_ticket_expires_and_dies_with_a_closed_session(service, team):
    from MVAWorkflowLib.models import SessionTicket
    login = service.login("bob", PASSWORD)
    late = service.issue_ticket(login.token)
    with service.database.transaction() as session:
        session.execute(update(SessionTicket).values(expires_at=_dt.datetime(2000, 1, 1)))
    with pytest.raises(AuthenticationError, match="expired"):
        service.redeem_ticket(late)
    orphan = service.issue_ticket(login.token)
    service.logout(login.token)
    with pytest.raises(AuthenticationError, match="closed session"):
        service.redeem_ticket(orphan)


def test_sessions_have_the_lifetime_asked_for(service, team):
    short = service.login("ann", PASSWORD, lifetime_s=service_accounts.CLI_SESSION_SECONDS)
    normal = service.login("ann", PASSWORD)
    assert _dt.timedelta(seconds=290) < short.expires_at - _dt.datetime.utcnow() <= _dt.timedelta(seconds=300)
    assert normal.expires_at - short.expires_at > _dt.timedelta(hours=11)


def test_secrets_come_from_the_environment_or_a_file(tmp_path):
    secret_file = tmp_path / "pg-password"
    secret_file.write_text("s3cret\n")
    assert read_secret("MVA_X", {"MVA_X": "direct"}) == "direct"
    assert read_secret("MVA_X", {"MVA_X_FILE": str(secret_file)}) == "s3cret"
    assert read_secret("MVA_X", {}) is None
    with pytest.raises(InvalidInputError, match=r"\$MVA_X_FILE") as error:
        read_secret("MVA_X", {"MVA_X_FILE": str(tmp_path / "missing")})
    assert "s3cret" not in str(error.value)


def test_sessions_that_ended_more_than_a_day_ago_are_removed_at_the_next_login(service, team):
    from MVAWorkflowLib.models import LoginSession, SessionTicket
    old = service.login("ann", PASSWORD)
    service.issue_ticket(old.token)
    recent = service.login("ann", PASSWORD, lifetime_s=1)
    with service.database.transaction() as session:
        session.execute(update(LoginSession).where(LoginSession.token_sha256 == security.token_digest(old.token))
                        .values(expires_at=_dt.datetime(2000, 1, 1)))
        before = session.scalar(select(func.count(LoginSession.id)))
    service.login("bob", PASSWORD)
    with service.database.transaction() as session:
        after = session.scalar(select(func.count(LoginSession.id)))
        assert session.scalar(select(func.count(SessionTicket.id))) == 0
        assert session.scalar(select(LoginSession.id).where(
            LoginSession.token_sha256 == security.token_digest(old.token))) is None
        assert session.scalar(select(LoginSession.id).where(  # ended seconds ago at most: kept
            LoginSession.token_sha256 == security.token_digest(recent.token))) is not None
    assert after == before  # the old one removed, bob's added
