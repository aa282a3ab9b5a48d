"""Python packages the effects need, installed on first use after the user agrees (never at import time)."""
import importlib.util
import os

import slicer

REQUIREMENTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "Resources",
                            "requirements.txt")
IMPORT_NAMES = {"segment-anything": "segment_anything", "scikit-image": "skimage", "scikit-learn": "sklearn",
                "SimpleITK": "SimpleITK", "onnxruntime": "onnxruntime", "scipy": "scipy",
                "SQLAlchemy": "sqlalchemy", "argon2-cffi": "argon2", "highdicom": "highdicom", "alembic": "alembic"}
_checked = False


def missing_requirements():
    names = [line.split("#")[0].strip() for line in open(REQUIREMENTS)]
    return [name for name in names if name and importlib.util.find_spec(IMPORT_NAMES.get(name, name)) is None]


def ensure_dependencies():
    """Install what is missing, asking first (slicer.packaging.pip_ensure on Slicer 5.11+, pip_install on 5.10).

    Raises
    ------
    RuntimeError
        The user declined or the installation failed; the effect cannot run.
    """
    global _checked
    if _checked or not missing_requirements():
        _checked = True
        return
    if hasattr(slicer, "packaging"):
        slicer.packaging.pip_ensure(slicer.packaging.load_requirements(REQUIREMENTS), requester="SegmentAnythingMVA")
    else:
        missing = missing_requirements()
        if not slicer.util.confirmOkCancelDisplay(
                "SegmentAnythingMVA needs these Python packages: " + ", ".join(missing) + ". Install them now?"):
            raise RuntimeError("SegmentAnythingMVA needs " + ", ".join(missing) + "; they were not installed")
        slicer.util.pip_install(missing)
    if missing_requirements():
        raise RuntimeError("Missing Python packages: " + ", ".join(missing_requirements()))
    _checked = True
