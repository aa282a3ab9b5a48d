"""Smart Regions algorithms: supervoxels, region lookup, smart merge, overlays, cache, errors."""
import numpy as np
import pytest
from scipy import ndimage

from SmartRegionsLib.algorithms.region_click_loop import simulate_region_clicks
from SmartRegionsLib.algorithms.region_errors import (
    IndexOutsideVolumeError, InvalidParameterError, NonFiniteVoxelsError, RegionInputError,
    SupervoxelsCancelled, VolumeTooSmallError)
from SmartRegionsLib.algorithms.region_graph import RegionGraph, closest_partner, label_adjacency
from SmartRegionsLib.algorithms.region_lookup import (
    click_regions, default_merge_tolerance, hover_mask, region_at, region_mask, slice_boundaries)
from SmartRegionsLib.algorithms.supervoxel_cache import SupervoxelCache
from SmartRegionsLib.algorithms.supervoxels import (
    SupervoxelParameters, _band_thresholds, compute_slice_superpixels, compute_superpixels,
    compute_supervoxels)

EDGE_I = 13
# The phantoms hold two intensity classes, so two levels (see SupervoxelParameters).
SMALL = SupervoxelParameters(region_size_mm=8.0, intensity_levels=2)


@pytest.fixture
def a_two_half_phantom():
    """(k, j, i) = (16, 24, 30): intensity 20 for i < 13, 120 beyond, Gaussian noise of std 5."""
    rng = np.random.default_rng(0)
    image = np.where(np.arange(30) < EDGE_I, 20.0, 120.0) * np.ones((16, 24, 1))
    return (image + rng.normal(0, 5, image.shape)).astype(np.float32)


@pytest.fixture
def a_ball_phantom():
    """(20, 20, 20) volume with a bright ball of radius 6 (value 100) on a dark background (10)."""
    k, j, i = np.mgrid[:20, :20, :20]
    ball = (k - 10) ** 2 + (j - 10) ** 2 + (i - 10) ** 2 <= 36
    return np.where(ball, 100.0, 10.0).astype(np.float32), ball


def test_no_region_crosses_a_sharp_edge(a_two_half_phantom):
    labels = compute_supervoxels(a_two_half_phantom, (1.0, 1.0, 1.0), SMALL)
    left = np.unique(labels[..., :EDGE_I])
    right = np.unique(labels[..., EDGE_I:])
    assert np.intersect1d(left, right).size == 0
    assert left.size >= 2 and right.size >= 2


def test_same_input_gives_identical_labels(a_two_half_phantom):
    first = compute_supervoxels(a_two_half_phantom, (1.0, 1.0, 1.0), SMALL)
    second = compute_supervoxels(a_two_half_phantom.copy(), (1.0, 1.0, 1.0), SMALL)
    np.testing.assert_array_equal(first, second)


def test_labels_are_contiguous_from_one_and_each_region_is_connected(a_two_half_phantom):
    labels = compute_supervoxels(a_two_half_phantom, (1.0, 1.0, 1.0), SMALL)
    assert labels.dtype == np.int32
    np.testing.assert_array_equal(np.unique(labels), np.arange(1, labels.max() + 1))
    for label in range(1, labels.max() + 1):
        assert ndimage.label(labels == label)[1] == 1


def test_larger_region_size_gives_fewer_regions_in_the_plain_grid(a_two_half_phantom):
    # tissue_separation=0 keeps the grid cells (no merge across cell walls), whose count the sizes set
    counts = [compute_supervoxels(a_two_half_phantom, (1.0, 1.0, 1.0),
                                  SupervoxelParameters(region_size_mm=size, intensity_levels=2,
                                                       tissue_separation=0.0)).max()
              for size in (4.0, 8.0, 16.0)]
    assert counts[0] > counts[1] > counts[2]
    extra_levels = compute_supervoxels(a_two_half_phantom, (1.0, 1.0, 1.0),
                                       SupervoxelParameters(region_size_mm=4.0, intensity_levels=5,
                                                            tissue_separation=0.0)).max()
    assert extra_levels > counts[0]
    # 4 mm cells: 4 x 6 x 8 cells, the edge splits one column of cells into two.
    assert counts[0] == pytest.approx(4 * 6 * 9, rel=0.15)


def test_coarse_slice_spacing_makes_grid_cells_span_fewer_slices(a_two_half_phantom):
    plain_grid = SupervoxelParameters(region_size_mm=8.0, intensity_levels=2, tissue_separation=0.0)
    labels = compute_supervoxels(a_two_half_phantom, (4.0, 1.0, 1.0), plain_grid)
    slices_per_region = [np.unique(np.nonzero(labels == label)[0]).size
                         for label in range(1, labels.max() + 1)]
    assert max(slices_per_region) <= 3


def test_progress_is_reported_in_order_up_to_one(a_two_half_phantom):
    fractions = []
    compute_supervoxels(a_two_half_phantom, (1.0, 1.0, 1.0), SMALL, progress=fractions.append)
    assert fractions[0] == 0.0 and fractions[-1] == 1.0
    assert fractions == sorted(fractions) and len(fractions) >= 4


def test_cancel_stops_the_computation(a_two_half_phantom):
    polls = []

    def cancel():
        polls.append(1)
        return len(polls) >= 2

    fractions = []
    with pytest.raises(SupervoxelsCancelled):
        compute_supervoxels(a_two_half_phantom, (1.0, 1.0, 1.0), SMALL,
                            progress=fractions.append, cancel=cancel)
    assert len(polls) == 2 and fractions[-1] < 1.0


def test_roi_box_labels_zero_outside_the_box(a_two_half_phantom):
    box = ((2, 10), (4, 20), (5, 25))
    labels = compute_supervoxels(a_two_half_phantom, (1.0, 1.0, 1.0), SMALL, box_kji=box)
    inside = np.zeros(labels.shape, bool)
    inside[2:10, 4:20, 5:25] = True
    assert (labels[~inside] == 0).all() and (labels[inside] > 0).all()
    np.testing.assert_array_equal(np.unique(labels[inside]), np.arange(1, labels.max() + 1))


def test_slice_mode_regions_lie_in_the_chosen_slice(a_two_half_phantom):
    labels = compute_slice_superpixels(a_two_half_phantom, (1.0, 1.0, 1.0), 5, SMALL)
    assert (np.nonzero(labels)[0] == 5).all()
    assert (labels[5] > 0).all()
    direct = compute_superpixels(a_two_half_phantom[5], (1.0, 1.0), SMALL)
    np.testing.assert_array_equal(labels[5], direct)


def test_band_thresholds_fall_between_the_class_means():
    values = np.concatenate([np.full(1000, 10.0), np.full(500, 60.0), np.full(800, 200.0)])
    thresholds = _band_thresholds(values, 3)
    assert thresholds.size == 2
    assert 10 < thresholds[0] <= 60 < thresholds[1] <= 200


def test_region_graph_statistics_and_neighbours():
    labels = np.array([[1, 1, 2], [3, 3, 2]])
    image = np.array([[1.0, 3.0, 10.0], [5.0, 5.0, 12.0]])
    graph = RegionGraph(labels, image)
    np.testing.assert_allclose(graph.mean[1:], [2.0, 11.0, 5.0])
    np.testing.assert_allclose(graph.std[1:], [1.0, 1.0, 0.0])
    np.testing.assert_array_equal(label_adjacency(labels), [[1, 2], [1, 3], [2, 3]])
    np.testing.assert_array_equal(graph.neighbours(1), [2, 3])
    assert graph.region_count == 3


@pytest.mark.parametrize("shape", [(7, 9, 11), (13, 17)])
def test_label_adjacency_is_every_face_pair(shape):
    # Blocky random labels (walls spanning several voxels, which the adjacency reads once) with an outside (0).
    rng = np.random.default_rng(3)
    coarse = rng.integers(0, 6, size=tuple(n // 2 + 1 for n in shape))
    labels = np.kron(coarse, np.ones((2,) * len(shape), int))[tuple(slice(0, n) for n in shape)]
    labels[rng.random(shape) < 0.05] = rng.integers(0, 6)
    expected = set()
    for axis in range(labels.ndim):
        a = np.moveaxis(labels, axis, 0)
        for low, high in zip(np.minimum(a[1:], a[:-1]).ravel(), np.maximum(a[1:], a[:-1]).ravel()):
            if 0 < low < high:
                expected.add((int(low), int(high)))
    np.testing.assert_array_equal(label_adjacency(labels), sorted(expected))


def test_closest_partner_least_cost_ties_to_smaller_id():
    pairs = np.array([[1, 4], [1, 2], [1, 3], [3, 1], [3, 2]])
    cost = np.array([0.5, 0.5, 0.7, 0.2, 0.1])
    np.testing.assert_array_equal(closest_partner(pairs, cost, 5), [0, 2, 2, 2, 4])


def test_smart_merge_takes_similar_neighbours_only():
    # A row of regions with means 10, 12, 50, 13: the 50 blocks the walk to the last one.
    labels = np.repeat(np.repeat(np.arange(1, 5)[None, :], 4, axis=0), 3, axis=1)
    image = np.choose(labels - 1, [10.0, 12.0, 50.0, 13.0]).astype(float)
    graph = RegionGraph(labels, image)
    np.testing.assert_array_equal(click_regions(labels, (0, 0)), [1])
    np.testing.assert_array_equal(click_regions(labels, (0, 0), graph, merge_tolerance=5.0), [1, 2])
    np.testing.assert_array_equal(click_regions(labels, (0, 0), graph, merge_tolerance=45.0), [1, 2, 3, 4])
    np.testing.assert_array_equal(
        click_regions(labels, (0, 0), graph, merge_tolerance=45.0, max_hops=1), [1, 2])


def test_region_lookup_mask_and_hover(a_two_half_phantom):
    labels = compute_supervoxels(a_two_half_phantom, (1.0, 1.0, 1.0), SMALL)
    label = region_at(labels, (3, 4, 20))
    mask = region_mask(labels, label)
    assert mask[3, 4, 20] and mask.sum() == (labels == label).sum()
    np.testing.assert_array_equal(hover_mask(labels, (3, 4, 20)), labels[3] == label)
    both = region_mask(labels, [label, labels[0, 0, 0]])
    assert both.sum() == (labels == label).sum() + (labels == labels[0, 0, 0]).sum()


def test_slice_boundaries_mark_region_borders_only():
    labels = np.zeros((2, 6, 6), np.int32)
    labels[1, :, :3] = 1
    labels[1, :, 3:] = 2
    boundaries = slice_boundaries(labels, 1)
    assert boundaries[:, 2].all() and boundaries[:, 3].all()
    assert boundaries.sum() == 12
    assert not slice_boundaries(labels, 0).any()


def test_cache_recomputes_only_when_image_or_parameters_change(a_two_half_phantom):
    cache = SupervoxelCache()
    first = cache.supervoxels(a_two_half_phantom, (1.0, 1.0, 1.0), SMALL)
    again = cache.supervoxels(a_two_half_phantom.copy(), (1.0, 1.0, 1.0), SMALL)
    assert again is first and cache.computations == 1
    cache.supervoxels(a_two_half_phantom, (1.0, 1.0, 1.0), SupervoxelParameters(region_size_mm=6.0, intensity_levels=2))
    changed = a_two_half_phantom.copy()
    changed[0, 0, 0] += 1
    cache.supervoxels(changed, (1.0, 1.0, 1.0), SMALL)
    assert cache.computations == 3
    cache.supervoxels(changed, (1.0, 1.0, 1.0), SMALL, token=("node1", 7))
    cache.supervoxels(a_two_half_phantom, (1.0, 1.0, 1.0), SMALL, token=("node1", 7))
    assert cache.computations == 4
    assert cache.graph(first, a_two_half_phantom) is cache.graph(first, a_two_half_phantom)


def test_click_loop_with_smart_merge_reaches_the_ball_in_one_click(a_ball_phantom):
    image, ball = a_ball_phantom

    class OneClickUser:
        def first_click(self):
            return type("Click", (), {"index": (10, 10, 10), "positive": True})()

        def next_click(self, prediction):
            return None

    labels = compute_supervoxels(image, (1.0, 1.0, 1.0), SupervoxelParameters(region_size_mm=5.0, intensity_levels=2))
    assert labels.max() > 8
    graph = RegionGraph(labels, image)
    plain = simulate_region_clicks(labels, ball, OneClickUser(), 2)
    merged = simulate_region_clicks(labels, ball, OneClickUser(), 2, graph,
                                    merge_tolerance=default_merge_tolerance(image))
    assert plain[0] < 0.5
    assert merged[0] > 0.99 and merged[1] == merged[0]


@pytest.mark.parametrize("shape", [(1, 30, 30), (30, 1, 30)])
def test_volume_with_a_dimension_below_two_is_rejected(shape):
    with pytest.raises(VolumeTooSmallError, match="at least 2 voxels"):
        compute_supervoxels(np.zeros(shape), (1.0, 1.0, 1.0))


def test_volume_smaller_than_one_region_is_rejected():
    with pytest.raises(VolumeTooSmallError, match="fewer voxels than one region"):
        compute_supervoxels(np.zeros((4, 4, 4)), (1.0, 1.0, 1.0), SMALL)


def test_nan_voxels_are_rejected(a_two_half_phantom):
    a_two_half_phantom[3, 3, 3] = np.nan
    with pytest.raises(NonFiniteVoxelsError, match="1 NaN or infinite"):
        compute_supervoxels(a_two_half_phantom, (1.0, 1.0, 1.0), SMALL)


def test_index_outside_the_volume_or_the_roi_is_rejected():
    labels = np.zeros((3, 4, 5), np.int32)
    labels[1] = 1
    with pytest.raises(IndexOutsideVolumeError, match="outside the volume"):
        region_at(labels, (3, 0, 0))
    with pytest.raises(IndexOutsideVolumeError, match="outside the region of interest"):
        region_at(labels, (0, 0, 0))
    with pytest.raises(IndexOutsideVolumeError):
        compute_slice_superpixels(np.zeros((3, 20, 20)), (1.0, 1.0, 1.0), 3)
    with pytest.raises(IndexOutsideVolumeError, match="leaves the volume"):
        compute_supervoxels(np.zeros((10, 10, 10)), (1.0, 1.0, 1.0), box_kji=((0, 11), (0, 5), (0, 5)))


@pytest.mark.parametrize("spacing, parameters", [
    ((1.0, 0.0, 1.0), SMALL),
    ((1.0, 1.0), SMALL),
    ((1.0, 1.0, 1.0), SupervoxelParameters(region_size_mm=-1.0)),
    ((1.0, 1.0, 1.0), SupervoxelParameters(compactness=1.5)),
    ((1.0, 1.0, 1.0), SupervoxelParameters(intensity_levels=0)),
])
def test_bad_spacing_or_parameters_are_rejected(a_two_half_phantom, spacing, parameters):
    with pytest.raises(InvalidParameterError):
        compute_supervoxels(a_two_half_phantom, spacing, parameters)


def test_input_errors_are_value_errors():
    assert issubclass(RegionInputError, ValueError)
    assert issubclass(VolumeTooSmallError, RegionInputError)
    assert not issubclass(SupervoxelsCancelled, ValueError)
