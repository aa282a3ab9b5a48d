"""Python packages the effects need, installed on first use after the user agrees (never at import time).

- `slicer/__init__.py` does not import `slicer.packaging`: import it before `pip_ensure` (Slicer 5.11+,
  Base/Python/slicer/packaging.py; it asks, installs with progress, and skips in testing mode). Slicer 5.10 has
  no `slicer.packaging`: ask, then `slicer.util.pip_install`.
- torch comes from the PyTorch extension: `PyTorchUtils.PyTorchUtilsLogic().torch` imports it and installs it
  *without asking* when missing (fepegar/SlicerPyTorch PyTorchUtils.py:150-155, importTorch -> installTorch()
  with askConfirmation=False), so the user is asked here first.
- A declined prompt is remembered: the next action says so instead of asking again (the module's
  "Install or update" button asks again).
"""
import os

import slicer

REQUIREMENTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "Resources",
                            "requirements.txt")
_declined = set()


def ensure_dependencies(torch=False, ask_again=False):
    """Make the packages of requirements.txt (and torch, if asked) importable, asking the user once.

    Raises
    ------
    DependencyError
        Declined now or before, or the installation failed; nothing was changed.
    """
    from MVAControllersLib.dependency_plan import DependencyError, install_request, requirement_lines
    if ask_again:
        _declined.clear()
    request = install_request(requirement_lines(REQUIREMENTS))
    if request:
        if "packages" in _declined:
            raise DependencyError("Python packages are missing (installation declined): use 'Install or update "
                                  "Python packages' in the SegmentAnythingMVA module")
        if not _install(request):
            _declined.add("packages")
            raise DependencyError("SegmentAnythingMVA needs " + ", ".join(request) + "; they were not installed")
        if install_request(requirement_lines(REQUIREMENTS)):
            raise DependencyError("Installing the Python packages failed: see the Python console")
    if torch:
        _ensure_torch()


def _install(request):
    import importlib
    try:
        packaging = importlib.import_module("slicer.packaging")  # Slicer 5.11+; slicer/__init__.py does not import it
    except ImportError:
        if not slicer.util.confirmOkCancelDisplay(
                "SegmentAnythingMVA needs these Python packages: " + ", ".join(request) + ". Install them now?"):
            return False
        slicer.util.pip_install(" ".join(f'"{r}"' for r in request))
        return True
    packaging.pip_ensure(request, requester="SegmentAnythingMVA")
    return True


def _ensure_torch():
    import importlib.util

    from MVAControllersLib.dependency_plan import DependencyError
    if importlib.util.find_spec("torch") is not None:
        return
    if "torch" in _declined:
        raise DependencyError("PyTorch is not installed (declined): use 'Install or update Python packages' "
                              "in the SegmentAnythingMVA module")
    try:
        import PyTorchUtils
    except ImportError as error:
        raise DependencyError("The PyTorch extension is missing: install 'PyTorch' with the Extensions Manager "
                              "and restart Slicer") from error
    if not slicer.util.confirmOkCancelDisplay("This tool needs PyTorch. Install it now with the PyTorch extension "
                                              "(a large download, several minutes)?"):
        _declined.add("torch")
        raise DependencyError("PyTorch was not installed: this tool cannot run without it")
    if PyTorchUtils.PyTorchUtilsLogic().torch is None:
        raise DependencyError("Installing PyTorch failed: see the Python console")


def ensure_sam2():
    """Make `sam2` importable for the SAM 2 models, asking first; never upgrades or replaces torch/torchvision
    (MVAControllersLib.dependency_plan.sam2_install_plan: --no-deps, built against the installed torch).

    Raises
    ------
    DependencyError
        No or too old PyTorch (with what to do), declined, or the installation failed.
    """
    import importlib

    from MVAControllersLib.dependency_plan import DependencyError, install_sam2, sam2_install_plan
    _ensure_torch()
    requests = sam2_install_plan()
    if not requests:
        return
    install_sam2(requests, slicer.util.pip_install, slicer.util.confirmOkCancelDisplay, os.environ)
    importlib.invalidate_caches()
    if sam2_install_plan():
        raise DependencyError("Installing SAM 2 failed: see the Python console")
