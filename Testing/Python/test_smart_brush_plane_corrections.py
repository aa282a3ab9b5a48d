"""2D Smart Brush corrections: one stroke changes only the region it lands in (plane_corrections, model bands)."""
import numpy as np
import pytest

from MVAEvaluationLib.simulated_user import dab_mask
from SmartBrushLib.algorithms import SliceBrushModel, SmartBrushInputError
from SmartBrushLib.algorithms.plane_corrections import PlaneCorrections, stroke_territory, within_reach


def disk(shape, centre, radius):
    rows, cols = np.ogrid[:shape[0], :shape[1]]
    return (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 <= radius ** 2


def object_with_neighbour():
    """A bright disc and a slightly darker disc touching it, on a dark background (2D)."""
    shape = (64, 96)
    target = disk(shape, (32, 30), 16)
    neighbour = disk(shape, (32, 53), 8) & ~target
    image = np.where(target, 1.0, np.where(neighbour, 0.8, 0.1))
    edges = np.hypot(*np.gradient(image))
    return target, neighbour, edges


def test_a_negative_stroke_removes_the_neighbour_it_lands_in_and_keeps_the_object():
    target, neighbour, edges = object_with_neighbour()
    corrections = PlaneCorrections(target.shape)
    first = dab_mask(target.shape, (32, 30))
    corrections.update(target | neighbour, first, True, edges)  # the first dab took both
    assert corrections.mask[neighbour].all()
    # the retrained classifier flips everything, object included: the stroke still removes only the neighbour
    after = corrections.update(np.zeros(target.shape, bool), dab_mask(target.shape, (32, 53)), False, edges)
    assert after[target].all()
    assert after[neighbour].mean() < 0.2


def test_a_positive_stroke_never_removes_and_adds_only_tissue_connected_to_it():
    target, neighbour, edges = object_with_neighbour()
    far = disk(target.shape, (8, 88), 5)
    corrections = PlaneCorrections(target.shape)
    corrections.update(target & (np.arange(96)[None, :] < 30), dab_mask(target.shape, (32, 20)), True, edges)
    before = corrections.mask.copy()
    after = corrections.update(target | far, dab_mask(target.shape, (32, 40)), True, edges)
    assert after[before].all()  # never removes
    assert after[target].all() and not after[far].any()  # the disconnected lookalike is not taken


def test_what_a_negative_stroke_removed_is_not_added_back_by_a_positive_stroke_elsewhere():
    target, neighbour, edges = object_with_neighbour()
    corrections = PlaneCorrections(target.shape)
    corrections.update(target | neighbour, dab_mask(target.shape, (32, 30)), True, edges)
    corrections.update(target, dab_mask(target.shape, (32, 53)), False, edges)
    removed = neighbour & ~corrections.mask
    after = corrections.update(target | neighbour, dab_mask(target.shape, (20, 25)), True, edges)
    assert removed.any() and not after[removed].any()


def test_a_negative_stroke_reaches_only_a_few_stroke_radii_into_the_mask():
    shape = (40, 200)
    band = np.zeros(shape, bool)
    band[15:25, :] = True
    stroke = dab_mask(shape, (20, 100))
    reached = within_reach(band, stroke, 12)
    columns = np.flatnonzero(reached.any(axis=0))
    assert reached[stroke & band].all() and columns.min() >= 85 and columns.max() <= 115


def test_stroke_territory_splits_the_area_on_the_edge_between_the_strokes():
    target, neighbour, edges = object_with_neighbour()
    own = dab_mask(target.shape, (32, 53))
    other = dab_mask(target.shape, (32, 30))
    territory = stroke_territory(edges, target | neighbour, own, other)
    assert territory[neighbour].mean() > 0.9 and territory[target].mean() < 0.1


def test_corrections_of_another_shape_raise_an_input_error():
    corrections = PlaneCorrections((10, 10))
    with pytest.raises(SmartBrushInputError):
        corrections.update(np.zeros((10, 11), bool), np.zeros((10, 10), bool), True, np.zeros((10, 10)))
    assert not corrections.mask.any()


def test_one_label_band_ignores_dabs_on_partial_volume():
    """Dabs on the object's blurred rim (values between object and background) neither widen the band of similar
    tissue to the background nor, outnumbering the dab inside, move it off the object."""
    shape = (64, 64)
    truth = disk(shape, (32, 32), 20)
    from scipy import ndimage
    image = ndimage.gaussian_filter(np.where(truth, 200.0, 60.0), 1.5)
    image += np.random.default_rng(3).normal(0, 2, shape)
    model = SliceBrushModel(image, (1.0, 1.0))
    model.add_stroke(dab_mask(shape, (32, 32)), 1)
    for rim in ((32, 52), (12, 32), (52, 32)):
        model.add_stroke(dab_mask(shape, rim), 1)
    labels, _ = model.predict()
    assert (labels[~ndimage.binary_dilation(truth, iterations=3)] == 0).all()
    assert (labels[ndimage.binary_erosion(truth, iterations=3)] == 1).all()


def test_a_first_dab_on_a_noisy_image_stops_at_a_neighbour_a_few_noise_widths_brighter():
    """With one label painted, the band of similar intensity is three noise widths wide: on a noisy image it
    reaches a touching neighbour only 2.5 (finely smoothed) noise widths brighter, like CT liver beside muscle. The
    smoother copy of the image tells the neighbour apart, so the first dab's region stays on its tissue."""
    rng = np.random.default_rng(5)
    shape = (80, 120)
    target = np.zeros(shape, bool)
    target[:, :60] = True
    neighbour = ~target
    image = np.where(target, 100.0, 120.0) + rng.normal(0.0, 20.0, shape)  # contrast of one raw noise width
    model = SliceBrushModel(image)
    model.add_stroke(dab_mask(shape, (40, 35)), 1)
    region = model.predict()[0] == 1
    assert region[target].mean() > 0.8
    assert region[neighbour].mean() < 0.1


def test_a_positive_dab_over_the_edge_paints_only_what_the_classifier_takes_and_an_insisting_one_all():
    shape = (40, 40)
    edges = np.zeros(shape)
    proposed = np.zeros(shape, bool)
    proposed[10:30, 10:20] = True  # the object ends at column 20
    corrections = PlaneCorrections(shape)
    corrections.update(proposed, dab_mask(shape, (20, 15)), True, edges)
    spilling = dab_mask(shape, (20, 19))  # aimed at the rim, reaching 3 columns past it
    assert (spilling & ~proposed).sum() >= 5
    mask = corrections.update(proposed, spilling, True, edges)
    assert not (mask & ~proposed).any() and mask[proposed].mean() > 0.95
    # a dab the classifier rejects altogether is the user insisting: it paints itself
    outside = dab_mask(shape, (20, 32))
    mask = corrections.update(proposed, outside, True, edges)
    assert mask[outside].all()


def test_a_positive_dab_on_a_one_pixel_missed_rim_moves_the_edge_out_by_that_pixel_only():
    shape = (64, 64)
    truth = disk(shape, (32, 32), 15)
    mask = disk(shape, (32, 32), 14)  # the rim of truth missed
    corrections = PlaneCorrections(shape)
    corrections.mask = mask.copy()
    rim = truth & ~mask
    centre = tuple(int(v) for v in np.argwhere(rim & (np.arange(64)[None, :] == 32))[0])
    flood = disk(shape, (32, 32), 20)  # the retrained classifier takes the tissue beyond the rim too
    after = corrections.update(flood, dab_mask(shape, centre), True, np.zeros(shape))
    gained = after & ~mask
    assert gained[centre] and gained.any()
    assert not (gained & ~truth).any()  # nothing beyond the one-pixel rim
    assert after[mask].all()


def test_a_negative_dab_on_a_one_pixel_false_rim_moves_the_edge_in_by_that_pixel_only():
    shape = (64, 64)
    truth = disk(shape, (32, 32), 14)
    mask = disk(shape, (32, 32), 15)  # one pixel too wide
    corrections = PlaneCorrections(shape)
    corrections.mask = mask.copy()
    centre = tuple(int(v) for v in np.argwhere((mask & ~truth) & (np.arange(64)[None, :] == 32))[0])
    after = corrections.update(np.zeros(shape, bool), dab_mask(shape, centre), False, np.zeros(shape))
    lost = mask & ~after
    assert lost[centre]
    assert not (lost & truth).any()  # the object inside the false rim keeps every pixel


def test_a_dab_deep_in_missed_tissue_still_adds_the_whole_connected_prediction():
    shape = (64, 96)
    truth = disk(shape, (32, 40), 20)
    mask = truth & (np.arange(96)[None, :] < 30)
    corrections = PlaneCorrections(shape)
    corrections.mask = mask.copy()
    after = corrections.update(truth, dab_mask(shape, (32, 48)), True, np.zeros(shape))
    missed = truth & ~mask
    assert (after & missed).sum() >= 0.99 * missed.sum()  # not held to the dab's depth from the edge
    assert not (after & ~truth).any()


def test_beyond_the_stroke_only_what_the_classifier_is_sure_of_is_added_or_removed():
    shape = (64, 96)
    mask = disk(shape, (32, 30), 12)
    grown = mask | (disk(shape, (32, 50), 12))  # the retrained classifier extends the object to the right ...
    unsure = np.where(np.arange(96)[None, :] > 50, 0.4, 0.0) * np.ones(shape)  # ... unsure of its far half
    corrections = PlaneCorrections(shape)
    corrections.mask = mask.copy()
    after = corrections.update(grown, dab_mask(shape, (32, 48)), True, np.zeros(shape), unsure)
    assert after[32, 44:50].all()  # sure: added
    assert not after[:, 53:].any()  # unsure: left as it was
    corrections = PlaneCorrections(shape)
    corrections.mask = grown.copy()
    kept = corrections.update(mask, dab_mask(shape, (32, 50)), False, np.zeros(shape), unsure)
    assert not kept[32, 45:53].any()  # sure it is not the object, next to the erase stroke: removed
    assert kept[grown & (np.arange(96)[None, :] > 54)].all()  # unsure: kept
