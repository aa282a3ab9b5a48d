"""`mva project ...`: scripting access to the annotation workflow. Thin: parse, call `WorkflowService`.

The caller is `--user` (default `$MVA_USER`); the password comes from `$MVA_PASSWORD` or a prompt.
The database is `--db` (default `$MVA_DATABASE_URL`, else `./mva-workflow.db`).
"""
import getpass
import json
import os
import sys

from MVAWorkflowLib.errors import WorkflowError


def add_project_command(subparsers):
    """Add the `project` command and its subcommands to an argparse subparsers object."""
    project = subparsers.add_parser("project", help="annotation workflow: projects, users, case queue, review")
    project.add_argument("--db", default=None, help="database URL or SQLite file (default: $MVA_DATABASE_URL "
                                                    "or ./mva-workflow.db)")
    project.add_argument("--user", default=None, help="acting user (default: $MVA_USER); password: $MVA_PASSWORD")
    commands = project.add_subparsers(dest="project_command", required=True)

    init = commands.add_parser("init", help="create or migrate the database, the first admin and a project")
    init.add_argument("name", help="project name")
    init.add_argument("--storage", default=None, help="folder for annotation files")
    from MVACommandLineLib.arguments import int_range
    init.add_argument("--annotations-per-case", type=int_range(1, 100), default=1)
    init.add_argument("--description", default="")

    user = commands.add_parser("add-user", help="admin: add a user (password from $MVA_NEW_PASSWORD or prompt)")
    user.add_argument("username")
    user.add_argument("--role", required=True, choices=("annotator", "reviewer", "admin"))
    user.add_argument("--supplier", default=None, help="organisation; created if new")

    labels = commands.add_parser("add-labels", help="admin: add labels value:name:#rrggbb[:scheme:code:meaning]")
    labels.add_argument("project")
    labels.add_argument("labels", nargs="+")

    cases = commands.add_parser("add-cases", help="admin: add the volume files or DICOM series under PATH")
    cases.add_argument("project")
    cases.add_argument("path")
    cases.add_argument("--dicom", action="store_true", help="scan for DICOM series only")

    queue = commands.add_parser("queue", help="your cases, cases to claim, cases to review")
    queue.add_argument("project")

    claim = commands.add_parser("claim", help="claim a case (default: the next available one)")
    claim.add_argument("project")
    claim.add_argument("--case", default=None)

    submit = commands.add_parser("submit", help="submit a labelmap file (NRRD/NIfTI) with form answers")
    submit.add_argument("project")
    submit.add_argument("case")
    submit.add_argument("labelmap")
    submit.add_argument("--answer", action="append", default=[], metavar="KEY=VALUE")

    review = commands.add_parser("review", help="reviewer: accept or return a case")
    review.add_argument("project")
    review.add_argument("case")
    review.add_argument("decision", choices=("accept", "return"))
    review.add_argument("--comment", default="")

    stats = commands.add_parser("stats", help="statistics tables (and plots with --output)")
    stats.add_argument("project")
    stats.add_argument("--output", default=None, help="also write tables (JSON) and PNG plots here")

    export = commands.add_parser("export", help="export annotations (.seg.nrrd, NIfTI, DICOM SEG) and answers")
    export.add_argument("project")
    export.add_argument("--output", required=True)
    export.add_argument("--format", nargs="+", default=["seg.nrrd", "nifti", "dicom-seg"],
                        choices=("seg.nrrd", "nifti", "dicom-seg"))
    export.add_argument("--status", nargs="+", default=["accepted"])
    return project


def _password(variable, prompt):
    value = os.environ.get(variable)
    if value:
        return value
    if not sys.stdin.isatty():
        raise WorkflowError(f"Set ${variable} (no terminal to ask for the password)")
    return getpass.getpass(prompt)


def _login(service, args):
    username = args.user or os.environ.get("MVA_USER")
    if not username:
        raise WorkflowError("Say who you are: --user NAME or $MVA_USER")
    return service.login(username, _password("MVA_PASSWORD", f"Password for {username}: ")).token


def _print_cases(title, cases):
    print(f"{title}:")
    for case in cases:
        last = case.reviews[-1].comment if case.reviews else ""
        print(f"  {case.id:5d}  {case.name:30s} {case.status:12s} {last}")
    if not cases:
        print("  (none)")


def _run(service, args):
    command = args.project_command
    if command == "init":
        username = args.user or os.environ.get("MVA_USER")
        if not username:
            raise WorkflowError("Name the admin: --user NAME or $MVA_USER")
        if not service.list_users_exist():
            service.create_first_admin(username, _password("MVA_PASSWORD", f"New password for {username}: "))
        token = _login(service, args)
        project = service.create_project(token, args.name, args.storage, args.annotations_per_case, args.description)
        print(f"project {project.name} (id {project.id}); annotation files in {project.storage_root}")
        return 0
    token = _login(service, args)
    if command == "add-user":
        if args.supplier and args.supplier not in {s.name for s in service.list_suppliers(token)}:
            service.create_supplier(token, args.supplier)
        user = service.create_user(token, args.username,
                                   _password("MVA_NEW_PASSWORD", f"Password for {args.username}: "),
                                   args.role, args.supplier)
        print(f"user {user.username} ({user.role}, supplier {user.supplier})")
    elif command == "add-labels":
        for label in service.add_labels(token, args.project, args.labels):
            print(f"  {label.value:3d}  {label.name:20s} {label.color}  {label.code_scheme}:{label.code_value}")
    elif command == "add-cases":
        added = service.add_cases(token, args.project, args.path, dicom=True if args.dicom else None)
        print(f"added {len(added)} case(s): {', '.join(added)}")
        for _path, message in added.refused:
            print(f"mva project add-cases: not added: {message}", file=sys.stderr)
        if added.refused:
            return 2
    elif command == "queue":
        queue = service.queue(token, args.project)
        _print_cases("mine", queue.mine)
        _print_cases("available", queue.available)
        _print_cases("to review", queue.to_review)
    elif command == "claim":
        if args.case:
            case = service.claim(token, service.case_by_name(token, args.project, args.case).id)
        else:
            case = service.claim_next(token, args.project)
        print(f"claimed {case.name} (id {case.id})" if case else "no case left to claim")
    elif command == "submit":
        from MVAWorkflowLib.storage import Labelmap
        answers = dict(item.split("=", 1) for item in args.answer if "=" in item)
        case = service.case_by_name(token, args.project, args.case)
        case = service.submit(token, case.id, Labelmap.from_file(args.labelmap), answers)
        print(f"submitted {case.name}: {case.status}")
    elif command == "review":
        case = service.case_by_name(token, args.project, args.case)
        case = service.review(token, case.id, args.decision, args.comment, expected_version=case.version)
        print(f"{case.name}: {case.status}")
    elif command == "stats":
        from MVAWorkflowLib.statistics import format_table, project_statistics, write_plots
        statistics = project_statistics(service, token, args.project)
        for name, rows in statistics.items():
            print(format_table(rows, title=f"== {name}"))
            print()
        if args.output:
            os.makedirs(args.output, exist_ok=True)
            with open(os.path.join(args.output, "statistics.json"), "w") as stream:
                json.dump(statistics, stream, indent=2, default=str)
            for path in write_plots(statistics, args.output):
                print(f"wrote {path}")
    elif command == "export":
        from MVAWorkflowLib.export import export_project
        manifest = export_project(service, token, args.project, args.output, args.format, args.status)
        print(f"exported {len(manifest['annotations'])} annotation(s) to {args.output}")
    return 0


def run_project(args):
    """Run a parsed `mva project ...` command; returns the exit code (2 on a workflow error)."""
    from MVAWorkflowLib.service import WorkflowService
    try:
        service = WorkflowService.open(args.db)
        try:
            return _run(service, args)
        finally:
            service.database.dispose()
    except WorkflowError as error:
        print(f"mva project: {error}", file=sys.stderr)
        return 2
