"""Password hashing (argon2id, argon2-cffi) and session tokens.

Only a SHA-256 of each session token is stored, so a copy of the database does not hand out live sessions.
"""
import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from MVAWorkflowLib.errors import InvalidInputError

MIN_PASSWORD_LENGTH = 8
_HASHER = PasswordHasher()


def hash_password(password):
    """Argon2id hash of `password` (salted; the string embeds its parameters).

    Raises
    ------
    InvalidInputError
        Password shorter than `MIN_PASSWORD_LENGTH` characters.
    """
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInputError(f"A password needs at least {MIN_PASSWORD_LENGTH} characters")
    return _HASHER.hash(password)


def verify_password(password_hash, password):
    """True when `password` matches `password_hash`; False for a mismatch or a malformed hash."""
    try:
        return _HASHER.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash):
    """True when the hash was made with weaker parameters than the current ones."""
    return _HASHER.check_needs_rehash(password_hash)


def new_token():
    """A random session token (URL-safe text, 256 bits)."""
    return secrets.token_urlsafe(32)


def token_digest(token):
    """Hex SHA-256 of a session token: what the database stores."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def configure_hasher(time_cost=None, memory_cost_kib=None):
    """Replace the Argon2 parameters (e.g. cheaper ones in tests). Hashes made earlier still verify."""
    global _HASHER
    defaults = PasswordHasher()
    _HASHER = PasswordHasher(time_cost=time_cost or defaults.time_cost,
                             memory_cost=memory_cost_kib or defaults.memory_cost)
