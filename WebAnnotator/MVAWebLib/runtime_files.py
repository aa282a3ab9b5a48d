"""Private files of the team deployment: launch requests and session records in a runtime folder.

The gateway (gateway.py) and the session processes (session_process.py) run as the same service user and talk
through this folder (mode 0700, files 0600): the gateway writes a launch request before it asks wslink's
launcher for a process, the process reads and deletes it at start, then records its PID and port so the gateway
can send the same user back to it. Nothing secret goes on a command line (`ps` shows those to every local user):
the launcher only passes the request's random name.
"""
import json
import os
import re
import secrets
import time

FOLDER_MODE = 0o700
FILE_MODE = 0o600
REQUEST_NAME = re.compile(r"^[0-9a-f]{48}$")
REQUEST_MAX_AGE_S = 120


class RuntimeFileError(ValueError):
    """A launch request that is missing, too old or malformed, or a runtime folder that cannot be used."""


def private_folder(path):
    """Create `path` (and parents) with mode 0700; an existing folder is narrowed to 0700. Returns the path."""
    os.makedirs(path, mode=FOLDER_MODE, exist_ok=True)
    os.chmod(path, FOLDER_MODE)
    return path


def write_private(path, data):
    """Write bytes to `path` atomically with mode 0600 (a temporary file beside it, then a rename)."""
    folder = os.path.dirname(path)
    temporary = os.path.join(folder, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except OSError:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    return path


def pid_alive(pid):
    """True when a process with this PID exists (and is not a zombie of ours)."""
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError):
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{int(pid)}/stat", encoding="ascii") as stream:
            return stream.read().split(") ")[-1][:1] != "Z"
    except OSError:
        return True


class RuntimeFolder:
    """`root/requests/<name>.json` (launch requests) and `root/sessions/<user id>.json` (live sessions)."""

    def __init__(self, root):
        self.root = private_folder(os.path.abspath(root))
        self.requests = private_folder(os.path.join(self.root, "requests"))
        self.sessions = private_folder(os.path.join(self.root, "sessions"))

    # --- launch requests: gateway -> new session process ---------------------------------------------
    def write_request(self, request):
        """Store a launch request (a JSON-able dict); returns its random name, the only thing on the command line."""
        name = secrets.token_hex(24)
        write_private(os.path.join(self.requests, name + ".json"), json.dumps(request).encode("utf-8"))
        return name

    def take_request(self, name, max_age_s=REQUEST_MAX_AGE_S):
        """Read and delete a launch request (usable once). Raises RuntimeFileError when missing or too old."""
        if not REQUEST_NAME.match(str(name or "")):
            raise RuntimeFileError("Malformed launch request name")
        path = os.path.join(self.requests, name + ".json")
        try:
            age_s = time.time() - os.stat(path).st_mtime
            with open(path, encoding="utf-8") as stream:
                request = json.load(stream)
            os.unlink(path)
        except (OSError, json.JSONDecodeError):
            raise RuntimeFileError("No such launch request (already used?)") from None
        if age_s > max_age_s:
            raise RuntimeFileError(f"The launch request is {age_s:.0f} s old (at most {max_age_s} s)")
        return request

    # --- session records: session process -> gateway ------------------------------------------------
    def _session_path(self, user_id):
        return os.path.join(self.sessions, f"{int(user_id)}.json")

    def record_session(self, user_id, port, pid=None):
        """Say that the session process of `user_id` listens on `port` (called once it serves)."""
        record = {"user_id": int(user_id), "port": int(port), "pid": int(pid or os.getpid()), "at": time.time()}
        write_private(self._session_path(user_id), json.dumps(record).encode("utf-8"))
        return record

    def live_session(self, user_id):
        """The record of the user's session process if that process still runs, else None (stale ones removed)."""
        path = self._session_path(user_id)
        try:
            with open(path, encoding="utf-8") as stream:
                record = json.load(stream)
        except (OSError, json.JSONDecodeError):
            return None
        if pid_alive(record.get("pid", -1)):
            return record
        self.forget_session(user_id, record.get("pid"))
        return None

    def forget_session(self, user_id, pid=None):
        """Remove the user's session record (only if it is still the one of `pid`, when given)."""
        path = self._session_path(user_id)
        if pid is not None:
            try:
                with open(path, encoding="utf-8") as stream:
                    if json.load(stream).get("pid") != int(pid):
                        return
            except (OSError, json.JSONDecodeError):
                return
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
