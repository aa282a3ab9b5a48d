"""Targeted corrections: an edit changes only the error it was aimed at (numpy / scipy only).

A correction retrains or recomputes a model whose new prediction may differ from the old one far from where
the user clicked (a negative dab retrains the whole classifier). The user asked for one thing: add the tissue
under a positive stroke, or remove the tissue under a negative one. `targeted_update` keeps the old mask
except for the connected pieces of the change that the stroke touches, and only in the stroke's direction:
a positive stroke never removes, a negative stroke never adds. Arrays are (k, j, i) or (j, i), any shape.
"""
import numpy as np
from scipy import ndimage

from .errors import SmartBrushInputError


def _pieces_touching(region, stroke):
    """Connected pieces (face connectivity) of `region` that share a voxel with `stroke`."""
    if not (region & stroke).any():
        return np.zeros(region.shape, bool)
    labelled, _ = ndimage.label(region)
    keep = np.unique(labelled[stroke & region])
    return np.isin(labelled, keep[keep > 0])


def _nearest_part(change, stroke, limit):
    """At most about `limit` voxels of `change`: those nearest the stroke (Euclidean), connected to it."""
    distance = ndimage.distance_transform_edt(~stroke)
    values = np.sort(distance[change])
    threshold = values[min(int(limit), values.size - 1)]
    return _pieces_touching(change & (distance <= threshold), stroke | ndimage.binary_dilation(stroke, iterations=2))


def targeted_update(previous, proposed, stroke, positive, max_change=None):
    """The previous mask changed only where the new stroke asked for it.

    Parameters
    ----------
    previous : ndarray of bool
        The mask before the stroke (what the user sees).
    proposed : ndarray of bool, same shape
        The tool's new prediction after learning from the stroke.
    stroke : ndarray of bool, same shape
        The voxels of the new stroke.
    positive : bool
        True for a stroke that marks the structure, False for an erase / negative stroke.
    max_change : float or None
        At most this fraction of the previous mask's voxels changes (those nearest the stroke), when the previous
        mask is not empty: one correction cannot flood the volume or wipe the object out, whatever the
        retrained model proposes.

    Returns
    -------
    ndarray of bool
        Positive: `previous`, plus the stroke, plus the pieces of `proposed & ~previous` connected to the stroke.
        Negative: `previous` minus the stroke minus the pieces of `previous & ~proposed` connected to it.

    Raises
    ------
    SmartBrushInputError
        If the three arrays differ in shape.
    """
    previous, proposed, stroke = (np.asarray(a, bool) for a in (previous, proposed, stroke))
    if not previous.shape == proposed.shape == stroke.shape:
        raise SmartBrushInputError(f"previous {previous.shape}, proposed {proposed.shape} and stroke {stroke.shape} "
                                   "must have the same shape")
    near = ndimage.binary_dilation(stroke, iterations=2) | stroke
    change = _pieces_touching((proposed & ~previous) if positive else (previous & ~proposed), near)
    limit = None if max_change is None or not previous.any() else max_change * previous.sum()
    if limit is not None and change.sum() > limit:
        change = _nearest_part(change, stroke, limit)
    if positive:
        return previous | stroke | change
    return previous & ~stroke & ~change


class CorrectionHistory:
    """Targeted updates that also keep earlier corrections: what a negative stroke removed is not re-added by a
    later positive stroke elsewhere, and what a positive stroke added is not taken back by a later negative
    stroke elsewhere, unless the new stroke touches that piece itself.

    Parameters
    ----------
    initial : ndarray of bool
        The mask before the first stroke (the segment as it was).
    max_change : float or None
        See `targeted_update`.
    """

    def __init__(self, initial, max_change=None):
        self.max_change = max_change
        self.mask = np.array(initial, bool)
        self.rejected = np.zeros(self.mask.shape, bool)  # removed by negative strokes
        self.accepted = np.zeros(self.mask.shape, bool)  # added by positive strokes

    def update(self, proposed, stroke, positive, box=None):
        """Apply one stroke's proposal (see `targeted_update`); returns the new mask.

        `proposed` and `stroke` may be given for a block only: `box` (a tuple of slices of the mask) says where;
        the mask outside the box does not change.

        Raises
        ------
        SmartBrushInputError
            If `proposed` or `stroke` differ in shape from the mask.
        """
        proposed, stroke = np.asarray(proposed, bool), np.asarray(stroke, bool)
        box = tuple(slice(0, n) for n in self.mask.shape) if box is None else tuple(box)
        shape = self.mask[box].shape
        if proposed.shape != shape or stroke.shape != shape:
            raise SmartBrushInputError(f"proposed {proposed.shape} and stroke {stroke.shape} must have the shape "
                                       f"{shape} of the mask's box")
        mask, rejected, accepted = self.mask[box], self.rejected[box], self.accepted[box]
        near = ndimage.binary_dilation(stroke) | stroke
        protected = rejected if positive else accepted
        protected = protected & ~_pieces_touching(protected, near)
        if positive:
            allowed = proposed & ~protected  # protected voxels count as not proposed: they cannot be added
        else:
            allowed = proposed | protected  # protected voxels count as proposed: they cannot be removed
        new = targeted_update(mask, allowed, stroke, positive, self.max_change)
        changed = new ^ mask
        if positive:
            accepted |= changed
            rejected &= ~new
        else:
            rejected |= changed
            accepted &= new
        mask[...] = new
        return self.mask
