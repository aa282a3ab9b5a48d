"""Smart Brush on CT: Hounsfield-unit volumes get the soft-tissue window expanded before features."""
import numpy as np
import pytest
from scipy import ndimage

from SmartBrushLib.algorithms import (IntensityMap, SmartBrushInputError, SmartBrushModel, compute_features,
                                      intensity_map)
from SmartBrushLib.algorithms import features as features_module


def chest_like_phantom(seed=0, shape=(3, 80, 80)):
    """Air (-1000) around a soft-tissue body (40 HU) holding a fluid disk (10 HU) and a lung (-800 HU);
    noise 20 HU, as on the CT phantom where fluid next to muscle was missed."""
    rng = np.random.default_rng(seed)
    image = np.full(shape, -1000.0)
    j, i = np.ogrid[:shape[1], :shape[2]]
    body = (j - 40) ** 2 / 36.0 ** 2 + (i - 40) ** 2 / 38.0 ** 2 <= 1
    fluid = (j - 40) ** 2 + (i - 55) ** 2 <= 10 ** 2
    lung = (j - 40) ** 2 + (i - 20) ** 2 <= 9 ** 2
    image[:, body] = 40.0
    image[:, fluid] = 10.0
    image[:, lung] = -800.0
    return image + rng.normal(0, 20, shape), fluid


def dice(a, b):
    return 2.0 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


def test_ct_volumes_get_the_soft_tissue_window_and_other_volumes_a_plain_linear_map():
    ct, _ = chest_like_phantom()
    mapping = intensity_map(ct)
    assert mapping.window == features_module.SOFT_TISSUE_WINDOW_HU
    assert mapping.window_scale == features_module.SOFT_TISSUE_HU_PER_UNIT
    mri = np.random.default_rng(0).uniform(0, 400, (3, 30, 30))
    assert intensity_map(mri).window is None


def test_soft_tissue_window_expands_a_30_hu_contrast_and_keeps_the_map_monotone():
    ct, _ = chest_like_phantom()
    mapping = intensity_map(ct)
    values = np.array([-1000.0, -800.0, -100.0, 10.0, 40.0, 200.0, 600.0])
    mapped = mapping.apply(values)
    assert np.all(np.diff(mapped) > 0)
    assert mapped[4] - mapped[3] == pytest.approx(30.0 / 150.0, rel=1e-4)
    # Outside the window the whole-range slope is kept: lung vs air is as far apart as before.
    _, scale = features_module.intensity_normalisation(ct)
    assert mapped[1] - mapped[0] == pytest.approx(200.0 / scale, rel=1e-4)


def test_a_plain_offset_scale_pair_still_gives_the_linear_features():
    image = np.random.default_rng(1).normal(100, 10, (20, 20))
    as_pair = compute_features(image, (1.0, 1.0), normalisation=(50.0, 200.0))
    as_map = compute_features(image, (1.0, 1.0), normalisation=IntensityMap(50.0, 200.0))
    np.testing.assert_allclose(as_pair, as_map)
    np.testing.assert_allclose(as_pair[..., 0], (image - 50.0) / 200.0, rtol=1e-5)


@pytest.mark.parametrize("bad", [dict(scale=0.0), dict(window=(10.0, 0.0), window_scale=5.0),
                                 dict(window=(0.0, 10.0))])
def test_bad_intensity_maps_raise_an_input_error(bad):
    with pytest.raises(SmartBrushInputError):
        IntensityMap(**bad)


def test_one_dab_in_fluid_next_to_soft_tissue_stays_in_the_fluid():
    image, fluid = chest_like_phantom()
    model = SmartBrushModel(image, (1.0, 0.8, 0.8))
    dab = np.zeros(image.shape, bool)
    dab[1] = (np.arange(80)[:, None] - 40) ** 2 + (np.arange(80)[None, :] - 55) ** 2 <= 9
    model.add_stroke(dab, 1)
    labels, _ = model.predict_slice(1)
    assert dice(labels == 1, fluid) > 0.8


def test_fluid_and_soft_tissue_dabs_train_a_classifier_that_separates_them():
    image, fluid = chest_like_phantom()
    model = SmartBrushModel(image, (1.0, 0.8, 0.8))
    j, i = np.ogrid[:80, :80]
    fluid_dab = np.zeros(image.shape, bool)
    fluid_dab[1] = (j - 40) ** 2 + (i - 55) ** 2 <= 9
    tissue_dab = np.zeros(image.shape, bool)
    tissue_dab[1] = (j - 15) ** 2 + (i - 45) ** 2 <= 9
    model.add_stroke(fluid_dab, 1)
    model.add_stroke(tissue_dab, 0)
    labels, _ = model.predict_slice(1)
    # Without the window (the ~1700 HU percentile scale) the two 30 HU-apart tissues were one class.
    assert dice(labels == 1, fluid) > 0.8


def test_ct_stored_as_unsigned_hu_plus_1024_gets_the_same_window_and_the_same_prediction():
    """Raw CT exports often store HU + 1024 as uint16: the brush must see the same soft tissue as on HU."""
    ct, fluid = chest_like_phantom()
    stored = np.round(ct + 1024.0).clip(0).astype(np.uint16)
    hounsfield = stored.astype(np.float32) - 1024.0
    assert intensity_map(stored).window == tuple(v + 1024.0 for v in features_module.SOFT_TISSUE_WINDOW_HU)
    predictions = []
    for image in (hounsfield, stored):
        model = SmartBrushModel(image, (3.0, 1.0, 1.0))
        strokes = np.zeros(image.shape, bool)
        strokes[1, 38:43, 53:58] = True
        model.add_stroke(strokes, 1)
        background = np.zeros(image.shape, bool)
        background[1, 38:43, 30:35] = True
        model.add_stroke(background, 0)
        predictions.append(model.predict_slice(1)[0] == 1)
    assert dice(predictions[0], fluid[1] if fluid.ndim == 3 else fluid) > 0.8
    assert dice(predictions[0], predictions[1]) > 0.99


def test_an_mri_with_a_dark_background_and_values_in_the_thousands_is_not_taken_for_stored_ct():
    rng = np.random.default_rng(2)
    mri = np.zeros((3, 60, 60))
    mri[:, 10:50, 10:50] = 2500.0  # tissue far from where soft tissue of HU + 1024 would lie
    mri[:, 20:40, 20:40] = 3200.0
    assert intensity_map(mri + rng.normal(0, 20, mri.shape).clip(0)).window is None


def test_an_mri_spanning_about_1000_above_a_dark_background_is_not_taken_for_stored_ct():
    """Air-like background 1000 below bright tissue is not enough: CT has almost no voxels between lung and fat,
    an MRI's grey and white matter fill that range (here: T1-like tissue at 450-1100 over a background of 100)."""
    rng = np.random.default_rng(3)
    j, i = np.ogrid[:80, :80]
    head = (j - 40) ** 2 + (i - 40) ** 2 <= 34 ** 2
    white = (j - 40) ** 2 + (i - 40) ** 2 <= 18 ** 2
    mri = np.full((3, 80, 80), 100.0)
    mri[:, head] = 700.0
    mri[:, white] = 1050.0
    mri = mri + rng.normal(0, 15, mri.shape)
    assert intensity_map(np.round(mri).astype(np.int16)).window is None
    ct, _ = chest_like_phantom()
    assert intensity_map(np.round(ct + 1024.0).clip(0).astype(np.uint16)).window is not None


def fluid_beside_lung(seed=0, shape=(3, 60, 60)):
    """A fluid disk (10 HU) in lung (-800 HU), blurred by one pixel (partial volume) and with 20 HU noise: the
    rim pixels are up to 400 HU darker than the fluid while mostly fluid."""
    j, i = np.ogrid[:shape[1], :shape[2]]
    fluid = (j - 30) ** 2 + (i - 30) ** 2 <= 12 ** 2
    image = np.where(fluid, 10.0, -800.0)[None].repeat(shape[0], 0)
    image = ndimage.gaussian_filter(image, (0, 1.0, 1.0))
    return image + np.random.default_rng(seed).normal(0, 20, shape), fluid


def labels_after_one_dab(image, spacing_kji, dab_2d):
    """The brush's labels of the segment on the middle slice of a 3-slice `image` after one dab there."""
    model = SmartBrushModel(image, spacing_kji)
    dab = np.zeros(image.shape, bool)
    dab[1] = dab_2d
    model.add_stroke(dab, 1)
    return model.predict_slice(1)[0] == 1


def test_one_dab_on_fluid_takes_the_partial_volume_rim_at_the_lung_edge():
    image, fluid = fluid_beside_lung()
    dab = (np.arange(60)[:, None] - 30) ** 2 + (np.arange(60)[None, :] - 30) ** 2 <= 9
    labels = labels_after_one_dab(image, (1.0, 0.8, 0.8), dab)
    # fluid pixels that the similarity band alone leaves out, though more fluid than lung (above -395 HU)
    rim = fluid & (image[1] < -150) & (image[1] > -300)
    assert rim.sum() > 30 and labels[rim].mean() > 0.9
    assert dice(labels, fluid) > 0.95 and not (labels & ~ndimage.binary_dilation(fluid)).any()


def test_a_dab_spilling_over_the_lung_edge_paints_no_lung():
    image, fluid = fluid_beside_lung()
    dab = (np.arange(60)[:, None] - 30) ** 2 + (np.arange(60)[None, :] - 37) ** 2 <= 49  # 2 pixels over the edge
    labels = labels_after_one_dab(image, (1.0, 0.8, 0.8), dab)
    assert (dab & ~ndimage.binary_dilation(fluid)).sum() >= 5 and not (labels & ~ndimage.binary_dilation(fluid)).any()
    assert dice(labels, fluid) > 0.95


@pytest.mark.parametrize("noise_hu", [40.0, 60.0])
def test_one_dab_on_liver_beside_muscle_does_not_flood_it_on_a_very_noisy_scan(noise_hu):
    """Liver (60 HU) beside muscle (40 HU) at 40-60 HU noise: only the 3.5 mm smoothing tells them apart."""
    rng = np.random.default_rng(3)
    j, i = np.ogrid[:96, :96]
    body = (j - 48) ** 2 / 44.0 ** 2 + (i - 48) ** 2 / 46.0 ** 2 <= 1
    liver = (j - 48) ** 2 + (i - 34) ** 2 <= 22 ** 2
    image = np.where(liver, 60.0, np.where(body, 40.0, -1000.0))[None].repeat(3, 0)
    image = image + rng.normal(0, noise_hu, image.shape)
    dab = (j - 48) ** 2 + (i - 34) ** 2 <= 16
    labels = labels_after_one_dab(image, (2.0, 0.8, 0.8), dab)
    # (before the 3.5 mm check: three times the liver's area of muscle, Dice 0.39)
    assert (labels & body & ~liver).sum() < 0.6 * liver.sum() and dice(labels, liver) > 0.7


def test_a_thin_muscle_layer_between_liver_and_fat_is_not_taken_for_the_livers_partial_volume():
    j, i = np.ogrid[:80, :80]
    radius = np.hypot(j - 40, i - 40)
    image = np.select([radius <= 20, radius <= 22, radius <= 30], [60.0, 40.0, -100.0], -1000.0)[None].repeat(3, 0)
    image = ndimage.gaussian_filter(image, (0, 0.7, 0.7)) + np.random.default_rng(5).normal(0, 10, image.shape)
    dab = radius <= 3
    labels = labels_after_one_dab(image, (2.0, 0.8, 0.8), dab)
    muscle = (radius > 20.5) & (radius <= 22)
    assert labels[radius <= 19].all() and labels[muscle].mean() < 0.2


def test_the_rim_does_not_thicken_a_strip_of_fluid_like_values_along_the_lung_wall():
    """Between lung (-800) and muscle (40) the blurred values pass through fluid's 10 HU: the fluid's region reaches
    along that wall as a thin strip, which the rim must not grow into the muscle."""
    j, i = np.ogrid[:90, :90]
    lung = (i >= 50) & (j < 70)
    fluid = (j >= 70) & (j < 86) & (i >= 30) & (i < 80)
    image = np.select([lung, fluid], [-800.0, 10.0], 40.0)[None].repeat(3, 0)
    image = ndimage.gaussian_filter(image, (0, 1.0, 1.0)) + np.random.default_rng(6).normal(0, 10, image.shape)
    dab = (j - 78) ** 2 + (i - 55) ** 2 <= 9
    labels = labels_after_one_dab(image, (2.0, 0.5, 0.5), dab)
    wall = (j < 60) & (i >= 44) & (i < 50)  # the muscle beside the lung, away from the fluid
    assert labels[fluid].mean() > 0.8 and labels[wall].mean() < 0.2  # at most the strip itself, one column
