"""The fast image encoder against segment_anything's own modules, at native and reduced input sizes."""
import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from segment_anything import SamPredictor

from SegmentAnythingLib.algorithms import sam_encoder, sam_models
from SegmentAnythingLib.algorithms.sam_encoder import FastImageEncoder
from SegmentAnythingLib.algorithms.sam_engine import SamEngine
from SegmentAnythingLib.algorithms.sam_errors import InvalidPromptError, SamInputError
from SegmentAnythingLib.algorithms.sam_models import build_tiny_sam

SHAPE = (100, 85)  # upsampled to the inputs below, where torch's and PIL's bilinear resizing agree


@pytest.fixture(scope="module")
def a_tiny_sam():
    return build_tiny_sam(seed=2, decoder_depth=2)


@pytest.fixture(scope="module")
def a_slice_image():
    rows, columns = np.mgrid[: SHAPE[0], : SHAPE[1]]
    square = ((abs(rows - 45) < 18) & (abs(columns - 35) < 12)) * 160
    noise = np.random.default_rng(7).integers(0, 50, SHAPE)
    return np.repeat((square + noise).astype(np.uint8)[..., None], 3, axis=2)


def stock_model_at(model, size):
    """The stock modules rescaled by hand to a ``size`` px input: what FastImageEncoder should equal."""
    scaled = copy.deepcopy(model)
    encoder, grid = scaled.image_encoder, size // 16
    resized = F.interpolate(encoder.pos_embed.detach().permute(0, 3, 1, 2), size=(grid, grid), mode="bicubic",
                            align_corners=False)
    encoder.pos_embed = torch.nn.Parameter(resized.permute(0, 2, 3, 1))
    encoder.img_size = size
    scaled.prompt_encoder.image_embedding_size = (grid, grid)
    scaled.prompt_encoder.input_image_size = (size, size)
    return scaled


@pytest.mark.parametrize("chunk", [256, 32])
def test_the_chunked_encoder_equals_the_stock_encoder(a_tiny_sam, monkeypatch, chunk):
    monkeypatch.setattr(sam_encoder, "QUERY_CHUNK", chunk)  # 32: two query rows per chunk, eight chunks
    pixels = torch.randn(1, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        expected = a_tiny_sam.image_encoder(pixels)
    torch.testing.assert_close(FastImageEncoder(a_tiny_sam.image_encoder)(pixels), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("size", [128, 192])  # 192: a 12 x 12 grid, so the 8 x 8 windows are padded
def test_a_smaller_input_encodes_like_the_stock_encoder_rescaled_by_hand(a_tiny_sam, size):
    pixels = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(4))
    with torch.inference_mode():
        expected = stock_model_at(a_tiny_sam, size).image_encoder(pixels)
    actual = FastImageEncoder(a_tiny_sam.image_encoder, size)(pixels)
    assert actual.shape == (1, 32, size // 16, size // 16)
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)


def test_bf16_encoding_stays_within_two_percent_of_fp32(a_tiny_sam):
    pixels = torch.randn(1, 3, 256, 256, generator=torch.Generator().manual_seed(1))
    exact = FastImageEncoder(a_tiny_sam.image_encoder)(pixels)
    rounded = FastImageEncoder(a_tiny_sam.image_encoder, bf16=True)(pixels)
    assert rounded.dtype == torch.float32 or rounded.dtype == torch.bfloat16
    error = ((rounded.float() - exact).norm() / exact.norm()).item()
    assert 0 < error < 0.02


def test_a_reduced_input_predicts_like_the_stock_model_rescaled_by_hand(a_tiny_sam, a_slice_image):
    engine = SamEngine(a_tiny_sam, input_size=128)
    predictor = SamPredictor(stock_model_at(a_tiny_sam, 128))
    predictor.set_image(a_slice_image)
    entry = engine.embed("k", a_slice_image)
    assert engine.frame_of(entry) == (128, 32) and entry.embedding.shape == (1, 32, 8, 8)
    assert entry.input_size == predictor.input_size == (128, 109)
    resized = torch.as_tensor(predictor.transform.apply_image(a_slice_image)).permute(2, 0, 1)[None].float()
    stock_input = predictor.model.preprocess(resized)  # PIL resizing; the engine's own resize differs by rounding
    torch.testing.assert_close(engine._encoder(128)(stock_input), predictor.features, atol=1e-5, rtol=1e-5)

    engine.cache.put("k", predictor.features, SHAPE, predictor.input_size)  # decoder compared on equal features
    points, labels, box = np.array([[35.0, 45.0], [3.0, 95.0]]), np.array([1, 0]), np.array([20, 25, 50, 65])
    masks, scores, lowres = predictor.predict(points, labels, box=box, multimask_output=False, return_logits=True)
    prediction = engine.predict("k", points, labels, box)
    np.testing.assert_allclose(prediction.scores[0], scores[0], atol=1e-4)
    np.testing.assert_allclose(prediction.lowres(0), lowres[0], atol=1e-3)
    np.testing.assert_allclose(prediction.logits(0), masks[0], atol=1e-3)
    assert prediction.mask(0).shape == SHAPE

    refined_masks, _, _ = predictor.predict(points, labels, mask_input=lowres, multimask_output=False,
                                            return_logits=True)
    refined = engine.predict("k", points, labels, previous_logits=prediction.lowres(0))
    np.testing.assert_allclose(refined.logits(0), refined_masks[0], atol=1e-3)


def test_the_onnx_decoder_handles_a_reduced_input(a_tiny_sam, a_slice_image):
    pytest.importorskip("onnxruntime")
    torch_engine = SamEngine(a_tiny_sam, input_size=128)
    onnx_engine = SamEngine(a_tiny_sam, input_size=128, backend="onnx", cache=torch_engine.cache)
    assert onnx_engine.backend == "onnx"
    torch_engine.embed("k", a_slice_image)
    point = np.array([[35.0, 45.0]])
    expected = torch_engine.predict("k", point)
    actual = onnx_engine.predict("k", point)
    np.testing.assert_allclose(actual.lowres(0), expected.lowres(0), atol=1e-3)


@pytest.mark.parametrize("size", [100, 512, 16])
def test_an_impossible_input_size_is_refused(a_tiny_sam, size):
    with pytest.raises(SamInputError, match="multiple of 16 between 32 and 256"):
        SamEngine(a_tiny_sam, input_size=size)


def test_an_embedding_of_another_input_size_decodes_as_it_was_computed(a_tiny_sam, a_slice_image):
    native = SamEngine(a_tiny_sam)
    native.embed("k", a_slice_image)
    reduced = SamEngine(a_tiny_sam, cache=native.cache, input_size=128)
    point = np.array([[35.0, 45.0]])
    np.testing.assert_array_equal(reduced.predict("k", point).lowres(0), native.predict("k", point).lowres(0))


def test_auto_encodes_each_slice_at_the_smallest_size_that_does_not_shrink_it(a_tiny_sam, a_slice_image):
    engine = SamEngine(a_tiny_sam, input_size="auto")  # native 256: sizes 128, 192, 256
    images = {"small": a_slice_image,  # 100 x 85
              "medium": np.repeat(a_slice_image, 2, axis=0)[:190],  # 190 x 85
              "large": np.repeat(np.repeat(a_slice_image, 3, axis=0), 3, axis=1)}  # 300 x 255
    expected = {"small": (128, 32), "medium": (192, 48), "large": (256, 64)}
    for key, image in images.items():
        entry = engine.embed(key, image)
        assert engine.frame_of(entry) == expected[key]
        first = engine.predict(key, np.array([[35.0, 45.0]]))
        refined = engine.predict(key, np.array([[35.0, 45.0], [3.0, 3.0]]), np.array([1, 0]),
                                 previous_logits=first.lowres(0))
        assert refined.mask(0).shape == image.shape[:2]
    with pytest.raises(InvalidPromptError, match=r"shape \(32, 32\)"):
        engine.predict("small", np.array([[35.0, 45.0]]), previous_logits=np.zeros((64, 64), np.float32))


def test_bf16_is_chosen_for_bf16_cpus_and_gpus_only(monkeypatch):
    assert sam_models.bf16_is_fast(torch.device("cpu")) == sam_models.cpu_supports_bf16()
    assert not sam_models.bf16_is_fast(torch.device("mps"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    for supported in (True, False):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: supported)
        assert sam_models.bf16_is_fast(torch.device("cuda")) is supported


def test_an_explicit_query_chunk_gives_the_same_embedding(a_tiny_sam):
    pixels = torch.randn(1, 3, 256, 256, generator=torch.Generator().manual_seed(3))
    whole = FastImageEncoder(a_tiny_sam.image_encoder, query_chunk=256 * 256)(pixels)
    rows = FastImageEncoder(a_tiny_sam.image_encoder, query_chunk=16)(pixels)
    torch.testing.assert_close(rows, whole, atol=1e-5, rtol=1e-5)


def test_input_size_text_from_settings_and_options_is_read_one_way():
    from SegmentAnythingLib.engine_factory import INPUT_SIZE_LABELS, input_size_from_text
    assert [input_size_from_text(text) for text in INPUT_SIZE_LABELS] == [None, "auto", 768, 512]
    assert input_size_from_text(None) is None and input_size_from_text("") is None
    for bad in ("fast", "-512", "0"):
        with pytest.raises(ValueError, match="full, auto or a side"):
            input_size_from_text(bad)
