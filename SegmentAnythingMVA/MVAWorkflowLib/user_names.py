"""What a user name may hold, and when two user names look alike.

A user name is shown in user lists, review screens, the audit log and exports; it never names a file (annotations,
autosaves and session files are named by user id), so `..`, `a/b` or quotes are harmless and kept as typed. What is
refused is what makes one name pass for another on screen: control and invisible characters, text-direction
overrides (U+202E shows the rest of the name backwards), Latin mixed with Cyrillic or Greek letters ("ann" with a
Cyrillic a), and a name equal to an existing one after Unicode compatibility folding and case folding (fullwidth
"ANN", "Ann").
"""
import unicodedata

from MVAWorkflowLib.errors import InvalidInputError

MAX_LENGTH = 100
# control, format (zero-width, direction overrides), surrogate, private-use, unassigned, line/paragraph separators
REFUSED_CATEGORIES = ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")
LOOK_ALIKE_SCRIPTS = ("LATIN", "CYRILLIC", "GREEK")
# what a wrongly decoded byte becomes, and what a login name's NUL is replaced by (login_throttle)
REPLACEMENT_CHARACTER = "\ufffd"


def check_user_name(name):
    """The user name to store (surrounding spaces removed), or InvalidInputError saying what to change.

    Raises
    ------
    InvalidInputError
        Empty, longer than `MAX_LENGTH`, holding a character of `REFUSED_CATEGORIES`, or mixing the letters of
        the scripts in `LOOK_ALIKE_SCRIPTS`.
    """
    if not isinstance(name, str) or not name.strip():
        raise InvalidInputError("A user needs a user name")
    name = name.strip()
    if len(name) > MAX_LENGTH:
        raise InvalidInputError(f"A user name has at most {MAX_LENGTH} characters; this one has {len(name)}")
    refused = [c for c in name if unicodedata.category(c) in REFUSED_CATEGORIES or c == REPLACEMENT_CHARACTER]
    if refused:
        shown = ", ".join(f"U+{ord(c):04X}" for c in dict.fromkeys(refused))
        raise InvalidInputError(f"A user name cannot hold control, invisible or text-direction characters ({shown}): "
                                "type the name again without them")
    scripts = {_script(c) for c in name if c.isalpha()} & set(LOOK_ALIKE_SCRIPTS)
    if len(scripts) > 1:
        raise InvalidInputError(f"A user name cannot mix {' and '.join(sorted(s.title() for s in scripts))} letters "
                                "(they look alike on screen): use one alphabet")
    return name


def look_alike_key(name):
    """The form two names share when they look alike: NFKC compatibility folding, then case folding."""
    return unicodedata.normalize("NFKC", str(name)).casefold()


def check_not_look_alike(name, existing_names):
    """Raise InvalidInputError when `name` looks like one of `existing_names` (but is not equal to it: an equal
    name is the database's unique constraint's to refuse)."""
    key = look_alike_key(name)
    for other in existing_names:
        if other != name and look_alike_key(other) == key:
            raise InvalidInputError(f"A user name that looks like an existing user's ({other!r}) cannot be told apart "
                                    "in lists and reviews: choose another name")


def _script(character):
    try:
        return unicodedata.name(character).split()[0]
    except ValueError:
        return ""
