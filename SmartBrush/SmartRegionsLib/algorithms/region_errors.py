"""Exceptions of the Smart Regions algorithms, each with a message a user can act on.

Bad input (image, spacing, index, parameters) raises ``ValueError`` subclasses sharing the base
``RegionInputError``. A cancelled computation raises ``SupervoxelsCancelled``, which is not an error.
"""


class RegionInputError(ValueError):
    """Base class of bad input to the Smart Regions algorithms."""


class VolumeTooSmallError(RegionInputError):
    """The image (or ROI) has a dimension below 2 voxels or holds fewer voxels than one region."""


class NonFiniteVoxelsError(RegionInputError):
    """The image holds NaN or infinite voxels."""


class IndexOutsideVolumeError(RegionInputError):
    """An index (click, slice) lies outside the label volume, or inside it but outside the ROI."""


class InvalidParameterError(RegionInputError):
    """A parameter (spacing, region size, compactness, box, tolerance) has an unusable value."""


class SupervoxelsCancelled(Exception):
    """The cancel callable returned True; no labels were produced."""
