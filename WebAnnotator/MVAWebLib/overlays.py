"""Tool overlays in the slice views: a one-slice labelmap volume shown as the label layer of every slice view.

The overlay is a `vtkMRMLLabelMapVolumeNode` one voxel thick whose grid is the tool's `SlicePlane` (pixel
(col, row) -> RAS), so it fits voxel-aligned and oblique planes alike and costs one slice of memory. The slice
logic blends it over the image (nearest neighbour), below the segmentation. Values: `PREVIEW` (the Smart Brush
prediction before Apply), `BOUNDARY` (Smart Regions region outlines), `HOVER` (the region under the cursor).
"""
import numpy as np
import slicer
from vtkmodules.util import numpy_support
from vtkmodules.vtkCommonDataModel import vtkImageData

from MVABridgeLib.image_data import array_to_matrix

PREVIEW, BOUNDARY, HOVER = 1, 2, 3
LAYER_NAMES = {PREVIEW: "preview", BOUNDARY: "boundaries", HOVER: "hover"}
COLORS = {PREVIEW: (1.0, 0.85, 0.1, 1.0), BOUNDARY: (0.1, 0.9, 1.0, 1.0), HOVER: (1.0, 0.2, 0.9, 1.0)}
NODE_NAME = "MVA tool overlay"


class ToolOverlay:
    """Draws 2D masks of one plane into the label layer of the slice views of `scene_owner.scene`.

    Parameters
    ----------
    scene_owner : object with a `scene` attribute (trame-slicer's SlicerApp)
        The scene is read on every call: `scene.Clear()` on case loading removes the nodes, which are then
        created again.
    on_change : callable, optional
        Called with `counts()` after every change (the app copies it into the page state).
    """

    def __init__(self, scene_owner, on_change=None):
        self._owner = scene_owner
        self._node_id = None
        self.on_change = on_change
        self.visible = True
        self.layers = {}  # value -> bool mask (rows, cols) of the plane last drawn
        self.plane = None

    def reset(self):
        """Forget the nodes and layers (call after `scene.Clear()`)."""
        self._node_id, self.layers, self.plane = None, {}, None
        if self.on_change is not None:
            self.on_change(self.counts())

    @property
    def scene(self):
        return self._owner.scene

    def node(self):
        """The overlay labelmap node (created on first use)."""
        node = self.scene.GetNodeByID(self._node_id) if self._node_id else None
        if node is None:
            node = self._create_node()
            self._node_id = node.GetID()
        return node

    def _create_node(self):
        scene = self.scene
        colors = slicer.vtkMRMLColorTableNode()
        colors.SetTypeToUser()
        colors.SetName(NODE_NAME + " colours")
        colors.SetNumberOfColors(len(COLORS) + 1)
        colors.SetColor(0, "background", 0.0, 0.0, 0.0, 0.0)
        for value, rgba in COLORS.items():
            colors.SetColor(value, LAYER_NAMES[value], *rgba)
        colors.SetHideFromEditors(True)
        scene.AddNode(colors)
        display = slicer.vtkMRMLLabelMapVolumeDisplayNode()
        scene.AddNode(display)
        display.SetAndObserveColorNodeID(colors.GetID())
        node = slicer.vtkMRMLLabelMapVolumeNode()
        node.SetName(NODE_NAME)
        node.SetHideFromEditors(True)
        scene.AddNode(node)
        node.SetAndObserveDisplayNodeID(display.GetID())
        return node

    def _composite_nodes(self):
        nodes = self.scene.GetNodesByClass("vtkMRMLSliceCompositeNode")
        return [nodes.GetItemAsObject(i) for i in range(nodes.GetNumberOfItems())]

    def show(self, plane, layers):
        """Draw `layers` ({value: bool mask (rows, cols)}) on `plane`; later values are drawn over earlier ones."""
        label = np.zeros(plane.shape, np.uint8)
        for value in sorted(layers):
            mask = np.asarray(layers[value], bool)
            if mask.shape != plane.shape:
                raise ValueError(f"Overlay mask shape {mask.shape} differs from the slice shape {plane.shape}")
            label[mask] = value
        self.plane = plane
        self.layers = {value: np.asarray(mask, bool) for value, mask in layers.items()}
        self._write(plane, label)

    def update_layer(self, plane, value, mask):
        """Replace one layer, keeping the others when the plane is the same one as last drawn."""
        layers = dict(self.layers) if self.plane is not None and _same_plane(self.plane, plane) else {}
        if mask is None:
            layers.pop(value, None)
        else:
            layers[value] = mask
        self.show(plane, layers)

    def clear(self, values=None):
        """Remove the given layers (default: all)."""
        if self.plane is None:
            return
        keep = {} if values is None else {v: m for v, m in self.layers.items() if v not in values}
        self.show(self.plane, keep)

    def set_visible(self, visible):
        self.visible = bool(visible)
        if self.plane is not None:
            self.show(self.plane, self.layers)

    def counts(self):
        """{layer name: pixel count} of what is drawn now (0 for hidden or absent layers)."""
        return {name: int(self.layers[value].sum()) if self.visible and value in self.layers else 0
                for value, name in LAYER_NAMES.items()}

    def _write(self, plane, label):
        node = self.node()
        rows, cols = plane.shape
        image = vtkImageData()
        image.SetDimensions(cols, rows, 1)
        values = label if self.visible else np.zeros_like(label)
        scalars = numpy_support.numpy_to_vtk(np.ascontiguousarray(values).ravel(), deep=True,
                                             array_type=numpy_support.get_vtk_array_type(np.uint8))
        image.GetPointData().SetScalars(scalars)
        ijk_to_ras = array_to_matrix(plane.as_one_slice_volume())
        disabled = node.StartModify()
        node.SetIJKToRASMatrix(ijk_to_ras)
        node.SetAndObserveImageData(image)
        node.EndModify(disabled)
        for composite in self._composite_nodes():
            if composite.GetLabelVolumeID() != node.GetID():
                composite.SetLabelVolumeID(node.GetID())
                composite.SetLabelOpacity(0.6)
        if self.on_change is not None:
            self.on_change(self.counts())


def _same_plane(first, second):
    return first.shape == second.shape and np.allclose(first.pixel_to_ras_matrix, second.pixel_to_ras_matrix)
