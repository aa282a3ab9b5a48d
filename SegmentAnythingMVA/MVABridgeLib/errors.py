"""Exceptions raised by the bridge. All are ValueErrors with a message a user can act on."""


class BridgeError(ValueError):
    """Base class of the bridge's input errors."""


class InvalidVolumeError(BridgeError):
    """The source volume cannot be segmented (missing, 2D, 4D, vector, NaN voxels)."""


class InvalidGeometryError(InvalidVolumeError):
    """Zero, negative, tiny, huge or non-finite spacing, or a degenerate IJK->RAS matrix."""


class VectorVolumeError(InvalidVolumeError):
    """An RGB or multi-component volume where a scalar volume is needed."""


class IntensityRangeError(InvalidVolumeError):
    """Voxel values beyond what the tools' float32 arithmetic handles."""


class InvalidSegmentationError(BridgeError):
    """No segmentation, no segment, or an unknown segment id."""


class OutsideVolumeError(BridgeError):
    """A point or slice lies outside the source volume."""


class NothingToApplyError(BridgeError):
    """Apply or cycle was asked before a stroke, preview or prompt gave the tool something to write."""


class InvalidMaskError(BridgeError):
    """A mask has the wrong shape, dimension or values."""
