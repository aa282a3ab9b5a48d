"""The four smart tools as trame-slicer segmentation effects.

An effect here only turns mouse gestures on a slice view into (view node, gesture, RAS point, shift) and hands
them to its `handler` (a `SmartToolController`, see tool_controllers.py), which owns the tool logic. The
pipeline is one per slice view, created by trame-slicer's SegmentationEditor through LayerDM.
"""
import MVAWebLib.torch_first  # noqa: F401,I001  (before any VTK rendering import)
import enum

from slicer import vtkMRMLInteractionEventData, vtkMRMLSliceNode
from trame_slicer.segmentation import SegmentationEffect, SegmentationEffectPipeline
from vtkmodules.vtkCommonCore import vtkCommand

SHIFT_MODIFIER = 1  # vtkEvent::ShiftModifier
CONTROL_MODIFIER = 2  # vtkEvent::ControlModifier


class Gesture(enum.Enum):
    PRESS = "press"
    DRAG = "drag"
    RELEASE = "release"
    HOVER = "hover"  # mouse move with no button down (effects with `wants_hover` only)


class SmartToolPipeline(SegmentationEffectPipeline):
    """Forwards left-button press, drag and release on a slice view to the effect's handler."""

    def __init__(self):
        super().__init__()
        self._pressed = False
        self._events = {
            int(vtkCommand.LeftButtonPressEvent): Gesture.PRESS,
            int(vtkCommand.MouseMoveEvent): Gesture.DRAG,
            int(vtkCommand.LeftButtonReleaseEvent): Gesture.RELEASE,
        }

    def CanProcessInteractionEvent(self, event_data: vtkMRMLInteractionEventData):
        gesture = self._events.get(event_data.GetType())
        if not self.IsActive() or gesture is None:
            return False, 0
        if gesture is Gesture.DRAG and not self._pressed:
            # plain mouse moves stay with the view (cursor, crosshair) unless the effect highlights under them
            return bool(getattr(self._effect, "wants_hover", False)), 0
        if gesture is Gesture.RELEASE and not self._pressed:
            return False, 0
        return True, 0

    def ProcessInteractionEvent(self, event_data: vtkMRMLInteractionEventData) -> bool:
        gesture = self._events.get(event_data.GetType())
        if gesture is None:
            return False
        if gesture is Gesture.DRAG and not self._pressed:
            gesture = Gesture.HOVER
        if gesture is Gesture.PRESS:
            self._pressed = True
        elif gesture is Gesture.RELEASE:
            if not self._pressed:
                return False
            self._pressed = False
        modifiers = event_data.GetModifiers()
        self._effect.on_gesture(self.GetViewNode(), gesture, tuple(event_data.GetWorldPosition()),
                                bool(modifiers & SHIFT_MODIFIER), bool(modifiers & CONTROL_MODIFIER))
        return True

    def LoseFocus(self, event_data) -> None:
        super().LoseFocus(event_data)
        self._pressed = False


class SmartToolEffect(SegmentationEffect):
    """Base of the four smart effects: slice views only; gestures go to `handler`."""

    title = "Smart tool"
    icon = "mdi-auto-fix"
    wants_hover = False

    def __init__(self):
        super().__init__()
        self.handler = None

    def _create_pipeline(self, view_node, _parameter):
        if isinstance(view_node, vtkMRMLSliceNode):
            return SmartToolPipeline()
        return None

    def on_gesture(self, slice_node, gesture, point_ras, shift, control):
        if self.handler is not None:
            self.handler.on_gesture(slice_node, gesture, point_ras, shift, control)


class SmartBrushEffect(SmartToolEffect):
    title = "Smart Brush"
    icon = "mdi-brush-variant"


class SmartRegionsEffect(SmartToolEffect):
    title = "Smart Regions"
    icon = "mdi-texture-box"
    wants_hover = True  # the region under the cursor is highlighted


class SmartPropagationEffect(SmartToolEffect):
    title = "Smart Propagation"
    icon = "mdi-layers-triple"


class SegmentAnythingEffect(SmartToolEffect):
    title = "Segment Anything"
    icon = "mdi-creation"


SMART_EFFECTS = (SmartBrushEffect, SmartRegionsEffect, SmartPropagationEffect, SegmentAnythingEffect)
