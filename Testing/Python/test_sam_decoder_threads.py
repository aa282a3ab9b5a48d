"""A click decodes with the engine's own small torch thread count, on the calling thread only, and restores it."""
import threading

import numpy as np
import pytest
import torch

from SegmentAnythingLib.algorithms.sam_engine import SamEngine
from SegmentAnythingLib.algorithms.sam_models import build_tiny_sam
from SegmentAnythingLib.algorithms.torch_threads import (ThreadCountError, default_decoder_threads, thread_count,
                                                          torch_threads)

OPENMP = "OpenMP" in torch.__config__.parallel_info()


@pytest.fixture(scope="module")
def a_slice_image():
    rows, columns = np.mgrid[:90, :80]
    square = ((abs(rows - 45) < 18) & (abs(columns - 35) < 12)) * 160
    noise = np.random.default_rng(3).integers(0, 50, rows.shape)
    return np.repeat((square + noise).astype(np.uint8)[..., None], 3, axis=2)


@pytest.fixture
def two_torch_threads():
    with torch_threads(2):
        yield


def recorded_decoder_threads(engine, grid):
    """Record torch.get_num_threads() inside every decode of the engine's decoder for `grid`."""
    decoder, seen = engine._decoder(grid), []
    decode = decoder.decode

    def recording(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return decode(*args, **kwargs)

    decoder.decode = recording
    return seen


def test_the_block_runs_with_the_given_count_and_the_previous_one_comes_back_even_after_an_error(two_torch_threads):
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
    with pytest.raises(RuntimeError):
        with torch_threads(1):
            raise RuntimeError("inside")
    assert torch.get_num_threads() == 2
    with torch_threads(None):
        assert torch.get_num_threads() == 2


def test_a_click_decodes_with_the_decoder_threads_and_leaves_the_process_count_as_it_was(two_torch_threads,
                                                                                         a_slice_image):
    engine = SamEngine(build_tiny_sam(seed=1), decoder_threads=1)
    engine.embed("slice", a_slice_image)
    seen = recorded_decoder_threads(engine, engine.cache.get("slice").grid)
    one = engine.predict("slice", np.array([[35.0, 45.0]]), np.array([1]))
    assert seen == [1] and torch.get_num_threads() == 2
    assert one.threads == 1
    engine.decoder_threads = 2
    two = engine.predict("slice", np.array([[35.0, 45.0]]), np.array([1]))
    assert seen == [1, 2]
    np.testing.assert_allclose(one.lowres(0), two.lowres(0), atol=1e-4)  # the same mask, whatever the count
    assert (one.mask(0) != two.mask(0)).mean() < 1e-3


def test_the_encoder_keeps_the_process_count_when_a_click_embeds_the_slice_first(two_torch_threads,
                                                                                 a_slice_image):
    engine = SamEngine(build_tiny_sam(seed=1), decoder_threads=1)
    encoder_threads = []
    compute = engine.compute_embedding

    def recording(image):
        encoder_threads.append(torch.get_num_threads())
        return compute(image)

    engine.compute_embedding = recording
    engine.predict("slice", np.array([[35.0, 45.0]]), np.array([1]), image=a_slice_image)
    assert encoder_threads == [2]


@pytest.mark.skipif(not OPENMP, reason="per-thread counts need torch's OpenMP backend")
def test_a_click_does_not_change_the_count_of_an_encoder_thread_running_beside_it(two_torch_threads,
                                                                                  a_slice_image):
    engine = SamEngine(build_tiny_sam(seed=1), decoder_threads=1)
    engine.embed("slice", a_slice_image)
    ready, clicked, seen = threading.Event(), threading.Event(), []

    def encoder_thread():  # as a prefetcher or job thread that has set its count (torch_threads reads it first)
        with torch_threads(2):
            ready.set()
            clicked.wait(30)
            seen.append(torch.get_num_threads())

    thread = threading.Thread(target=encoder_thread)
    thread.start()
    try:
        assert ready.wait(30)
        engine.predict("slice", np.array([[35.0, 45.0]]), np.array([1]))  # decodes with 1 thread meanwhile
        clicked.set()
    finally:
        clicked.set()
        thread.join(30)
    assert seen == [2]


def test_the_decoder_threads_come_from_the_environment_else_one():
    assert default_decoder_threads({}) == 1
    assert default_decoder_threads({"MVA_DECODER_THREADS": " 3 "}) == 3
    for bad in ("0", "-1", "two", "1.5"):
        with pytest.raises(ThreadCountError, match="MVA_DECODER_THREADS"):
            default_decoder_threads({"MVA_DECODER_THREADS": bad})
    assert thread_count(2) == 2
    with pytest.raises(ThreadCountError):
        thread_count(True)


def test_an_engine_built_by_name_takes_the_decoder_threads_of_its_setting(monkeypatch):
    from SegmentAnythingLib.engine_factory import create_engine
    monkeypatch.setenv("MVA_DECODER_THREADS", "2")
    assert create_engine("tiny").decoder_threads == 2
    assert create_engine("tiny", decoder_threads=3).decoder_threads == 3
    with pytest.raises(ThreadCountError):
        SamEngine(build_tiny_sam(seed=1), decoder_threads=0)


def test_the_desktop_and_the_browser_pass_their_decoder_thread_setting_to_the_engine(monkeypatch):
    from MVAControllersLib.sam_engines import DEFAULTS, SettingsEngineSource
    from MVAWebLib.tool_controllers import SamOptions, WebSamEngines
    monkeypatch.delenv("MVA_DECODER_THREADS", raising=False)
    settings = dict(DEFAULTS, Model="tiny")
    desktop = SettingsEngineSource(settings.get, developer_mode=lambda: True)
    assert desktop.load().decoder_threads == 1  # the setting's 0: $MVA_DECODER_THREADS, else 1
    settings["DecoderThreads"] = 2
    assert desktop.load().decoder_threads == 2
    browser = WebSamEngines(SamOptions(model="tiny", decoder_threads=3))
    assert browser.load().decoder_threads == 3
