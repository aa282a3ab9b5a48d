"""`mva models`: the Segment Anything, SAM 2.1 and MedSAM2 checkpoints: list, download (progress, resume), check.

Files go where the desktop module and `create_engine` look for them (``<cache>/checkpoints``, default
``~/.cache/segment-anything-mva``, or ``$SEGMENT_ANYTHING_MVA_CACHE``). A download continues an earlier ``.part``
file; Ctrl-C keeps it for the next run. `check` builds the model from a file (yours or the cached one) on the CPU
and reports its input size, so a SAM 1 file, another size, or MedSAM2 chosen as SAM 2.1 is named before use.
"""
import sys


def add_models_command(commands):
    """Add `models` (list / download / check) to the `mva` subparsers."""
    models = commands.add_parser("models", help="SAM, SAM 2.1 and MedSAM2 checkpoints: list, download (resumable), "
                                                "check a file")
    actions = models.add_subparsers(dest="models_command", required=True)
    listing = actions.add_parser("list", help="every model, its file and whether it is on this machine")
    download = actions.add_parser("download", help="download a model's checkpoint (continues a cut-off download)")
    download.add_argument("name", help="model name, as in `mva models list`")
    download.add_argument("--url", default=None, help="a mirror instead of the published address")
    check = actions.add_parser("check", help="build the model from its checkpoint and report what it is")
    check.add_argument("name", help="model name, as in `mva models list`")
    check.add_argument("--file", default=None, help="a checkpoint file of yours (default: the downloaded one)")
    for parser in (listing, download, check):
        parser.add_argument("--cache-folder", default=None,
                            help="folder holding 'checkpoints/' (default: the extension's per-user cache)")


def model_table():
    """{name: (family, CheckpointInfo)} for every downloadable or user-supplied checkpoint."""
    from SegmentAnythingLib.algorithms.sam2_checkpoints import SAM2_CHECKPOINTS
    from SegmentAnythingLib.algorithms.sam_checkpoints import CHECKPOINTS
    return {**{name: ("sam", info) for name, info in CHECKPOINTS.items()},
            **{name: ("sam2", info) for name, info in SAM2_CHECKPOINTS.items()}}


def run_models_command(args, out=None, err=None):
    """Run `mva models ...`; returns the exit status (2: a message on `err`, 130: cancelled)."""
    out, err = out or sys.stdout, err or sys.stderr
    from SegmentAnythingLib.algorithms.sam_errors import CheckpointError, SamInputError
    table = model_table()
    if args.models_command == "list":
        return _list(table, args.cache_folder, out)
    if args.name not in table:
        print(f"mva models: unknown model {args.name!r}; choose one of {', '.join(table)}", file=err)
        return 2
    try:
        if args.models_command == "download":
            return _download(args.name, table[args.name], args.cache_folder, args.url, out, err)
        return _check(args.name, table[args.name][0], args.file, args.cache_folder, out)
    except KeyboardInterrupt:
        print(f"\nmva models: {args.name} cancelled; the partial file is kept: run the same command to resume",
              file=err)
        return 130
    except (CheckpointError, SamInputError, OSError) as error:
        print(f"mva models: {error}", file=err)
        return 2


def _folder(cache_folder):
    from pathlib import Path

    from SegmentAnythingLib.algorithms.sam_checkpoints import checkpoint_folder
    return checkpoint_folder(Path(cache_folder) if cache_folder else None)


def _list(table, cache_folder, out):
    folder = _folder(cache_folder)
    print(f"checkpoints folder: {folder}", file=out)
    for name, (family, info) in table.items():
        path = folder / info.file_name
        part = path.with_name(path.name + ".part")
        if path.is_file():
            state = f"downloaded ({path.stat().st_size / 1e6:.0f} MB)"
        elif part.is_file():
            state = f"partly downloaded ({part.stat().st_size / 1e6:.0f} MB; `mva models download {name}` resumes)"
        elif info.url is None:
            state = "supply the file yourself"
        else:
            state = "not downloaded"
        checksum = "SHA-256 pinned" if info.sha256 else "no published checksum: structural check"
        print(f"{name:18s} {family:5s} {info.file_name:28s} {state}; {checksum}", file=out)
        print(f"{'':18s} {info.description}", file=out)
    return 0


def _download(name, entry, cache_folder, url, out, err):
    family, info = entry
    if info.url is None and url is None:
        print(f"mva models: {info.description}; then give it to the tools as a file (or `mva models check "
              f"{name} --file FILE`)", file=err)
        return 2
    report = _progress_printer(name, err)
    if family == "sam2":
        from SegmentAnythingLib.algorithms.sam2_checkpoints import ensure_sam2_checkpoint
        path = ensure_sam2_checkpoint(name, cache_folder=cache_folder, url=url, progress=report)
    else:
        from SegmentAnythingLib.algorithms.sam_checkpoints import ensure_checkpoint
        path = ensure_checkpoint(name, cache_folder=cache_folder, url=url, progress=report)
    print(file=err)
    print(f"{name}: {path} ({path.stat().st_size / 1e6:.1f} MB)", file=out)
    return 0


def _progress_printer(name, err):
    shown = [-1]

    def report(done, total):
        step = int(100 * done / total) if total else int(done / 1e7)
        if step != shown[0]:
            shown[0] = step
            amount = f"{done / 1e6:.1f} / {total / 1e6:.1f} MB" if total else f"{done / 1e6:.1f} MB"
            print(f"\r{name}: {amount}", end="", file=err, flush=True)
    return report


def _check(name, family, file, cache_folder, out):
    from SegmentAnythingLib.algorithms.sam_models import parameter_count
    if family == "sam2":
        from SegmentAnythingLib.algorithms.sam2_checkpoints import ensure_sam2_checkpoint
        from SegmentAnythingLib.algorithms.sam2_models import build_sam2_model
        path = ensure_sam2_checkpoint(name, path=file, cache_folder=cache_folder, allow_download=False)
        model = build_sam2_model(name, path, "cpu")
    else:
        from SegmentAnythingLib.algorithms.sam_checkpoints import checkpoint_info, ensure_checkpoint
        from SegmentAnythingLib.algorithms.sam_models import build_sam
        path = ensure_checkpoint(name, path=file, cache_folder=cache_folder, allow_download=False,
                                 verify_sha256=True)
        model = build_sam(checkpoint_info(name).model_type, path, "cpu")
    size = int(getattr(model, "image_size", 0) or model.image_encoder.img_size)
    print(f"{name}: {path} is a {name} checkpoint: input {size} x {size} px, "
          f"{parameter_count(model) / 1e6:.1f} M parameters", file=out)
    return 0
