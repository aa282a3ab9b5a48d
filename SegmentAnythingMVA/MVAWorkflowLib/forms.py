"""Case forms: question definitions and answer validation (choice, number, text, yes/no)."""
import math

from MVAWorkflowLib.errors import InvalidInputError
from MVAWorkflowLib.models import QuestionKind

_YES = {"yes", "y", "true", "1"}
_NO = {"no", "n", "false", "0"}


def check_question(key, kind, choices):
    """Validate a question definition; returns `(kind_value, choices_list)`.

    Raises
    ------
    InvalidInputError
        Empty key, unknown kind, a choice question without at least two choices, choices on another kind.
    """
    if not key or not str(key).strip():
        raise InvalidInputError("A question needs a key (a short identifier used in exports)")
    try:
        kind = QuestionKind(kind).value
    except ValueError:
        raise InvalidInputError(f"Unknown question kind {kind!r}: use choice, number, text or yes_no") from None
    choices = [str(c) for c in (choices or [])]
    if kind == QuestionKind.CHOICE.value and len(set(choices)) < 2:
        raise InvalidInputError(f"Choice question {key!r} needs at least two different choices")
    if kind != QuestionKind.CHOICE.value and choices:
        raise InvalidInputError(f"Only choice questions take choices ({key!r} is {kind})")
    return kind, choices


def normalise_answer(key, kind, choices, value):
    """Check one answer against its question and return it in stored form.

    A yes/no answer becomes a bool (accepts True/False, "yes"/"no"); a number a float; text a str; a choice
    one of `choices`. `None` / empty text means "not answered".

    Raises
    ------
    InvalidInputError
        The value does not fit the question.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if kind == QuestionKind.YES_NO.value:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _YES or text in _NO:
            return text in _YES
        raise InvalidInputError(f"Answer to {key!r} must be yes or no, not {value!r}")
    if kind == QuestionKind.NUMBER.value:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise InvalidInputError(f"Answer to {key!r} must be a number, not {value!r}") from None
        if isinstance(value, bool) or not math.isfinite(number):
            raise InvalidInputError(f"Answer to {key!r} must be a finite number, not {value!r}")
        return number
    if kind == QuestionKind.CHOICE.value:
        if str(value) not in choices:
            raise InvalidInputError(f"Answer to {key!r} must be one of {', '.join(choices)}; got {value!r}")
        return str(value)
    return str(value)
