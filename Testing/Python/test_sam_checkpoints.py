"""Checkpoint table, cache folder and resumable verified download, against local files only."""
import hashlib
import http.server
import threading

import numpy as np
import pytest
import torch

from SegmentAnythingLib.algorithms import sam_checkpoints
from SegmentAnythingLib.algorithms.sam_checkpoints import (
    CHECKPOINTS,
    CHUNK_BYTES,
    CheckpointInfo,
    checkpoint_folder,
    default_cache_folder,
    download_file,
    ensure_checkpoint,
    file_sha256,
)
from SegmentAnythingLib.algorithms.sam_errors import (
    CheckpointDownloadError,
    CheckpointLoadError,
    CheckpointMissingError,
    ChecksumMismatchError,
    DownloadCancelledError,
    UnknownModelError,
)
from SegmentAnythingLib.algorithms.sam_models import build_sam, build_tiny_sam, load_weights

PAYLOAD = np.random.default_rng(7).integers(0, 256, 2 * CHUNK_BYTES + 12345, dtype=np.uint8).tobytes()
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves PAYLOAD at /model.pth with single-range support; records Range headers."""

    ranges = []
    honour_range = True

    def do_GET(self):  # noqa: N802 (http.server API)
        if self.path != "/model.pth":
            self.send_error(404)
            return
        header = self.headers.get("Range")
        type(self).ranges.append(header)
        start = 0
        if header and self.honour_range:
            start = int(header.split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(PAYLOAD) - start))
        self.end_headers()
        self.wfile.write(PAYLOAD[start:])

    def log_message(self, *args):
        pass


@pytest.fixture
def a_server():
    _RangeHandler.ranges = []
    _RangeHandler.honour_range = True
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RangeHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_table_lists_the_official_checkpoints_with_size_and_sha256():
    assert set(CHECKPOINTS) == {"vit_h", "vit_l", "vit_b", "medsam_vit_b"}
    assert CHECKPOINTS["vit_b"].url == "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth"
    assert CHECKPOINTS["vit_b"].size_bytes == 375042383
    assert CHECKPOINTS["vit_h"].sha256.startswith("a7bf3b02")
    for name in ("vit_h", "vit_l", "vit_b"):
        info = CHECKPOINTS[name]
        assert info.model_type == name and len(info.sha256) == 64 and info.url.endswith(info.file_name)
    assert CHECKPOINTS["medsam_vit_b"].url is None and CHECKPOINTS["medsam_vit_b"].model_type == "vit_b"


def test_the_cache_folder_follows_the_environment_variable(monkeypatch, tmp_path):
    monkeypatch.setenv(sam_checkpoints.CACHE_ENV_VAR, str(tmp_path / "here"))
    assert default_cache_folder() == tmp_path / "here"
    assert checkpoint_folder() == tmp_path / "here" / "checkpoints"
    monkeypatch.delenv(sam_checkpoints.CACHE_ENV_VAR)
    assert default_cache_folder().name == "segment-anything-mva"


def test_download_streams_verifies_and_renames(a_server, tmp_path):
    seen = []
    path = download_file(a_server + "/model.pth", tmp_path / "model.pth", expected_size=len(PAYLOAD),
                         sha256=PAYLOAD_SHA, progress=lambda done, total: seen.append((done, total)))
    assert path.read_bytes() == PAYLOAD
    assert not (tmp_path / "model.pth.part").exists()
    assert seen[-1] == (len(PAYLOAD), len(PAYLOAD)) and len(seen) == 3


def test_a_partial_file_is_resumed_with_a_range_request(a_server, tmp_path):
    (tmp_path / "model.pth.part").write_bytes(PAYLOAD[:100000])
    download_file(a_server + "/model.pth", tmp_path / "model.pth", expected_size=len(PAYLOAD),
                  sha256=PAYLOAD_SHA)
    assert _RangeHandler.ranges == ["bytes=100000-"]
    assert (tmp_path / "model.pth").read_bytes() == PAYLOAD


def test_a_server_ignoring_the_range_restarts_from_zero(a_server, tmp_path):
    _RangeHandler.honour_range = False
    (tmp_path / "model.pth.part").write_bytes(b"x" * 5000)
    download_file(a_server + "/model.pth", tmp_path / "model.pth", sha256=PAYLOAD_SHA)
    assert (tmp_path / "model.pth").read_bytes() == PAYLOAD


def test_cancel_keeps_the_partial_file_and_a_second_call_resumes(a_server, tmp_path):
    calls = []
    with pytest.raises(DownloadCancelledError, match="resumes"):
        download_file(a_server + "/model.pth", tmp_path / "model.pth", expected_size=len(PAYLOAD),
                      sha256=PAYLOAD_SHA, progress=lambda done, total: calls.append(done),
                      cancel=lambda: len(calls) >= 1)
    assert (tmp_path / "model.pth.part").stat().st_size == CHUNK_BYTES
    download_file(a_server + "/model.pth", tmp_path / "model.pth", expected_size=len(PAYLOAD), sha256=PAYLOAD_SHA)
    assert _RangeHandler.ranges[-1] == f"bytes={CHUNK_BYTES}-"
    assert (tmp_path / "model.pth").read_bytes() == PAYLOAD


def test_a_checksum_mismatch_deletes_the_download(a_server, tmp_path):
    with pytest.raises(ChecksumMismatchError, match="SHA-256"):
        download_file(a_server + "/model.pth", tmp_path / "model.pth", sha256="0" * 64)
    assert not (tmp_path / "model.pth").exists() and not (tmp_path / "model.pth.part").exists()


def test_a_short_download_is_rejected_by_size(a_server, tmp_path):
    with pytest.raises(ChecksumMismatchError, match="expected"):
        download_file(a_server + "/model.pth", tmp_path / "model.pth", expected_size=len(PAYLOAD) + 1)


def test_a_missing_remote_file_names_the_folder_to_put_it_in(a_server, tmp_path):
    with pytest.raises(CheckpointDownloadError, match="HTTP 404") as raised:
        download_file(a_server + "/other.pth", tmp_path / "model.pth")
    assert str(tmp_path) in str(raised.value) and "model.pth" in str(raised.value)


def test_offline_download_fails_with_a_clear_message(tmp_path):
    with pytest.raises(CheckpointDownloadError, match="offline"):
        download_file("http://127.0.0.1:9/model.pth", tmp_path / "model.pth", timeout_s=2)


def test_file_urls_download_too(tmp_path):
    source = tmp_path / "source.bin"
    source.write_bytes(PAYLOAD)
    target = download_file(source.as_uri(), tmp_path / "copy.bin", sha256=PAYLOAD_SHA)
    assert file_sha256(target) == PAYLOAD_SHA


@pytest.fixture
def a_table_entry(monkeypatch):
    info = CheckpointInfo("test_model", "vit_b", "test_model.pth", None, len(PAYLOAD), PAYLOAD_SHA, "test")
    monkeypatch.setitem(CHECKPOINTS, "test_model", info)
    return info


def test_ensure_checkpoint_downloads_once_into_the_cache_folder(a_server, a_table_entry, tmp_path):
    path = ensure_checkpoint("test_model", cache_folder=tmp_path, url=a_server + "/model.pth")
    assert path == tmp_path / "checkpoints" / "test_model.pth" and path.read_bytes() == PAYLOAD
    again = ensure_checkpoint("test_model", cache_folder=tmp_path, url=a_server + "/missing", verify_sha256=True)
    assert again == path and len(_RangeHandler.ranges) == 1


def test_ensure_checkpoint_without_download_names_file_and_folder(a_table_entry, tmp_path):
    with pytest.raises(CheckpointMissingError) as raised:
        ensure_checkpoint("vit_b", cache_folder=tmp_path, allow_download=False)
    assert "sam_vit_b_01ec64.pth" in str(raised.value) and str(tmp_path / "checkpoints") in str(raised.value)
    with pytest.raises(CheckpointMissingError, match="MedSAM"):
        ensure_checkpoint("medsam_vit_b", cache_folder=tmp_path)
    with pytest.raises(CheckpointMissingError, match="does not exist"):
        ensure_checkpoint("medsam_vit_b", path=tmp_path / "nowhere.pth")


def test_a_corrupt_cached_file_is_reported(a_table_entry, tmp_path):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    (folder / "test_model.pth").write_bytes(b"\0" * len(PAYLOAD))
    assert ensure_checkpoint("test_model", cache_folder=tmp_path) == folder / "test_model.pth"
    with pytest.raises(ChecksumMismatchError, match="corrupt"):
        ensure_checkpoint("test_model", cache_folder=tmp_path, verify_sha256=True)
    (folder / "test_model.pth").write_bytes(PAYLOAD[:10])
    with pytest.raises(ChecksumMismatchError, match="delete it"):
        ensure_checkpoint("test_model", cache_folder=tmp_path)


def test_an_unknown_model_name_is_rejected():
    with pytest.raises(UnknownModelError, match="vit_b"):
        ensure_checkpoint("vit_x")


def test_weights_round_trip_into_a_tiny_model(tmp_path):
    torch.save(build_tiny_sam(seed=1).state_dict(), tmp_path / "tiny.pth")
    model = load_weights(build_tiny_sam(seed=2), tmp_path / "tiny.pth")
    reference = build_tiny_sam(seed=1)
    assert torch.equal(model.mask_decoder.iou_token.weight, reference.mask_decoder.iou_token.weight)


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"PK\x03\x04broken zip"])
def test_a_corrupt_checkpoint_raises_a_load_error(tmp_path, content):
    (tmp_path / "bad.pth").write_bytes(content)
    with pytest.raises(CheckpointLoadError, match="bad.pth"):
        load_weights(build_tiny_sam(), tmp_path / "bad.pth")


def test_a_truncated_checkpoint_raises_a_load_error(tmp_path):
    torch.save(build_tiny_sam().state_dict(), tmp_path / "full.pth")
    data = (tmp_path / "full.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointLoadError, match="corrupt"):
        load_weights(build_tiny_sam(), tmp_path / "cut.pth")


def test_a_file_without_weights_is_not_a_checkpoint(tmp_path):
    torch.save({"epoch": 3, "note": "optimizer only"}, tmp_path / "meta.pth")
    with pytest.raises(CheckpointLoadError, match="no model weights"):
        load_weights(build_tiny_sam(), tmp_path / "meta.pth")


def test_a_checkpoint_of_another_model_type_is_named(tmp_path):
    torch.save({"image_encoder.patch_embed.proj.weight": torch.zeros(1024, 3, 1, 1)}, tmp_path / "large.pth")
    with pytest.raises(CheckpointLoadError, match="looks like a vit_l checkpoint"):
        build_sam("vit_b", tmp_path / "large.pth")
    torch.save(build_tiny_sam().state_dict(), tmp_path / "tiny.pth")
    with pytest.raises(CheckpointLoadError, match="does not fit a vit_h model"):
        build_sam("vit_h", tmp_path / "tiny.pth")


def test_shape_mismatch_in_an_existing_model_raises_a_load_error(tmp_path):
    state = build_tiny_sam().state_dict()
    state["mask_decoder.iou_token.weight"] = torch.zeros(1, 7)
    torch.save(state, tmp_path / "odd.pth")
    with pytest.raises(CheckpointLoadError, match="does not fit this model"):
        load_weights(build_tiny_sam(), tmp_path / "odd.pth")
