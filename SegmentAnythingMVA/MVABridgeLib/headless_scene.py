"""A real MRML scene with the module logics that segment editing needs, without the Slicer application."""
import os
import tempfile
import types
from dataclasses import dataclass, field

import slicer


@dataclass
class HeadlessScene:
    """A vtkMRMLScene plus the logics kept alive beside it."""
    scene: object
    application_logic: object
    segmentations_logic: object
    logics: list = field(default_factory=list)

    def clear(self):
        self.scene.Clear(0)


def create_headless_scene(install_util_globals=True):
    """Build a scene with segmentation, volume and colour logics registered.

    The segmentations logic must see the scene, or vtkMRMLSegmentEditorNode is not a known node class.
    With `install_util_globals`, `slicer.mrmlScene` and `slicer.modules.<name>.logic()` are set so that
    `slicer.util` helpers work as they do in the Slicer application.
    """
    scene = slicer.vtkMRMLScene()
    application_logic = slicer.vtkMRMLApplicationLogic()
    application_logic.SetMRMLScene(scene)
    # The colour logic looks for optional colour files under <home>/<share>/ColorFiles.
    home = tempfile.mkdtemp(prefix="mva_slicer_home_")
    os.makedirs(os.path.join(home, "share", "ColorFiles"))
    application_logic.SetHomeDirectory(home)
    application_logic.SetShareDirectory("share")

    segmentations_logic = slicer.vtkSlicerSegmentationsModuleLogic()
    segmentations_logic.SetMRMLScene(scene)
    color_logic = slicer.vtkSlicerColorLogic()
    color_logic.SetMRMLApplicationLogic(application_logic)
    color_logic.SetMRMLScene(scene)
    application_logic.SetModuleLogic("Colors", color_logic)
    volumes_logic = slicer.vtkSlicerVolumesLogic()
    volumes_logic.SetMRMLApplicationLogic(application_logic)
    volumes_logic.SetMRMLScene(scene)

    if install_util_globals:
        slicer.mrmlScene = scene
        slicer.modules = types.SimpleNamespace(
            segmentations=types.SimpleNamespace(logic=lambda: segmentations_logic),
            volumes=types.SimpleNamespace(logic=lambda: volumes_logic),
            colors=types.SimpleNamespace(logic=lambda: color_logic),
        )
    return HeadlessScene(scene, application_logic, segmentations_logic,
                         [segmentations_logic, color_logic, volumes_logic])
