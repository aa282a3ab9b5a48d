"""Unsaved work on the open case: what counts as unsaved, the save / discard / cancel prompt, and the autosave
kept for the same user (autosave.py). A mixin of WorkflowController (it uses its session, app, labelmap and
segment filling).
"""
import numpy as np
from MVAWorkflowLib.errors import WorkflowError


def answered_text(answers):
    """Form answers as compared and kept: text values, empty answers left out."""
    return {str(k): str(v) for k, v in (answers or {}).items() if v not in (None, "")}


class UnsavedWork:
    """Needs `session` (WorkflowSession), `app`, `autosave` (AutosaveStore or None), `_baseline`, `_pending`,
    `labelmap()` and `_fill_segments(labelmap)`."""

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

    def autosave_now(self):
        """Keep the open case's unsaved work for this user; returns the case name when something was kept."""
        current, user = self.session.open_case, self.session.user
        if self.autosave is None or user is None or not self.has_unsaved_changes():
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
