"""Shared harness of the browser tests: the web app served from a thread, Chromium through Playwright."""
import asyncio
import os
import socket
import sys
import threading

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(_ROOT, "WebAnnotator"))
os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")

CHROMIUM = "/usr/bin/chromium"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServedApp:
    """An MVAWebApp on its own asyncio loop in a thread; `call(fn)` runs fn on that loop (VTK stays there)."""

    def __init__(self, case_path, name="mva_web_test"):
        self.case_path = case_path
        self.name = name
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.error = None
        self.app = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        asyncio.set_event_loop(self.loop)
        try:
            from trame.app import get_server
            from MVAWebLib.web_app import MVAWebApp
            server = get_server(self.name, client_type="vue3")
            self.app = MVAWebApp(server, cases=[self.case_path])
            self.app.load_case(self.case_path)
            coroutine = server.start(host="127.0.0.1", port=self.port, exec_mode="coroutine", thread=True,
                                     open_browser=False, show_connection_info=False, disable_logging=True)
            task = self.loop.create_task(coroutine)
            self.loop.call_soon(self.ready.set)
            self.loop.run_until_complete(task)
        except (RuntimeError, OSError, ValueError, ImportError) as error:
            self.error = error
            self.ready.set()

    def start(self, timeout=60):
        self.thread.start()
        if not self.ready.wait(timeout) or self.error is not None:
            raise RuntimeError(f"web app did not start: {self.error}")
        return self

    def call(self, function, timeout=60):
        async def wrapper():
            return function()
        return asyncio.run_coroutine_threadsafe(wrapper(), self.loop).result(timeout)

    def stop(self):
        if self.app is not None:
            try:
                asyncio.run_coroutine_threadsafe(self.app.server.stop(), self.loop).result(10)
            except (RuntimeError, TimeoutError, asyncio.CancelledError):
                pass
            self.app.runner.shutdown()
        self.thread.join(10)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/"
