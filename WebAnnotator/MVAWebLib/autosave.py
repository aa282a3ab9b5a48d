"""Server-side autosave of a user's unsaved work on a case: `root/<user id>/<case id>.npz`, mode 0600.

Written while a case has unsaved changes (periodically, when the browser goes away, when the login expires,
when the session process ends) and offered back only to the same user when they open the same case again.
A successful save or submit, or the user's explicit "discard", removes it. Folders are 0700.
"""
import dataclasses
import io
import json
import os
import time

import numpy as np
from MVAWorkflowLib.storage import Labelmap

from MVAWebLib.runtime_files import private_folder, write_private


@dataclasses.dataclass(frozen=True)
class Autosave:
    """Unsaved work kept for one user and case."""
    user_id: int
    case_id: int
    labelmap: Labelmap
    answers: dict
    saved_at: float  # seconds since the epoch

    def age_text(self, now=None):
        minutes = max(0, int(((now or time.time()) - self.saved_at) // 60))
        return "less than a minute ago" if minutes == 0 else f"{minutes} min ago"


class AutosaveStore:
    """Autosaves under `root`, one file per (user, case)."""

    def __init__(self, root):
        self.root = private_folder(os.path.abspath(root))

    def path(self, user_id, case_id):
        return os.path.join(self.root, str(int(user_id)), f"{int(case_id)}.npz")

    def save(self, user_id, case_id, labelmap, answers=None):
        """Keep `labelmap` (a Labelmap) and form `answers` for this user and case; returns the file path."""
        private_folder(os.path.dirname(self.path(user_id, case_id)))
        buffer = io.BytesIO()
        np.savez_compressed(buffer, array_kji=labelmap.array_kji, ijk_to_ras=labelmap.ijk_to_ras,
                            owner=np.array([int(user_id), int(case_id)]),
                            answers=np.array(json.dumps(dict(answers or {}))), saved_at=np.array(time.time()))
        return write_private(self.path(user_id, case_id), buffer.getvalue())

    def load(self, user_id, case_id):
        """The autosave of this user and case, or None. A file whose recorded owner differs is ignored."""
        path = self.path(user_id, case_id)
        if not os.path.exists(path):
            return None
        with np.load(path, allow_pickle=False) as data:
            if [int(v) for v in data["owner"]] != [int(user_id), int(case_id)]:
                return None
            labelmap = Labelmap(data["array_kji"], data["ijk_to_ras"])
            return Autosave(int(user_id), int(case_id), labelmap, json.loads(str(data["answers"])),
                            float(data["saved_at"]))

    def discard(self, user_id, case_id):
        """Remove the autosave of this user and case (no error when there is none)."""
        try:
            os.unlink(self.path(user_id, case_id))
        except FileNotFoundError:
            pass
