"""The browser's first click on a pre-embedded case: real Chromium, `mva serve`'s embedding store option, the mask
checked in the segment on the server, and the click read from the store (no encoder run).

Prints the figures (`pytest -s`): case open on the server, page load to the first slice image, and the click from
the page's mouse down to the event on the server, to the mask in the segment and to the first view image after it
shown in the page. Page and server share one machine, so both are timed on the wall clock (epoch): the page's
``performance.timeOrigin + performance.now()``, the server's ``time.time()``. Playwright and the server share
one asyncio loop here, so Playwright's own calls wait while the server works: the figures never use them.
CI runs the tiny random SAM; the ViT-B figure of the note comes from
``MVA_STORED_CLICK_MODEL=vit_b-random MVA_STORED_CLICK_SIDE=512 pytest -s <this file>``
(``MVA_STORED_CLICK_THREADS`` sets the server's torch threads). A figure, not a timed assertion.
"""
import argparse
import asyncio
import os
import time

import pytest
from web_harness import CHROMIUM, ServedApp, browser_points, open_browser

playwright_api = pytest.importorskip("playwright.async_api")
pytest.importorskip("trame_slicer")
if not os.path.exists(CHROMIUM):
    pytest.skip("Chromium is not installed (apt-get install -y chromium)", allow_module_level=True)

MODEL = os.environ.get("MVA_STORED_CLICK_MODEL", "tiny")
SIDE = int(os.environ["MVA_STORED_CLICK_SIDE"]) if os.environ.get("MVA_STORED_CLICK_SIDE") else None
THREADS = int(os.environ["MVA_STORED_CLICK_THREADS"]) if os.environ.get("MVA_STORED_CLICK_THREADS") else None


@pytest.fixture(scope="module")
def a_stored_case(tmp_path_factory):
    from MVAComputeLib.embed_bench import write_cropped_mni
    from MVAComputeLib.embed_cases import cases_from_path
    from MVAComputeLib.embed_job import EmbedSettings, run_embed
    folder = tmp_path_factory.mktemp("stored")
    case = write_cropped_mni(str(folder), 4)
    store = str(folder / "mva-embeddings.zarr")
    summary = run_embed(cases_from_path(case), store, EmbedSettings(model=MODEL, input_size=SIDE, workers=0,
                                                                    threads_per_worker=THREADS or 2))
    assert summary.slices_computed == 4
    return case, store


def loaded_engine(served):
    """The model as `mva serve` holds it after its first load (a random-weight ViT-B is built directly)."""
    from MVAWebLib.smart_effects import SegmentAnythingEffect
    engines = served.app.controllers[SegmentAnythingEffect].engines
    served.app.state.update({"sam_model": MODEL, "sam_input_size": str(SIDE) if SIDE else "full"})
    engines.options.model = MODEL  # as the page's options say once its state arrives
    engines.options.input_size = str(SIDE) if SIDE else "full"
    if MODEL.endswith("-random"):
        from MVAComputeLib.operations import engine_for_spec
        engines.engine = engine_for_spec({"name": MODEL, "input_size": SIDE})
    else:
        engines.load()
    return engines.loaded()


# In the page, on the wall clock: the mouse down, and every new image of the first slice view.
PAGE_CLOCK = """() => {
  const clock = () => performance.timeOrigin + performance.now();
  window.mvaClick = {down: null, frames: []};
  document.addEventListener('mousedown', () => { window.mvaClick.down = clock(); }, true);
  new MutationObserver(() => window.mvaClick.frames.push(clock()))
      .observe(document.querySelector('img.image-display-area'), {attributes: true, attributeFilter: ['src']});
}"""


def timed_click_path(controller, engine, bridge):
    """Server-side wall-clock times of the click: press gestures reaching the controller, decodes (end time and
    seconds) and writes into the segmentation (its representation-modified events)."""
    import slicer
    times = {"arrived": [], "decoded": [], "decoder_s": [], "written": []}
    on_gesture, predict = controller.on_gesture, engine.predict

    def timed_gesture(slice_node, gesture, *args):
        from MVAWebLib.smart_effects import Gesture
        if gesture is Gesture.PRESS:
            times["arrived"].append(time.time())
        return on_gesture(slice_node, gesture, *args)

    def timed_predict(*args, **kwargs):
        tic = time.time()
        try:
            return predict(*args, **kwargs)
        finally:
            times["decoded"].append(time.time())
            times["decoder_s"].append(times["decoded"][-1] - tic)

    controller.on_gesture, engine.predict = timed_gesture, timed_predict
    segmentation = bridge.backend.segmentation_node().GetSegmentation()
    segmentation.AddObserver(slicer.vtkSegmentation.RepresentationModified,
                             lambda *_: times["written"].append(time.time()))
    return times


def test_a_first_click_on_a_stored_slice_takes_its_mask_from_the_store(a_stored_case):
    import torch

    from MVAWebLib.serve import configure_sam_inference
    from MVAWebLib.smart_effects import SMART_EFFECTS, SegmentAnythingEffect
    case, store = a_stored_case
    if THREADS:
        torch.set_num_threads(THREADS)
    served = ServedApp(None, sam_model=MODEL)
    try:
        configure_sam_inference(served.app, argparse.Namespace(embedding_store=store), [case])
        engine = loaded_engine(served)
        assert engine is not None
        started = time.perf_counter()
        served.app.load_case(case)  # the model is loaded: the store is looked up here
        case_open = time.perf_counter() - started
        assert served.app.controllers[SegmentAnythingEffect].engines.loaded() is engine  # still loaded
        served.start()
        tool = SMART_EFFECTS.index(SegmentAnythingEffect)

        controller = served.app.controllers[SegmentAnythingEffect]
        server = timed_click_path(controller, engine, served.app.bridge)

        async def click():
            playwright, browser, page = await open_browser(served.url)
            try:
                await page.wait_for_function(
                    "document.querySelector('img.image-display-area') && "
                    "document.querySelector('img.image-display-area').naturalWidth > 0", timeout=60000)
                page_load = await page.evaluate("performance.now()") / 1000.0  # since the navigation started
                await page.click(f"#mva-tool-{tool}")
                await page.wait_for_function(
                    f"document.querySelector('#mva-tool-{tool}').classList.contains('bg-primary')", timeout=10000)
                (point,) = await browser_points(page, served.app)
                await page.mouse.move(*point)
                await page.evaluate(PAGE_CLOCK)
                before = int(served.app.bridge.selected_mask().sum())
                await page.mouse.down()
                await page.mouse.up()
                deadline = time.time() + 120
                while int(served.app.bridge.selected_mask().sum()) == before and time.time() < deadline:
                    await asyncio.sleep(0.005)
                written = server["written"][-1] if server["written"] else time.time()
                while time.time() < deadline:  # the first view image made after the mask was written
                    clicked = await page.evaluate("window.mvaClick")
                    shown = [frame / 1000.0 for frame in clicked["frames"] if frame / 1000.0 > written]
                    if shown:
                        return page_load, clicked["down"] / 1000.0, shown[0]
                    await asyncio.sleep(0.02)
                return page_load, clicked["down"] / 1000.0, float("nan")
            finally:
                await browser.close()
                await playwright.stop()

        page_load, down, shown = served.run(click(), timeout=240)
        logic = controller.logic
        assert int(served.app.bridge.selected_mask().sum()) > 0, (controller.message, served.app.state.tool_message)
        assert logic.stored is not None and logic.stored.hits == 1, logic.status()
        assert engine.last_embedding is None  # read from the store: the encoder never ran
        assert server["arrived"] and server["written"] and down <= server["arrived"][0] <= server["written"][-1]
        arrived, written = server["arrived"][0], server["written"][-1]
        print(f"\nbrowser, {MODEL} at {SIDE or 'full'} px, {torch.get_num_threads()} torch threads: case open "
              f"(server, store looked up) {case_open:.3f} s; page load to first slice image {page_load:.3f} s; "
              f"first click on a stored slice: mouse down in the page -> press on the server {arrived - down:.3f} s "
              f"-> decoded {server['decoded'][0] - down:.3f} s (decoder {server['decoder_s'][0]:.3f} s) "
              f"-> mask in the segment {written - down:.3f} s -> view image with it shown in the page "
              f"{shown - down:.3f} s; load average {os.getloadavg()[0]:.1f}")
    finally:
        served.stop()
