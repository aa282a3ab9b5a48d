"""Load and save volumes and segmentations with Slicer's own storage nodes (files desktop Slicer opens)."""
import os


from MVABridgeLib.errors import InvalidSegmentationError, InvalidVolumeError
from MVABridgeLib.volume_file_checks import IncompleteFileError, check_file_complete
from MVABridgeLib.volume_io import read_volume
from MVABridgeLib.volumes import add_volume_node


def load_volume_node(scene, path, name=None):
    """Read any file SimpleITK reads (NIfTI, NRRD, MHA, a DICOM folder) into a scalar volume node."""
    array, ijk_to_ras = read_volume(path)
    name = name or os.path.basename(os.path.normpath(path)).split(".")[0]
    return add_volume_node(scene, array, ijk_to_ras, name)


def _write(scene, node, storage_class, path):
    storage = scene.AddNewNodeByClass(storage_class)
    try:
        storage.SetFileName(os.fspath(path))
        if not storage.WriteData(node):
            raise OSError(f"Could not write {path}")
    finally:
        scene.RemoveNode(storage)
    return os.fspath(path)


def save_volume_node(scene, volume_node, path):
    """Write a volume node (e.g. `.nrrd`, `.nii.gz`)."""
    if volume_node is None or volume_node.GetImageData() is None:
        raise InvalidVolumeError("No volume to save")
    return _write(scene, volume_node, "vtkMRMLVolumeArchetypeStorageNode", path)


def save_segmentation_node(scene, segmentation_node, path):
    """Write a segmentation as `.seg.nrrd` (segment names, colours and terminology kept)."""
    if segmentation_node is None:
        raise InvalidSegmentationError("No segmentation to save")
    return _write(scene, segmentation_node, "vtkMRMLSegmentationStorageNode", path)


def check_segmentation_file(path):
    """Raise InvalidSegmentationError if a `.seg.nrrd` holds fewer voxel bytes than its header declares."""
    try:
        check_file_complete(path)
    except IncompleteFileError as error:
        raise InvalidSegmentationError(str(error)) from None


def load_segmentation_node(scene, path):
    """Read a `.seg.nrrd` file into a new segmentation node."""
    if not os.path.exists(path):
        raise InvalidSegmentationError(f"No such file: {path}")
    if os.path.isdir(path):
        raise InvalidSegmentationError(f"{path} is a folder; choose the .seg.nrrd file inside it")
    if os.path.getsize(path) == 0:
        raise InvalidSegmentationError(f"{path} is an empty file (0 bytes); it holds no segmentation")
    check_segmentation_file(path)
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", os.path.basename(path).split(".")[0])
    storage = scene.AddNewNodeByClass("vtkMRMLSegmentationStorageNode")
    storage.SetFileName(os.fspath(path))
    if not storage.ReadData(node):
        scene.RemoveNode(node)
        raise InvalidSegmentationError(f"Could not read {path} as a segmentation")
    node.SetAndObserveStorageNodeID(storage.GetID())
    node.CreateDefaultDisplayNodes()
    return node
