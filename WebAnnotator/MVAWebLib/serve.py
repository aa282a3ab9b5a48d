"""`mva serve`: start the browser annotator for one person (thin: parse, build, start).

One process holds one page state, so it serves one browser: while that browser is connected, another tab or
browser is refused at wslink's hello (session_guard.py) and sees nothing of it. Several users at once: the team
deployment (gateway.py, session_process.py, WebAnnotator/deploy/). The server never exits on its own when the
browser goes away (wslink's idle timeout is off): reload or come back later.
"""
import os
import sys

from SegmentAnythingLib.engine_factory import INPUT_SIZE_LABELS

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
NO_LOGIN_WARNING = ("WARNING: mva serve is binding to {host}: anyone who can reach this address can open, edit and "
                    "save cases, because the annotator has no login yet. Use 127.0.0.1 and an SSH tunnel instead.")


def add_serve_command(subparsers):
    """Add the `serve` subcommand to an argparse subparsers object; returns its parser."""
    serve = subparsers.add_parser("serve", help="browser annotator with the smart tools (trame-slicer)")
    source = serve.add_mutually_exclusive_group()
    source.add_argument("--volume", default=None, help="volume file to open (default: the MNI152 T1 template)")
    source.add_argument("--cases", default=None, help="folder of volume files to choose from")
    source.add_argument("--project", default=None, metavar="DB_URL_OR_FILE",
                        help="annotation workflow database (SQLAlchemy URL or SQLite file): login, case queue, "
                             "review (see `mva project`)")
    serve.add_argument("--project-name", default=None, help="workflow project to serve (default: the only one)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    from MVACommandLineLib.arguments import int_range
    serve.add_argument("--port", type=int_range(0, 65535), default=8080,
                       help="port (default: %(default)s; 0 picks a free one)")
    serve.add_argument("--sam-model", default="none", help="none (default), vit_b, vit_l, vit_h, medsam_vit_b; "
                                                           "tiny (random weights) with --developer")
    serve.add_argument("--sam-checkpoint", default=None, help="local SAM-format checkpoint file")
    serve.add_argument("--sam-input-size", default="full", choices=tuple(INPUT_SIZE_LABELS),
                       help="SAM encoder input: full (1024, as trained), auto, 768 or 512 (faster on a CPU)")
    serve.add_argument("--inference-url", default=None,
                       help="remote inference: URL of an `mva inference-service` (SAM encodes there; this machine "
                            "computes when it is unreachable)")
    serve.add_argument("--inference-token", default=None, help="its token (default: $MVA_INFERENCE_TOKEN)")
    serve.add_argument("--embedding-store", default=None,
                       help="`mva embed`'s store (default: mva-embeddings.zarr beside the cases, if there is one)")
    serve.add_argument("--open-browser", action="store_true", help="open a browser tab on start")
    serve.add_argument("--developer", action="store_true",
                       help="developer mode: offer the tiny random-weight SAM (tests of the plumbing only)")
    return serve


def configure_sam_inference(app, args, cases):
    """Remote inference and the embedding store of the Segment Anything options, from the command line."""
    from MVAComputeLib.embed_cases import default_store_for
    from MVAWebLib.smart_effects import SegmentAnythingEffect
    options = app.controllers[SegmentAnythingEffect].options
    options.remote_url = getattr(args, "inference_url", None) or ""
    options.remote_token = getattr(args, "inference_token", None) or os.environ.get("MVA_INFERENCE_TOKEN", "")
    store = getattr(args, "embedding_store", None)
    if not store:
        store = default_store_for(cases, getattr(args, "project", None), getattr(args, "project_name", None))
    options.embedding_store = store or ""


def host_warning(host, with_login=False):
    """The warning printed for a non-local bind address without login (`--project`), or None."""
    return None if host in LOCAL_HOSTS or with_login else NO_LOGIN_WARNING.format(host=host)


def open_workflow(args):
    """The WorkflowSession of `--project` / `--project-name` (the database schema is migrated if needed)."""
    from MVAWorkflowLib.service import WorkflowService

    from MVAWebLib.workflow_session import WorkflowSession, database_url
    return WorkflowSession(WorkflowService.open(database_url(args.project)), args.project_name)


def resolve_cases(args):
    """The list of case paths from --volume / --cases (default: the MNI T1)."""
    from MVAWebLib.cases import cases_in, default_case
    if args.cases:
        return cases_in(args.cases)
    return [os.path.abspath(args.volume)] if args.volume else [default_case()]


def run_serve(args):
    """Build the app, open the first case and serve until interrupted. Returns an exit status."""
    os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
    from MVAWebLib.cases import CaseNotFoundError
    project = getattr(args, "project", None)
    warning = host_warning(args.host, with_login=bool(project))
    if warning:
        print(warning, file=sys.stderr)
    from MVAWorkflowLib.errors import WorkflowError
    from sqlalchemy.exc import SQLAlchemyError
    try:
        cases = [] if project else resolve_cases(args)
        workflow = open_workflow(args) if project else None
    except (CaseNotFoundError, WorkflowError, SQLAlchemyError) as error:
        print(f"mva serve: {error}", file=sys.stderr)
        return 2
    from trame.app import get_server

    from MVAWebLib.web_app import MVAWebApp
    server = get_server("mva_serve", client_type="vue3")
    try:
        app = MVAWebApp(server, cases=cases, sam_model=args.sam_model, sam_checkpoint=args.sam_checkpoint,
                        workflow=workflow, sam_input_size=args.sam_input_size,
                        developer=getattr(args, "developer", False))
    except ValueError as error:
        print(f"mva serve: {error}", file=sys.stderr)
        return 2
    configure_sam_inference(app, args, cases)
    guard_one_browser(app)
    if workflow is None:
        try:
            app.load_case(cases[0])
        except CaseNotFoundError as error:
            print(f"mva serve: {error}", file=sys.stderr)
            return 2
        print(f"mva serve: {app.state.load_message}; http://{args.host}:{args.port}/", flush=True)
    else:
        print(f"mva serve: project database {project}; log in at http://{args.host}:{args.port}/", flush=True)
    server.start(host=args.host, port=args.port, open_browser=args.open_browser, show_connection_info=False,
                 timeout=0)
    return 0


def guard_one_browser(app):
    """Let only one browser at a time into `app`'s server (a second tab is refused); returns the guard."""
    from trame_server.protocol import CoreServer

    from MVAWebLib.session_guard import SessionGuard, shared_secret_check, websocket_handler
    guard = SessionGuard(lambda token: shared_secret_check(CoreServer.authentication_token)(token))
    app.server.add_protocol_to_configure(lambda protocol: protocol.registerLinkProtocol(guard))
    app.ctrl.on_server_bind.add(lambda wslink_server: setattr(guard, "handler", websocket_handler(wslink_server)))
    app.session_guard = guard
    return guard


def main(argv=None):
    """Stand-alone entry (python -m MVAWebLib.serve ...) until `mva serve` is wired into the CLI."""
    import argparse
    parser = argparse.ArgumentParser(prog="mva")
    add_serve_command(parser.add_subparsers(dest="command", required=True))
    return run_serve(parser.parse_args(["serve"] + list(sys.argv[1:] if argv is None else argv)))


if __name__ == "__main__":
    sys.exit(main())
