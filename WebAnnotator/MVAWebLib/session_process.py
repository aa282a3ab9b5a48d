"""One user's session process of the team deployment, started by wslink's launcher (WebAnnotator/deploy/).

    python -m MVAWebLib.session_process --port P --request NAME --runtime DIR --grace S

The launcher passes only the random name of a launch request that the gateway wrote into the private runtime
folder (runtime_files.py): the user it is for, the database URL and the gateway's address. The process serves
one MVAWebApp on 127.0.0.1:P (nginx proxies /session/P/ to it) and lets in only a browser that brings a
one-time ticket of that user (`WorkflowService.redeem_ticket`, checked at wslink's hello): credentials never
reach it, and another user's ticket, a used ticket or no ticket is refused. A reload or a second tab of the same
user comes back through the gateway with a fresh ticket and takes over. When the browser has gone, the unsaved
work is autosaved at once and the process ends after `--grace` seconds (wslink's idle timeout) unless a
browser comes back; it also ends soon after a logout or an expired login.
"""
import argparse
import asyncio
import logging
import os
import sys
import time

_LOG = logging.getLogger("MVAWebLib.session_process")
EXIT_AFTER_LOGOUT_S = 2.0
READY_LINE = "mva session: serving"


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="MVAWebLib.session_process", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--request", required=True, help="name of the launch request in the runtime folder")
    parser.add_argument("--runtime", required=True, help="the deployment's private runtime folder")
    parser.add_argument("--grace", type=float, default=600, help="seconds to live on after the browser left")
    return parser.parse_known_args(argv)[0]


class TicketCheck:
    """`accept(ticket)` of the SessionGuard: redeem the ticket and keep it only if it is this user's.

    Once the process is ending (`stopper.ending`: after a logout or an expired login) every browser is refused,
    so that a quick new login cannot land in a process about to exit: the gateway starts a fresh one.
    """

    def __init__(self, service, user_id, on_session, stopper=None):
        self.service = service
        self.user_id = int(user_id)
        self.on_session = on_session  # callable(SessionInfo): the workflow adopts the new session
        self.stopper = stopper

    def __call__(self, ticket):
        from MVAWorkflowLib.errors import WorkflowError
        if not isinstance(ticket, str) or len(ticket) < 20:
            return False
        if self.stopper is not None and self.stopper.ending:
            _LOG.warning("Refused a browser: this session process is ending")
            return False
        try:
            session = self.service.redeem_ticket(ticket)
        except WorkflowError as error:
            _LOG.warning("Refused a browser: %s", error)
            return False
        if session.user.id != self.user_id:
            _LOG.warning("Refused a ticket of another user for this session process")
            self.service.logout(session.token)
            return False
        try:
            self.on_session(session)
        except WorkflowError as error:
            _LOG.warning("Refused a browser: %s", error)
            self.service.logout(session.token)
            return False
        return True


def build(args, request):
    """The app, its server and guard for one launch request (no server started yet)."""
    os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
    from MVAWorkflowLib.service import WorkflowService
    from trame.app import get_server

    from MVAWebLib.autosave import AutosaveStore
    from MVAWebLib.session_guard import SessionGuard, websocket_handler
    from MVAWebLib.web_app import MVAWebApp
    from MVAWebLib.workflow_controller import ManagedLogin
    from MVAWebLib.workflow_session import WorkflowSession

    service = WorkflowService.open(request["database_url"])
    server = get_server("mva_session", client_type="vue3")
    stopper = Stopper(server)
    managed = ManagedLogin(request["gateway_url"], on_logged_out=stopper.soon)
    app = MVAWebApp(server, workflow=WorkflowSession(service, request.get("project_name")), managed=managed,
                    autosave=AutosaveStore(request["autosave_dir"]), developer=bool(request.get("developer")),
                    sam_model=request.get("sam_model") or "none")
    check = TicketCheck(service, request["user_id"], lambda session: _adopt(app, session), stopper)
    guard = SessionGuard(check, takeover=True, on_owner_left=lambda: _browser_left(app))
    server.add_protocol_to_configure(lambda protocol: protocol.registerLinkProtocol(guard))
    app.ctrl.on_server_bind.add(lambda wslink_server: _bind(wslink_server, guard, request["gateway_url"]))
    app.state.trame__template_error = (
        "<div style='padding: 2em; font-family: sans-serif'>This page is no longer connected: the session "
        f"ended, expired, or was opened in another window. <a href='{request['gateway_url']}' "
        "id='mva-back-to-login'>Back to the login page</a></div>")
    return app, guard, service, stopper


def _adopt(app, session):
    app.workflow.adopt(session)
    app.state.flush()


def _browser_left(app):
    try:
        kept = app.workflow.autosave_now()
    except (ValueError, OSError) as error:
        _LOG.warning("Autosave when the browser left failed: %s", error)
        return
    if kept:
        _LOG.info("Browser left: unsaved work on %s autosaved", kept)


def _bind(wslink_server, guard, gateway_url):
    """A page load without a ticket (a reload: trame's client drops it from the address) goes back to the
    gateway, which sends the same user back here with a new one. The page with a ticket is trame's with the
    script that goes back there too when its connection fails (session_page.py)."""
    from aiohttp import web

    from MVAWebLib.session_guard import websocket_handler
    from MVAWebLib.session_page import trame_index_html, with_reconnect
    guard.handler = websocket_handler(wslink_server)
    page = with_reconnect(trame_index_html(), gateway_url)

    @web.middleware
    async def back_to_gateway(request, handler):
        if request.path not in ("/", "/index.html"):
            return await handler(request)
        if "secret" not in request.query:
            raise web.HTTPFound(gateway_url)
        return web.Response(text=page, content_type="text/html", headers={
            "Referrer-Policy": "no-referrer",  # the ticket is in this page's address
            "Cache-Control": "no-store"})
    wslink_server.app.middlewares.append(back_to_gateway)


class Stopper:
    """Ends the process a moment after a logout or an expired login (the page first gets its redirect).

    `on_ending()` runs at once (the session record is removed, so the gateway sends the next login of this user
    to a new process rather than to this one while it shuts down); `ending` then stays True.
    """

    def __init__(self, server, on_ending=None):
        self.server = server
        self.on_ending = on_ending
        self.ending = False

    def soon(self):
        if self.ending:
            return
        self.ending = True
        if self.on_ending is not None:
            self.on_ending()
        asyncio.get_event_loop().call_later(EXIT_AFTER_LOGOUT_S, lambda: asyncio.ensure_future(self.server.stop()))


def _ready(runtime, user_id, port):
    runtime.record_session(user_id, port)
    print(READY_LINE, flush=True)  # the launcher's "ready_line" (trame blanks wslink's own ready message)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    logging.getLogger("MVAWebLib").setLevel(logging.INFO)
    from MVAWebLib.runtime_files import RuntimeFileError, RuntimeFolder
    runtime = RuntimeFolder(args.runtime)
    try:  # first, before the heavy imports (torch, VTK: minutes on a loaded host), while the request is fresh
        request = runtime.take_request(args.request)
    except RuntimeFileError as error:
        print(f"session process: {error}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    import MVAWebLib.torch_first  # noqa: F401  (before any VTK rendering import: build() imports the app)
    app, _guard, service, stopper = build(args, request)
    user_id = request["user_id"]
    stopper.on_ending = lambda: runtime.forget_session(user_id, os.getpid())
    _LOG.info("Session of user %s built in %.1f s; serving on 127.0.0.1:%s", user_id,
              time.perf_counter() - started, args.port)
    app.ctrl.on_server_ready.add(lambda **_: _ready(runtime, user_id, args.port))
    try:
        app.server.start(host="127.0.0.1", port=args.port, open_browser=False, show_connection_info=False,
                         timeout=int(args.grace))
    finally:
        _LOG.info("Session of user %s ends", user_id)
        runtime.forget_session(user_id, os.getpid())
        try:
            app.workflow.autosave_now()
        except (ValueError, OSError) as error:
            _LOG.warning("Autosave at exit failed: %s", error)
        service.database.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
