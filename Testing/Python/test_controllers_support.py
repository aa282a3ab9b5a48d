"""Qt-free support of the desktop effects: what to install (keeping Slicer's packages), which models to offer,
background jobs."""
import os
import threading

import pytest

from MVAControllersLib.background_jobs import BackgroundJob, JobRunner
from MVAControllersLib.dependency_plan import install_request, missing, requirement_lines
from MVAControllersLib.sam_engines import SettingsEngineSource, offered_models, typed_setting
from MVAControllersLib.view_events import Reaction

REQUIREMENTS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                            "SegmentAnythingMVA", "Resources", "requirements.txt")


def test_every_requirement_has_an_upper_bound():
    lines = requirement_lines(REQUIREMENTS)
    assert len(lines) >= 8 and all("<" in line for line in lines), lines


def test_an_install_pins_what_slicer_ships_so_highdicom_cannot_upgrade_pydicom():
    versions = {"pydicom": "2.4.4", "numpy": "1.26.4"}
    request = install_request(["scipy<2", "highdicom>=0.22,<1"], find_spec=lambda name: None,
                              version_of=versions.get)
    assert request == ["scipy<2", "highdicom>=0.22,<1", "numpy==1.26.4", "pydicom==2.4.4"]
    assert install_request(["scipy<2"], find_spec=lambda name: object(), version_of=versions.get) == []


def test_missing_requirements_are_found_by_their_import_names():
    seen = []
    missing(["scikit-image>=0.22,<0.27", "argon2-cffi<26"], find_spec=lambda name: seen.append(name))
    assert seen == ["skimage", "argon2"]


def test_the_random_test_model_is_offered_to_developers_only():
    names = ("tiny", "vit_b", "vit_l")
    assert offered_models(False, names) == ["vit_b", "vit_l"]
    assert offered_models(True, names) == ["tiny", "vit_b", "vit_l"]


def test_settings_are_typed_and_the_engine_loads_from_them_with_progress():
    settings = {"Model": "tiny", "Device": "cpu", "CacheMB": "64", "Checkpoint": "", "Prefetch": "false",
                "InputSize": "full"}
    assert typed_setting("64", "CacheMB") == 64 and typed_setting("false", "Prefetch") is False
    with pytest.raises(ValueError, match="random weights"):  # not for users: developer mode only
        SettingsEngineSource(lambda name: typed_setting(settings.get(name), name)).load()
    source = SettingsEngineSource(lambda name: typed_setting(settings.get(name), name), developer_mode=lambda: True)
    assert source.loaded() is None and source.status() == "No model loaded"
    engine = source.load(progress=lambda fraction: None, cancel=lambda: False)
    assert source.loaded() is engine and source.prefetcher(engine) is None
    assert "tiny" in source.status()


def test_a_job_computes_off_the_calling_thread_and_finishes_on_poll():
    threads = []
    runner = JobRunner(threaded=True)
    job = BackgroundJob("work", lambda progress, cancel: threads.append(threading.current_thread()) or 41,
                        lambda result: Reaction(status=f"got {result + 1}"), context=("A", "vol"))
    runner.start(job)
    runner.wait(10)
    assert runner.poll(("A", "vol")).status == "got 42" and not runner.busy
    assert threads[0] is not threading.main_thread()


def test_a_cancelled_job_writes_nothing():
    finished = []
    runner = JobRunner(threaded=False)
    runner.start(BackgroundJob("work", lambda progress, cancel: 1, finished.append, context=("A", "vol")))
    reaction = runner.poll(("B", "vol"))  # the segment changed
    assert finished == [] and "nothing was written" in reaction.status
