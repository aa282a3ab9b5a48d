"""Exceptions raised by the Smart Propagation algorithms."""


class PropagationInputError(ValueError):
    """Base class: an argument has the wrong shape, range or content; the message says what to change."""


class EmptySeedMaskError(PropagationInputError):
    """The seed (or annotated) slice mask has no foreground pixel, so there is nothing to propagate."""


class SliceOutOfRangeError(PropagationInputError):
    """A slice index lies outside the volume along the propagation axis (axis 0)."""


class NonFiniteImageError(PropagationInputError):
    """The image holds NaN or infinite voxels; fill or mask them before propagating."""


class ShapeMismatchError(PropagationInputError):
    """Image, masks and spacing do not describe the same grid."""


class UnknownStrategyError(PropagationInputError):
    """The strategy name is not registered (see `available_strategies()`)."""


class PropagationCancelled(RuntimeError):
    """Propagation was stopped because its `cancel` callable returned True."""
