"""A coloured mask drawn over a slice view (preview, region boundaries, hover highlight), in view pixels."""
import numpy as np
import vtk
from vtk.util import numpy_support


class ViewOverlay:
    """One RGBA image actor in one slice view; the mask comes from a controller's `view_overlays`."""

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
        self.renderer().AddViewProp(self.actor)

    def renderer(self):
        return self.slice_widget.sliceView().renderWindow().GetRenderers().GetFirstRenderer()

    def show_view_mask(self, mask_rows_cols):
        """Draw a bool (rows, cols) mask of the view's pixels, row 0 at the top."""
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
        self.renderer().RemoveViewProp(self.actor)
