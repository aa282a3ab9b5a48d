"""Login throttling with exponential backoff, per user name and per client address, kept in the database.

The state lives in the `login_attempts` table, so every server process (one per browser session, the login
endpoint, `mva project`) sees the same counts, and a restart does not reset them. User names are counted as
typed, known or not, so throttling itself does not reveal which names exist.
"""
import dataclasses
import datetime as _dt

from sqlalchemy import delete, func, select

from MVAWorkflowLib.models import LoginAttempt

UNKNOWN_ADDRESS = "unknown"


@dataclasses.dataclass(frozen=True)
class ThrottlePolicy:
    """How many failed logins are free, and how the wait grows after that.

    After `free` failures within `window_s` (per user name since its last successful login; per address in
    total), each further attempt must wait `base_delay_s * 2 ** (failures - free)` seconds after the last
    failure, at most `max_delay_s`.
    """
    user_free_failures: int = 5
    address_free_failures: int = 20
    base_delay_s: float = 1.0
    max_delay_s: float = 900.0
    window_s: float = 3600.0

    def delay_s(self, failures, free):
        """Seconds to wait after the last of `failures` failures when `free` are allowed without a wait."""
        if failures < free:
            return 0.0
        return float(min(self.max_delay_s, self.base_delay_s * 2 ** min(failures - free, 30)))


def normalise_username(username):
    """The user name as counted for throttling (stripped, at most 100 characters; a NUL, which PostgreSQL cannot
    store and no user name holds, becomes U+FFFD, which no user name holds either)."""
    return str(username or "").replace("\x00", "\ufffd").strip()[:100]


def _failures(session, condition, since):
    count, last = session.execute(
        select(func.count(LoginAttempt.id), func.max(LoginAttempt.at))
        .where(condition, LoginAttempt.succeeded.is_(False), LoginAttempt.at > since)).one()
    return int(count or 0), last


def retry_after_s(session, policy, username, address, now):
    """Seconds until a login for (`username`, `address`) may be tried again; 0 when it may now.

    Without an `address` only the user name's count applies.
    """
    window_start = now - _dt.timedelta(seconds=policy.window_s)
    name = normalise_username(username)
    last_success = session.scalar(select(func.max(LoginAttempt.at)).where(
        LoginAttempt.username == name, LoginAttempt.succeeded.is_(True)))
    since_user = max(window_start, last_success) if last_success is not None else window_start
    buckets = [(LoginAttempt.username == name, since_user, policy.user_free_failures)]
    if address:  # callers that know no address (desktop module) share no bucket, so they cannot lock each other out
        buckets.append((LoginAttempt.address == address[:64], window_start, policy.address_free_failures))
    waits = []
    for condition, since, free in buckets:
        count, last = _failures(session, condition, since)
        delay = policy.delay_s(count, free)
        if delay and last is not None:
            waits.append((last + _dt.timedelta(seconds=delay) - now).total_seconds())
    return max([0.0, *waits])


def record_attempt(session, username, address, succeeded, now):
    """Add one row to `login_attempts` in the caller's transaction."""
    session.add(LoginAttempt(at=now, username=normalise_username(username), address=(address or UNKNOWN_ADDRESS)[:64],
                             succeeded=bool(succeeded)))


def forget_old_attempts(session, policy, now):
    """Delete attempts older than the window (they no longer count). Returns how many were removed."""
    result = session.execute(delete(LoginAttempt).where(
        LoginAttempt.at <= now - _dt.timedelta(seconds=policy.window_s * 2)))
    return result.rowcount or 0
