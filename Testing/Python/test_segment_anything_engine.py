"""SamEngine, embedding cache, prefetch and input checks, with the tiny random SAM (no weights)."""
import threading

import numpy as np
import pytest
import torch
from segment_anything import SamPredictor

from SegmentAnythingLib.algorithms import sam_models
from SegmentAnythingLib.algorithms.sam_embedding_cache import EmbeddingCache
from SegmentAnythingLib.algorithms.sam_engine import SamEngine
from SegmentAnythingLib.algorithms.sam_errors import (
    DeviceUnavailableError,
    EmptyPromptError,
    InvalidImageError,
    InvalidPromptError,
    MissingEmbeddingError,
    PromptOutsideImageError,
    SamInputError,
)
from SegmentAnythingLib.algorithms.sam_models import build_tiny_sam, choose_device, parameter_count
from SegmentAnythingLib.algorithms.sam_prefetch import EmbeddingPrefetcher

SHAPE = (233, 197)  # rows, columns of an MNI axial slice


@pytest.fixture(scope="module")
def a_tiny_sam():
    return build_tiny_sam(seed=0)


@pytest.fixture
def an_engine(a_tiny_sam):
    return SamEngine(a_tiny_sam)


@pytest.fixture(scope="module")
def an_embedded_engine(a_tiny_sam, a_slice_image):
    engine = SamEngine(a_tiny_sam)
    engine.embed("k", a_slice_image)
    return engine


@pytest.fixture(scope="module")
def a_slice_image():
    rows, columns = np.mgrid[: SHAPE[0], : SHAPE[1]]
    disc = ((rows - 110) ** 2 + (columns - 90) ** 2 < 40 ** 2) * 150
    noise = np.random.default_rng(3).integers(0, 40, SHAPE)
    return np.repeat((disc + noise).astype(np.uint8)[..., None], 3, axis=2)


@pytest.fixture
def a_stock_predictor(a_tiny_sam, a_slice_image):
    predictor = SamPredictor(a_tiny_sam)
    predictor.set_image(a_slice_image)
    return predictor


def test_the_tiny_sam_is_small_and_embeds_on_a_16_by_16_grid(a_tiny_sam, an_engine, a_slice_image):
    assert 150_000 < parameter_count(a_tiny_sam) < 200_000
    embedding, input_size = an_engine.compute_embedding(a_slice_image)
    assert embedding.shape == (1, 32, 16, 16) and input_size == (256, 216)


def test_the_embedding_is_cached_as_float16_and_computed_once(an_engine, a_slice_image):
    calls = []

    def provider():
        calls.append(1)
        return a_slice_image

    first = an_engine.embed(("vol", 97), provider)
    second = an_engine.embed(("vol", 97), provider)
    assert first is second and len(calls) == 1
    assert first.embedding.dtype == torch.float16 and first.original_size == SHAPE
    assert an_engine.cache.memory_bytes == 32 * 16 * 16 * 2


def test_decoding_matches_the_stock_predictor(an_engine, a_stock_predictor, a_slice_image):
    # Same features in both paths, so only the decoder and the upsampling are compared.
    an_engine.cache.put("k", a_stock_predictor.features, SHAPE, a_stock_predictor.input_size)
    point, label = np.array([[90.0, 110.0]]), np.array([1])
    masks, scores, lowres = a_stock_predictor.predict(point, label, multimask_output=True, return_logits=True)
    prediction = an_engine.predict("k", point, label)
    assert prediction.tokens == tuple(1 + np.argsort(-scores))
    np.testing.assert_allclose(prediction.scores, np.sort(scores)[::-1], atol=1e-4)
    for index, token in enumerate(prediction.tokens):
        np.testing.assert_allclose(prediction.lowres(index), lowres[token - 1], atol=1e-3)
        np.testing.assert_allclose(prediction.logits(index), masks[token - 1], atol=1e-3)
    assert prediction.mask(0).shape == SHAPE and prediction.mask(0).dtype == bool


def test_points_box_and_previous_mask_match_the_stock_predictor(an_engine, a_stock_predictor):
    an_engine.cache.put("k", a_stock_predictor.features, SHAPE, a_stock_predictor.input_size)
    first = an_engine.predict("k", np.array([[90.0, 110.0]]))
    points, labels, box = np.array([[90.0, 110.0], [20.0, 30.0]]), np.array([1, 0]), np.array([40, 60, 150, 170])
    masks, scores, _ = a_stock_predictor.predict(points, labels, box=box, mask_input=first.lowres(0)[None],
                                                 multimask_output=False, return_logits=True)
    refined = an_engine.predict("k", points, labels, box, previous_logits=first.lowres(0))
    assert refined.tokens[0] == 0 and len(refined) == 3
    np.testing.assert_allclose(refined.scores[0], scores[0], atol=1e-4)
    np.testing.assert_allclose(refined.logits(0), masks[0], atol=1e-3)


def test_a_two_layer_decoder_matches_the_stock_predictor(a_slice_image):
    model = build_tiny_sam(seed=5, decoder_depth=2)
    predictor = SamPredictor(model)
    predictor.set_image(a_slice_image)
    engine = SamEngine(model)
    engine.cache.put("k", predictor.features, SHAPE, predictor.input_size)
    points, labels = np.array([[90.0, 110.0], [20.0, 30.0]]), np.array([1, 0])
    masks, scores, lowres = predictor.predict(points, labels, multimask_output=False, return_logits=True)
    prediction = engine.predict("k", points, labels)
    np.testing.assert_allclose(prediction.lowres(0), lowres[0], atol=1e-3)
    refined_masks, _, _ = predictor.predict(points, labels, mask_input=lowres, multimask_output=False,
                                            return_logits=True)
    refined = engine.predict("k", points, labels, previous_logits=lowres[0])
    np.testing.assert_allclose(refined.logits(0), refined_masks[0], atol=1e-3)


def test_multimask_always_sorts_the_three_outputs_by_score(an_embedded_engine):
    prediction = an_embedded_engine.predict("k", np.array([[90, 110], [95, 115]]), multimask="always")
    assert set(prediction.tokens) == {1, 2, 3}
    assert list(prediction.scores) == sorted(prediction.scores, reverse=True)


def test_bf16_decoding_stays_close_to_fp32(a_tiny_sam, a_slice_image):
    exact, fast = SamEngine(a_tiny_sam), SamEngine(a_tiny_sam, bf16_decoder=True)
    point = np.array([[90.0, 110.0]])
    a = exact.predict("k", point, image=a_slice_image, multimask="never").logits(0)
    b = fast.predict("k", point, image=a_slice_image, multimask="never").logits(0)
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.99


def test_the_onnx_runtime_decoder_matches_torch(a_tiny_sam, an_embedded_engine):
    onnx_engine = SamEngine(a_tiny_sam, cache=an_embedded_engine.cache, backend="onnx")
    assert onnx_engine.backend == "onnx"
    prompt = dict(points_xy=np.array([[90.0, 110.0], [20.0, 30.0]]), labels=np.array([1, 0]),
                  box_xyxy=np.array([40, 60, 150, 170]))
    reference = an_embedded_engine.predict("k", **prompt)
    result = onnx_engine.predict("k", **prompt)
    assert result.tokens == reference.tokens
    np.testing.assert_allclose(result.lowres_logits.numpy(), reference.lowres_logits.numpy(), atol=1e-4)
    refined = onnx_engine.predict("k", np.array([[90.0, 110.0]]), previous_logits=reference.lowres(0))
    expected = an_embedded_engine.predict("k", np.array([[90.0, 110.0]]), previous_logits=reference.lowres(0))
    np.testing.assert_allclose(refined.scores, expected.scores, atol=1e-4)


def test_an_unknown_backend_is_rejected(a_tiny_sam):
    with pytest.raises(SamInputError, match="backend"):
        SamEngine(a_tiny_sam, backend="tensorrt")


@pytest.mark.parametrize("image, message", [
    (np.zeros((50, 60), np.uint8), "rows, columns, 3"),
    (np.zeros((50, 60, 4), np.uint8), "rows, columns, 3"),
    (np.zeros((50, 60, 3), np.float32), "uint8"),
    (np.zeros((1, 60, 3), np.uint8), "too small"),
    ([[0, 1]], "NumPy array"),
])
def test_bad_images_raise_invalid_image_error(an_engine, image, message):
    with pytest.raises(InvalidImageError, match=message):
        an_engine.embed(("bad", message), image)


@pytest.mark.parametrize("kwargs, error, message", [
    ({}, EmptyPromptError, "point or draw a box"),
    ({"points_xy": np.array([[197.0, 10.0]])}, PromptOutsideImageError, "x=197"),
    ({"points_xy": np.array([[5.0, -1.0]])}, PromptOutsideImageError, "outside"),
    ({"points_xy": np.array([[5.0, 5.0]]), "labels": np.array([2])}, InvalidPromptError, "Labels"),
    ({"points_xy": np.array([5.0, 5.0])}, InvalidPromptError, "shape"),
    ({"box_xyxy": np.array([50, 50, 10, 60])}, InvalidPromptError, "swapped"),
    ({"box_xyxy": np.array([0, 0, 10, 300])}, PromptOutsideImageError, "Box corner"),
    ({"points_xy": np.array([[5.0, 5.0]]), "previous_logits": np.zeros((256, 256))}, InvalidPromptError, "64, 64"),
    ({"points_xy": np.array([[5.0, 5.0]]), "multimask": "maybe"}, InvalidPromptError, "multimask"),
])
def test_bad_prompts_raise_value_errors(an_embedded_engine, kwargs, error, message):
    with pytest.raises(error, match=message):
        an_embedded_engine.predict("k", **kwargs)
    assert issubclass(error, ValueError)


def test_a_prompt_on_a_slice_without_embedding_needs_the_image(an_engine):
    with pytest.raises(MissingEmbeddingError, match="pass its image"):
        an_engine.predict("never embedded", np.array([[1.0, 1.0]]))


def test_a_candidate_index_out_of_range_is_rejected(an_embedded_engine):
    prediction = an_embedded_engine.predict("k", np.array([[9.0, 9.0]]))
    with pytest.raises(SamInputError, match="out of range"):
        prediction.mask(3)


def test_the_cache_evicts_least_recently_used_beyond_its_memory_limit():
    entry_bytes = 256 * 64 * 64 * 2
    cache = EmbeddingCache(max_memory_mb=2.5 * entry_bytes / 2**20)
    for key in "abc":
        cache.put(key, torch.zeros(1, 256, 64, 64), (512, 512), (1024, 1024))
        cache.get("a")
    assert "a" in cache and "b" not in cache and "c" in cache
    assert cache.memory_bytes == 2 * entry_bytes == 2 * 2**21


def test_the_disk_folder_survives_a_new_cache_and_ignores_corrupt_files(tmp_path):
    EmbeddingCache(folder=tmp_path).put(("vol", 1), torch.ones(1, 4, 2, 2), (10, 12), (21, 256))
    entry = EmbeddingCache(folder=tmp_path).get(("vol", 1))
    assert entry.original_size == (10, 12) and entry.input_size == (21, 256)
    assert torch.equal(entry.embedding, torch.ones(1, 4, 2, 2, dtype=torch.float16))
    for path in tmp_path.iterdir():
        path.write_bytes(b"garbage")
    assert EmbeddingCache(folder=tmp_path).get(("vol", 1)) is None


def test_the_cache_rejects_a_zero_memory_limit():
    with pytest.raises(SamInputError, match="positive"):
        EmbeddingCache(max_memory_mb=0)


def test_two_threads_embedding_one_slice_compute_it_once(an_engine, a_slice_image):
    calls, gate = [], threading.Event()

    def slow_provider():
        calls.append(1)
        gate.wait(5)
        return a_slice_image

    results = []
    threads = [threading.Thread(target=lambda: results.append(an_engine.embed("shared", slow_provider)))
               for _ in range(2)]
    for thread in threads:
        thread.start()
    gate.set()
    for thread in threads:
        thread.join(10)
    assert len(calls) == 1 and len(results) == 2 and results[0] is results[1]


def test_prefetch_embeds_requested_slices_and_reports_failures(an_engine, a_slice_image):
    prefetcher = EmbeddingPrefetcher(an_engine)

    def broken():
        raise OSError("slice 9 unreadable")

    try:
        prefetcher.request([(("vol", k), lambda: a_slice_image) for k in range(4)] + [(("vol", 9), broken)])
        assert prefetcher.wait_idle(20)
        status = prefetcher.status()
        assert (status.ready, status.pending, status.failed) == (4, 0, 1)
        assert status.summary() == "SAM: 4 slices ready, 0 pending, 1 failed"
        assert "unreadable" in status.last_error
        assert an_engine.has_embedding(("vol", 3))
    finally:
        prefetcher.stop()


def test_cancelling_prefetch_drops_pending_slices(an_engine, a_slice_image):
    prefetcher, gate = EmbeddingPrefetcher(an_engine), threading.Event()

    def blocked():
        gate.wait(5)
        return a_slice_image

    try:
        prefetcher.request([("p0", blocked), ("p1", lambda: a_slice_image), ("p2", lambda: a_slice_image)])
        assert prefetcher.status().pending == 3
        prefetcher.cancel()
        gate.set()
        assert prefetcher.wait_idle(10)
        assert not an_engine.has_embedding("p1") and not an_engine.has_embedding("p2")
        assert prefetcher.status().pending == 0
    finally:
        prefetcher.stop()


def test_prefetch_requests_need_callable_providers(an_engine):
    prefetcher = EmbeddingPrefetcher(an_engine)
    try:
        with pytest.raises(SamInputError, match="callable"):
            prefetcher.request([("k", np.zeros((4, 4, 3), np.uint8))])
    finally:
        prefetcher.stop()


def test_device_choice_falls_back_to_cpu_and_rejects_missing_accelerators(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert choose_device("auto") == torch.device("cpu")
    assert choose_device("cpu") == torch.device("cpu")
    with pytest.raises(DeviceUnavailableError, match="CUDA"):
        choose_device("cuda")
    with pytest.raises(DeviceUnavailableError, match="MPS"):
        choose_device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert choose_device("auto") == torch.device("cuda")
    with pytest.raises(DeviceUnavailableError, match="Unknown device"):
        choose_device("tpu-ish")


def test_an_unknown_model_type_is_rejected():
    with pytest.raises(ValueError, match="vit_b"):
        sam_models.build_random_sam("vit_s")
