"""A coloured mask drawn over a slice view (preview, region boundaries, hover highlight)."""
import numpy as np
import vtk
from vtk.util import numpy_support



class ViewOverlay:
    """One RGBA image actor per slice view, in the view's own pixel grid."""

    def __init__(self, slice_widget, colour=(1.0, 0.85, 0.2), opacity=0.5):
        self.slice_widget = slice_widget
        self.colour = np.array(colour) * 255
        self.opacity = opacity
        self.image = vtk.vtkImageData()
        self.mapper = vtk.vtkImageMapper()
        self.mapper.SetInputData(self.image)
        self.mapper.SetColorWindow(255)
        self.mapper.SetColorLevel(127.5)
        self.actor = vtk.vtkActor2D()
        self.actor.SetMapper(self.mapper)
        self.actor.VisibilityOff()
        self.renderer().AddActor2D(self.actor)

    def renderer(self):
        return self.slice_widget.sliceView().renderWindow().GetRenderers().GetFirstRenderer()

    def view_plane(self):
        from MVABridgeLib.image_data import matrix_to_array
        from MVABridgeLib.slice_geometry import SlicePlane
        node = self.slice_widget.mrmlSliceNode()
        return SlicePlane.from_slice_view(matrix_to_array(node.GetXYToRAS()), node.GetDimensions()[:2])

    def show_volume_mask(self, mask_kji, index_to_ras):
        """Draw a (k, j, i) mask of the work volume as it cuts this view."""
        plane = self.view_plane()
        self.show_view_mask(plane.sample(mask_kji, index_to_ras, order=0) > 0)

    def show_view_mask(self, mask_rows_cols):
        rows, cols = mask_rows_cols.shape
        rgba = np.zeros((rows, cols, 4), np.uint8)
        rgba[mask_rows_cols, :3] = self.colour
        rgba[mask_rows_cols, 3] = int(255 * self.opacity)
        self.image.SetDimensions(cols, rows, 1)
        flat = np.ascontiguousarray(rgba[::-1]).reshape(-1, 4)  # VTK images start at the bottom row
        self.image.GetPointData().SetScalars(numpy_support.numpy_to_vtk(flat, deep=True))
        self.image.Modified()
        self.actor.VisibilityOn()
        self.slice_widget.sliceView().scheduleRender()

    def hide(self):
        self.actor.VisibilityOff()
        self.slice_widget.sliceView().scheduleRender()

    def remove(self):
        self.renderer().RemoveActor2D(self.actor)
