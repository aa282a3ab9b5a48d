"""Register scripted Segment Editor effects with Slicer's effect factory (desktop Slicer only)."""
import logging
import os
import traceback

EFFECT_FILES = {"SegmentEditorSmartBrushLib": "SegmentEditorSmartBrushEffect.py"}  # the paint effect: unique name


def effect_file(module_file, package):
    folder = os.path.dirname(os.path.abspath(module_file))
    return os.path.join(folder, package, EFFECT_FILES.get(package, "SegmentEditorEffect.py")).replace("\\", "/")


def register_effects(module_file, effect_packages):
    """Register each package's effect file; one failing effect is logged and does not stop the others."""
    import qSlicerSegmentationsEditorEffectsPythonQt as effects

    for package in effect_packages:
        path = effect_file(module_file, package)
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
