"""`mva project ...`: scripting access to the annotation workflow. Thin: parse, call `WorkflowService`.

The caller is `--user` (default `$MVA_USER`); the password comes from `$MVA_PASSWORD` (or the file named by
`$MVA_PASSWORD_FILE`) or a prompt. The database is `--db` (default `$MVA_DATABASE_URL`, else
`./mva-workflow.db`); a PostgreSQL password goes in `$MVA_DATABASE_PASSWORD` or `$MVA_DATABASE_PASSWORD_FILE`,
never in `--db` (refused: every local user can read a command line with `ps`). Each command logs in for at most
`CLI_SESSION_SECONDS` and logs out when done. Errors are one line on stderr and exit status 2.
"""
import getpass
import json
import os
import sys

from MVAWorkflowLib.errors import WorkflowError

ERROR_EXIT = 2


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

    revisions = commands.add_parser("revisions", help="the saved revisions of an annotation, each checked against "
                                                      "its checksum; --restore N saves revision N again as the newest")
    revisions.add_argument("project")
    revisions.add_argument("case")
    revisions.add_argument("--annotator", default=None, help="whose annotation (reviewers, admins; default: yours)")
    revisions.add_argument("--restore", type=int_range(1), default=None, metavar="N")

    users = commands.add_parser("users", help="admin: list users, disable / enable one, reset a password")
    users_commands = users.add_subparsers(dest="users_command", required=True)
    users_commands.add_parser("list", help="every user with role, supplier and whether active")
    for name, text in (("disable", "disable a user (their sessions end at once)"), ("enable", "enable a user again"),
                       ("reset-password", "set a new password ($MVA_NEW_PASSWORD or prompt); sessions end")):
        users_commands.add_parser(name, help=text).add_argument("username")

    audit = commands.add_parser("audit", help="admin: the audit log, newest first")
    audit.add_argument("--limit", type=int_range(1, 10 ** 6), default=50)
    audit.add_argument("--action", default=None, help="only this action (e.g. login_failed, save_annotation)")
    audit.add_argument("--entity", default=None, help="only this kind of record (user, case, project, ...)")
    audit.add_argument("--json", action="store_true", help="one JSON object per line")
    return project


def _password(variable, prompt):
    from MVAWorkflowLib.security import read_secret
    value = read_secret(variable)
    if value:
        return value
    if not sys.stdin.isatty():
        raise WorkflowError(f"Set ${variable} or ${variable}_FILE (no terminal to ask for the password)")
    return getpass.getpass(prompt)


def _login(service, args):
    from MVAWorkflowLib.service_accounts import CLI_SESSION_SECONDS
    username = args.user or os.environ.get("MVA_USER")
    if not username:
        raise WorkflowError("Say who you are: --user NAME or $MVA_USER")
    return service.login(username, _password("MVA_PASSWORD", f"Password for {username}: "),
                         address=f"cli:{getpass.getuser()}"[:64], lifetime_s=CLI_SESSION_SECONDS).token


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
    try:
        return _run_logged_in(service, args, token)
    finally:
        service.logout(token)


def _print_users(users):
    print(f"  {'id':>5s}  {'user':20s} {'role':10s} {'supplier':20s} active")
    for user in users:
        print(f"  {user.id:5d}  {user.username:20s} {user.role:10s} {user.supplier or '-':20s} "
              f"{'yes' if user.active else 'NO'}")


def _run_users(service, args, token):
    command = args.users_command
    if command == "list":
        _print_users(service.list_users(token))
        return 0
    if command == "reset-password":
        password = _password("MVA_NEW_PASSWORD", f"New password for {args.username}: ")
        user = service.update_user(token, args.username, password=password)
        print(f"user {user.username}: password changed, their sessions ended")
    else:
        user = service.update_user(token, args.username, active=command == "enable")
        print(f"user {user.username}: {'enabled' if user.active else 'disabled, their sessions ended'}")
    return 0


def _run_audit(service, args, token):
    entries = service.audit_log(token, entity=args.entity, action=args.action, limit=max(1, args.limit))
    for entry in entries:
        if args.json:
            print(json.dumps({"at": entry.at.isoformat(), "actor": entry.actor, "action": entry.action,
                              "entity": entry.entity, "entity_id": entry.entity_id, "detail": entry.detail},
                             default=str))
        else:
            target = f"{entry.entity} {entry.entity_id}" if entry.entity_id is not None else entry.entity
            detail = " ".join(f"{key}={value}" for key, value in sorted(entry.detail.items()))
            print(f"{entry.at:%Y-%m-%d %H:%M:%S}  {entry.actor or '-':15s} {entry.action:18s} {target:12s} {detail}")
    if not entries:
        print("(no entries)")
    return 0


def _run_logged_in(service, args, token):
    command = args.project_command
    if command == "users":
        return _run_users(service, args, token)
    if command == "audit":
        return _run_audit(service, args, token)
    if command == "revisions":
        case = service.case_by_name(token, args.project, args.case)
        if args.restore is not None:
            restored = service.restore_revision(token, case.id, args.restore)
            print(f"{case.name}: revision {args.restore} saved again as revision {restored.revision}")
        for item in service.annotation_revisions(token, case.id, args.annotator, verify=True):
            print(f"  r{item.revision:<4d} {item.saved_at:%Y-%m-%d %H:%M:%S}  {'intact ' if item.intact else 'DAMAGED'}"
                  f"{'  (current)' if item.current else ''}")
        return 0
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
            from MVAWorkflowLib.storage import atomic_write, private_folder
            private_folder(args.output)  # 0700: the tables name people and cases
            atomic_write(os.path.join(args.output, "statistics.json"), lambda temporary: _write_json(
                temporary, statistics))
            for path in write_plots(statistics, args.output):
                print(f"wrote {path}")
    elif command == "export":
        from MVAWorkflowLib.export import export_project
        manifest = export_project(service, token, args.project, args.output, args.format, args.status)
        print(f"exported {len(manifest['annotations'])} annotation(s) to {args.output}")
    return 0


def _write_json(path, value):
    with open(path, "w") as stream:
        json.dump(value, stream, indent=2, default=str)


def _fail(message, secret=None):
    if secret and len(secret) >= 4:  # a one-letter password would garble the message, and is no secret anyway
        message = message.replace(secret, "***")
    print(f"mva project: {message}", file=sys.stderr)
    return ERROR_EXIT


def run_project(args):
    """Run a parsed `mva project ...` command; returns the exit code (2 on any error, with a one-line message)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError

    from MVAWorkflowLib.database import PASSWORD_ENV, default_url, hide_password, url_has_password
    from MVAWorkflowLib.security import read_secret
    from MVAWorkflowLib.service import WorkflowService
    if args.db and url_has_password(args.db):
        return _fail(f"do not put the database password in --db (every local user can read command lines with "
                     f"ps): set ${PASSWORD_ENV} or ${PASSWORD_ENV}_FILE, or put the URL in $MVA_DATABASE_URL_FILE")
    try:
        secret = read_secret(PASSWORD_ENV)
        if args.db is None and read_secret("MVA_DATABASE_URL"):
            secret = secret or make_url(read_secret("MVA_DATABASE_URL")).password
    except (WorkflowError, ArgumentError):
        secret = None
    service = None
    try:
        service = WorkflowService.open(args.db)
        return _run(service, args)
    except WorkflowError as error:
        return _fail(str(error), secret)
    except OperationalError as error:
        where = hide_password(args.db or default_url())
        reason = str(error.orig).strip().splitlines()[0] if error.orig else type(error).__name__
        return _fail(f"cannot use {where}: {reason}", secret)
    except SQLAlchemyError as error:
        return _fail(f"database error ({type(error).__name__}); nothing was changed", secret)
    except OSError as error:
        return _fail(f"{error.strerror or error}{f': {error.filename}' if error.filename else ''}", secret)
    except KeyboardInterrupt:
        return _fail("interrupted; nothing was changed by the unfinished step")
    finally:
        if service is not None:
            service.database.dispose()
