"""Unsaved work on the open case: what counts as unsaved, the save / discard / cancel prompt, the autosave
kept for the same user (autosave.py) and the warnings before it could be lost. A mixin of WorkflowController
(it uses its session, app, labelmap and segment filling).

`wf_dirty` tells the page that the case may have unsaved changes: set at once by any edit of the segments
(an observer on the segmentation: smart tools, trame-slicer's paint, undo) and by the form, corrected by the
exact comparison every check. The page asks before the tab closes while it is set (`beforeunload`), and the
server warns when the login is about to expire with unsaved work (`wf_expiry_warning`).
"""
import datetime as _dt
import math

import numpy as np
from MVAWorkflowLib.errors import WorkflowError
from MVAWorkflowLib.models import utcnow

EXPIRY_WARNING_S = 15 * 60  # warn this long before the login expires, when there is unsaved work
# trame's client closes its websocket on beforeunload, even when the user then chooses to stay: with unsaved
# work this listener runs first (capture, at the window) and stops the others; leaving closes the socket anyway.
BEFORE_UNLOAD_SCRIPT = """
window.mvaBeforeUnload = (event) => {
  const state = window.trame && window.trame.state;
  if (!(state && state.get('wf_dirty'))) return false;
  event.preventDefault();
  event.returnValue = '';
  event.stopImmediatePropagation();
  return true;
};
window.addEventListener('beforeunload', window.mvaBeforeUnload, {capture: true});
"""


def expiry_warning(expires_at, unsaved, now=None):
    """The warning to show when a login (naive UTC `expires_at`) ends within EXPIRY_WARNING_S with unsaved
    work, else ""."""
    if not unsaved or expires_at is None:
        return ""
    left_s = (expires_at - (now or utcnow())) / _dt.timedelta(seconds=1)
    if left_s > EXPIRY_WARNING_S:
        return ""
    minutes = max(1, math.ceil(left_s / 60)) if left_s > 0 else 0
    when = f"in {minutes} min" if minutes else "now"
    return (f"Your login ends {when}: save your work (it is also kept for you and offered when you open the "
            "case again).")


def answered_text(answers):
    """Form answers as compared and kept: text values, empty answers left out."""
    return {str(k): str(v) for k, v in (answers or {}).items() if v not in (None, "")}


class UnsavedWork:
    """Needs `session` (WorkflowSession), `app`, `autosave` (AutosaveStore or None), `_baseline`, `_pending`,
    `labelmap()` and `_fill_segments(labelmap)`."""

    def watch_segments(self):
        """Mark the case dirty on any change of the open case's segments (call once the case is open)."""
        from vtkmodules.vtkCommonCore import vtkCommand
        node = self.app.editor.active_segmentation_node
        if node is not None and self._watched_node is not node:
            # the node's own ModifiedEvent: vtkSegmentation's SegmentModified does not come with every write
            # (a second write into the same segment through trame-slicer's modifier sent none, measured)
            node.AddObserver(vtkCommand.ModifiedEvent, self._segments_changed)
            self._watched_node = node

    def watch_form(self):
        """Mark the case dirty when a form answer changes (call once, when binding)."""
        self.app.state.change("form_answers")(self._answers_changed)

    def _segments_changed(self, *_args):
        if self._baseline is not None and not self.app.state.wf_dirty:
            self.app.state.wf_dirty = True

    def _answers_changed(self, form_answers=None, **_):
        if self._baseline is not None and answered_text(form_answers) != self._baseline[1]:
            self.app.state.wf_dirty = True

    def update_dirty(self):
        """The exact answer (labels and answers compared with the baseline) into `wf_dirty`; returns it."""
        dirty = self.has_unsaved_changes()
        self.app.state.wf_dirty = dirty
        return dirty

    def warn_before_expiry(self, unsaved):
        login = self.session.session
        self.app.state.wf_expiry_warning = expiry_warning(login.expires_at if login else None, unsaved)

    def has_unsaved_changes(self):
        current = self.session.open_case
        if current is None or current.mode != "annotate" or self._baseline is None:
            return False
        labels, answers = self._baseline
        return (not np.array_equal(self.labelmap().array_kji, labels)
                or answered_text(self.app.state.form_answers) != answers)

    def _unless_unsaved(self, name, function, *args):
        """Run `function(*args)` now, or ask save / discard / cancel first when the open case has unsaved work."""
        if not self.has_unsaved_changes():
            return function(*args)
        self._pending = (name, function, args)
        case = self.session.open_case.case.name
        self.app.state.wf_pending = {"action": name, "text": f"{case} has unsaved changes."}
        return None

    def resolve_pending(self, choice):
        """The answer to the unsaved-work prompt: "save", "discard" or "cancel"."""
        pending, self._pending = self._pending, None
        self.app.state.wf_pending = None
        if pending is None or choice == "cancel":
            return None
        if choice == "save":
            self.save()
        elif choice == "discard":
            self._discard_autosave()
        else:
            raise ValueError(f"Unknown choice {choice!r}: save, discard or cancel")
        _name, function, args = pending
        return function(*args)

    def autosave_now(self, unsaved=None):
        """Keep the open case's unsaved work for this user; returns the case name when something was kept.
        `unsaved`: the answer of `has_unsaved_changes()` when the caller has it already."""
        current, user = self.session.open_case, self.session.user
        if self.autosave is None or user is None or not (self.has_unsaved_changes() if unsaved is None else unsaved):
            return None
        self.autosave.save(user.id, current.case.id, self.labelmap(), answered_text(self.app.state.form_answers))
        return current.case.name

    def _discard_autosave(self):
        current, user = self.session.open_case, self.session.user
        if self.autosave is not None and current is not None and user is not None:
            self.autosave.discard(user.id, current.case.id)

    def _offer_autosave(self, current):
        user = self.session.user
        kept = self.autosave.load(user.id, current.case.id) if self.autosave is not None else None
        if kept is None or np.array_equal(kept.labelmap.array_kji, self._baseline[0]):
            return
        self.app.state.wf_restore = {"text": f"Unsaved work on {current.case.name} from {kept.age_text()} was "
                                             "kept. Restore it?"}

    def restore_choice(self, choice):
        """"restore": put the autosaved labelmap and answers in the scene (still unsaved); "discard": delete it."""
        self.app.state.wf_restore = None
        current, user = self.session.open_case, self.session.user
        if current is None or self.autosave is None:
            return None
        if choice == "discard":
            return self.autosave.discard(user.id, current.case.id)
        kept = self.autosave.load(user.id, current.case.id)
        if kept is None:
            raise WorkflowError("The kept work is no longer there")
        self._fill_segments(kept.labelmap)
        self.app.state.form_answers = {**self.app.state.form_answers, **kept.answers}
        self.app.state.wf_info = f"Restored the unsaved work on {current.case.name}: save it to keep it"
        return kept
