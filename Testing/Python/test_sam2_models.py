"""SAM 2 models and checkpoints: the tiny random SAM 2 runs the real engine; local checkpoint files good and bad."""
import numpy as np
import pytest
import torch

from SegmentAnythingLib.algorithms import sam2_models
from SegmentAnythingLib.algorithms.sam2_checkpoints import check_archive, ensure_sam2_checkpoint
from SegmentAnythingLib.algorithms.sam2_engine import Sam2Engine
from SegmentAnythingLib.algorithms.sam_embedding_cache import EmbeddingCache
from SegmentAnythingLib.algorithms.sam_errors import (
    CheckpointDownloadError, CheckpointLoadError, CheckpointMissingError, ChecksumMismatchError,
    PromptOutsideImageError, UnknownModelError)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny_model():
    return sam2_models.build_tiny_sam2(seed=0)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory, tiny_model):
    path = tmp_path_factory.mktemp("sam2") / "sam2_tiny_test.pt"
    torch.save({"model": tiny_model.state_dict()}, path)
    return path


def slice_image(seed=1, shape=(50, 70)):
    rng = np.random.default_rng(seed)
    return (rng.random(shape + (3,)) * 255).astype(np.uint8)


def test_tiny_sam2_engine_gives_three_candidates_at_slice_size_and_refines(tiny_model):
    engine = Sam2Engine(tiny_model)
    image = slice_image()
    first = engine.predict("slice", np.array([[20.0, 30.0]]), np.array([1]), image=image)
    assert len(first) == 3 and sorted(first.tokens) == [1, 2, 3]  # one point: the three multimask outputs
    assert first.scores[0] >= first.scores[1] >= first.scores[2]
    assert first.mask(0).shape == (50, 70) and first.lowres(0).shape == (32, 32)
    refined = engine.predict("slice", np.array([[20.0, 30.0], [60.0, 10.0]]), np.array([1, 0]),
                             np.array([5.0, 5.0, 65.0, 45.0]), previous_logits=first.lowres(0))
    assert refined.tokens[0] == 0  # box and points: the single-mask output first
    plain = engine.predict("slice", np.array([[20.0, 30.0], [60.0, 10.0]]), np.array([1, 0]),
                           np.array([5.0, 5.0, 65.0, 45.0]))
    assert not np.allclose(refined.logits(0), plain.logits(0))  # the previous mask is really an input
    with pytest.raises(PromptOutsideImageError):
        engine.predict("slice", np.array([[90.0, 30.0]]))


def test_sam2_embeddings_are_cached_and_bounded_in_memory(tiny_model):
    engine = Sam2Engine(tiny_model, EmbeddingCache(max_memory_mb=0.05))
    entry_bytes = engine.embed("a", slice_image(1)).nbytes
    assert engine.has_embedding("a")
    for index in range(6):
        engine.embed(f"s{index}", slice_image(index))
    assert engine.cache.memory_bytes <= max(0.05e6, entry_bytes) and len(engine.cache) == 3
    features = engine.features("s5")
    again = engine.features("s5", lambda: pytest.fail("a cached slice was embedded again"))
    assert torch.equal(features.top, again.top) and features.top.shape == (1, 32, 8, 8)


def test_a_saved_checkpoint_loads_back_into_the_same_weights(tiny_model, tiny_checkpoint):
    path = ensure_sam2_checkpoint("sam2.1_tiny", path=tiny_checkpoint)
    loaded = sam2_models.build_sam2_model(sam2_models.tiny_sam2_spec(128), path, "cpu")
    for name, tensor in tiny_model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name


def test_a_truncated_checkpoint_is_refused_before_loading(tiny_checkpoint, tmp_path):
    cut = tmp_path / "sam2.1_hiera_tiny.pt"
    cut.write_bytes(tiny_checkpoint.read_bytes()[: tiny_checkpoint.stat().st_size // 2])
    with pytest.raises(ChecksumMismatchError, match="cut off"):
        ensure_sam2_checkpoint("sam2.1_tiny", path=cut)
    with pytest.raises(CheckpointLoadError, match="not a readable"):
        sam2_models.build_sam2_model("sam2.1_tiny", cut)


def test_a_checkpoint_of_another_size_or_family_names_the_right_model(tiny_checkpoint, tmp_path):
    state = torch.load(tiny_checkpoint, weights_only=True)["model"]
    fake_small = {k: v for k, v in state.items() if not k.startswith("image_encoder.trunk.")}
    fake_small["image_encoder.trunk.patch_embed.proj.weight"] = torch.zeros(96, 3, 7, 7)
    for block in range(16):
        fake_small[f"image_encoder.trunk.blocks.{block}.norm1.weight"] = torch.zeros(96)
    small_path = tmp_path / "small.pt"
    torch.save({"model": fake_small}, small_path)
    with pytest.raises(CheckpointLoadError, match="sam2.1_small"):
        sam2_models.build_sam2_model("sam2.1_tiny", small_path)
    sam1_path = tmp_path / "sam_vit_b.pth"
    torch.save({"image_encoder.patch_embed.proj.weight": torch.zeros(768, 3, 16, 16)}, sam1_path)
    with pytest.raises(CheckpointLoadError, match="SAM 1"):
        sam2_models.build_sam2_model("sam2.1_tiny", sam1_path)
    with pytest.raises(UnknownModelError):
        sam2_models.build_sam2_model("sam3_huge")


def test_medsam2_is_built_at_512_px_and_its_file_is_not_taken_for_sam21(tmp_path):
    model = sam2_models.build_random_sam2("medsam2")
    assert model.image_size == 512 and model.sam_image_embedding_size == 32
    sam2_models.check_model_geometry(model, 512)
    with pytest.raises(CheckpointLoadError, match="1024"):
        sam2_models.check_model_geometry(model, 1024)
    trunk_and_memory = {k: v for k, v in model.state_dict().items()
                        if k.startswith("image_encoder.trunk.") or k == "memory_attention.norm.weight"}
    medsam_file = tmp_path / "MedSAM2_latest.pt"
    torch.save({"model": trunk_and_memory}, medsam_file)
    with pytest.raises(CheckpointLoadError, match="Choose the model medsam2"):
        sam2_models.build_sam2_model("sam2.1_tiny", medsam_file)
    sam21_file = tmp_path / "sam2.1_hiera_tiny.pt"
    torch.save({"model": trunk_and_memory}, sam21_file)
    with pytest.raises(CheckpointLoadError, match="sam2.1_tiny"):
        sam2_models.build_sam2_model("medsam2", sam21_file)


def test_a_config_that_disagrees_with_the_spec_is_refused():
    spec = sam2_models.tiny_sam2_spec(128)
    wrong = sam2_models.Sam2ModelSpec("wrong", spec.config, 256, 16, 5, spec.overrides)
    with pytest.raises(CheckpointLoadError, match="128"):
        sam2_models.build_sam2_model(wrong)


def test_offline_the_checkpoint_is_missing_with_where_to_get_it(tmp_path):
    with pytest.raises(CheckpointMissingError, match="sam2.1_hiera_small.pt"):
        ensure_sam2_checkpoint("sam2.1_small", cache_folder=tmp_path, allow_download=False)
    with pytest.raises(CheckpointDownloadError, match="offline"):
        ensure_sam2_checkpoint("sam2.1_small", cache_folder=tmp_path, url="http://127.0.0.1:9/sam2.1_hiera_small.pt")
    with pytest.raises(CheckpointMissingError):
        ensure_sam2_checkpoint("medsam2", path=tmp_path / "absent.pt")


def test_a_download_is_kept_when_complete_and_deleted_when_cut_off(tiny_checkpoint, tmp_path):
    got = ensure_sam2_checkpoint("medsam2", cache_folder=tmp_path, url=tiny_checkpoint.as_uri())
    assert got.name == "MedSAM2_latest.pt" and got.read_bytes() == tiny_checkpoint.read_bytes()
    check_archive(got)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(tiny_checkpoint.read_bytes()[:5000])
    with pytest.raises(ChecksumMismatchError):
        ensure_sam2_checkpoint("sam2.1_tiny", cache_folder=tmp_path / "other", url=cut.as_uri())
    assert not (tmp_path / "other" / "checkpoints" / "sam2.1_hiera_tiny.pt").exists()
