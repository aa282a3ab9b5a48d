"""When to stop propagating: the object ended, the prediction jumped, or it leaked."""
from dataclasses import dataclass
from enum import Enum

import numpy as np


class StopReason(str, Enum):
    """Why propagation in one direction ended (stable ids, safe to store or compare as strings)."""
    VANISHED = "vanished"              # mask empty or below the minimum area: the object ended
    AREA_RATIO = "area_ratio"          # area changed too much between consecutive slices
    LOW_QUALITY = "low_quality"        # the predictor's own quality score is below the threshold
    LEFT_BOX = "left_box"              # the mask left the box grown from the seed's bounding box
    MAX_SLICES = "max_slices"          # the requested number of slices was reached
    VOLUME_END = "volume_end"          # the first or last slice of the volume was reached
    OBJECT_ABSENT = "object_absent"    # the predictor's object score says the object is not on this slice (SAM 2)


@dataclass
class StopRule:
    """Per-slice stop criteria; a criterion set to None is switched off.

    Attributes
    ----------
    min_area_mm2 : float or None
        A mask smaller than this (in-plane area, mm^2) counts as vanished.
    area_ratio_band : (float, float) or None
        Allowed range of area(this slice) / area(previous slice).
    ratio_min_area_mm2 : float
        The area ratio is only checked when either area is at least this large: tiny caps at the end
        of an object change area by large factors and are left to the vanishing test.
    min_quality : float or None
        Smallest acceptable predictor quality (0..1).
    box_margin_mm : float or None
        Margin added in-plane to the seed mask's bounding box; None switches the box test off.
    box_outside_fraction : float
        Fraction of the mask allowed outside the box before the box test fires.
    min_object_score : float or None
        Smallest acceptable object score logit, for predictors that give one (SAM 2: > 0 means the object is
        present); slices of predictors without one are not tested.
    """
    min_area_mm2: float | None = 2.0
    area_ratio_band: tuple | None = (0.5, 1.5)
    ratio_min_area_mm2: float = 30.0
    min_quality: float | None = 0.5
    box_margin_mm: float | None = 20.0
    box_outside_fraction: float = 0.05
    min_object_score: float | None = 0.0

    def seed_box(self, seed_mask_2d, spacing_ji):
        """In-plane box (rows, columns slices) allowed for the propagated masks, or None when off."""
        if self.box_margin_mm is None:
            return None
        rows = np.flatnonzero(np.asarray(seed_mask_2d).any(axis=1))
        cols = np.flatnonzero(np.asarray(seed_mask_2d).any(axis=0))
        grow = [int(np.ceil(self.box_margin_mm / s)) for s in spacing_ji]
        return (slice(max(rows[0] - grow[0], 0), rows[-1] + grow[0] + 1),
                slice(max(cols[0] - grow[1], 0), cols[-1] + grow[1] + 1))

    def check(self, mask_2d, previous_area_px, quality, box, spacing_ji, object_score=None):
        """Evaluate one propagated slice.

        Parameters
        ----------
        mask_2d : ndarray of bool (J, I)
            The predicted mask.
        previous_area_px : int
            Foreground pixels on the previously accepted slice.
        quality : float
            The predictor's quality score for this slice.
        box : tuple of two slices or None
            From `seed_box`.
        spacing_ji : (float, float)
            In-plane spacing in mm.
        object_score : float, optional
            The predictor's object score logit (SAM 2), None when it has none.

        Returns
        -------
        StopReason or None
            None when the slice is accepted.
        """
        if object_score is not None and self.min_object_score is not None and object_score < self.min_object_score:
            return StopReason.OBJECT_ABSENT
        pixel_mm2 = float(spacing_ji[0] * spacing_ji[1])
        area_px = int(np.count_nonzero(mask_2d))
        if area_px == 0 or (self.min_area_mm2 is not None and area_px * pixel_mm2 < self.min_area_mm2):
            return StopReason.VANISHED
        if box is not None:
            inside = int(np.count_nonzero(mask_2d[box]))
            if area_px - inside > self.box_outside_fraction * area_px:
                return StopReason.LEFT_BOX
        if self.area_ratio_band is not None and previous_area_px > 0:
            large = max(area_px, previous_area_px) * pixel_mm2 >= self.ratio_min_area_mm2
            ratio = area_px / previous_area_px
            if large and not self.area_ratio_band[0] <= ratio <= self.area_ratio_band[1]:
                return StopReason.AREA_RATIO
        if self.min_quality is not None and quality < self.min_quality:
            return StopReason.LOW_QUALITY
        return None
