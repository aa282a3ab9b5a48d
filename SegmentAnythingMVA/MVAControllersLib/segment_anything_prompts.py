"""The Segment Anything object's prompts as Smart Propagation's conditioning frames (strategy sam2), in both front ends.

The browser holds its Segment Anything controller beside the Smart Propagation one. The desktop's effects are
separate objects with a controller (and a bridge) each: the Segment Anything controller is published here, and
Smart Propagation takes the prompts of the published one that edits the same segment of the same segmentation and
source volume. Leaving the Segment Anything effect to start Smart Propagation forgets its object (the next click
starts a new one) but keeps that object's prompts readable (`SegmentAnythingController.object_session`) until a
new object starts.
"""
import weakref

from SmartPropagationLib.propagation_prompts import prompts_of_sam_session

_PUBLISHED = weakref.WeakSet()  # controllers live as long as their effect; a closed effect drops out


def publish(sam_controller):
    """Make this Segment Anything controller's prompts available to Smart Propagation (desktop effects)."""
    _PUBLISHED.add(sam_controller)


def published():
    """The published Segment Anything controllers still alive."""
    return list(_PUBLISHED)


def editing_key(controller):
    """(segmentation node, selected segment id, source volume node) that `controller`'s bridge edits now.

    The nodes themselves, not their ids (ids repeat across scenes); a node is one Python object while referenced.
    """
    backend = controller.bridge.backend
    return backend.segmentation_node(), backend.selected_segment_id(), backend.source_volume_node()


def object_prompts(sam_controller, key):
    """The PlanePrompts of `sam_controller`'s object when it edits `key` (see `editing_key`) and wrote into that
    segment; None otherwise."""
    if editing_key(sam_controller) != key:
        return None
    session = getattr(sam_controller, "object_session", None)
    if session is None and getattr(sam_controller, "logic", None) is not None:
        session = sam_controller.logic.session
    return prompts_of_sam_session(session, key[1])


def prompt_source(propagation_controller, sam_controllers=published):
    """A `SmartPropagationController.prompt_source`: () -> the prompts of the first of `sam_controllers()` whose
    object is on the segment, segmentation and volume that `propagation_controller` propagates now, or None."""
    def source():
        key = editing_key(propagation_controller)
        for sam_controller in sam_controllers():
            prompts = object_prompts(sam_controller, key)
            if prompts is not None:
                return prompts
        return None
    return source
