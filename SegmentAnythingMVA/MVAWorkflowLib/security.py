"""Password hashing (argon2id, argon2-cffi), session tokens, the client address behind a proxy, and secrets.

Only a SHA-256 of each session token (and of each one-time ticket) is stored, so a copy of the database does
not hand out live sessions. `verify_password_or_dummy` makes a login for an unknown user cost the same one
hash verification as for a known one, so response times do not reveal which user names exist.
"""
import hashlib
import ipaddress
import os
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from MVAWorkflowLib.errors import InvalidInputError

MIN_PASSWORD_LENGTH = 8
_HASHER = PasswordHasher()
_DUMMY_HASH = None  # made lazily with the current parameters, so it costs what a real verification costs


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


def verify_password_or_dummy(password_hash, password):
    """`verify_password`, or, when `password_hash` is None (no such user), the same work against a dummy hash.

    Always exactly one Argon2 verification; returns False for the dummy.
    """
    global _DUMMY_HASH
    if password_hash is None:
        if _DUMMY_HASH is None:
            _DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))
        verify_password(_DUMMY_HASH, password if isinstance(password, str) else "")
        return False
    return verify_password(password_hash, password if isinstance(password, str) else "")


def needs_rehash(password_hash):
    """True when the hash was made with weaker parameters than the current ones."""
    return _HASHER.check_needs_rehash(password_hash)


def new_token():
    """A random session token (URL-safe text, 256 bits)."""
    return secrets.token_urlsafe(32)


def token_digest(token):
    """Hex SHA-256 of a session token: what the database stores."""
    return hashlib.sha256(str(token).encode("utf-8")).hexdigest()


def configure_hasher(time_cost=None, memory_cost_kib=None):
    """Replace the Argon2 parameters (e.g. cheaper ones in tests). Hashes made earlier still verify."""
    global _HASHER, _DUMMY_HASH
    defaults = PasswordHasher()
    _HASHER = PasswordHasher(time_cost=time_cost or defaults.time_cost,
                             memory_cost=memory_cost_kib or defaults.memory_cost)
    _DUMMY_HASH = None


# --- the client behind a reverse proxy ---------------------------------------------------------------
def _networks(trusted_proxies):
    if isinstance(trusted_proxies, str):
        trusted_proxies = [part for part in trusted_proxies.replace(",", " ").split() if part]
    networks = []
    for entry in trusted_proxies or ():
        try:
            networks.append(ipaddress.ip_network(str(entry).strip(), strict=False))
        except ValueError:
            raise InvalidInputError(f"Trusted proxy {entry!r} is not an IP address or network "
                                    "(e.g. 127.0.0.1 or 10.0.0.0/24)") from None
    return networks


def _address(text):
    try:
        address = ipaddress.ip_address(str(text).strip().strip("[]"))
    except ValueError:
        return None
    return address.ipv4_mapped or address if address.version == 6 else address


def client_address(remote_address, forwarded_for=None, trusted_proxies=()):
    """The address a login attempt comes from, for throttling and the audit log.

    X-Forwarded-For is believed only when the connection comes from a trusted proxy: the header is read from
    the right (the entry the proxy itself appended) and the first address that is not a trusted proxy is the
    client. A client cannot choose its throttling bucket by sending the header itself.

    Parameters
    ----------
    remote_address : str
        Peer address of the TCP connection (what the server saw).
    forwarded_for : str, optional
        The X-Forwarded-For header ("client, proxy1, proxy2"), or None.
    trusted_proxies : str or sequence of str
        Addresses or networks of the reverse proxies (e.g. ["127.0.0.1"]); empty: the header is ignored.

    Returns
    -------
    str
        The client address (normalised text), or `remote_address` unchanged when it is not an IP address.

    Raises
    ------
    InvalidInputError
        An entry of `trusted_proxies` is not an address or network.
    """
    networks = _networks(trusted_proxies)
    peer = _address(remote_address)
    if peer is None:
        return str(remote_address or "")

    def trusted(address):
        return any(address in network for network in networks)

    if not forwarded_for or not trusted(peer):
        return str(peer)
    client = peer
    for entry in reversed(str(forwarded_for).split(",")):
        address = _address(entry)
        if address is None:
            break  # garbage in the chain: keep the last address a trusted hop vouched for
        client = address
        if not trusted(address):
            break
    return str(client)


# --- secrets -----------------------------------------------------------------------------------------
def read_secret(name, environ=None):
    """A secret from `$NAME`, else from the file named by `$NAME_FILE` (trailing newline removed), else None.

    Secrets never go on a command line (where `ps` shows them to every local user).

    Raises
    ------
    InvalidInputError
        `$NAME_FILE` names a file that cannot be read (the message names the variable, not the content).
    """
    environ = os.environ if environ is None else environ
    value = environ.get(name)
    if value:
        return value
    path = environ.get(f"{name}_FILE")
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as stream:
            value = stream.read().rstrip("\r\n")
    except OSError as error:
        raise InvalidInputError(f"Cannot read the secret file named by ${name}_FILE: {error.strerror}") from None
    return value or None
