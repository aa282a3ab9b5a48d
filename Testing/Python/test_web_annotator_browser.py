"""The browser annotator end to end: real Chromium, real mouse events, voxel counts checked on the server.

Needs the Debian package `chromium` and Playwright from PyPI (no browser download); skipped without them.
"""
import asyncio
import os
import shutil
import time

import numpy as np
import pytest
from web_harness import CHROMIUM, CHROMIUM_ARGS, ServedApp
from web_harness import browser_points as harness_points

playwright_api = pytest.importorskip("playwright.async_api")
pytest.importorskip("trame_slicer")
if not os.path.exists(CHROMIUM):
    pytest.skip("Chromium is not installed (apt-get install -y chromium)", allow_module_level=True)

from MVAWebLib.smart_effects import SMART_EFFECTS

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
    async def open_page():
        playwright = await playwright_api.async_playwright().start()
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = await browser.new_page(viewport={"width": 1400, "height": 900})
        started = time.perf_counter()
        await page.goto(served.url)
        await page.wait_for_function(
            "document.querySelector('img.image-display-area') && "
            "document.querySelector('img.image-display-area').naturalWidth > 0", timeout=30000)
        TIMINGS["page load to first slice image"] = time.perf_counter() - started
        return playwright, browser, page
    playwright, browser, page = served.run(open_page())
    yield page
    served.run(browser.close())
    served.run(playwright.stop())


def voxel_count(served):
    return int(served.app.bridge.selected_mask().sum())


def slices_with_voxels(served):
    mask = served.app.bridge.selected_mask()
    return int((mask.reshape(mask.shape[0], -1).sum(1) > 0).sum())


async def browser_points(page, served, count=1, step=6):
    return await harness_points(page, served.app, count, step)


async def wait_for_job(served, jobs_before, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if len(served.app.runner.history) > jobs_before and not served.app.runner.busy:
            return served.app.runner.history[-1]
        await asyncio.sleep(0.05)
    raise TimeoutError("the tool job did not finish")


async def use_tool(page, served, tool_index, points, modifiers=()):
    """Select a smart tool by its button, then press, drag through `points` and release."""
    await page.click(f"#mva-tool-{tool_index}")
    await page.wait_for_function(
        f"document.querySelector('#mva-tool-{tool_index}').classList.contains('bg-primary')", timeout=10000)
    jobs = len(served.app.runner.history)
    for key in modifiers:
        await page.keyboard.down(key)
    await page.mouse.move(*points[0])
    started = time.perf_counter()
    await page.mouse.down()
    for point in points[1:]:
        await page.mouse.move(*point, steps=3)
    await page.mouse.up()
    for key in modifiers:
        await page.keyboard.up(key)
    result = await wait_for_job(served, jobs)
    TIMINGS.setdefault(SMART_EFFECTS[tool_index].title, []).append(round(time.perf_counter() - started, 3))
    assert result.error == "", result.error
    return result


async def view_screenshot(page):
    await asyncio.sleep(0.8)  # the image stream follows the server's render
    return await page.locator("img.image-display-area").first.screenshot()


def test_page_opens_the_case_in_a_slice_only_layout_and_shows_the_loading_time(page, served):
    async def scenario():
        assert await page.locator("img.image-display-area").count() == 1
        assert "opened in" in await page.inner_text("#mva-load-message")
    served.run(scenario())
    assert served.app.editor.n_segments == 1


def test_smart_brush_stroke_writes_similar_tissue_and_changes_the_view(page, served):
    async def scenario():
        before = await view_screenshot(page)
        await use_tool(page, served, 0, await browser_points(page, served, count=3, step=4))
        return before, await view_screenshot(page)
    before, after = served.run(scenario())
    assert voxel_count(served) > 50
    assert slices_with_voxels(served) == 1
    assert after != before


def test_undo_and_redo_restore_the_voxel_counts(page, served):
    painted = voxel_count(served)
    served.run(page.click("button:has(i.mdi-undo)"))
    served.run(asyncio.sleep(0.3))
    assert voxel_count(served) == 0
    served.run(page.keyboard.press("Control+y"))
    served.run(asyncio.sleep(0.3))
    assert voxel_count(served) == painted


def test_smart_regions_click_adds_whole_regions_and_shift_click_removes_them(page, served):
    before = voxel_count(served)
    point = served.run(browser_points(page, served))
    served.run(use_tool(page, served, 1, point))
    added = voxel_count(served)
    assert added > before + 100
    assert slices_with_voxels(served) > 1  # supervoxels are 3D
    served.run(use_tool(page, served, 1, point, modifiers=("Shift",)))
    assert voxel_count(served) < added


def test_smart_propagation_click_carries_the_slice_to_its_neighbours(page, served):
    served.run(page.click("button:has(i.mdi-undo)"))  # back to the brush stroke alone
    served.run(page.click("button:has(i.mdi-undo)"))
    served.run(asyncio.sleep(0.3))
    assert slices_with_voxels(served) == 1
    served.run(use_tool(page, served, 2, served.run(browser_points(page, served))))
    assert slices_with_voxels(served) > 3


def test_segment_anything_click_embeds_off_the_loop_and_writes_at_most_one_undo_step(page, served):
    undo_before = len(served.app.editor.undo_stack._command_list)
    result = served.run(use_tool(page, served, 3, served.run(browser_points(page, served))))
    assert result.label == "Segment Anything"
    logic = served.app.controllers[SMART_EFFECTS[3]].logic
    assert logic.engine.has_embedding(logic.session.key)
    assert len(served.app.editor.undo_stack._command_list) - undo_before in (0, 1)


def test_keyboard_shortcuts_toggle_overlays_and_open_the_help(page, served):
    display = served.app.editor.active_segmentation_node.GetDisplayNode()
    served.run(page.keyboard.press("o"))
    served.run(asyncio.sleep(0.3))
    assert display.GetVisibility() == 0
    served.run(page.keyboard.press("o"))
    served.run(asyncio.sleep(0.3))
    assert display.GetVisibility() == 1
    served.run(page.keyboard.press("?"))
    served.run(page.wait_for_selector("#mva-help-table", timeout=5000))
    assert "undo" in served.run(page.inner_text("#mva-help-table"))
    served.run(page.keyboard.press("Escape"))


def test_save_writes_a_seg_nrrd_next_to_the_case(page, served):
    served.run(page.click("#mva-save"))
    path = os.path.join(os.path.dirname(served.case_path), "mni_t1.seg.nrrd")
    deadline = time.time() + 10
    while not os.path.exists(path) and time.time() < deadline:
        served.run(asyncio.sleep(0.1))
    assert os.path.getsize(path) > 1000
    import resource
    TIMINGS["server peak RSS (MB, test process: server + pytest)"] = resource.getrusage(
        resource.RUSAGE_SELF).ru_maxrss // 1024
    print("\nweb timings (s):", TIMINGS)


def test_smart_brush_without_auto_apply_draws_its_preview_in_the_view_until_apply_writes_it(page, served):
    served.app.state.brush_auto_apply = False
    served.app.state.flush()
    painted = voxel_count(served)

    async def scenario():
        await page.click("#mva-tool-0")
        before = await view_screenshot(page)
        await use_tool(page, served, 0, await browser_points(page, served, count=2, step=4))
        return before, await view_screenshot(page)
    before, after = served.run(scenario())
    preview = served.app.state.overlay_pixels["preview"]
    assert preview > 50
    assert voxel_count(served) == painted  # only drawn, not written
    assert after != before
    from MVAWebLib.overlays import PREVIEW
    plane, drawn = served.app.overlay.plane, served.app.overlay.layers[PREVIEW].copy()
    volume = served.app.bridge.work_volume()
    kept = plane.sample(served.app.bridge.selected_mask(), volume.index_to_ras, order=0) > 0
    served.run(page.click("#mva-brush-apply"))
    deadline = time.time() + 10
    while served.app.state.overlay_pixels["preview"] and time.time() < deadline:
        served.run(asyncio.sleep(0.1))
    assert served.app.state.overlay_pixels["preview"] == 0
    written = plane.sample(served.app.bridge.selected_mask(), volume.index_to_ras, order=0) > 0
    assert np.array_equal(written, kept | drawn)  # Apply adds the preview and keeps what was drawn there before
    served.app.state.brush_auto_apply = True
    served.app.state.flush()


def test_smart_regions_draws_region_boundaries_and_highlights_the_region_under_the_cursor(page, served):
    points = served.run(browser_points(page, served, count=2, step=25))
    served.run(use_tool(page, served, 1, points[:1]))
    counts = dict(served.app.state.overlay_pixels)
    assert counts["boundaries"] > 1000 and counts["hover"] > 0
    voxels = voxel_count(served)

    async def hover():
        before = await view_screenshot(page)
        await page.mouse.move(*points[1], steps=4)
        deadline = time.time() + 10
        while served.app.state.overlay_pixels["hover"] == counts["hover"] and time.time() < deadline:
            await asyncio.sleep(0.05)
        return before, await view_screenshot(page)
    before, after = served.run(hover())
    assert served.app.state.overlay_pixels["hover"] != counts["hover"]
    assert voxel_count(served) == voxels  # hovering writes nothing
    assert after != before


async def press_on_view(page, served, tool_index):
    """Select a tool and click once on bright tissue; returns nothing (the click may be refused)."""
    await page.click(f"#mva-tool-{tool_index}")
    await page.wait_for_function(
        f"document.querySelector('#mva-tool-{tool_index}').classList.contains('bg-primary')", timeout=10000)
    point = (await browser_points(page, served))[0]
    await page.mouse.click(*point)


def snackbar_text(page, served, contains):
    async def wait():
        await page.wait_for_function(
            "(t) => { const e = document.querySelector('#mva-wf-error'); return e && e.innerText.includes(t); }",
            arg=contains, timeout=30000)
        text = await page.inner_text("#mva-wf-error")
        await page.click("#mva-snackbar-close")
        return text
    return served.run(wait())


def test_segment_anything_without_a_model_shows_where_to_download_one_in_the_page(page, served):
    served.app.state.sam_model = "none"
    served.app.state.flush()
    voxels = voxel_count(served)
    served.run(press_on_view(page, served, 3))
    text = snackbar_text(page, served, "No Segment Anything model")
    assert "https://" in text and "sam_vit_b" in text
    assert voxel_count(served) == voxels


def test_segment_anything_with_a_missing_or_bad_checkpoint_shows_the_error_in_the_page(page, served, tmp_path):
    served.app.state.update({"sam_model": "vit_b", "sam_checkpoint": str(tmp_path / "missing.pth")})
    served.app.state.flush()
    served.run(press_on_view(page, served, 3))
    assert "does not exist" in snackbar_text(page, served, "Segment Anything")
    bad = tmp_path / "sam_vit_b_01ec64.pth"
    bad.write_bytes(b"not a checkpoint")
    served.app.state.sam_checkpoint = str(bad)
    served.app.state.flush()
    served.run(press_on_view(page, served, 3))
    assert "not a PyTorch checkpoint" in snackbar_text(page, served, "Segment Anything")
    served.app.state.update({"sam_model": "unknown_model", "sam_checkpoint": ""})
    served.app.state.flush()
    served.run(press_on_view(page, served, 3))
    assert "Unknown model" in snackbar_text(page, served, "Segment Anything")
    served.app.state.update({"sam_model": "tiny", "sam_checkpoint": ""})
    served.app.state.flush()


def test_the_tiny_random_model_needs_the_developer_flag(served):
    from MVAWebLib.web_app import MVAWebApp
    with pytest.raises(ValueError, match="developer"):
        MVAWebApp.__init__(object.__new__(MVAWebApp), sam_model="tiny", developer=False)
    served.app.state.sam_model = "none"
    served.app.state.flush()
    served.app.developer = False
    try:
        served.app.state.sam_model = "tiny"
        served.app.state.flush()
        assert served.app.state.sam_model == "none"
        assert "developer" in served.app.state.tool_error
    finally:
        served.app.developer = True
        served.app.state.update({"sam_model": "tiny", "tool_error": ""})
        served.app.state.flush()


def test_a_long_propagation_shows_a_progress_bar_and_cancel_stops_it_without_writing(page, served):
    from SmartPropagationLib.algorithms.stop_rule import StopRule
    from MVAWebLib.smart_effects import SmartPropagationEffect
    controller = served.app.controllers[SmartPropagationEffect]
    controller.options.stop_rule = StopRule(min_area_mm2=None, area_ratio_band=None, min_quality=None,
                                            box_margin_mm=None, min_object_score=None)
    served.app.state.update({"propagation_strategy": "registration", "propagation_max_slices": 200})
    served.app.state.flush()
    voxels, jobs = voxel_count(served), len(served.app.runner.history)

    async def scenario():
        await press_on_view(page, served, 2)
        await page.wait_for_selector("#mva-progress-bar", timeout=20000)
        await wait_until_progress(served)
        shown = await page.inner_text("#mva-progress-text")
        await page.click("#mva-progress-cancel")
        result = await wait_for_job(served, jobs)
        await page.wait_for_selector("#mva-progress", state="detached", timeout=10000)
        return shown, result
    try:
        shown, result = served.run(scenario())
    finally:
        controller.options.stop_rule = None
    assert shown.endswith("%")
    assert "cancelled" in result.error
    assert voxel_count(served) == voxels  # nothing written
    assert "cancelled" in snackbar_text(page, served, "cancelled")


async def wait_until_progress(served, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if (served.app.state.job_progress or 0) > 0:
            return
        await asyncio.sleep(0.05)
    raise TimeoutError("no progress reported")
