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


def keep_shipped_pins(version_of=None):
    """`name==version` for each package Slicer ships that is installed: passed along with every install."""
    def installed(name):
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return None
    version_of = version_of or installed
    return [f"{name}=={version}" for name in SHIPPED_BY_SLICER if (version := version_of(name))]


def install_request(requirements, find_spec=importlib.util.find_spec, version_of=None):
    """What to hand to pip: the missing requirements plus the pins of what Slicer ships ([] = nothing to do)."""
    needed = missing(requirements, find_spec)
    return needed + keep_shipped_pins(version_of) if needed else []
