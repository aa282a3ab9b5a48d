"""Smart Brush algorithms: features, classifier, model, assist, bad input, 3D box prediction."""
import numpy as np
import pytest

from SmartBrushLib.algorithms import (FeatureSettings, KernelDensityClassifier, SliceBrushModel,
                                      SmartBrushCancelled, SmartBrushInputError, SmartBrushModel,
                                      compute_features, uncertainty)
from SmartBrushLib.algorithms import features as features_module


def two_intensity_phantom(shape=(6, 40, 40), seed=0):
    """Left half 100, right half 200 (sharp vertical edge at i = 20), mild noise."""
    rng = np.random.default_rng(seed)
    image = np.full(shape, 100.0)
    image[..., shape[-1] // 2:] = 200.0
    return image + rng.normal(0, 5, shape)


def disk(shape_ji, centre, radius=3):
    j, i = np.ogrid[:shape_ji[0], :shape_ji[1]]
    return (j - centre[0]) ** 2 + (i - centre[1]) ** 2 <= radius ** 2


def stroke(shape_kji, k, centre, radius=3):
    mask = np.zeros(shape_kji, bool)
    mask[k] = disk(shape_kji[1:], centre, radius)
    return mask


def trained_model(seed=0):
    image = two_intensity_phantom()
    model = SmartBrushModel(image, (2.0, 1.0, 1.0), seed=seed)
    model.add_stroke(stroke(image.shape, 3, (20, 30)), 1)
    model.add_stroke(stroke(image.shape, 3, (20, 8)), 0)
    return model


def test_features_have_one_float32_column_per_name_in_2d_and_3d():
    settings = FeatureSettings(edge_features=("gradient", "laplacian", "hessian"))
    stack_2d = compute_features(np.zeros((8, 9)), (1.0, 0.5), settings)
    stack_3d = compute_features(np.zeros((5, 8, 9)), (3.0, 1.0, 0.5), settings)
    assert stack_2d.shape == (8, 9, 1 + 3 + 4) and stack_2d.dtype == np.float32
    assert stack_3d.shape == (5, 8, 9, 1 + 3 + 5) and stack_3d.dtype == np.float32
    assert settings.names(2)[-2:] == ["hessian0_1.6", "hessian1_1.6"]


def test_hessian_eigenvalues_of_a_bright_blob_centre_are_negative_and_sorted():
    image = np.zeros((21, 21, 21))
    image[10, 10, 10] = 1000.0
    settings = FeatureSettings(sigmas_mm=(2.0,), edge_sigmas_mm=(2.0,), edge_features=("hessian",))
    stack = compute_features(image, (1.0, 1.0, 1.0), settings)
    eigen = stack[10, 10, 10, -3:]
    assert np.all(eigen < 0)
    assert eigen[0] >= eigen[1] >= eigen[2]
    np.testing.assert_allclose(eigen, eigen[0], rtol=0.05)


def test_second_prediction_on_the_same_slice_recomputes_no_features(monkeypatch):
    calls = []
    original = features_module.compute_features

    def counting(*args, **kwargs):
        calls.append(args[0].shape)
        return original(*args, **kwargs)

    monkeypatch.setattr("SmartBrushLib.algorithms.model.compute_features", counting)
    model = trained_model()
    model.predict_slice(3)
    first = len(calls)
    model.add_stroke(stroke(model.image.shape, 3, (5, 30)), 1)
    model.predict_slice(3)
    assert first == 1 and len(calls) == 1
    assert model.features.computed == 1 and model.features.hits >= 2


def test_classifier_separates_a_two_intensity_phantom_at_its_edge():
    model = trained_model()
    labels, probability = model.predict_slice(1)
    assert labels.dtype == np.int32 and probability.dtype == np.float32
    assert np.all(labels[:, 22:] == 1)
    assert np.all(labels[:, :18] == 0)
    assert probability[:, 30].min() > 0.9
    assert uncertainty(probability)[:, 30].max() < 0.1


def test_same_seed_gives_identical_predictions_even_with_subsampled_strokes():
    image = two_intensity_phantom(seed=3)
    results = []
    for _ in range(2):
        model = SmartBrushModel(image, seed=7, classifier_options={"max_samples_per_label": 10})
        model.add_stroke(stroke(image.shape, 2, (20, 30), radius=6), 1)
        model.add_stroke(stroke(image.shape, 2, (20, 8), radius=6), 0)
        results.append(model.predict_slice(2))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])


def test_three_labels_each_win_their_own_intensity_band():
    image = np.repeat(np.repeat([[0.0, 100.0, 200.0]], 10, axis=1), 30, axis=0)[None].repeat(3, axis=0)
    model = SmartBrushModel(image)
    model.add_stroke(stroke(image.shape, 1, (15, 4)), 0)
    model.add_stroke(stroke(image.shape, 1, (15, 15)), 2)
    model.add_stroke(stroke(image.shape, 1, (15, 25)), 5)
    labels, _ = model.predict_slice(0)
    assert set(np.unique(labels[:, :8])) == {0}
    assert set(np.unique(labels[:, 12:18])) == {2}
    assert set(np.unique(labels[:, 22:])) == {5}


def test_painting_over_a_stroke_moves_its_voxels_to_the_new_label_and_clear_forgets_them():
    model = trained_model()
    model.add_stroke(stroke(model.image.shape, 3, (20, 30), radius=1), 0)
    assert model.painted_labels() == [0, 1]
    model.clear(1)
    assert model.painted_labels() == [0]
    assert model.training_state() == "background_only"
    assert not model.predict_slice(3)[0].any()
    model.clear()
    assert model.training_state() == "empty"


def test_one_label_only_predicts_the_similar_region_connected_to_the_stroke():
    image = two_intensity_phantom()
    model = SmartBrushModel(image)
    model.add_stroke(stroke(image.shape, 3, (20, 30)), 4)
    labels, _ = model.predict_slice(3)
    assert model.training_state() == "one_label"
    assert np.all(labels[:, 21:] == 4) and not labels[:, :19].any()


def test_empty_stroke_changes_nothing():
    model = trained_model()
    before = model.predict_slice(3)[0]
    assert model.add_stroke(np.zeros(model.image.shape, bool), 2) == 0
    assert model.painted_labels() == [0, 1]
    np.testing.assert_array_equal(model.predict_slice(3)[0], before)


def test_assist_keeps_only_the_side_of_the_edge_where_the_brush_started():
    model = trained_model()
    footprint = stroke(model.image.shape, 2, (20, 20), radius=5)
    kept = model.assist(footprint, (2, 20, 23))
    assert kept[2, 20, 23] and kept[footprint & (np.arange(40) >= 22)].all()
    assert not kept[:, :, :20].any() and not kept[~footprint].any()


def test_assist_without_a_classifier_uses_intensity_similarity():
    image = two_intensity_phantom()
    model = SmartBrushModel(image)
    footprint = stroke(image.shape, 2, (20, 20), radius=5)
    kept = model.assist(footprint, (2, 20, 17))
    assert kept[2, 20, 15] and not kept[:, :, 21:].any()


def test_nan_voxels_are_replaced_counted_and_predicted_without_error():
    image = two_intensity_phantom()
    image[3, 5:10, 25:35] = np.nan
    model = SmartBrushModel(image)
    model.add_stroke(stroke(image.shape, 3, (20, 30)), 1)
    model.add_stroke(stroke(image.shape, 3, (20, 8)), 0)
    labels, probability = model.predict_slice(3)
    assert model.nan_voxel_count == 50
    assert np.isfinite(probability).all()
    assert labels[20, 30] == 1 and labels[20, 5] == 0


@pytest.mark.parametrize("call", [
    lambda: SmartBrushModel(np.zeros((4, 4))),
    lambda: SmartBrushModel(np.zeros((2, 4, 4)), spacing_kji=(1.0, 0.0, 1.0)),
    lambda: SmartBrushModel(np.zeros((2, 4, 4)), spacing_kji=(1.0, 1.0)),
    lambda: SliceBrushModel(np.zeros((2, 4, 4))),
    lambda: trained_model().add_stroke(np.zeros((6, 40)), 1),
    lambda: trained_model().add_stroke(np.zeros((6, 40, 40), bool), -1),
    lambda: trained_model().predict_slice(6),
    lambda: trained_model().predict_box(((0, 7), (0, 40), (0, 40))),
    lambda: trained_model().assist(stroke((6, 40, 40), 2, (20, 20)), (2, 0, 0)),
    lambda: compute_features(np.zeros((2, 2, 2, 2)), (1, 1, 1, 1)),
    lambda: KernelDensityClassifier().predict_proba(np.zeros((3, 2))),
])
def test_bad_input_raises_a_value_error_subclass(call):
    with pytest.raises(SmartBrushInputError):
        call()
    assert issubclass(SmartBrushInputError, ValueError)


def test_predict_box_reports_progress_up_to_one_and_matches_the_edge():
    model = trained_model()
    fractions = []
    labels, probability = model.predict_box(((1, 5), (5, 35), (10, 30)), progress=fractions.append)
    assert labels.shape == probability.shape == (4, 30, 20)
    assert fractions[0] == 0.0 and fractions[-1] == 1.0 and fractions == sorted(fractions)
    assert np.all(labels[..., 12:] == 1) and np.all(labels[..., :8] == 0)


def test_predict_box_learns_from_strokes_outside_the_box():
    model = trained_model()
    labels, _ = model.predict_box(((0, 2), (0, 40), (0, 40)))
    assert np.all(labels[..., 24:] == 1) and not labels[..., :16].any()


def test_cancelled_predict_box_raises_and_stops_reporting():
    model = trained_model()
    fractions = []
    with pytest.raises(SmartBrushCancelled):
        model.predict_box(((0, 6), (0, 40), (0, 40)), progress=fractions.append,
                          cancel=lambda: len(fractions) >= 1)
    assert fractions == [0.0]


def test_slice_model_trains_on_a_2d_image_with_anisotropic_spacing():
    image = two_intensity_phantom()[0]
    model = SliceBrushModel(image, (0.5, 2.0))
    model.add_stroke(disk(image.shape, (20, 30)), 1)
    model.add_stroke(disk(image.shape, (20, 8)), 0)
    labels, _ = model.predict()
    assert labels.shape == (40, 40)
    assert np.all(labels[:, 22:] == 1) and not labels[:, :18].any()
    assert model.assist(disk(image.shape, (20, 20), 5), (20, 23))[20, 21:26].all()


def test_simulated_dabs_segment_a_bright_disk_phantom_within_a_few_dabs():
    from SmartBrushLib.algorithms.evaluation import simulate_dabs
    truth = disk((48, 48), (24, 24), radius=12)
    image = np.where(truth, 200.0, 80.0) + np.random.default_rng(1).normal(0, 5, truth.shape)
    result = simulate_dabs(lambda im, sp: SliceBrushModel(im, sp), image, truth, n=5)
    assert len(result["dice"]) == 5 and len(result["seconds"]) <= 5
    # The second dab straddles the disk edge: the one-label fallback must not flood the background.
    assert min(result["dice"]) > 0.9
