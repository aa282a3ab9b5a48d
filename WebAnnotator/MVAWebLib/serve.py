"""`mva serve`: start the browser annotator (thin: parse, build, start)."""
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
    serve.add_argument("--port", type=int, default=8080, help="port (default: %(default)s; 0 picks a free one)")
    serve.add_argument("--sam-model", default="tiny", help="tiny, vit_b, vit_l, vit_h, medsam_vit_b")
    serve.add_argument("--sam-checkpoint", default=None, help="local SAM-format checkpoint file")
    serve.add_argument("--sam-input-size", default="full", choices=tuple(INPUT_SIZE_LABELS),
                       help="SAM encoder input: full (1024, as trained), auto, 768 or 512 (faster on a CPU)")
    serve.add_argument("--open-browser", action="store_true", help="open a browser tab on start")
    return serve


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
    app = MVAWebApp(server, cases=cases, sam_model=args.sam_model, sam_checkpoint=args.sam_checkpoint,
                    workflow=workflow, sam_input_size=args.sam_input_size)
    if workflow is None:
        try:
            app.load_case(cases[0])
        except CaseNotFoundError as error:
            print(f"mva serve: {error}", file=sys.stderr)
            return 2
        print(f"mva serve: {app.state.load_message}; http://{args.host}:{args.port}/", flush=True)
    else:
        print(f"mva serve: project database {project}; log in at http://{args.host}:{args.port}/", flush=True)
    server.start(host=args.host, port=args.port, open_browser=args.open_browser, show_connection_info=False)
    return 0


def main(argv=None):
    """Stand-alone entry (python -m MVAWebLib.serve ...) until `mva serve` is wired into the CLI."""
    import argparse
    parser = argparse.ArgumentParser(prog="mva")
    add_serve_command(parser.add_subparsers(dest="command", required=True))
    return run_serve(parser.parse_args(["serve"] + list(sys.argv[1:] if argv is None else argv)))


if __name__ == "__main__":
    sys.exit(main())
