"""Fuzz suite, files and checkpoints: truncated, corrupt, empty, misnamed, 2D, 4D, RGB files and bad spacing are
refused with their own error class, no node is added to the scene and no file is touched; a user's own
checkpoint loads with a warning."""
import os

import numpy as np
import pytest
import SimpleITK as sitk
from fuzz_support import MATRIX, disc_image

from MVABridgeLib.errors import InvalidSegmentationError
from MVABridgeLib.node_io import load_segmentation_node, load_volume_node
from MVABridgeLib.volume_io import (TruncatedVolumeFileError, VolumeFileError, VolumeFileGeometryError, read_volume,
                                    write_volume)
from SegmentAnythingLib.algorithms.sam_checkpoints import check_checkpoint_file, ensure_checkpoint
from SegmentAnythingLib.algorithms.sam_errors import (CheckpointLoadError, CheckpointMissingError,
                                                      UnofficialCheckpointWarning)


def cut(path, fraction=0.6):
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * fraction)])
    return path


def written(folder, name, compress=True):
    path = folder / name
    write_volume(path, disc_image(), MATRIX, compress=compress)
    return path


def refuse_read(path, error_class, match):
    before = path.read_bytes() if path.is_file() else None
    with pytest.raises(error_class, match=match) as raised:
        read_volume(path)
    assert type(raised.value) is error_class
    assert (path.read_bytes() if path.is_file() else None) == before


@pytest.mark.parametrize("name, compress", [("truncated.nii.gz", True), ("truncated.nii", False),
                                            ("truncated.nrrd", True), ("truncated_raw.nrrd", False),
                                            ("truncated.mha", False)])
def test_truncated_file_is_refused_not_read_with_zero_voxels(tmp_path, name, compress):
    refuse_read(cut(written(tmp_path, name, compress)), TruncatedVolumeFileError, "truncated")


def test_gzip_stream_with_damaged_bytes_is_refused_as_corrupt(tmp_path):
    path = written(tmp_path, "corrupt.nii.gz")
    data = bytearray(path.read_bytes())
    data[len(data) // 2:len(data) // 2 + 40] = bytes(40)
    path.write_bytes(bytes(data))
    refuse_read(path, TruncatedVolumeFileError, "corrupt")


def test_text_file_named_nii_gz_is_refused_as_corrupt(tmp_path):
    path = tmp_path / "notes.nii.gz"
    path.write_text("this is not an image")
    refuse_read(path, TruncatedVolumeFileError, "corrupt")


def test_empty_file_is_refused(tmp_path):
    path = tmp_path / "empty.nrrd"
    path.write_bytes(b"")
    refuse_read(path, VolumeFileError, "empty file")


def test_missing_file_is_refused(tmp_path):
    refuse_read(tmp_path / "nowhere.nii.gz", VolumeFileError, "No such file")


def test_folder_without_dicom_is_refused(tmp_path):
    (tmp_path / "readme.txt").write_text("no images here")
    refuse_read(tmp_path, VolumeFileError, "No DICOM series")


def test_unknown_format_is_refused(tmp_path):
    path = tmp_path / "volume.xyz"
    path.write_text("1 2 3")
    refuse_read(path, VolumeFileError, "Cannot read")


@pytest.mark.parametrize("name, image, message", [
    ("flat.nrrd", sitk.Image([6, 5], sitk.sitkUInt8), "2D image"),
    ("four_d.nii.gz", sitk.Image([6, 5, 4, 3], sitk.sitkUInt8), "4D"),
    ("rgb.nrrd", sitk.Image([6, 5, 4], sitk.sitkVectorUInt8, 3), "3 components"),
])
def test_images_that_are_no_3d_scalar_volume_are_refused(tmp_path, name, image, message):
    sitk.WriteImage(image, str(tmp_path / name))
    refuse_read(tmp_path / name, VolumeFileError, message)


def test_nanometre_spacing_file_is_refused_naming_the_unit(tmp_path):
    matrix = MATRIX.copy()
    matrix[:3, :3] *= 1e-8
    path = tmp_path / "tiny.nii.gz"
    write_volume(path, disc_image(), matrix)
    refuse_read(path, VolumeFileGeometryError, "millimetres")


@pytest.mark.parametrize("name, field", [("zero_direction.nrrd", "space directions: (0,0,0) (0,1,0) (0,0,1)"),
                                         ("zero_spacing.nrrd", "spacings: 0 1 1")])
def test_zero_spacing_header_is_refused(tmp_path, name, field):
    space = "space: left-posterior-superior\n" if "directions" in field else ""
    header = f"NRRD0004\ntype: short\ndimension: 3\n{space}sizes: 6 5 4\n{field}\nendian: little\nencoding: raw\n\n"
    path = tmp_path / name
    path.write_bytes(header.encode() + np.zeros(120, np.int16).tobytes())
    with pytest.raises(VolumeFileError):
        read_volume(path)


def test_unicode_path_reads_like_any_other(tmp_path):
    folder = tmp_path / "données été" / "脳"
    folder.mkdir(parents=True)
    array, matrix = read_volume(written(folder, "tête ü.nii.gz"))
    assert np.array_equal(array, disc_image()) and np.allclose(matrix, MATRIX)


def test_truncated_file_loaded_as_a_node_adds_nothing_to_the_scene(headless, tmp_path):
    nodes = headless.scene.GetNumberOfNodes()
    with pytest.raises(TruncatedVolumeFileError):
        load_volume_node(headless.scene, cut(written(tmp_path, "cut.nii.gz")))
    assert headless.scene.GetNumberOfNodes() == nodes


@pytest.mark.parametrize("kind, message", [("folder", "is a folder"), ("empty", "empty file"),
                                           ("truncated", "truncated")])
def test_bad_segmentation_files_are_refused_and_add_no_node(headless, tmp_path, kind, message):
    path = tmp_path / "Segmentation.seg.nrrd"
    if kind == "folder":
        path.mkdir()
    elif kind == "empty":
        path.write_bytes(b"")
    else:
        write_volume(path, (disc_image() > 100).astype(np.uint8), MATRIX)
        cut(path)
    nodes = headless.scene.GetNumberOfNodes()
    with pytest.raises(InvalidSegmentationError, match=message):
        load_segmentation_node(headless.scene, path)
    assert headless.scene.GetNumberOfNodes() == nodes


# --- checkpoints -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, content, message", [
    ("notes.pth", b"just some text\n", "not a PyTorch checkpoint"),
    ("empty.pth", b"", "empty"),
    ("pickle_garbage.pth", b"\x80\x02garbage that is no pickle", "not a readable PyTorch checkpoint"),
])
def test_files_that_are_no_pytorch_checkpoint_raise_checkpoint_load_error(tmp_path, name, content, message):
    from SegmentAnythingLib.algorithms.sam_models import load_state_dict
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(CheckpointLoadError, match=message):
        load_state_dict(path)
    assert path.read_bytes() == content


def test_folder_given_as_checkpoint_is_refused(tmp_path):
    with pytest.raises(CheckpointMissingError, match="is a folder"):
        ensure_checkpoint("vit_b", path=tmp_path)
    with pytest.raises(CheckpointLoadError, match="is a folder"):
        check_checkpoint_file(tmp_path)


def test_users_own_vit_b_file_of_another_size_is_used_with_a_warning_and_left_in_place(tmp_path):
    own = tmp_path / "my_finetuned_vit_b.pth"
    own.write_bytes(b"PK\x03\x04" + bytes(1000))
    with pytest.warns(UnofficialCheckpointWarning, match="not the official sam_vit_b_01ec64.pth") as warned:
        assert ensure_checkpoint("vit_b", path=own, allow_download=False) == own
    assert not any("delete" in str(w.message) for w in warned)
    assert own.stat().st_size == 1004
