"""A real slicer-core scene for controller tests: a volume with a bright ball, a segmentation, slice nodes."""
from dataclasses import dataclass

import numpy as np

import slicer
from MVABridgeLib.editor_session import SegmentEditorSession
from MVABridgeLib.image_data import array_to_matrix
from MVABridgeLib.slice_geometry import slice_to_ras_for
from MVABridgeLib.volumes import add_volume_node
from MVAControllersLib.view_events import EventKind, ViewEvent
from MVAControllersLib.view_planes import ras_to_xy
from conftest import add_segmentation, rotation

SHAPE_KJI = (15, 21, 25)
BALL_RADIUS_VOXELS = 5.0


def ball_image(shape=SHAPE_KJI, seed=0):
    """Background 10, a ball of 300 in the middle, a little noise."""
    k, j, i = np.mgrid[0:shape[0], 0:shape[1], 0:shape[2]]
    centre = (np.array(shape) - 1) / 2.0
    ball = ((k - centre[0]) ** 2 + (j - centre[1]) ** 2 + (i - centre[2]) ** 2) <= BALL_RADIUS_VOXELS ** 2
    noise = np.random.default_rng(seed).normal(0, 3, shape)
    return (np.where(ball, 300, 10) + noise).astype(np.int16), ball


@dataclass
class ControllerScene:
    headless: object
    image: np.ndarray
    ball: np.ndarray
    matrix: np.ndarray
    volume: object
    segmentation: object
    segment_ids: list
    session: SegmentEditorSession

    @property
    def bridge(self):
        return self.session.bridge

    def centre_ras(self):
        """World RAS of the ball centre (the volume itself is never transformed here)."""
        centre_ijk = (np.array(self.image.shape[::-1]) - 1) / 2.0
        return (self.matrix @ np.append(centre_ijk, 1.0))[:3]

    def segment(self):
        """The selected segment as a bool (k, j, i) array in the work volume's grid."""
        return self.bridge.selected_mask().astype(bool)

    def local_index(self, point_ras):
        """(k, j, i) voxel of the work volume (segmentation coordinates) containing world `point_ras`."""
        from MVAControllersLib.view_planes import world_to_segmentation
        local = world_to_segmentation(self.segmentation) @ np.append(point_ras, 1.0)
        volume = self.bridge.work_volume()
        ijk = np.linalg.solve(volume.index_to_ras, local)[:3]
        return tuple(int(v) for v in np.round(ijk[::-1]))

    def transform_segmentation(self, matrix_4x4):
        transform = self.headless.scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
        transform.SetMatrixTransformToParent(array_to_matrix(matrix_4x4))
        self.segmentation.SetAndObserveTransformNodeID(transform.GetID())
        return transform


def make_scene(headless, matrix, names=("A",)):
    image, ball = ball_image()
    volume = add_volume_node(headless.scene, image, matrix)
    segmentation, ids = add_segmentation(headless, volume, names)
    session = SegmentEditorSession(volume, segmentation, ids[0], headless.scene)
    return ControllerScene(headless, image, ball, np.asarray(matrix, float), volume, segmentation, list(ids), session)


ORIENTED_VIEWS = {
    "axial": slice_to_ras_for("axial"),
    "coronal": slice_to_ras_for("coronal"),
    "sagittal": slice_to_ras_for("sagittal"),
    "oblique": np.vstack([np.hstack([rotation(0, 25) @ rotation(2, 15) @ slice_to_ras_for("axial")[:3, :3],
                                     np.zeros((3, 1))]), [0, 0, 0, 1]]),
}


def slice_node(orientation, through_ras, name="Red", dimensions=(120, 100), field_of_view_mm=(60.0, 50.0)):
    """A real vtkMRMLSliceNode of a view `orientation` (a name of ORIENTED_VIEWS or a 4x4) through a point."""
    matrix = np.array(ORIENTED_VIEWS[orientation] if isinstance(orientation, str) else orientation, float)
    matrix[:3, 3] = through_ras
    node = slicer.vtkMRMLSliceNode()
    node.SetName(name)
    node.SetLayoutName(name)
    node.SetDimensions(dimensions[0], dimensions[1], 1)
    node.SetFieldOfView(field_of_view_mm[0], field_of_view_mm[1], 1.0)
    node.GetSliceToRAS().DeepCopy(array_to_matrix(matrix))
    node.UpdateMatrices()
    return node


def event(kind, node, point_ras, **modifiers):
    """A ViewEvent at the view position of world `point_ras` (projected on the view's plane)."""
    return ViewEvent(EventKind[kind.upper()], ras_to_xy(node, point_ras), node, **modifiers)


def key(node, symbol):
    return ViewEvent(EventKind.KEY, (0.0, 0.0), node, key=symbol)


def finish_jobs(controller, limit=10):
    """Run the controller's jobs to the end as a front end's timer would; returns the last Reaction."""
    reaction = None
    for _ in range(limit):
        if not controller.busy:
            return reaction
        controller.runner.wait(60)
        reaction = controller.poll()
    raise AssertionError("jobs kept coming")
