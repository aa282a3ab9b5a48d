"""Smart Brush in 3D: targeted corrections, one classifier for strokes in any orientation, ROI growth, bridge."""
import numpy as np
import pytest
from scipy import ndimage
from conftest import GEOMETRIES, add_segmentation

from MVABridgeLib.editor_session import SegmentEditorSession
from MVABridgeLib.segments import segment_mask_in_volume
from MVABridgeLib.slice_geometry import SlicePlane
from MVABridgeLib.volumes import add_volume_node
from MVAEvaluationLib.metrics import dice
from MVAEvaluationLib.simulated_user import dab_mask
from SmartBrushLib.algorithms import BACKGROUND, SmartBrushInputError, SmartBrushModel
from SmartBrushLib.algorithms.bias_field import estimate_bias_field
from SmartBrushLib.algorithms.corrections import CorrectionHistory, targeted_update
from SmartBrushLib.algorithms.feature_cells import feature_cells
from SmartBrushLib.algorithms.volume_brush import VolumeBrushModel
from SmartBrushLib.volume_brush_logic import VolumeBrushLogic, VolumeCorrections


def ball_volume(shape=(40, 48, 48), radius=13, seed=0):
    grid = np.ogrid[tuple(slice(0, n) for n in shape)]
    centre = [n / 2 for n in shape]
    ball = sum((g - c) ** 2 for g, c in zip(grid, centre)) < radius ** 2
    rng = np.random.default_rng(seed)
    return (np.where(ball, 180.0, 60.0) + rng.normal(0, 10, shape)).astype(np.float32), ball


def test_a_positive_stroke_only_adds_and_a_negative_one_only_removes_what_it_touches():
    previous = np.zeros((1, 20, 20), bool)
    previous[0, 2:8, 2:8] = True  # a piece the stroke does not touch
    proposed = np.zeros_like(previous)
    proposed[0, 10:18, 10:18] = True  # the stroke's piece; the untouched piece is dropped by the proposal
    stroke = np.zeros_like(previous)
    stroke[0, 14, 14] = True
    added = targeted_update(previous, proposed, stroke, positive=True)
    assert added[0, 2:8, 2:8].all() and added[0, 10:18, 10:18].all() and added.sum() == 36 + 64
    removed = targeted_update(added, np.zeros_like(added), stroke, positive=False)
    assert removed.sum() == 36 and removed[0, 2:8, 2:8].all()


def test_what_a_negative_stroke_removed_is_not_added_back_by_a_positive_stroke_elsewhere():
    start = np.zeros((1, 10, 30), bool)
    start[0, 2:8, 2:28] = True
    history = CorrectionHistory(start)
    left_stroke = np.zeros_like(start)
    left_stroke[0, 5, 4] = True
    after_erase = history.update(start & (np.arange(30) >= 10), left_stroke, positive=False)
    assert not after_erase[0, :, :10].any() and after_erase[0, 2:8, 10:28].all()
    right_stroke = np.zeros_like(start)
    right_stroke[0, 5, 29] = True
    after_add = history.update(np.ones_like(start), right_stroke, positive=True)
    assert not after_add[0, 2:8, 2:10].any(), "the erased part came back"
    assert after_add[0, 0, 20], "the positive stroke's own piece was not added"


def test_a_moderate_new_proposal_is_adopted_whole_but_keeps_what_earlier_strokes_removed():
    start = np.zeros((1, 10, 40), bool)
    start[0, 2:8, 2:30] = True
    history = VolumeCorrections(start)
    erase = np.zeros_like(start)
    erase[0, 5, 4] = True
    history.update(start & (np.arange(40) >= 10), erase, positive=False)  # the user removed columns 2-9
    proposal = np.zeros_like(start)
    proposal[0, 2:8, 2:32] = True  # the retrained classifier: two more columns at the stroke, the left part again
    proposal[0, 9, 12:16] = True  # ... and a piece apart from the object
    stroke = np.zeros_like(start)
    stroke[0, 5, 30] = True
    box = (slice(0, 1), slice(0, 10), slice(0, 40))
    adopted = history.adopt(proposal, stroke, True, box, max_change=0.25)
    assert adopted[0, 2:8, 30:32].all() and adopted[0, 9, 12:16].all(), "the proposal's additions were not adopted"
    assert not adopted[0, :, :10].any(), "what the erase stroke removed came back"
    assert adopted.sum() == 6 * 22 + 4


def test_an_adopted_proposal_changes_only_in_the_strokes_direction():
    start = np.zeros((1, 12, 40), bool)
    start[0, 2:8, 2:30] = True
    start[0, 10, 2:8] = True  # a piece far from the stroke, which the retrained classifier drops
    history = VolumeCorrections(start)
    proposal = start.copy()
    proposal[0, 10, 2:8] = False
    proposal[0, 2:8, 30:33] = True
    stroke = np.zeros_like(start)
    stroke[0, 5, 31] = True
    box = (slice(0, 1), slice(0, 12), slice(0, 40))
    adopted = history.adopt(proposal, stroke, True, box, max_change=0.25).copy()
    assert adopted[0, 10, 2:8].all(), "a positive stroke's proposal removed object far from the stroke"
    assert adopted[0, 2:8, 30:33].all() and adopted.sum() == start.sum() + 18
    negative = np.zeros_like(start)
    negative[0, 5, 20] = True
    shrunk = proposal & (np.arange(40) < 15)  # the classifier drops columns 15-32 and adds a new piece
    shrunk[0, 0, 30:35] = True
    shrunk[0, 10, 2:8] = True
    removed = history.adopt(shrunk, negative, False, box, max_change=1.0)
    assert not removed[0, 0].any(), "a negative stroke's proposal added voxels"
    assert not removed[0, 2:8, 15:30].any() and removed[0, 2:8, 2:15].all() and removed[0, 10, 2:8].all()
    assert removed[0, 2:8, 30:33].all(), "what the positive stroke added went with a negative stroke elsewhere"


def test_a_proposal_that_does_not_take_the_stroke_up_is_not_adopted():
    start = np.zeros((1, 12, 40), bool)
    start[0, 2:8, 2:20] = True
    history = VolumeCorrections(start)
    proposal = start.copy()
    proposal[0, 10, 2:30] = True  # the retrained classifier adds a piece elsewhere, nothing at the stroke
    stroke = np.zeros_like(start)
    stroke[0, 4, 30] = True
    box = (slice(0, 1), slice(0, 12), slice(0, 40))
    assert history.adopt(proposal, stroke, True, box, max_change=1.0) is None
    assert np.array_equal(history.mask, start) and not history.accepted.any()


def test_a_proposal_changing_too_much_is_not_adopted_and_changes_nothing():
    start = np.zeros((1, 10, 40), bool)
    start[0, 2:8, 2:10] = True
    history = VolumeCorrections(start)
    flood = np.ones_like(start)
    stroke = np.zeros_like(start)
    stroke[0, 5, 5] = True
    box = (slice(0, 1), slice(0, 10), slice(0, 40))
    assert history.adopt(flood, stroke, True, box, max_change=0.25) is None
    assert np.array_equal(history.mask, start) and not history.accepted.any()


def test_a_proposal_adding_a_mix_of_tissues_far_from_a_positive_stroke_is_not_adopted():
    start = np.zeros((4, 30, 60), bool)
    start[:, 5:25, 5:25] = True
    proposal = start.copy()
    proposal[:, 5:25, 25:28] = True  # next to the stroke: more of the object
    proposal[:, 5:15, 40:50] = True  # far from it: ...
    stroke = np.zeros_like(start)
    stroke[1:3, 10:20, 25:27] = True
    box = tuple(slice(0, n) for n in start.shape)
    rng = np.random.default_rng(0)
    values = np.where(start | proposal, 1.0, 0.0) + rng.normal(0.0, 0.02, start.shape)
    one_tissue = VolumeCorrections(start).adopt(proposal, stroke, True, box, 0.5, values=values)
    assert one_tissue is not None and one_tissue[:, 5:15, 40:50].all()  # far part like the near part: adopted
    mixed = values.copy()
    mixed[:, 5:15, 40:45] = 0.3  # ... two tissues, one of them unlike anything the stroke marked
    history = VolumeCorrections(start)
    assert history.adopt(proposal, stroke, True, box, 0.5, values=mixed) is None
    assert np.array_equal(history.mask, start)
    assert VolumeCorrections(start).adopt(proposal, stroke, True, box, 0.5) is not None  # no values: not judged


def test_strokes_on_axial_and_coronal_slices_train_one_model_that_predicts_the_ball_in_3d():
    image, ball = ball_volume()
    model = VolumeBrushModel(image, (1.0, 1.0, 1.0), margin_mm=8.0)
    inside = np.zeros((1, 48, 48), bool)
    inside[0, 18:30, 18:30] = True  # a scribble inside the ball on one axial slice
    assert model.add_stroke((20, 0, 0), inside, 1) == 144
    coronal_outside = np.zeros((40, 1, 48), bool)
    coronal_outside[2:10, 0, 2:10] = True
    model.add_stroke((0, 24, 0), coronal_outside, BACKGROUND)
    roi, mask = model.predict(1)
    full = np.zeros(ball.shape, bool)
    full[tuple(slice(a, b) for a, b in roi)] = mask
    assert dice(full, ball) > 0.9
    assert model.painted_labels() == [0, 1]


def test_the_roi_grows_until_it_holds_the_object():
    image, ball = ball_volume(shape=(48, 64, 64), radius=20)
    model = VolumeBrushModel(image, (1.0, 1.0, 1.0), margin_mm=4.0)
    stroke = np.zeros((1, 4, 4), bool)
    stroke[0] = True
    model.add_stroke((24, 30, 30), stroke, 1)
    model.add_stroke((2, 2, 2), stroke, BACKGROUND)
    roi, mask = model.predict(1)
    low = [a for a, _ in roi]
    high = [b for _, b in roi]
    where = np.argwhere(ball)
    assert all(lo <= w for lo, w in zip(low, where.min(0))) and all(hi > w for hi, w in zip(high, where.max(0)))
    assert mask.sum() > 0.9 * ball.sum()


def test_feature_cells_hold_voxels_of_one_quantised_feature_vector_and_their_mean():
    rng = np.random.default_rng(3)
    stack = rng.normal(0.5, 0.2, (6, 7, 8, 3)).astype(np.float32)
    stack[:2] = stack[0, 0, 0]  # many voxels with the same features share one cell
    cells = feature_cells(stack, 0.1)
    codes = np.floor(stack.reshape(-1, 3) / np.float32(0.1)).astype(int)
    assert cells.count == len(np.unique(codes, axis=0))
    assert cells.cell_of_voxel.shape == stack.shape[:3]
    spread = np.abs(stack - cells.means[cells.cell_of_voxel])
    assert spread.max() < 0.1
    for cell in np.unique(cells.cell_of_voxel)[:20]:
        members = stack[cells.cell_of_voxel == cell]
        assert np.allclose(members.mean(0), cells.means[cell], atol=1e-5)
        assert len(np.unique(np.floor(members / np.float32(0.1)).astype(int), axis=0)) == 1
    with pytest.raises(SmartBrushInputError):
        feature_cells(stack, 0.0)
    with pytest.raises(SmartBrushInputError):
        feature_cells(np.full((2, 2, 2, 3), np.nan, np.float32), 0.1)


def test_the_cell_prediction_labels_nearly_every_voxel_as_the_per_voxel_classifier_does():
    image, ball = ball_volume(shape=(32, 40, 40), radius=11, seed=4)
    image = image + np.linspace(-25, 25, 40)[None, None, :].astype(np.float32)  # a bias across the ball
    masks = {}
    for mode in ("cells", "coarse_to_fine"):
        model = VolumeBrushModel(image, (1.0, 1.0, 1.0), margin_mm=40.0, prediction=mode)
        model.add_stroke((16, 14, 14), np.ones((1, 6, 6), bool), 1)
        model.add_stroke((16, 2, 2), np.ones((1, 5, 5), bool), BACKGROUND)
        model.add_stroke((3, 20, 30), np.ones((2, 4, 4), bool), BACKGROUND)
        roi, masks[mode] = model.predict(1)
        assert roi == ((0, 32), (0, 40), (0, 40))
    assert (masks["cells"] ^ masks["coarse_to_fine"]).mean() < 0.01
    assert dice(masks["cells"], ball) > 0.85
    with pytest.raises(SmartBrushInputError):
        VolumeBrushModel(image, prediction="fastest")


def test_the_volume_brush_refuses_bad_input():
    image, _ = ball_volume(shape=(8, 8, 8), radius=3)
    with pytest.raises(SmartBrushInputError):
        VolumeBrushModel(image[0], (1.0, 1.0))
    with pytest.raises(SmartBrushInputError):
        VolumeBrushModel(image, (1.0, 0.0, 1.0))
    model = VolumeBrushModel(image)
    with pytest.raises(SmartBrushInputError):
        model.add_stroke((6, 0, 0), np.ones((4, 1, 1), bool), 1)
    with pytest.raises(SmartBrushInputError):
        model.add_stroke((0, 0, 0), np.ones((1, 1, 1), bool), -1)
    assert model.predict(1) == (None, None)


@pytest.fixture
def brush3d_case(headless):
    image, ball = ball_volume(shape=(24, 40, 40), radius=10, seed=2)
    volume = add_volume_node(headless.scene, image.astype(np.int16), GEOMETRIES["lps_anisotropic"])
    segmentation, ids = add_segmentation(headless, volume, ("Ball",))
    session = SegmentEditorSession(volume, segmentation, ids[0], headless.scene)
    return session, volume, segmentation, ids[0], ball


def test_the_3d_preview_writes_nothing_until_apply_which_is_one_undo_step(brush3d_case):
    session, volume, segmentation, segment_id, ball = brush3d_case
    work = session.bridge.work_volume()
    logic = VolumeBrushLogic(session.bridge, margin_mm=10.0)
    axial = SlicePlane.for_anatomical_axis("axial", 12, work.index_to_ras, work.shape)
    truth_2d = axial.sample(ball, work.index_to_ras, order=0) > 0
    logic.add_stroke(axial, ndimage.binary_erosion(truth_2d, iterations=2))  # a scribble inside the ball
    preview = logic.add_stroke(axial, dab_mask(axial.shape, (3, 3)), erase=True)
    assert segment_mask_in_volume(segmentation, segment_id, volume).sum() == 0
    assert preview.mask_kji.any(axis=(1, 2)).sum() > 10, "the preview stayed on the painted slice"
    logic.apply()
    written = segment_mask_in_volume(segmentation, segment_id, volume).astype(bool)
    assert np.array_equal(written, preview.mask_kji) and dice(written, ball) > 0.8
    assert session.undo() and segment_mask_in_volume(segmentation, segment_id, volume).sum() == 0


def test_an_erase_stroke_in_3d_never_adds_and_keeps_what_was_there(brush3d_case):
    session, volume, segmentation, segment_id, ball = brush3d_case
    work = session.bridge.work_volume()
    logic = VolumeBrushLogic(session.bridge, margin_mm=10.0)
    axial = SlicePlane.for_anatomical_axis("axial", 12, work.index_to_ras, work.shape)
    centre = tuple(int(v) for v in np.argwhere(axial.sample(ball, work.index_to_ras, order=0) > 0).mean(0))
    before = logic.add_stroke(axial, dab_mask(axial.shape, centre)).mask_kji.copy()
    after = logic.add_stroke(axial, dab_mask(axial.shape, (3, 3)), erase=True).mask_kji
    assert not (after & ~before).any()


def test_far_from_its_stroke_an_adopted_proposal_changes_only_where_the_classifier_is_sure():
    start = np.zeros((1, 12, 60), bool)
    start[0, 2:8, 2:30] = True
    history = VolumeCorrections(start, max_change=1.0)  # the stroke's reach: a ball of the mask's size (r 3.4)
    proposal = start.copy()
    proposal[0, 2:8, 30:33] = True  # at the stroke
    proposal[0, 2:8, 40:50] = True  # far from it: sure in columns 40-44 only
    proposal[0, 2:8, 2:5] = False  # far removal (ignored: a positive stroke never removes)
    sure_object = np.zeros_like(start)
    sure_object[0, :, 40:45] = True
    stroke = np.zeros_like(start)
    stroke[0, 5, 31] = True
    box = (slice(0, 1), slice(0, 12), slice(0, 60))
    adopted = history.adopt(proposal, stroke, True, box, 1.0, (sure_object, np.zeros_like(start))).copy()
    assert adopted[0, 2:8, 30:33].all(), "the change at the stroke needs no sureness"
    assert adopted[0, 2:8, 40:45].all() and not adopted[0, :, 45:].any(), "an unsure far addition was adopted"
    assert adopted[0, 2:8, 2:5].all()
    shrunk = adopted & (np.arange(60) >= 10)  # an erase at the left end; the classifier also drops columns 40-44
    shrunk[0, :, 40:45] = False
    erase = np.zeros_like(start)
    erase[0, 5, 6] = True
    sure_not = np.zeros_like(start)
    sure_not[0, :, :10] = sure_not[0, :, 43:45] = True
    removed = history.adopt(shrunk, erase, False, box, 1.0, (np.zeros_like(start), sure_not))
    assert not removed[0, :, :10].any()
    assert removed[0, 2:8, 40:43].all() and not removed[0, :, 43:45].any(), "an unsure far removal was adopted"


def test_the_classifier_is_sure_of_tissue_like_its_strokes_not_of_tissue_unlike_every_stroke():
    image, ball = ball_volume()
    slab = np.zeros(image.shape, bool)
    slab[:, :, :6] = True  # a third tissue, between the two painted ones and unlike both
    image[slab] = 120.0 + np.random.default_rng(1).normal(0, 10, int(slab.sum()))
    model = VolumeBrushModel(image, margin_mm=60.0)
    for k in (14, 20, 26):  # strokes over the whole slice: every depth in the ball and out of it is painted
        inside = ndimage.binary_erosion(ball[k], iterations=2)
        model.add_stroke((k, 0, 0), inside[None], 1)
        model.add_stroke((k, 0, 0), ndimage.binary_erosion(~ball[k] & ~slab[k], iterations=2)[None], BACKGROUND)
    roi, mask = model.predict(1)
    assert roi == ((0, 40), (0, 48), (0, 48))
    sure_object, sure_not = model.sure
    core = ndimage.binary_erosion(ball, iterations=3)
    plain = ndimage.binary_erosion(~ball & ~slab, iterations=3)
    middle = ndimage.binary_erosion(slab, iterations=2)
    # multi-scale features change with depth, so sure is narrower than the label; the third tissue is neither
    assert sure_object[core].mean() > 0.6 and sure_not[plain].mean() > 0.9
    assert not (sure_object & sure_not).any()
    assert sure_object[middle].mean() < 0.05 and sure_not[middle].mean() < 0.05, "sure of a tissue like no stroke"


def test_a_flooding_proposal_keeps_only_what_the_classifier_is_sure_of_near_the_stroke():
    start = np.zeros((1, 20, 40), bool)
    start[0, 2:6, 2:12] = True  # 40 voxels: at most 10 may change
    history = VolumeCorrections(start, max_change=0.25)
    flood = np.ones_like(start)
    sure_object = np.zeros_like(start)
    sure_object[0, 2:6, 12:14] = True  # the classifier is sure only of the 8 voxels beside the object
    stroke = np.zeros_like(start)
    stroke[0, 3, 12] = True
    box = (slice(0, 1), slice(0, 20), slice(0, 40))
    updated = history.update(flood, stroke, True, box, sure=(sure_object, np.zeros_like(start)))
    assert np.array_equal(updated, start | sure_object), "the flood was not cut to what the classifier is sure of"


def biased_stripes(shape=(48, 40, 48), seed=0):
    """Two tissues (100 and 70) in 6-voxel stripes along i, under a field rising by +-25 % along k: tissue 100
    at the dark end is as bright as tissue 70 at the bright end."""
    stripes = np.broadcast_to(((np.arange(shape[2]) // 6) % 2 == 0)[None, None, :], shape)
    field = 1.0 + 0.25 * np.linspace(-1.0, 1.0, shape[0], dtype=np.float32)[:, None, None]
    noise = np.random.default_rng(seed).normal(0, 2.0, shape)
    return (np.where(stripes, 100.0, 70.0) * field + noise).astype(np.float32), stripes, field


def test_the_estimated_bias_field_follows_a_smooth_field_and_is_flat_without_one():
    image, _, field = biased_stripes()
    estimated = estimate_bias_field(image)
    left = np.broadcast_to(field, image.shape) / estimated  # the field the correction leaves
    assert np.log(np.percentile(left, 99) / np.percentile(left, 1)) < 0.5 * np.log(1.25 / 0.75), \
        "less than half of the field (it spans 1.67) was found"
    assert estimate_bias_field(image / field) is None, "a flat field was not left alone"
    assert estimate_bias_field(image - 200.0) is None, "negative values (not a magnitude image) have no bias field"


def test_the_3d_brush_finds_tissue_dimmed_by_a_bias_field_far_from_its_strokes():
    image, _, _ = biased_stripes()
    found = {}
    for corrected in (False, True):
        model = VolumeBrushModel(image, margin_mm=60.0, bias_correction=corrected)
        assert model.bias_corrected == corrected
        for label, column in ((1, 14), (BACKGROUND, 20)):  # one dab in each tissue, both at the bright end
            dab = np.zeros((1, 6, 3), bool)
            dab[0, :, :] = True
            model.add_stroke((40, 17, column - 1), dab, label)
        roi, mask = model.predict(1)
        assert roi == ((0, 48), (0, 40), (0, 48))
        found[corrected] = mask[:10, :, 12:18].mean()  # the painted stripe at the dark end
    assert found[True] > 0.75 and found[False] < 0.25, found


def test_the_slice_brush_finds_tissue_dimmed_by_a_bias_field_on_a_slice_far_from_its_strokes():
    image, _, _ = biased_stripes()
    found = {}
    for corrected in (False, True):
        model = SmartBrushModel(image, bias_correction=corrected)
        assert model.bias_corrected == corrected
        for label, column in ((1, 14), (BACKGROUND, 20)):  # one dab in each tissue, on a slice at the bright end
            stroke = np.zeros(image.shape, bool)
            stroke[40, 17:23, column - 1:column + 2] = True
            model.add_stroke(stroke, label)
        labels, _ = model.predict_slice(5)  # a slice at the dark end
        found[corrected] = (labels[:, 13:17] == 1).mean()  # the painted stripe but its edge columns
    assert found[True] > 0.75 and found[False] < 0.25, found


def test_a_ct_exported_through_a_display_window_gets_no_bias_correction():
    from MVAEvaluationLib.phantom import make_ct_phantom
    phantom = make_ct_phantom(shape_kji=(32, 96, 96), seed=0)
    windowed = np.round(np.clip((phantom.image.astype(np.float32) + 160.0) / 400.0, 0.0, 1.0) * 255).astype(np.uint8)
    assert estimate_bias_field(windowed, phantom.spacing_kji) is None, "the window's clipped anatomy taken for bias"
    model = VolumeBrushModel(windowed, phantom.spacing_kji)
    assert not model.bias_corrected
    # a magnitude image keeps its correction when only its top saturates (noise in uint8) or its background is 0
    image, _, _ = biased_stripes()
    saturated = np.minimum(image, np.percentile(image, 98.0))
    assert estimate_bias_field(saturated) is not None, "a bias under a saturated top was left uncorrected"
    dark_background = np.pad(image, 8)
    assert estimate_bias_field(dark_background) is not None, "a bias around a dark background was left uncorrected"


def test_the_bias_field_estimate_does_not_depend_on_the_voxel_size():
    image, _, field = biased_stripes()
    for spacing in ((0.4, 0.4, 0.4), (1.0, 1.0, 1.0), (3.0, 1.0, 1.0)):
        estimated = estimate_bias_field(image, spacing)
        assert estimated is not None
        assert np.allclose(estimated, estimate_bias_field(image), rtol=0.02), spacing
        assert estimate_bias_field(image / field, spacing) is None, f"a flat field at {spacing} mm was corrected"
