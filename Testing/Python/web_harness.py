"""Shared harness of the browser tests: the web app and Playwright's async API on one asyncio loop.

Everything runs in the test's main thread: the EGL context of the offscreen views belongs to the thread that
created it, and VTK is not thread-safe, so the server is never moved to a thread of its own.
"""
import asyncio
import os
import socket
import sys
import time

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

    def __init__(self, case_path=None, name="mva_web_test", workflow=None, one_browser=True, **app_options):
        """`one_browser`: as `mva serve` (a second tab is refused); `app_options` go to MVAWebApp (default:
        developer mode with the tiny random SAM)."""
        from MVAWebLib.serve import guard_one_browser
        from MVAWebLib.web_app import MVAWebApp
        from trame.app import get_server
        self.case_path = case_path
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        cases = [case_path] if case_path else []
        options = {"developer": True, "sam_model": "tiny", **app_options}
        self.app = MVAWebApp(get_server(name, client_type="vue3"), cases=cases, workflow=workflow, **options)
        self.guard = guard_one_browser(self.app) if one_browser else None
        if case_path:
            self.app.load_case(case_path)
        self.task = None

    def start(self):
        async def serve():
            self.task = self.app.server.start(host="127.0.0.1", port=self.port, exec_mode="task",
                                              open_browser=False, show_connection_info=False,
                                              disable_logging=True, timeout=0)
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


async def open_browser(url, viewport=(1400, 900)):
    """(playwright, browser, page) with the system Chromium; the caller closes browser and playwright."""
    from playwright.async_api import async_playwright
    playwright = await async_playwright().start()
    browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    page = await browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
    await page.goto(url)
    return playwright, browser, page


async def wait_until(predicate, timeout=20, what="the condition"):
    """Poll `predicate()` (server side) while the loop keeps serving the page."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"Timed out waiting for {what}")


def red_view_node(app):
    views = app.slicer_app.view_manager.get_slice_views()
    return next(v.get_view_node() for v in views if v.get_view_node().GetName() == "Red")


def white_matter_points(app, count=1, step=6):
    """View (x, y) of points deep in bright tissue of the axial view, from the server's slice geometry."""
    import numpy as np
    from MVAWebLib.tool_controllers import plane_of
    from scipy import ndimage
    node = red_view_node(app)
    volume = app.bridge.work_volume()
    plane = plane_of(node, volume)
    image = plane.sample(volume.array, volume.index_to_ras)
    bright = ndimage.binary_erosion(image > np.percentile(image[image > 0], 80), iterations=4)
    rows, cols = np.nonzero(bright)
    order = np.argsort(np.abs(rows - rows.mean()) + np.abs(cols - np.percentile(cols, 25)))
    row, col = rows[order[0]], cols[order[0]]
    ras = plane.pixel_to_ras(np.array([(row, col + step * n) for n in range(count)], float))
    xy_to_ras = np.array([[node.GetXYToRAS().GetElement(r, c) for c in range(4)] for r in range(4)])
    xy = (np.linalg.inv(xy_to_ras) @ np.c_[ras, np.ones(len(ras))].T).T[:, :2]
    return xy, tuple(node.GetDimensions()[:2])


async def browser_points(page, app, count=1, step=6):
    """Page coordinates of `white_matter_points` on the first slice view image."""
    xy, (width, height) = white_matter_points(app, count, step)
    box = await page.locator("img.image-display-area").first.bounding_box()
    scale_x, scale_y = box["width"] / width, box["height"] / height
    return [(box["x"] + (x + 0.5) * scale_x, box["y"] + (height - 1 - y + 0.5) * scale_y) for x, y in xy]
