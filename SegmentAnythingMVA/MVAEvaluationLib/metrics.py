"""Interactive-segmentation metrics (numpy only)."""
import numpy as np


def dice(prediction, truth):
    """Dice coefficient of two binary arrays; 1.0 when both are empty."""
    p = np.asarray(prediction, bool)
    t = np.asarray(truth, bool)
    total = p.sum() + t.sum()
    return 1.0 if total == 0 else float(2.0 * np.logical_and(p, t).sum() / total)


def iou(prediction, truth):
    """Intersection over union; 1.0 when both are empty."""
    p = np.asarray(prediction, bool)
    t = np.asarray(truth, bool)
    union = np.logical_or(p, t).sum()
    return 1.0 if union == 0 else float(np.logical_and(p, t).sum() / union)


def number_of_clicks(dice_per_interaction, threshold, cap=20):
    """Interactions needed to reach `threshold` (1-based), or None if not reached within `cap`."""
    for count, value in enumerate(dice_per_interaction[:cap], start=1):
        if value >= threshold:
            return count
    return None


def area_under_curve(dice_per_interaction):
    """Mean Dice over the interactions (normalised area under the Dice-vs-k curve)."""
    return float(np.mean(dice_per_interaction)) if len(dice_per_interaction) else 0.0


def oracle_dice(regions, truth):
    """Best Dice any region-labelling tool can reach: each region takes its majority truth label."""
    regions = np.asarray(regions).ravel()
    truth = np.asarray(truth, bool).ravel()
    _, inverse = np.unique(regions, return_inverse=True)
    inside = np.bincount(inverse, weights=truth)
    size = np.bincount(inverse)
    chosen = inside * 2 > size
    return dice(chosen[inverse], truth)


def undersegmentation_error(regions, truth):
    """Undersegmentation error (Neubert & Protzel): leaked voxels over total, summed over truth labels."""
    regions = np.asarray(regions).ravel()
    truth = np.asarray(truth).ravel().astype(np.int64)
    _, inverse = np.unique(regions, return_inverse=True)
    leak = 0
    for label in np.unique(truth):
        inside = np.bincount(inverse, weights=truth == label, minlength=inverse.max() + 1)
        size = np.bincount(inverse, minlength=inverse.max() + 1)
        touching = inside > 0
        leak += np.minimum(inside[touching], size[touching] - inside[touching]).sum()
    return float(leak / truth.size)


def slice_extent_error(predicted_slices, truth_slices):
    """Slices labelled only in the prediction plus slices labelled only in the truth.

    Both arguments are boolean sequences (one entry per slice: is the slice non-empty).
    """
    p = np.asarray(predicted_slices, bool)
    t = np.asarray(truth_slices, bool)
    return int(np.logical_xor(p, t).sum())


def worst_drop(dice_per_interaction):
    """The largest Dice decrease one interaction caused (0.0 when the curve never goes down)."""
    values = np.asarray(dice_per_interaction, float)
    return round(float(max(0.0, np.max(values[:-1] - values[1:]))), 4) if values.size > 1 else 0.0
