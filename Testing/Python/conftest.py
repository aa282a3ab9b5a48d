"""Headless test setup: module folders on sys.path and ITK's pool threader (SLICER_GUIDE.md section 8)."""
import os
import sys

os.environ.setdefault("ITK_GLOBAL_DEFAULT_THREADER", "Pool")
os.environ.setdefault("OMP_NUM_THREADS", "2")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
for folder in ("SegmentAnythingMVA", "SmartBrush", "SmartPropagation"):
    path = os.path.join(ROOT, folder)
    if path not in sys.path:
        sys.path.insert(0, path)

import numpy as np  # noqa: E402
import pytest  # noqa: E402


def ijk_to_ras_matrix(spacing_ijk, origin_ras=(0.0, 0.0, 0.0), directions=np.eye(3)):
    """4x4 IJK->RAS from spacing (i, j, k), origin and direction columns."""
    matrix = np.eye(4)
    matrix[:3, :3] = np.asarray(directions, float) * np.asarray(spacing_ijk, float)
    matrix[:3, 3] = origin_ras
    return matrix


def rotation(axis, degrees):
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    a, b = [(1, 2), (0, 2), (0, 1)][axis]
    r = np.eye(3)
    r[a, a], r[a, b], r[b, a], r[b, b] = c, -s, s, c
    return r


LPS_FLIP = np.diag([-1.0, -1.0, 1.0])
GEOMETRIES = {
    "identity": ijk_to_ras_matrix((1, 1, 1)),
    "lps_anisotropic": ijk_to_ras_matrix((0.7, 0.9, 2.5), (12.0, -30.0, 5.0), LPS_FLIP),
    "oblique_anisotropic": ijk_to_ras_matrix((0.8, 1.1, 1.9), (-4.0, 7.0, 2.0), rotation(2, 30) @ rotation(0, 20)),
}


@pytest.fixture
def headless():
    from MVABridgeLib.headless_scene import create_headless_scene
    scene = create_headless_scene()
    yield scene
    scene.clear()


@pytest.fixture
def random_volume():
    rng = np.random.default_rng(7)
    return rng.integers(-100, 400, size=(9, 14, 17)).astype(np.int16)


def add_segmentation(headless_scene, volume_node, names=("A",), reference_node=None):
    """A segmentation with empty segments, its reference geometry from `reference_node` (default: the volume)."""
    segmentation = headless_scene.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Segmentation")
    segmentation.CreateDefaultDisplayNodes()
    segmentation.SetReferenceImageGeometryParameterFromVolumeNode(reference_node or volume_node)
    ids = [segmentation.GetSegmentation().AddEmptySegment(name, name) for name in names]
    return segmentation, ids


@pytest.fixture
def one_torch_thread():
    """Torch on one thread for the test: tiny models are all overhead, and two threads contend on 2 cores."""
    from SegmentAnythingLib.algorithms.torch_threads import torch_threads
    with torch_threads(1):
        yield


# slicer-core 5.11's native libraries can crash in their static destructors at interpreter exit (SLICER_GUIDE.md
# section 8): CI once ended with exit code 139 after every test had passed. Once pytest has reported, the run's
# status is final, so the process ends with that status without running them; threads still alive are named.
_FINAL_STATUS = {}


def pytest_sessionfinish(session, exitstatus):
    _FINAL_STATUS["code"] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    if "code" not in _FINAL_STATUS or os.environ.get("MVA_TEST_NORMAL_EXIT"):
        return
    import threading
    alive = [thread.name for thread in threading.enumerate() if thread is not threading.main_thread()]
    if alive:
        sys.stderr.write(f"threads still alive at exit: {', '.join(sorted(alive))}\n")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(_FINAL_STATUS["code"])
