"""What a front end hands to a controller (`ViewEvent`) and what it gets back (`Reaction`)."""
import enum
from dataclasses import dataclass, field


class EventKind(enum.Enum):
    PRESS = "press"  # left button down
    MOVE = "move"  # mouse move, button up or down
    RELEASE = "release"  # left button up
    KEY = "key"


@dataclass(frozen=True)
class ViewEvent:
    """One interaction in a view.

    Parameters
    ----------
    kind : EventKind
    xy : (x, y) event position in view pixels, as vtkRenderWindowInteractor.GetEventPosition (y up).
    slice_node : vtkMRMLSliceNode of the view, or None for a 3D view (controllers ignore those).
    shift, control, alt : modifier keys held.
    key : key symbol for KEY events (vtkRenderWindowInteractor.GetKeySym), e.g. "c".
    """
    kind: EventKind
    xy: tuple = (0.0, 0.0)
    slice_node: object = None
    shift: bool = False
    control: bool = False
    alt: bool = False
    key: str = ""


@dataclass
class Reaction:
    """What the front end should do after an event or an action.

    consumed : the event was used (a Qt effect returns it from processInteractionEvents).
    redraw : overlays changed; ask the controller for `view_overlays(slice_node)` of every view.
    status : a line for the effect's status label.
    message : an error or refusal for the user (never an exception).
    job : a BackgroundJob to start (compute off the GUI thread, finish back on it).
    """
    consumed: bool = False
    redraw: bool = False
    status: str = ""
    message: str = ""
    job: object = None
    details: dict = field(default_factory=dict)

    def merged(self, other):
        """This reaction followed by `other` (later texts win, flags add up)."""
        if other is None:
            return self
        return Reaction(self.consumed or other.consumed, self.redraw or other.redraw, other.status or self.status,
                        other.message or self.message, other.job or self.job, {**self.details, **other.details})
