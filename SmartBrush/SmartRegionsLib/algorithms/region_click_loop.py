"""Simulated-click loop for region tools: each click toggles the region(s) under it.

A positive click adds the regions it takes, a negative click removes them (EVALUATION.md: one
interaction toggles the region under the click). The user object is duck-typed: anything with
``first_click()`` and ``next_click(prediction)`` returning objects with ``index`` and ``positive``
(MVAEvaluationLib.simulated_user.SimulatedUser fits).
"""
import numpy as np

from SmartRegionsLib.algorithms.region_errors import InvalidParameterError
from SmartRegionsLib.algorithms.region_lookup import DEFAULT_MERGE_HOPS, click_regions, region_mask


def simulate_region_clicks(labels, truth, user, clicks, graph=None, merge_tolerance=None,
                           max_hops=DEFAULT_MERGE_HOPS):
    """Dice after each of up to `clicks` simulated clicks on a region label array.

    Parameters
    ----------
    labels : ndarray of int, same shape as `truth` (2D slice or 3D volume); 0 = not clickable
    truth : ndarray of bool
    user : simulated user (see module docstring) built on the same `truth`
    clicks : int
    graph, merge_tolerance, max_hops : smart merge options, as in `click_regions`

    Returns
    -------
    list of float
        Dice after click 1, 2, ...; once the user stops (perfect mask) the last value repeats.
    """
    labels = np.asarray(labels)
    truth = np.asarray(truth, bool)
    if labels.shape != truth.shape:
        raise InvalidParameterError(f"Labels shape {labels.shape} differs from truth shape {truth.shape}")
    prediction = np.zeros(truth.shape, bool)
    scores = []
    click = user.first_click()
    for _ in range(int(clicks)):
        if click is None:
            scores.append(scores[-1] if scores else 0.0)
            continue
        if labels[click.index] > 0:
            taken = click_regions(labels, click.index, graph, merge_tolerance, max_hops)
            prediction[region_mask(labels, taken)] = bool(click.positive)
        scores.append(_dice(prediction, truth))
        click = user.next_click(prediction)
    return scores


def _dice(prediction, truth):
    total = prediction.sum() + truth.sum()
    return 1.0 if total == 0 else float(2.0 * np.count_nonzero(prediction & truth) / total)
