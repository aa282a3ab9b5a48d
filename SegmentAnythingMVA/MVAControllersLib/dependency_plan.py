"""Which Python packages a desktop effect still needs, and the pins that keep what Slicer ships (no Qt here).

Slicer 5.10 ships pydicom 2.4.4 (Slicer/Slicer v5.10.0 SuperBuild/External_python-dicom-requirements.cmake:44);
the newest highdicom requires pydicom >= 3.0.1 (highdicom 0.23.0 METADATA), the last that accepts 2.4.x is 0.22.0
(`pydicom !=2.4.0,>=2.3.0`). Installing "highdicom" unpinned would therefore upgrade Slicer's pydicom. Every
install request here pins the packages Slicer ships to their installed versions, so pip picks versions of
ours that fit them (highdicom 0.22 on Slicer 5.10, Slicer's own 0.27 on 5.12).
"""
import importlib.metadata
import importlib.util
import re

IMPORT_NAMES = {"segment-anything": "segment_anything", "scikit-image": "skimage", "scikit-learn": "sklearn",
                "SimpleITK": "SimpleITK", "onnxruntime": "onnxruntime", "scipy": "scipy", "SQLAlchemy": "sqlalchemy",
                "argon2-cffi": "argon2", "highdicom": "highdicom", "alembic": "alembic"}
SHIPPED_BY_SLICER = ("numpy", "pydicom", "SimpleITK", "requests", "pillow")


class DependencyError(RuntimeError):
    """A Python package the tool needs is missing and was not installed (declined, offline, failed)."""


def requirement_lines(path):
    """The requirement strings of a requirements file (comments and blank lines dropped)."""
    with open(path, encoding="utf-8") as stream:
        return [line.split("#")[0].strip() for line in stream if line.split("#")[0].strip()]


def project_name(requirement):
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].strip()


def missing(requirements, find_spec=importlib.util.find_spec):
    """Requirements whose import name is not importable."""
    return [r for r in requirements if find_spec(IMPORT_NAMES.get(project_name(r), project_name(r))) is None]


def installed_version(name):
    """The installed distribution's version, or None when it is not installed."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def keep_shipped_pins(version_of=None):
    """`name==version` for each package Slicer ships that is installed: passed along with every install."""
    version_of = version_of or installed_version
    return [f"{name}=={version}" for name in SHIPPED_BY_SLICER if (version := version_of(name))]


def install_request(requirements, find_spec=importlib.util.find_spec, version_of=None):
    """What to hand to pip: the missing requirements plus the pins of what Slicer ships ([] = nothing to do)."""
    needed = missing(requirements, find_spec)
    return needed + keep_shipped_pins(version_of) if needed else []


# --- SAM 2 ---------------------------------------------------------------------------------------------------------
# sam2 1.1.0 is a source distribution whose metadata pins torch>=2.5.1 and torchvision>=0.20.1 (its setup.py,
# REQUIRED_PACKAGES) and whose build needs torch (pyproject build-system). A plain `pip install sam2` could therefore
# replace the torch the PyTorch extension installed (a CPU or another CUDA build) and would download a second torch
# into pip's isolated build environment. The plan instead installs sam2 alone (--no-deps), built against the torch
# that is there (--no-build-isolation, Slicer 5.10 ships setuptools 80.9.0) without its CUDA extension
# (SAM2_BUILD_CUDA=0: it only fills holes in masks), and its pure-Python requirements separately, bounded, with
# Slicer's own packages pinned. Only sam2.modeling is used: torchvision (sam2.utils.transforms) is never imported.
# Slicer 5.10 ships numpy 2.0.2 and pillow 11.2.1 (SuperBuild/External_python-numpy.cmake,
# External_python-dicom-requirements.cmake), within sam2's numpy>=1.24.4 and pillow>=9.4.0.
SAM2_VERSION = "1.1.0"
SAM2_MIN_TORCH = (2, 5, 1)
SAM2_REQUIREMENTS = ("hydra-core>=1.3.2,<1.4", "iopath>=0.1.10,<0.2", "tqdm>=4.66.1,<5")
SAM2_BUILD_ENV = {"SAM2_BUILD_CUDA": "0"}
SAM2_IMPORTS = {"hydra-core": "hydra", "iopath": "iopath", "tqdm": "tqdm", "sam2": "sam2"}


class TorchTooOldError(DependencyError):
    """The installed torch is older than sam2 needs; only the PyTorch extension may change it."""


def _version_tuple(text):
    return tuple(int(part) for part in re.findall(r"\d+", str(text).split("+")[0])[:3])


def sam2_install_plan(find_spec=importlib.util.find_spec, version_of=None):
    """The pip requests that make `sam2` importable without touching torch or torchvision.

    Returns
    -------
    list of list of str
        pip arguments, one request each, run in order with `SAM2_BUILD_ENV` set ([] = nothing to do); no request
        names torch or torchvision.

    Raises
    ------
    DependencyError
        torch is missing (install the PyTorch extension first).
    TorchTooOldError
        torch is older than 2.5.1.
    """
    version_of = version_of or installed_version
    torch_version = version_of("torch")
    if torch_version is None or find_spec("torch") is None:
        raise DependencyError("SAM 2 needs PyTorch: install it with the PyTorch extension (PyTorch Utils module) "
                              "first, then load the SAM 2 model again")
    if _version_tuple(torch_version) < SAM2_MIN_TORCH:
        minimum = ".".join(map(str, SAM2_MIN_TORCH))
        raise TorchTooOldError(
            f"SAM 2 needs PyTorch {minimum} or later; this Slicer has PyTorch {torch_version}. Update it in the "
            f"PyTorch Utils module (uninstall, restart Slicer, install), or use a SAM 1 model (vit_b, vit_l, vit_h)")
    requests = []
    needed = [r for r in SAM2_REQUIREMENTS if find_spec(SAM2_IMPORTS[project_name(r)]) is None]
    if needed:
        requests.append(needed + keep_shipped_pins(version_of))
    if find_spec("sam2") is None or version_of("sam2") is None:
        requests.append(["--no-deps", "--no-build-isolation", f"sam2=={SAM2_VERSION}"])
    return requests


def sam2_consent_text(requests):
    """What the user is asked before the SAM 2 install."""
    packages = [project_name(arg) for request in requests for arg in request
                if not arg.startswith("-") and project_name(arg) not in SHIPPED_BY_SLICER]
    return ("SAM 2 needs these Python packages: " + ", ".join(packages) + ". sam2 is built from source without its "
            "CUDA extension and without changing the installed PyTorch (a minute or two). Install them now?")


def install_sam2(requests, pip_install, confirm, environ):
    """Run the plan's requests after `confirm(text)` agrees; `environ` gets SAM2_BUILD_ENV during the install.

    Raises
    ------
    DependencyError
        Declined (nothing was run).
    """
    if not requests:
        return
    if not confirm(sam2_consent_text(requests)):
        raise DependencyError("SAM 2 was not installed (declined): choose the model again to be asked again")
    saved = {name: environ.get(name) for name in SAM2_BUILD_ENV}
    environ.update(SAM2_BUILD_ENV)
    try:
        for request in requests:
            pip_install(list(request))
    finally:
        for name, value in saved.items():
            if value is None:
                environ.pop(name, None)
            else:
                environ[name] = value
