"""Register scripted Segment Editor effects with Slicer's effect factory (desktop Slicer only)."""
import logging
import os
import traceback


def register_effects(module_file, effect_packages):
    """Register `<module dir>/<package>/SegmentEditorEffect.py` for each package name.

    One failing effect is logged with its traceback and does not stop the others.
    """
    import qSlicerSegmentationsEditorEffectsPythonQt as effects

    folder = os.path.dirname(os.path.abspath(module_file))
    for package in effect_packages:
        path = os.path.join(folder, package, "SegmentEditorEffect.py").replace("\\", "/")
        try:
            instance = effects.qSlicerSegmentEditorScriptedEffect(None)
            instance.setPythonSource(path)
            instance.self().register()
        except Exception:  # noqa: BLE001 - one broken effect must not block the others
            logging.error("Could not register the segment editor effect %s:\n%s", path, traceback.format_exc())


def connect_registration(module_file, effect_packages):
    """Register the effects when Slicer has finished starting (the effect factory exists by then)."""
    import slicer

    slicer.app.connect("startupCompleted()", lambda: register_effects(module_file, effect_packages))
