"""Shared harness of the browser tests: the web app and Playwright's async API on one asyncio loop.

Everything runs in the test's main thread: the EGL context of the offscreen views belongs to the thread that
created it, and VTK is not thread-safe, so the server is never moved to a thread of its own.
"""
import asyncio
import os
import socket
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(_ROOT, "WebAnnotator"))
os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu"]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServedApp:
    """An MVAWebApp served by a task on `loop`; `run(coro)` drives the loop until `coro` is done."""

    def __init__(self, case_path, name="mva_web_test"):
        from MVAWebLib.web_app import MVAWebApp
        from trame.app import get_server
        self.case_path = case_path
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.app = MVAWebApp(get_server(name, client_type="vue3"), cases=[case_path])
        self.app.load_case(case_path)
        self.task = None

    def start(self):
        async def serve():
            self.task = self.app.server.start(host="127.0.0.1", port=self.port, exec_mode="task",
                                              open_browser=False, show_connection_info=False,
                                              disable_logging=True)
            await self.app.server.ready
        self.run(serve())
        return self

    def run(self, coroutine, timeout=120):
        return self.loop.run_until_complete(asyncio.wait_for(coroutine, timeout))

    def stop(self):
        self.run(self.app.server.stop())
        self.app.runner.shutdown()
        pending = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
        for task in pending:
            task.cancel()
        self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self.loop.close()
        asyncio.set_event_loop(asyncio.new_event_loop())  # later tests must not find the closed loop

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/"
