"""The scenarios that the in-Slicer tests run, run here on a headless slicer-core scene."""
import pytest

from MVAEvaluationLib.scenarios import SCENARIOS


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_shared_scenario_passes_headless(headless, name):
    SCENARIOS[name](headless.scene)
