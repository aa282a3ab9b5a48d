"""Monotone, targeted corrections of the 2D Smart Brush on one plane (numpy / scipy / scikit-image only).

After each stroke the classifier is retrained, and its new prediction may differ from the previous one far from
the stroke: a negative dab can flip the whole object, a second positive dab can flood a neighbour. The user asked
for one thing, so one stroke changes only the region it lands in:

- a positive stroke adds itself (its pixels the new prediction agrees with, when there are any) and the pieces
  of the new prediction connected to it that the previous mask lacked; it never removes. A stroke on the
  mask's edge moves the edge out to about where the stroke's centre lies, no further (`edge_reach`): a dab
  aimed at a one-pixel rim also covers the tissue beyond it, and there the values of the two are alike;
- a negative stroke removes itself and, from the region of the previous mask it lands in, what the retrained
  classifier no longer predicts there; it never adds. "The region it lands in" is the part of the previous mask
  that an edge-weighted competition between the plane's negative and positive strokes gives to the negative
  strokes (a marker watershed on the image's gradient): the wrongly labelled tissue the stroke was aimed at,
  bounded by the edges that separate it from tissue the user marked as the object.

What a negative stroke removed is not added back by a later positive stroke unless that stroke lands on it.
Arrays are 2D (rows, cols) on the plane.
"""
import numpy as np
from scipy import ndimage
from skimage.segmentation import watershed

from .errors import SmartBrushInputError


def _pieces_touching(region, seeds):
    """Connected pieces (edge connectivity) of `region` that share a pixel with `seeds`."""
    if not (region & seeds).any():
        return np.zeros(region.shape, bool)
    labelled, _ = ndimage.label(region)
    keep = np.unique(labelled[seeds & region])
    return np.isin(labelled, keep[keep > 0])


def stroke_territory(edges, area, own_strokes, other_strokes):
    """Pixels of `area` nearer, along the image's edges, to `own_strokes` than to `other_strokes`.

    A marker watershed on `edges` (gradient magnitude) from both stroke sets, inside `area`: a pixel goes to the
    strokes whose flooding reaches it first, so the boundary between the two lies on the strongest edge between
    them.

    Parameters
    ----------
    edges : ndarray 2D float
    area : ndarray 2D bool
    own_strokes, other_strokes : ndarray 2D bool

    Returns
    -------
    ndarray 2D bool
        The part of `area` (plus `own_strokes` inside it) flooded from `own_strokes`.
    """
    markers = np.zeros(area.shape, np.int32)
    markers[other_strokes & area] = 1
    markers[own_strokes & area] = 2
    if not (markers == 2).any():
        return np.zeros(area.shape, bool)
    if not (markers == 1).any():
        return _pieces_touching(area, own_strokes)
    return watershed(edges, markers, mask=area) == 2


# How far (in stroke radii, inside the mask) one negative stroke's removal reaches: the user aims a stroke at the
# wrong region, so its size sets the scale of what the stroke is about.
REACH_PER_STROKE_RADIUS = 4.0


def stroke_radius(stroke):
    """Radius in pixels of the disc of the stroke's area (a dab's radius; a long stroke's is larger)."""
    return float(np.sqrt(max(int(np.count_nonzero(stroke)), 1) / np.pi))


def within_reach(area, stroke, reach):
    """Pixels of `area` at most `reach` pixels from `stroke` along paths inside `area` (chamfer steps)."""
    reached = stroke & area
    frontier = reached
    for _ in range(int(np.ceil(reach))):
        frontier = ndimage.binary_dilation(frontier, mask=area) & ~reached
        if not frontier.any():
            break
        reached = reached | frontier
    return reached


def _painted(stroke, proposed):
    """What a positive stroke paints itself: its pixels the retrained classifier takes for the segment, when it
    takes any (the rest of the disc spilled over an edge: a dab aimed at a one-pixel rim), else all of it (the
    user insists against the classifier)."""
    agreed = stroke & proposed
    return agreed if agreed.any() else stroke


def edge_reach(distance_from_mask, stroke):
    """How far out (pixels from the mask) a stroke on the mask's edge asks the edge to move, or None for a stroke
    away from the edge (or no mask: `distance_from_mask` is the Euclidean distance of each pixel to the mask).

    The stroke's centre (its pixels deepest inside it) lies a distance d beyond the mask; a user aims the centre at
    the middle of the missed band, so the band is about 2 d - 1 pixels deep. A stroke whose centre lies further
    out than its radius plus one does not touch the mask: it marks tissue of its own, and None is returned.
    """
    depth_in_stroke = ndimage.distance_transform_edt(np.pad(stroke, 1))[1:-1, 1:-1]
    centre = stroke & (depth_in_stroke >= depth_in_stroke.max() - 0.5)
    distance = float(distance_from_mask[centre].max())
    if distance > stroke_radius(stroke) + 1.0:
        return None
    return max(2.0 * distance - 1.0, 1.0)


# Beyond the stroke itself, a stroke adds (or removes) only pixels the retrained classifier labels so with at least
# this probability: the pieces it is unsure of are where a leak runs (MNI white matter under bias and noise: a
# dab's 291-pixel leak into the cortex had a mean probability of 0.66; its good additions elsewhere had 1.0).
SURE_PROBABILITY = 0.8


class PlaneCorrections:
    """The brush's mask on one plane, changed by each stroke only where the stroke asked for it.

    Parameters
    ----------
    shape : (rows, cols)
    """

    def __init__(self, shape):
        self.mask = np.zeros(shape, bool)
        self.positive = np.zeros(shape, bool)  # every stroke of the segment on this plane, latest label wins
        self.negative = np.zeros(shape, bool)
        self.rejected = np.zeros(shape, bool)  # removed by negative strokes

    def update(self, proposed, stroke, positive, edges, unsure=None):
        """Apply one stroke; returns the new mask (also kept in `mask`).

        Parameters
        ----------
        proposed : ndarray 2D bool
            The retrained classifier's prediction of the segment on the plane.
        stroke : ndarray 2D bool
            The new stroke's pixels.
        positive : bool
            True for a stroke on the segment, False for an erase (negative) stroke.
        edges : ndarray 2D float
            Gradient magnitude of the plane's image (where strokes compete for territory).
        unsure : ndarray 2D float or None
            1 - the classifier's probability of the label it gives each pixel (None: sure everywhere).

        Raises
        ------
        SmartBrushInputError
            If the arrays differ in shape from the plane.
        """
        proposed, stroke = np.asarray(proposed, bool), np.asarray(stroke, bool)
        edges = np.asarray(edges, float)
        sure = np.ones(self.mask.shape, bool) if unsure is None else np.asarray(unsure) <= 1.0 - SURE_PROBABILITY
        if not proposed.shape == stroke.shape == edges.shape == sure.shape == self.mask.shape:
            raise SmartBrushInputError(f"proposed {proposed.shape}, stroke {stroke.shape}, edges {edges.shape} and "
                                       f"unsure {sure.shape} must have the plane's shape {self.mask.shape}")
        stroke, band = self._on_edge(stroke, positive)
        if positive:
            self.positive |= stroke
            self.negative &= ~stroke
        else:
            self.negative |= stroke
            self.positive &= ~stroke
        near = ndimage.binary_dilation(stroke, iterations=2) | stroke
        if positive:
            open_to_add = ~self.rejected | _pieces_touching(self.rejected, near)
            candidate = proposed & ~self.mask & open_to_add & ~self.negative & band & sure
            if self.negative.any():  # never into tissue nearer, across edges, to what was marked "not this"
                candidate &= stroke_territory(edges, candidate | self.mask | stroke, self.positive, self.negative)
            # thin chains of single pixels are the classifier's noise, not tissue: a leak runs along them
            added = _pieces_touching(ndimage.binary_opening(candidate), near)
            new = self.mask | _painted(stroke, proposed) | added
            self.rejected &= ~new
        else:
            area = self.mask | stroke
            territory = stroke_territory(edges, area, self.negative, self.positive) & ~proposed & band & sure
            territory &= within_reach(area, stroke, REACH_PER_STROKE_RADIUS * stroke_radius(stroke))
            removed = stroke | _pieces_touching(territory, near)
            new = self.mask & ~removed & ~self.negative | (self.mask & self.positive)
            self.rejected |= self.mask & ~new
        self.mask = new
        return self.mask

    def _on_edge(self, stroke, positive):
        """(the part of `stroke` that counts, the band of pixels the stroke may change).

        A stroke on the mask's edge (see `edge_reach`) counts only up to its reach across the edge (a positive
        one outside the mask, a negative one inside it) and changes nothing deeper; any other stroke counts whole
        and may change the whole plane."""
        side = self.mask if positive else ~self.mask
        if not side.any() or not stroke.any():
            return stroke, np.ones(stroke.shape, bool)
        distance = ndimage.distance_transform_edt(~side)
        reach = edge_reach(distance, stroke)
        if reach is None:
            return stroke, np.ones(stroke.shape, bool)
        band = side | (distance <= reach + 1e-6)
        return stroke & band, band
