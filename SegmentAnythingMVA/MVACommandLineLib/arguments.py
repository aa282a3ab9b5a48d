"""Checks of `mva` arguments that end in a message and exit code 2, never in a traceback.

Ranges are argparse `type=` callables (argparse prints the usage line and exits 2); output paths are
checked before a command runs, so that a long run never fails at its last step for a missing folder.
"""
import argparse
import os


class OutputPathError(ValueError):
    """An output file or folder that cannot be written (missing folder, a file where a folder is needed, ...)."""


def int_range(low, high=None):
    """An argparse type: an integer in [low, high] (no upper bound when `high` is None).

    Examples
    --------
    >>> int_range(2, 1000)("5")
    5
    """
    def parse(text):
        try:
            value = int(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low or (high is not None and value > high):
            allowed = f"at least {low}" if high is None else f"from {low} to {high}"
            raise argparse.ArgumentTypeError(f"expected a number {allowed}, got {value}")
        return value
    parse.__name__ = "integer"  # argparse names the type in its messages
    return parse


def check_output_file(path, option):
    """Raise OutputPathError unless `path` can be created or overwritten as a file (its folder exists)."""
    if path is None:
        return
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise OutputPathError(f"{option} {path} is a folder; give a file name such as {os.path.join(path, 'out.json')}")
    if not os.path.isdir(folder):
        raise OutputPathError(f"{option} {path}: the folder {folder} does not exist; create it first")
    if not os.access(folder, os.W_OK):
        raise OutputPathError(f"{option} {path}: the folder {folder} is not writable")


def check_output_folder(path, option):
    """Raise OutputPathError unless `path` is a folder or can be created as one (not an existing file)."""
    path = os.fspath(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise OutputPathError(f"{option} {path} is an existing file, not a folder; choose a folder name")
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise OutputPathError(f"{option} {path}: {parent} is a file, so the folder cannot be created")
    if not os.access(path if os.path.isdir(path) else parent, os.W_OK):
        raise OutputPathError(f"{option} {path} is not writable")


def check_choices(values, choices, option):
    """Raise UnknownChoiceError for names not in `choices` (e.g. `mva bench --only`)."""
    unknown = [v for v in values or () if v not in choices]
    if unknown:
        raise UnknownChoiceError(f"{option}: unknown {', '.join(map(repr, unknown))}; choose from {', '.join(choices)}")


class UnknownChoiceError(ValueError):
    """A name that is not one of the command's entries."""


def check_command_paths(args):
    """The message for a bad output path or entry name of a parsed `mva` command line, or None.

    Run before the command, so that nothing is computed or written when an argument is wrong.
    """
    checks = {
        "eval": lambda: _check_eval_output(args),
        "bench": lambda: _check_bench(args),
        "report": lambda: check_output_folder(args.output, "--output"),
        "data": lambda: check_output_folder(args.output, "--output"),
        "demo": lambda: check_output_folder(args.output, "--output"),
    }
    check = checks.get(args.command)
    try:
        if check is not None:
            check()
    except (OutputPathError, UnknownChoiceError) as error:
        return str(error)
    return None


def _check_eval_output(args):
    """--json can be written and is none of the input files (writing it would destroy the volume or the truth)."""
    path = getattr(args, "json", None)
    check_output_file(path, "--json")
    if path is None or not os.path.exists(path):
        return
    for option in ("volume", "truth", "checkpoint"):
        given = getattr(args, option, None)
        if given is not None and os.path.exists(given) and os.path.samefile(path, given):
            raise OutputPathError(f"--json {path} is the --{option} file; writing the result there would replace it: "
                                  "choose another file name")


def _check_bench(args):
    check_output_file(args.json, "--json")
    check_output_file(args.markdown, "--markdown")
    if args.only:
        from MVAEvaluationLib.bench import BENCHES
        check_choices(args.only, list(BENCHES), "--only")


def check_eval_inputs(args):
    """The message for an unusable `mva eval` volume, truth or checkpoint file (from headers only), or None."""
    from MVABridgeLib.volume_io import VolumeFileError, check_volume_file
    from SegmentAnythingLib.algorithms.sam_checkpoints import check_checkpoint_file
    from SegmentAnythingLib.algorithms.sam_errors import CheckpointLoadError
    try:
        for path in (args.volume, args.truth):
            check_volume_file(path)
        if args.checkpoint is not None and os.path.exists(args.checkpoint):
            check_checkpoint_file(args.checkpoint)
    except (VolumeFileError, CheckpointLoadError) as error:
        return str(error)
    return None
