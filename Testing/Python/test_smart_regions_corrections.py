"""Region clicks that correct instead of toggling: click memory per region and the split of a mixed region."""
import numpy as np

from SmartRegionsLib.algorithms.region_corrections import ClickMemory, local_value, similar_part


def test_an_opposite_click_on_a_clicked_region_is_recognised_and_protects_it_from_merging():
    memory = ClickMemory()
    memory.reset_for("volume-1")
    memory.record(7, add=True, value=180.0)
    assert memory.opposite_click(7, add=False) == 180.0
    assert memory.opposite_click(7, add=True) is None and memory.opposite_click(8, add=False) is None
    assert memory.protected(add=False) == {7} and memory.protected(add=False, exclude=[7]) == set()
    memory.reset_for("volume-2")
    assert memory.protected(add=False) == set()


def test_the_part_of_a_mixed_region_like_the_new_click_is_taken_and_the_rest_stays():
    image = np.full((4, 10, 10), 50.0)
    image[:, :, 5:] = 200.0  # the region straddles an edge at column 5
    region = np.ones(image.shape, bool)
    part = similar_part(image, region, value_now=local_value(image, (2, 5, 8)), value_before=local_value(image, (2, 5, 1)))
    assert part[:, :, 6:].all() and not part[:, :, :4].any()
