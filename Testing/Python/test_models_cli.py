"""`mva models`: list, download with progress and resume, and check SAM 2.1 / MedSAM2 files against their models."""
import http.server
import threading

import pytest
import torch

from MVACommandLineLib.cli import main
from SegmentAnythingLib.algorithms import sam2_models


class _FileRangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves `payload` with single-range support and records the Range headers it got."""
    payload, ranges = b"", []

    def do_GET(self):  # noqa: N802 - the http.server name
        header = self.headers.get("Range")
        start = int(header.split("=")[1].rstrip("-")) if header else 0
        self.ranges.append(header)
        body = self.payload[start:]
        self.send_response(206 if header else 200)
        if header:
            self.send_header("Content-Range", f"bytes {start}-{len(self.payload) - 1}/{len(self.payload)}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def served(tmp_path):
    def serve(payload):
        _FileRangeHandler.payload, _FileRangeHandler.ranges = payload, []
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FileRangeHandler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/MedSAM2_latest.pt"
    servers = []
    yield serve
    for server in servers:
        server.shutdown()


@pytest.fixture(scope="module")
def medsam2_file(tmp_path_factory):
    """A MedSAM2-shaped checkpoint (random weights, half precision to keep it small), as released: {"model": ...}."""
    model = sam2_models.build_random_sam2("medsam2")
    path = tmp_path_factory.mktemp("medsam2") / "MedSAM2_latest.pt"
    torch.save({"model": {k: v.half() for k, v in model.state_dict().items()}}, path)
    return path


def test_a_cut_off_download_resumes_from_its_part_file_and_lands_where_the_tools_look(tmp_path, served, capsys):
    payload = bytes(range(256)) * 4000
    archive = tmp_path / "source.pt"
    torch.save({"model": {"w": torch.zeros(4)}, "pad": payload}, archive)
    data = archive.read_bytes()
    url = served(data)
    folder = tmp_path / "cache" / "checkpoints"
    folder.mkdir(parents=True)
    (folder / "MedSAM2_latest.pt.part").write_bytes(data[:300000])
    code = main(["models", "download", "medsam2", "--url", url, "--cache-folder", str(tmp_path / "cache")])
    captured = capsys.readouterr()
    assert code == 0 and _FileRangeHandler.ranges == ["bytes=300000-"]
    assert (folder / "MedSAM2_latest.pt").read_bytes() == data and not (folder / "MedSAM2_latest.pt.part").exists()
    assert f"{len(data) / 1e6:.1f} / {len(data) / 1e6:.1f} MB" in captured.err and str(folder) in captured.out
    main(["models", "list", "--cache-folder", str(tmp_path / "cache")])
    listing = capsys.readouterr().out
    assert "medsam2" in listing and "downloaded (" in listing.split("medsam2 ")[1].splitlines()[0]


def test_a_cut_off_file_from_the_server_is_refused_and_nothing_is_kept(tmp_path, served, capsys):
    url = served(b"PK\x03\x04 not a whole archive")
    code = main(["models", "download", "medsam2", "--url", url, "--cache-folder", str(tmp_path)])
    assert code == 2 and "not a complete PyTorch checkpoint" in capsys.readouterr().err
    assert not list((tmp_path / "checkpoints").glob("MedSAM2*"))


def test_check_builds_medsam2_from_a_local_file_at_512_px_and_names_a_mix_up(medsam2_file, capsys):
    assert main(["models", "check", "medsam2", "--file", str(medsam2_file)]) == 0
    assert "input 512 x 512 px" in capsys.readouterr().out
    assert main(["models", "check", "sam2.1_tiny", "--file", str(medsam2_file)]) == 2
    assert "Choose the model medsam2" in capsys.readouterr().err


def test_unknown_names_and_missing_files_are_messages(tmp_path, capsys):
    assert main(["models", "check", "sam3", "--cache-folder", str(tmp_path)]) == 2
    assert "choose one of" in capsys.readouterr().err
    assert main(["models", "check", "sam2.1_small", "--cache-folder", str(tmp_path)]) == 2
    assert "sam2.1_hiera_small.pt" in capsys.readouterr().err
    assert main(["models", "download", "medsam_vit_b", "--cache-folder", str(tmp_path)]) == 2
    assert "bowang-lab/MedSAM" in capsys.readouterr().err
