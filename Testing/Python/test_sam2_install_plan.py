"""Desktop install of the `sam2` package: never a pip request that could change the PyTorch extension's torch."""
import re

import pytest

from MVAControllersLib.dependency_plan import (
    SAM2_BUILD_ENV, DependencyError, TorchTooOldError, install_sam2, project_name, sam2_install_plan)

SLICER_510 = {"numpy": "2.0.2", "pillow": "11.2.1", "pydicom": "2.4.4", "SimpleITK": "2.5.0", "requests": "2.32.3",
              "torch": "2.7.1+cpu", "torchvision": "0.22.1+cpu"}


def find_spec_of(importable):
    return lambda name: object() if name in importable else None


def test_the_plan_installs_sam2_alone_and_its_pure_python_requirements_with_slicers_pins():
    requests = sam2_install_plan(find_spec_of({"torch", "torchvision", "numpy"}), SLICER_510.get)
    assert requests == [
        ["hydra-core>=1.3.2,<1.4", "iopath>=0.1.10,<0.2", "tqdm>=4.66.1,<5", "numpy==2.0.2", "pydicom==2.4.4",
         "SimpleITK==2.5.0", "requests==2.32.3", "pillow==11.2.1"],
        ["--no-deps", "--no-build-isolation", "sam2==1.1.0"]]
    named = {project_name(arg).lower() for request in requests for arg in request if not arg.startswith("-")}
    assert not named & {"torch", "torchvision"}


def test_only_what_is_missing_is_requested_and_nothing_once_sam2_is_there():
    have_deps = find_spec_of({"torch", "hydra", "iopath", "tqdm"})
    assert sam2_install_plan(have_deps, SLICER_510.get) == [["--no-deps", "--no-build-isolation", "sam2==1.1.0"]]
    assert sam2_install_plan(find_spec_of({"torch", "hydra", "iopath", "tqdm", "sam2"}),
                             {**SLICER_510, "sam2": "1.1.0"}.get) == []


@pytest.mark.parametrize("torch_version", ["2.4.1+cu121", "1.13.0", "2.5.0"])
def test_a_torch_older_than_sam2_needs_is_a_message_and_no_request(torch_version):
    expected = rf"2\.5\.1 or later; this Slicer has PyTorch {re.escape(torch_version)}\..*PyTorch Utils"
    with pytest.raises(TorchTooOldError, match=expected):
        sam2_install_plan(find_spec_of({"torch"}), {**SLICER_510, "torch": torch_version}.get)


def test_without_torch_the_plan_says_to_install_the_pytorch_extension_first():
    with pytest.raises(DependencyError, match="PyTorch extension"):
        sam2_install_plan(find_spec_of(set()), {k: v for k, v in SLICER_510.items() if k != "torch"}.get)


def test_the_install_asks_first_runs_each_request_with_the_cuda_build_off_and_restores_the_environment():
    requests = sam2_install_plan(find_spec_of({"torch"}), SLICER_510.get)
    environ, calls, asked = {"PATH": "/bin"}, [], []

    def pip_install(args):
        calls.append((args, dict(environ)))

    install_sam2(requests, pip_install, lambda text: asked.append(text) or True, environ)
    assert [args for args, _ in calls] == requests
    assert all(env["SAM2_BUILD_CUDA"] == "0" for _, env in calls) and SAM2_BUILD_ENV == {"SAM2_BUILD_CUDA": "0"}
    assert environ == {"PATH": "/bin"}
    assert "hydra-core, iopath, tqdm, sam2" in asked[0] and "without changing the installed PyTorch" in asked[0]


def test_a_declined_install_runs_nothing():
    calls = []
    with pytest.raises(DependencyError, match="declined"):
        install_sam2([["--no-deps", "--no-build-isolation", "sam2==1.1.0"]], calls.append, lambda text: False, {})
    assert calls == []
