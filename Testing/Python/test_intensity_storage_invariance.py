"""How a scan stores its intensities (dtype, a positive scale, an offset such as CT's unsigned +1024) changes
nothing in the tools where the method only compares intensities with each other: the outputs are equal, not close.
The brush reads CT's soft-tissue window from HU (or HU + 1024, the unsigned convention), so other scalings of a CT
are compared with each other there.
"""
import numpy as np
import pytest

from MVAEvaluationLib.phantom import make_ct_phantom


@pytest.fixture(scope="module")
def ct():
    return make_ct_phantom(shape_kji=(16, 40, 40), seed=2)


def stored(image, kind):
    """The same CT (in HU) as another scan would store it."""
    return {"int16": image, "float32": image.astype(np.float32),
            "uint16+1024": (image.astype(np.int32) + 1024).astype(np.uint16),
            "x3+500": image.astype(np.float32) * 3 + 500, "x0.001": image.astype(np.float32) * 0.001,
            "x4+1024": image.astype(np.float32) * 4 + 1024}[kind]


STORAGES = ("float32", "uint16+1024", "x3+500", "x0.001")


@pytest.mark.parametrize("kind", STORAGES)
def test_supervoxels_are_the_same_however_the_intensities_are_stored(ct, kind):
    from SmartRegionsLib.algorithms.supervoxels import compute_supervoxels
    reference = compute_supervoxels(ct.image, ct.spacing_kji)
    assert np.array_equal(compute_supervoxels(stored(ct.image, kind), ct.spacing_kji), reference)


def test_propagation_is_the_same_however_the_intensities_are_stored_and_whatever_the_voxel_size(ct):
    # scales of a power of two and whole offsets: normalised values are then equal bit for bit. Other scales
    # change the last bits, and the registration's iterations and the self-checked choices can amplify those.
    from SmartPropagationLib.algorithms.propagation import propagate
    liver = ct.mask("liver")
    k = int(np.argmax(liver.sum(axis=(1, 2))))
    reference = propagate(ct.image, liver[k], k, spacing_kji=ct.spacing_kji, max_slices=5)
    assert len(reference.masks) > 3
    others = [propagate(stored(ct.image, kind), liver[k], k, spacing_kji=ct.spacing_kji, max_slices=5)
              for kind in ("float32", "uint16+1024", "x4+1024")]
    # finer voxels: the same pixels (coarser ones narrow the background ring to at most 8 mm, `ring_pixels`)
    others.append(propagate(ct.image, liver[k], k, spacing_kji=tuple(s / 2 for s in ct.spacing_kji), max_slices=5))
    for other in others:
        assert sorted(other.masks) == sorted(reference.masks)
        assert all(np.array_equal(other.masks[s], reference.masks[s]) for s in reference.masks)


def test_the_3d_brush_is_the_same_for_ct_stored_as_hu_float_or_unsigned_and_for_any_scale_of_other_values(ct):
    from SmartBrushLib.algorithms.volume_brush import VolumeBrushModel
    liver = ct.mask("liver")
    k = int(np.argmax(liver.sum(axis=(1, 2))))
    inside = np.argwhere(liver[k])[len(np.argwhere(liver[k])) // 2]
    outside = np.argwhere(ct.labelmap[k] == 0)
    outside = outside[(outside.min(1) >= 3) & (outside.max(1) < 37)][0]
    block = np.ones((1, 5, 5), bool)

    def predicted(image):
        model = VolumeBrushModel(image, ct.spacing_kji, seed=0)
        model.add_stroke((k, inside[0] - 2, inside[1] - 2), block, 1)
        model.add_stroke((k, outside[0] - 2, outside[1] - 2), block, 0)
        return model.predict(1)

    roi, mask = predicted(ct.image)
    assert mask.any()
    for kind in ("float32", "uint16+1024"):
        same_roi, same = predicted(stored(ct.image, kind))
        assert same_roi == roi and np.array_equal(same, mask), kind
    # values that are not HU or HU + 1024 get one mapping whatever the scale and offset
    scaled_roi, scaled = predicted(stored(ct.image, "x3+500"))
    other_roi, other = predicted(stored(ct.image, "x0.001"))
    assert other_roi == scaled_roi and np.array_equal(other, scaled)
