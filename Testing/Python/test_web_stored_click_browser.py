"""The browser's first click on a pre-embedded case: real Chromium, `mva serve`'s embedding store option, the mask
checked in the segment on the server, and the click read from the store (no encoder run).

Prints the figures (`pytest -s`): case open on the server, page load to the first slice image, and mouse down to the
mask in the segment. CI runs the tiny random SAM; the ViT-B figure of the note comes from
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
                before = int(served.app.bridge.selected_mask().sum())
                tic = time.perf_counter()
                await page.mouse.down()
                await page.mouse.up()
                deadline = tic + 120
                while int(served.app.bridge.selected_mask().sum()) == before and time.perf_counter() < deadline:
                    await asyncio.sleep(0.005)
                return page_load, time.perf_counter() - tic
            finally:
                await browser.close()
                await playwright.stop()

        page_load, click_to_mask = served.run(click(), timeout=240)
        controller = served.app.controllers[SegmentAnythingEffect]
        logic = controller.logic
        assert int(served.app.bridge.selected_mask().sum()) > 0, (controller.message, served.app.state.tool_message)
        assert logic.stored is not None and logic.stored.hits == 1, logic.status()
        assert engine.last_embedding is None  # read from the store: the encoder never ran
        print(f"\nbrowser, {MODEL} at {SIDE or 'full'} px, {torch.get_num_threads()} torch threads: case open "
              f"(server, store looked up) {case_open:.3f} s; page load to first slice image {page_load:.3f} s; "
              f"first click on a stored slice -> mask in the segment {click_to_mask:.3f} s; "
              f"load average {os.getloadavg()[0]:.1f}")
    finally:
        served.stop()
