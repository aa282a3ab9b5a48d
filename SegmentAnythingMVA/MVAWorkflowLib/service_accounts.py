"""Service API, part 1: login, sessions, suppliers and users."""
import datetime as _dt

from sqlalchemy import delete, func, select, update

from MVAWorkflowLib.errors import AuthenticationError, InvalidInputError, LoginThrottledError, NotFoundError
from MVAWorkflowLib.login_throttle import (ThrottlePolicy, forget_old_attempts, normalise_username, record_attempt,
                                          retry_after_s)
from MVAWorkflowLib.models import AuditEntry, LoginSession, Role, SessionTicket, Supplier, User, utcnow
from MVAWorkflowLib.security import (hash_password, needs_rehash, new_token, token_digest,
                                     verify_password_or_dummy)
from MVAWorkflowLib.service_base import (AuditInfo, SessionInfo, SupplierInfo, audit, require, resolve_actor,
                                        user_info)
from MVAWorkflowLib.user_names import check_not_look_alike, check_user_name

SESSION_SECONDS = 12 * 3600  # a browser session (a working day)
CLI_SESSION_SECONDS = 300  # one `mva project` command
TICKET_SECONDS = 60  # a one-time ticket from `issue_ticket`


def _role(role):
    try:
        return Role(role).value
    except ValueError:
        raise InvalidInputError(f"Unknown role {role!r}: use annotator, reviewer or admin") from None


def _forget_expired_sessions(session, now):
    # Every CLI command opens a session: drop those (and their tickets) that ended more than a day ago.
    ended = now - _dt.timedelta(days=1)
    old_sessions = select(LoginSession.id).where(LoginSession.expires_at < ended)
    session.execute(delete(SessionTicket).where(SessionTicket.session_id.in_(old_sessions)))
    session.execute(delete(LoginSession).where(LoginSession.expires_at < ended))


class AccountsMixin:
    """Login / sessions, suppliers, users, audit log."""

    #: login throttling (replace with another `ThrottlePolicy` to tune it)
    throttle = ThrottlePolicy()

    # --- bootstrap -------------------------------------------------------------------------------
    def create_first_admin(self, username, password):
        """Create the first admin of an empty database (no actor needed; refused once any user exists).

        Returns
        -------
        UserInfo

        Raises
        ------
        InvalidInputError
            Users already exist (then an admin must call `create_user`), the password is too short, or the
            user name is refused (`user_names.check_user_name`).
        """
        username = check_user_name(username)

        def work(session):
            if session.scalar(select(func.count(User.id))):
                raise InvalidInputError("Users already exist: ask an admin to create your account")
            user = User(username=username, password_hash=hash_password(password), role=Role.ADMIN.value)
            session.add(user)
            session.flush()
            audit(session, user, "create_user", "user", user.id, username=username, role=user.role)
            return user_info(user)
        return self._run(work)

    def list_users_exist(self):
        """True when the database has at least one user (no actor needed: used to bootstrap)."""
        return self._run(lambda session: bool(session.scalar(select(func.count(User.id)))))

    # --- sessions --------------------------------------------------------------------------------
    def login(self, username, password, address=None, lifetime_s=None):
        """Check a password and open a session: the one call every login screen and endpoint uses.

        Throttled per user name and per client address with exponential backoff (`throttle`, state in the
        database, shared by all processes); every failure and every refused attempt is in the audit log
        ("login_failed", "login_throttled", with the name as typed and the address). Known and unknown names
        cost the same single Argon2 verification, and a disabled account answers like a wrong password.

        Parameters
        ----------
        username, password : str
        address : str, optional
            The client's address for per-address throttling and the audit log. Behind a reverse proxy pass
            `security.client_address(peer, x_forwarded_for_header, trusted_proxies)`, never the raw header.
        lifetime_s : float, optional
            Session lifetime in seconds (default `SESSION_SECONDS`; `mva project` uses `CLI_SESSION_SECONDS`).

        Returns
        -------
        SessionInfo
            `token` is the secret to pass as `actor` to every other method (or use `.user`).

        Raises
        ------
        LoginThrottledError
            Too many failures: `retry_after_s` says how long to wait (no password was checked).
        AuthenticationError
            Unknown user, wrong password or disabled account (same message for all three).
        """
        lifetime = _dt.timedelta(seconds=float(lifetime_s if lifetime_s is not None else SESSION_SECONDS))
        name = normalise_username(username)

        def check(session):
            now = utcnow()
            wait_s = retry_after_s(session, self.throttle, name, address, now)
            if wait_s > 0:
                audit(session, None, "login_throttled", "user", None, username=name, address=address,
                      retry_after_s=round(wait_s, 1))
                return LoginThrottledError(wait_s)
            user = session.scalar(select(User).where(User.username == name)) if name else None
            return (user.id, user.password_hash, user.active) if user is not None else (None, None, False)
        checked = self._run(check)
        if isinstance(checked, Exception):
            raise checked  # raised after the commit, so the refusal stays in the audit log
        user_id, password_hash, active = checked
        # outside any transaction: the hash takes tens of milliseconds and must not hold SQLite's write lock
        matches = verify_password_or_dummy(password_hash, password)

        def finish(session):
            now = utcnow()
            user = session.get(User, user_id) if user_id is not None else None
            current = user is not None and user.active and user.password_hash == password_hash
            if not matches or not active or not current:
                record_attempt(session, name, address, False, now)
                audit(session, None, "login_failed", "user", user_id, username=name, address=address,
                      reason="wrong user name or password" if not matches else
                      "disabled" if not active else "account changed during the login")
                return AuthenticationError("Wrong user name or password")
            record_attempt(session, name, address, True, now)
            forget_old_attempts(session, self.throttle, now)
            _forget_expired_sessions(session, now)
            if needs_rehash(user.password_hash):
                user.password_hash = hash_password(password)
            return self._open_session(session, user, now + lifetime, "login", address=address)
        result = self._run(finish)
        if isinstance(result, Exception):
            raise result  # raised after the commit, so the failure stays in the audit log
        return result

    def issue_ticket(self, actor, lifetime_s=TICKET_SECONDS):
        """A one-time ticket for the caller's session, e.g. for a browser to hand to its own session process.

        `redeem_ticket` turns it into a new session of the same user exactly once, within `lifetime_s`
        seconds. The ticket is a secret like a token (only its SHA-256 is stored).

        Returns
        -------
        str
        """
        token = actor.token if isinstance(actor, SessionInfo) else actor
        if not isinstance(token, str):
            raise AuthenticationError("A ticket needs a session token: log in first")

        def work(session):
            resolve_actor(session, token)
            login = session.scalar(select(LoginSession).where(LoginSession.token_sha256 == token_digest(token)))
            ticket = new_token()
            expires = min(login.expires_at, utcnow() + _dt.timedelta(seconds=float(lifetime_s)))
            session.add(SessionTicket(ticket_sha256=token_digest(ticket), session_id=login.id, expires_at=expires))
            return ticket
        return self._run(work)

    def redeem_ticket(self, ticket, address=None):
        """Exchange a ticket from `issue_ticket` for a new session of its user (once; later calls fail).

        The new session expires with the ticket's session (not later) and, like every session of the user, is
        revoked by disabling the user. Returns `SessionInfo`; raises `AuthenticationError` for a used, expired or unknown
        ticket or a session that was closed meanwhile.
        """
        def work(session):
            now = utcnow()
            claimed = session.execute(
                update(SessionTicket).where(SessionTicket.ticket_sha256 == token_digest(ticket),
                                            SessionTicket.used_at.is_(None), SessionTicket.expires_at > now)
                .values(used_at=now)).rowcount
            if claimed != 1:
                return AuthenticationError("This sign-in link was already used or has expired: log in again")
            row = session.scalar(select(SessionTicket).where(SessionTicket.ticket_sha256 == token_digest(ticket)))
            parent = session.get(LoginSession, row.session_id)
            user = session.get(User, parent.user_id)
            if parent.revoked or parent.expires_at <= now or user is None or not user.active:
                return AuthenticationError("This sign-in link belongs to a closed session: log in again")
            return self._open_session(session, user, parent.expires_at, "redeem_ticket", address=address)
        result = self._run(work)
        if isinstance(result, Exception):
            raise result
        return result

    def _open_session(self, session, user, expires, action, **detail):
        token = new_token()
        session.add(LoginSession(token_sha256=token_digest(token), user_id=user.id, expires_at=expires))
        audit(session, user, action, "user", user.id, **detail)
        return SessionInfo(token, user_info(user), expires)

    def logout(self, token):
        """Revoke a session token (unknown tokens are ignored)."""
        def work(session):
            login = session.scalar(select(LoginSession).where(LoginSession.token_sha256 == token_digest(token)))
            if login is not None and not login.revoked:
                login.revoked = True
                audit(session, session.get(User, login.user_id), "logout", "user", login.user_id)
        self._run(work)

    def whoami(self, actor):
        """`UserInfo` of a token / session / user; raises `AuthenticationError` when no longer valid."""
        return self._run(lambda session: user_info(resolve_actor(session, actor)))

    # --- suppliers -------------------------------------------------------------------------------
    def create_supplier(self, actor, name):
        """Admin: register an organisation that provides annotators. Returns `SupplierInfo`."""
        if not name or not name.strip():
            raise InvalidInputError("A supplier needs a name")

        def work(session):
            admin = require(session, actor, "manage_suppliers")
            supplier = Supplier(name=name.strip())
            session.add(supplier)
            session.flush()
            audit(session, admin, "create_supplier", "supplier", supplier.id, name=supplier.name)
            return SupplierInfo(supplier.id, supplier.name)
        return self._run(work)

    def list_suppliers(self, actor):
        """Any logged-in user: every supplier, by name."""
        def work(session):
            resolve_actor(session, actor)
            return [SupplierInfo(s.id, s.name) for s in session.scalars(select(Supplier).order_by(Supplier.name))]
        return self._run(work)

    # --- users -----------------------------------------------------------------------------------
    def create_user(self, actor, username, password, role, supplier=None):
        """Admin: add a user.

        Parameters
        ----------
        role : str
            "annotator", "reviewer" or "admin".
        supplier : str, optional
            Name of an existing supplier the user belongs to.

        Returns
        -------
        UserInfo
        """
        role = _role(role)
        username = check_user_name(username)

        def work(session):
            admin = require(session, actor, "manage_users")
            check_not_look_alike(username, session.scalars(select(User.username)))
            supplier_row = self._supplier_by_name(session, supplier) if supplier else None
            user = User(username=username, password_hash=hash_password(password), role=role,
                        supplier_id=supplier_row.id if supplier_row else None)
            session.add(user)
            session.flush()
            audit(session, admin, "create_user", "user", user.id, username=user.username, role=role,
                  supplier=supplier)
            return user_info(user)
        return self._run(work)

    def update_user(self, actor, username, role=None, supplier=None, active=None, password=None):
        """Admin: change a user's role, supplier, active flag or password (only the arguments given).

        Disabling a user or setting their password revokes their sessions; setting the password or enabling
        the user lifts the login backoff of their user name. Returns the new `UserInfo`.
        """
        role = _role(role) if role is not None else None

        def work(session):
            admin = require(session, actor, "manage_users")
            user = self._user_by_name(session, username)
            changes = {}
            if role is not None and role != user.role:
                changes["role"] = [user.role, role]
                user.role = role
            if supplier is not None:
                supplier_row = self._supplier_by_name(session, supplier) if supplier else None
                changes["supplier"] = supplier or None
                user.supplier_id = supplier_row.id if supplier_row else None
            if password is not None:
                user.password_hash = hash_password(password)
                changes["password"] = "changed"
            if active is not None and bool(active) != user.active:
                changes["active"] = bool(active)
                user.active = bool(active)
            if password is not None or active is False:
                for login in session.scalars(select(LoginSession).where(LoginSession.user_id == user.id,
                                                                        LoginSession.revoked.is_(False))):
                    login.revoked = True
            if password is not None or active:
                # an admin's reset or re-enable also lifts the user name's login backoff
                record_attempt(session, user.username, "admin", True, utcnow())
            audit(session, admin, "update_user", "user", user.id, **changes)
            session.flush()
            session.refresh(user)
            return user_info(user)
        return self._run(work)

    def list_users(self, actor):
        """Admin: every user, by user name."""
        def work(session):
            require(session, actor, "manage_users")
            return [user_info(u) for u in session.scalars(select(User).order_by(User.username))]
        return self._run(work)

    # --- audit -----------------------------------------------------------------------------------
    def audit_log(self, actor, entity=None, entity_id=None, limit=1000, action=None):
        """Admin: audit entries (`AuditInfo`), newest first, optionally of one entity ("case", "user", ...)
        and / or one action ("login_failed", "save_annotation", ...)."""
        def work(session):
            require(session, actor, "view_audit")
            query = select(AuditEntry, User.username).outerjoin(User, AuditEntry.actor_id == User.id)
            if entity is not None:
                query = query.where(AuditEntry.entity == entity)
            if action is not None:
                query = query.where(AuditEntry.action == action)
            if entity_id is not None:
                query = query.where(AuditEntry.entity_id == entity_id)
            rows = session.execute(query.order_by(AuditEntry.id.desc()).limit(limit))
            return [AuditInfo(e.at, name, e.action, e.entity, e.entity_id, dict(e.detail or {})) for e, name in rows]
        return self._run(work)

    # --- helpers ---------------------------------------------------------------------------------
    @staticmethod
    def _user_by_name(session, username):
        user = session.scalar(select(User).where(User.username == username))
        if user is None:
            raise NotFoundError(f"No user named {username!r}")
        return user

    @staticmethod
    def _supplier_by_name(session, name):
        supplier = session.scalar(select(Supplier).where(Supplier.name == name))
        if supplier is None:
            raise NotFoundError(f"No supplier named {name!r}: create it first")
        return supplier
