"""`mva embed` and `mva inference-service`: parse, build, call embed_job / http_service."""
import argparse
import os
import signal
import sys
import threading

from MVACommandLineLib.arguments import int_range
from MVABridgeLib.plane_axes import ANATOMICAL_AXES as ORIENTATIONS  # not embed_cases: keeps `mva` start fast

COMMANDS = ("embed", "inference-service")


def add_compute_commands(commands, encoder_input_size):
    """Add `embed` and `inference-service` to the `mva` subparsers (`encoder_input_size` parses --input-size)."""
    embed = commands.add_parser("embed", help="SAM embeddings of every slice of a project, a folder or a volume "
                                              "into an embedding store (a Ray job)")
    source = embed.add_mutually_exclusive_group(required=True)
    source.add_argument("--project", metavar="DB", help="workflow database (SQLite file or URL): its cases")
    source.add_argument("--cases", metavar="DIR", help="a folder of volume files or DICOM series")
    source.add_argument("--volume", metavar="FILE", help="one volume file")
    embed.add_argument("--project-name", default=None, help="with --project: which project (default: the only one)")
    embed.add_argument("--store", default=None, help="store folder (default: mva-embeddings.zarr beside the cases)")
    embed.add_argument("--axes", nargs="+", default=["axial"], choices=ORIENTATIONS)
    _model_arguments(embed, encoder_input_size)
    embed.add_argument("--window", default="auto", type=window_argument,
                       help="embedding window WIDTH,LEVEL for every case, or auto (each case's 0.5-99.5 %% range); "
                            "recorded in the store")
    embed.add_argument("--workers", type=int_range(0, 256), default=1, help="Ray workers (0: in this process, no Ray)")
    embed.add_argument("--threads-per-worker", type=int_range(1, 1024), default=None,
                       help="torch threads of each worker (default: the CPUs shared out among the workers)")
    embed.add_argument("--address", default=None, help="Ray cluster address (default: start a local Ray)")
    embed.add_argument("--object-store-mb", type=int_range(64, 10 ** 7), default=512,
                       help="object store cap of a local Ray")
    embed.add_argument("--memory-mb", type=int_range(256, 10 ** 8), default=None,
                       help="memory all Ray workers together may use (default: 70 %% of what is available, or the "
                            "cluster's); fewer workers start when they do not fit, none when one does not")
    embed.add_argument("--batch", type=int_range(1, 1024), default=4, help="slices per Ray task")
    embed.add_argument("--no-verify", action="store_true", help="skip re-checking stored records")

    service = commands.add_parser("inference-service", help="the compute worker over HTTP for remote "
                                                            "desktop and browser annotators (token required)")
    service.add_argument("--host", default="127.0.0.1", help="bind address (TLS belongs to a reverse proxy)")
    service.add_argument("--port", type=int_range(0, 65535), default=8765)
    service.add_argument("--token", default=None, help="access token (default: $MVA_INFERENCE_TOKEN)")
    service.add_argument("--threads", type=int_range(1, 1024), default=None, help="torch threads of the worker")
    service.add_argument("--project-db", default=None, help="workflow database whose projects embed jobs may name")
    service.add_argument("--store", default=None, help="embedding store of the embed jobs")
    service.add_argument("--embed-workers", type=int_range(0, 256), default=1,
                         help="Ray workers of an embed job (0: no Ray)")
    return embed, service


def _model_arguments(parser, encoder_input_size):
    parser.add_argument("--model", default="vit_b", help="tiny, vit_b, vit_l, vit_h, medsam_vit_b (or vit_b-random "
                                                         "for speed runs)")
    parser.add_argument("--checkpoint", default=None, help="checkpoint file (required for MedSAM)")
    parser.add_argument("--input-size", type=encoder_input_size, default=None,
                        help="encoder input side (512, 768, auto; default the model's own)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")


def window_argument(text):
    """--window: auto or WIDTH,LEVEL."""
    if text == "auto":
        return None
    try:
        width, level = (float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected auto or WIDTH,LEVEL such as 400,40, got {text!r}") from None
    if not width > 0:
        raise argparse.ArgumentTypeError(f"the window width must be positive, got {width:g}")
    return width, level


def run_compute_command(args):
    if args.command == "embed":
        return run_embed_command(args)
    return run_service_command(args)


def run_embed_command(args):
    from MVAComputeLib.embed_cases import (EmbedInputError, cases_from_path, cases_from_project,
                                           default_store_path, only_project)
    from MVAComputeLib.embed_job import EmbedSettings, ProgressLine, run_embed
    from SegmentAnythingLib.algorithms.sam_embedding_store import EmbeddingStoreError
    try:
        if args.project:
            cases = cases_from_project(args.project, args.project_name or only_project(args.project))
        else:
            cases = cases_from_path(args.cases or args.volume)
        store = args.store or default_store_path(cases)
        workers = max(0, args.workers)
        threads = args.threads_per_worker or max(1, (os.cpu_count() or 1) // max(1, workers))
        settings = EmbedSettings(model=args.model, checkpoint=args.checkpoint, input_size=args.input_size,
                                 device=args.device, axes=tuple(args.axes), window=args.window, workers=workers,
                                 threads_per_worker=threads, address=args.address,
                                 object_store_mb=args.object_store_mb, batch_slices=args.batch,
                                 memory_mb=args.memory_mb,
                                 verify=not args.no_verify)
        stop = threading.Event()
        previous = signal.signal(signal.SIGINT, lambda *_: stop.set())  # first Ctrl-C: stop cleanly
        try:
            print(f"mva embed: {len(cases)} cases -> {store}", file=sys.stderr)
            summary = run_embed(cases, store, settings, progress=ProgressLine(), cancel=stop)
        finally:
            signal.signal(signal.SIGINT, previous)
    except (EmbedInputError, EmbeddingStoreError, ValueError) as error:
        print(f"mva embed: {error}", file=sys.stderr)
        return 2
    if summary.cancelled:
        print(file=sys.stderr)  # end the progress line
    print(summary.text())
    return 130 if summary.cancelled else 0


def run_service_command(args):
    from MVAComputeLib.http_service import serve
    token = args.token or os.environ.get("MVA_INFERENCE_TOKEN")
    if not token:
        print("mva inference-service: set a token with --token or $MVA_INFERENCE_TOKEN", file=sys.stderr)
        return 2
    return serve(args.host, args.port, token, threads=args.threads, project_db=args.project_db,
                 store=args.store, embed_workers=args.embed_workers)
