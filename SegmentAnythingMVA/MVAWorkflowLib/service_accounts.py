"""Service API, part 1: login, sessions, suppliers and users."""
import datetime as _dt

from sqlalchemy import func, select

from MVAWorkflowLib.errors import AuthenticationError, InvalidInputError, NotFoundError
from MVAWorkflowLib.models import AuditEntry, LoginSession, Role, Supplier, User, utcnow
from MVAWorkflowLib.security import hash_password, needs_rehash, new_token, token_digest, verify_password
from MVAWorkflowLib.service_base import (AuditInfo, SessionInfo, SupplierInfo, audit, require, resolve_actor,
                                        user_info)

SESSION_HOURS = 12


def _role(role):
    try:
        return Role(role).value
    except ValueError:
        raise InvalidInputError(f"Unknown role {role!r}: use annotator, reviewer or admin") from None


class AccountsMixin:
    """Login / sessions, suppliers, users, audit log."""

    # --- bootstrap -------------------------------------------------------------------------------
    def create_first_admin(self, username, password):
        """Create the first admin of an empty database (no actor needed; refused once any user exists).

        Returns
        -------
        UserInfo

        Raises
        ------
        InvalidInputError
            Users already exist (then an admin must call `create_user`), or the password is too short.
        """
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
    def login(self, username, password, hours=SESSION_HOURS):
        """Check a password and open a session.

        Returns
        -------
        SessionInfo
            `token` is the secret to pass as `actor` to every other method (or use `.user`).

        Raises
        ------
        AuthenticationError
            Unknown user, wrong password or disabled account (same message for all three).
        """
        def work(session):
            user = session.scalar(select(User).where(User.username == username))
            if user is None or not user.active or not verify_password(user.password_hash, password):
                raise AuthenticationError("Wrong user name or password")
            if needs_rehash(user.password_hash):
                user.password_hash = hash_password(password)
            token = new_token()
            expires = utcnow() + _dt.timedelta(hours=hours)
            session.add(LoginSession(token_sha256=token_digest(token), user_id=user.id, expires_at=expires))
            audit(session, user, "login", "user", user.id)
            return SessionInfo(token, user_info(user), expires)
        return self._run(work)

    def logout(self, token):
        """Revoke a session token (unknown tokens are ignored)."""
        def work(session):
            login = session.scalar(select(LoginSession).where(LoginSession.token_sha256 == token_digest(token)))
            if login is not None:
                login.revoked = True
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
        if not username or not username.strip():
            raise InvalidInputError("A user needs a user name")

        def work(session):
            admin = require(session, actor, "manage_users")
            supplier_row = self._supplier_by_name(session, supplier) if supplier else None
            user = User(username=username.strip(), password_hash=hash_password(password), role=role,
                        supplier_id=supplier_row.id if supplier_row else None)
            session.add(user)
            session.flush()
            audit(session, admin, "create_user", "user", user.id, username=user.username, role=role,
                  supplier=supplier)
            return user_info(user)
        return self._run(work)

    def update_user(self, actor, username, role=None, supplier=None, active=None, password=None):
        """Admin: change a user's role, supplier, active flag or password (only the arguments given).

        Disabling a user also revokes their sessions. Returns the new `UserInfo`.
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
                if not active:
                    for login in session.scalars(select(LoginSession).where(LoginSession.user_id == user.id)):
                        login.revoked = True
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
    def audit_log(self, actor, entity=None, entity_id=None, limit=1000):
        """Admin: audit entries, newest first, optionally for one entity ("case", "user", ...)."""
        def work(session):
            require(session, actor, "view_audit")
            query = select(AuditEntry, User.username).outerjoin(User, AuditEntry.actor_id == User.id)
            if entity is not None:
                query = query.where(AuditEntry.entity == entity)
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
