"""The browser annotator end to end: real Chromium, real mouse events, voxel counts checked on the server.

Needs the Debian package `chromium` and Playwright from PyPI (no browser download); skipped without them.
"""
import os
import shutil
import time

import numpy as np
import pytest

from web_harness import CHROMIUM, ServedApp

playwright_api = pytest.importorskip("playwright.sync_api")
pytest.importorskip("trame_slicer")
if not os.path.exists(CHROMIUM):
    pytest.skip("Chromium is not installed (apt-get install -y chromium)", allow_module_level=True)

from scipy import ndimage  # noqa: E402

from MVAWebLib.smart_effects import SMART_EFFECTS  # noqa: E402
from MVAWebLib.tool_controllers import plane_of  # noqa: E402

TIMINGS = {}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from MVAWebLib.cases import default_case
    folder = tmp_path_factory.mktemp("cases")
    case = shutil.copy(default_case(), folder / "mni_t1.nii.gz")
    served = ServedApp(str(case)).start()
    yield served
    served.stop()


@pytest.fixture(scope="module")
def page(served):
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        started = time.perf_counter()
        page.goto(served.url)
        page.wait_for_selector("img.image-display-area", timeout=30000)
        page.wait_for_function("document.querySelector('img.image-display-area').naturalWidth > 0", timeout=30000)
        TIMINGS["page load (first view image)"] = time.perf_counter() - started
        yield page
        browser.close()


def red_view_node(app):
    views = app.slicer_app.view_manager.get_slice_views()
    return next(v.get_view_node() for v in views if v.get_view_node().GetName() == "Red")


def voxel_count(served):
    return served.call(lambda: int(served.app.bridge.selected_mask().sum()))


def slices_with_voxels(served):
    return served.call(lambda: int((served.app.bridge.selected_mask().reshape(
        served.app.bridge.work_volume().shape[0], -1).sum(1) > 0).sum()))


def white_matter_points(served, count=1, step=6):
    """Browser (x, y) of points deep in bright tissue of the axial view, from the server's slice geometry."""
    def compute():
        node = red_view_node(served.app)
        volume = served.app.bridge.work_volume()
        plane = plane_of(node, volume)
        image = plane.sample(volume.array, volume.index_to_ras)
        bright = ndimage.binary_erosion(image > np.percentile(image[image > 0], 80), iterations=4)
        rows, cols = np.nonzero(bright)
        order = np.argsort(np.abs(rows - rows.mean()) + np.abs(cols - np.percentile(cols, 25)))
        row, col = rows[order[0]], cols[order[0]]
        pixels = [(row, col + step * n) for n in range(count)]
        ras = plane.pixel_to_ras(np.array(pixels, float))
        xy_to_ras = np.array([[node.GetXYToRAS().GetElement(r, c) for c in range(4)] for r in range(4)])
        xy = (np.linalg.inv(xy_to_ras) @ np.c_[ras, np.ones(len(ras))].T).T[:, :2]
        return xy, tuple(node.GetDimensions()[:2])
    xy, (width, height) = served.call(compute)
    return xy, width, height


def to_browser(page, xy, width, height):
    box = page.locator("img.image-display-area").first.bounding_box()
    scale_x, scale_y = box["width"] / width, box["height"] / height
    return [(box["x"] + (x + 0.5) * scale_x, box["y"] + (height - 1 - y + 0.5) * scale_y) for x, y in xy]


def wait_for_job(served, jobs_before, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        history = served.call(lambda: list(served.app.runner.history))
        if len(history) > jobs_before and not served.call(lambda: served.app.runner.busy):
            return history[-1]
        time.sleep(0.1)
    raise TimeoutError("the tool job did not finish")


def use_tool(page, served, tool_index, points, modifiers=()):
    page.click(f"#mva-tool-{tool_index}")
    page.wait_for_function(f"document.querySelector('#mva-tool-{tool_index}').classList.contains('bg-primary')",
                           timeout=10000)
    jobs = served.call(lambda: len(served.app.runner.history))
    started = time.perf_counter()
    for key in modifiers:
        page.keyboard.down(key)
    page.mouse.move(*points[0])
    page.mouse.down()
    for point in points[1:]:
        page.mouse.move(*point, steps=3)
    page.mouse.up()
    for key in modifiers:
        page.keyboard.up(key)
    result = wait_for_job(served, jobs)
    TIMINGS[SMART_EFFECTS[tool_index].title] = time.perf_counter() - started
    assert result.error == "", result.error
    return result


def view_screenshot(page):
    page.wait_for_timeout(800)  # the image stream follows the server's render
    return page.locator("img.image-display-area").first.screenshot()


def test_page_opens_the_case_in_a_slice_only_layout_and_shows_the_loading_time(page, served):
    assert page.locator("img.image-display-area").count() == 1
    assert "opened in" in page.inner_text("#mva-load-message")
    assert served.call(lambda: served.app.editor.n_segments) == 1


def test_smart_brush_stroke_writes_similar_tissue_and_changes_the_view(page, served):
    before = view_screenshot(page)
    xy, width, height = white_matter_points(served, count=3, step=4)
    use_tool(page, served, 0, to_browser(page, xy, width, height))
    painted = voxel_count(served)
    assert painted > 50
    assert slices_with_voxels(served) == 1
    assert view_screenshot(page) != before


def test_undo_and_redo_buttons_restore_the_voxel_counts(page, served):
    painted = voxel_count(served)
    page.click("#mva-undo")
    page.wait_for_timeout(500)
    assert voxel_count(served) == 0
    page.keyboard.press("Control+y")
    page.wait_for_timeout(500)
    assert voxel_count(served) == painted


def test_smart_regions_click_adds_whole_regions_and_shift_click_removes_them(page, served):
    before = voxel_count(served)
    xy, width, height = white_matter_points(served, count=1)
    point = to_browser(page, xy, width, height)
    use_tool(page, served, 1, point)
    added = voxel_count(served)
    assert added > before + 100
    assert slices_with_voxels(served) > 1  # supervoxels are 3D
    use_tool(page, served, 1, point, modifiers=("Shift",))
    assert voxel_count(served) < added


def test_smart_propagation_click_carries_the_slice_to_its_neighbours(page, served):
    page.click("#mva-undo")  # back to the brush stroke alone, so propagation starts from one drawn slice
    page.click("#mva-undo")
    page.wait_for_timeout(500)
    assert slices_with_voxels(served) == 1
    xy, width, height = white_matter_points(served, count=1)
    use_tool(page, served, 2, to_browser(page, xy, width, height))
    assert slices_with_voxels(served) > 3


def test_segment_anything_click_runs_the_model_off_the_loop_and_writes_one_undo_step(page, served):
    undo_before = served.call(lambda: len(served.app.editor.undo_stack._command_list))
    xy, width, height = white_matter_points(served, count=1)
    result = use_tool(page, served, 3, to_browser(page, xy, width, height))
    assert result.label == "Segment Anything"
    assert served.call(lambda: served.app.controllers[SMART_EFFECTS[3]].logic.engine.has_embedding(
        served.app.controllers[SMART_EFFECTS[3]].logic.session.key))
    undo_after = served.call(lambda: len(served.app.editor.undo_stack._command_list))
    assert undo_after in (undo_before, undo_before + 1)  # a random tiny model may predict nothing new


def test_viewer_settings_reach_the_display_nodes(page, served):
    display = lambda: served.app.editor.active_segmentation_node.GetDisplayNode()  # noqa: E731
    page.click("#mva-overlays") if False else page.keyboard.press("o")
    page.wait_for_timeout(500)
    assert served.call(lambda: display().GetVisibility()) == 0
    page.keyboard.press("o")
    page.wait_for_timeout(500)
    assert served.call(lambda: display().GetVisibility()) == 1
    page.keyboard.press("?")
    page.wait_for_selector("#mva-help-table", timeout=5000)
    assert "undo" in page.inner_text("#mva-help-table")


def test_save_writes_a_seg_nrrd_next_to_the_case(page, served):
    page.keyboard.press("Escape")
    page.click("#mva-save")
    path = os.path.join(os.path.dirname(served.case_path), "mni_t1.seg.nrrd")
    deadline = time.time() + 10
    while not os.path.exists(path) and time.time() < deadline:
        time.sleep(0.1)
    assert os.path.getsize(path) > 1000
    print("\nweb timings (s):", {k: round(v, 2) for k, v in TIMINGS.items()})
