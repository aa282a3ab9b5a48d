"""Stand-ins for what the desktop effects meet in Slicer, reproducing only behaviour verified in Slicer's source.

`[S]` = Slicer/Slicer at 583e9b37 (Aug 2026), `E/` = Modules/Loadable/Segmentations/EditorEffects/,
`W/` = Modules/Loadable/Segmentations/Widgets/. Every behaviour cites the file and line it copies; anything not
cited here is not modelled (the stand-in raises AttributeError rather than guessing).

- Scripted adaptors (`E/qSlicerSegmentEditorScriptedEffect.cxx`, `E/qSlicerSegmentEditorScriptedPaintEffect.cxx`):
  module and class names, the forwarded Python methods, C++ fallbacks when a Python method raises.
- The paint effect's own event handling (`E/qSlicerSegmentEditorPaintEffect.cxx`): no stroke in 3D views unless
  EditIn3DViews, no stroke when a modifier key is held, confirmCurrentSegmentVisible at press, paintApply at release.
- The Segment Editor widget (`W/qMRMLSegmentEditorWidget.cxx`): Esc is a QShortcut that deactivates the effect
  before any view sees the key; interactor events go to processInteractionEvents, slice node changes to
  processViewNodeEvents.
- `sourceVolumeImageData()` (`E/qSlicerSegmentEditorAbstractEffect.cxx`): answers on the GUI thread only.
The segment edits themselves run on slicer-core's real vtkSlicerSegmentEditorLogic (Slicer >= 5.10 delegates
to it from qSlicerSegmentEditorAbstractEffect).
"""
import importlib.util
import os
import sys
import threading
import types

import numpy as np
import vtk

import slicer

NOT_CONFIRMED, CONFIRMED_WITHOUT_DIALOG, CONFIRMED_WITH_DIALOG = 0, 1, 2  # E/qSlicerSegmentEditorAbstractEffect.h:115
LEFT_PRESS, LEFT_RELEASE, MOUSE_MOVE, KEY_PRESS = (vtk.vtkCommand.LeftButtonPressEvent, vtk.vtkCommand.LeftButtonReleaseEvent,
                                                  vtk.vtkCommand.MouseMoveEvent, vtk.vtkCommand.KeyPressEvent)

# E/qSlicerSegmentEditorScriptedEffect.cxx:87-104 (declareMethod list)
PLAIN_FORWARDED = ("icon", "helpText", "clone", "activate", "deactivate", "setupOptionsFrame", "createCursor",
                   "processInteractionEvents", "processViewNodeEvents", "setMRMLDefaults", "referenceGeometryChanged",
                   "sourceVolumeNodeChanged", "masterVolumeNodeChanged", "layoutChanged", "interactionNodeModified",
                   "updateGUIFromMRML", "updateMRMLFromGUI", "cleanup")
# E/qSlicerSegmentEditorScriptedPaintEffect.cxx:78-92: no processInteractionEvents, processViewNodeEvents, cleanup
PAINT_FORWARDED = ("icon", "helpText", "clone", "activate", "deactivate", "setupOptionsFrame", "createCursor",
                   "setMRMLDefaults", "referenceGeometryChanged", "sourceVolumeNodeChanged", "masterVolumeNodeChanged",
                   "layoutChanged", "updateGUIFromMRML", "updateMRMLFromGUI", "paintApply")


class PythonMethodFailed(Exception):
    """Recorded when a forwarded Python method raised (PythonCppAPI prints the traceback and returns NULL)."""


# --- qt / ctk widgets: attribute bags with signals ------------------------------------------------------------
class Widget:
    """A Qt widget stand-in: properties are attributes; `connect` + `emit` model signals."""

    def __init__(self, *args, **kwargs):
        self._slots, self._items, self._children, self.blocked = {}, [], [], False
        self.text = args[0] if args and isinstance(args[0], str) else ""
        self.checked, self.enabled, self.visible, self.value, self.toolTip = False, True, True, 0, ""
        self.currentText, self.currentIndex = "", -1

    def connect(self, signal, slot):
        self._slots.setdefault(signal, []).append(slot)

    def disconnect(self, signal, slot=None):
        self._slots.pop(signal, None)

    def emit(self, signal, *args):
        if not self.blocked:
            for slot in list(self._slots.get(signal, ())):
                slot(*args)

    def click(self):
        self.emit("clicked()")

    def blockSignals(self, blocked):
        self.blocked = bool(blocked)

    def addItems(self, texts):
        for text in texts:
            self.addItem(text)

    def addItem(self, text, data=None):
        self._items.append((text, data))
        if self.currentIndex < 0:
            self.currentIndex, self.currentText = 0, text

    def findData(self, data):
        return next((i for i, item in enumerate(self._items) if item[1] == data), -1)

    def findText(self, text):
        return next((i for i, item in enumerate(self._items) if item[0] == text), -1)

    def clear(self):
        self._items, self.currentIndex, self.currentText = [], -1, ""

    def addWidget(self, widget, *args):
        self._children.append(widget)

    addLayout = addRow = addWidget

    def setLayout(self, layout):
        self._children.append(layout)

    def layout(self):
        return self._children[0] if self._children else Widget()

    def setRange(self, minimum, maximum):
        self.minimum, self.maximum = minimum, maximum

    def setTitle(self, title):
        self.title = title

    def setToolTip(self, text):
        self.toolTip = text

    def setEnabled(self, enabled):
        self.enabled = bool(enabled)


class Timer(Widget):
    """QTimer: `fire()` stands for one timeout (tests drive time explicitly)."""

    def __init__(self, *args):
        super().__init__()
        self.active, self.interval, self.singleShot = False, 0, False

    def setInterval(self, milliseconds):
        self.interval = milliseconds

    def setSingleShot(self, single):
        self.singleShot = bool(single)

    def start(self, *args):
        self.active = True

    def stop(self):
        self.active = False

    def isActive(self):
        return self.active

    def fire(self):
        if self.active:
            if self.singleShot:
                self.active = False
            self.emit("timeout()")


def qt_module(settings):
    qt = types.ModuleType("qt")
    for name in ("QWidget", "QFrame", "QComboBox", "QCheckBox", "QPushButton", "QLabel", "QHBoxLayout",
                 "QVBoxLayout", "QFormLayout", "QSpinBox", "QDoubleSpinBox", "QProgressBar", "QToolButton"):
        setattr(qt, name, type(name, (Widget,), {}))
    qt.QTimer = Timer
    qt.QIcon = lambda *args: ("icon",) + args
    qt.QApplication = types.SimpleNamespace(setOverrideCursor=lambda cursor: None, restoreOverrideCursor=lambda: None)
    qt.Qt = types.SimpleNamespace(WaitCursor=3, ArrowCursor=0)
    qt.QSettings = lambda: settings
    return qt


class Settings:
    def __init__(self, values=None):
        self.values = dict(values or {})

    def value(self, key, default=None):
        return self.values.get(key, default)

    def setValue(self, key, value):
        self.values[key] = value


# --- views --------------------------------------------------------------------------------------------------
class _Renderers:
    def __init__(self):
        self.renderer = vtk.vtkRenderer()

    def GetRenderers(self):
        renderers = vtk.vtkRendererCollection()
        renderers.AddItem(self.renderer)
        return renderers


class _View:
    def __init__(self):
        self.window = _Renderers()
        self.renders = 0

    def renderWindow(self):
        return self.window

    def scheduleRender(self):
        self.renders += 1

    def forceRender(self):
        self.renders += 1


class SliceWidget:
    """qMRMLSliceWidget over a real vtkMRMLSliceNode."""

    def __init__(self, slice_node):
        self.slice_node, self.view = slice_node, _View()
        logic = types.SimpleNamespace(GetSliceNode=lambda: slice_node)
        self.sliceLogic = lambda: logic

    def className(self):
        return "qMRMLSliceWidget"

    def mrmlSliceNode(self):
        return self.slice_node

    def sliceView(self):
        return self.view

    def actors(self):
        return self.view.window.renderer.GetActors2D().GetNumberOfItems()


class ThreeDWidget:
    """qMRMLThreeDWidget: no sliceLogic, no slice node (E/qSlicerSegmentEditorPaintEffect.cxx:1054-1055)."""

    def __init__(self):
        self.view_node = slicer.vtkMRMLViewNode()

    def className(self):
        return "qMRMLThreeDWidget"

    def mrmlViewNode(self):
        return self.view_node


class Interactor:
    """vtkRenderWindowInteractor as the effect sees it in processInteractionEvents."""

    def __init__(self, xy=(0, 0), shift=False, control=False, alt=False, key=""):
        self.xy, self.shift, self.control, self.alt, self.key = tuple(int(v) for v in xy), shift, control, alt, key

    def GetEventPosition(self):
        return self.xy

    def GetShiftKey(self):
        return int(self.shift)

    def GetControlKey(self):
        return int(self.control)

    def GetAltKey(self):
        return int(self.alt)

    def GetKeySym(self):
        return self.key


# --- the scripted adaptors ----------------------------------------------------------------------------------
class ScriptedEffect:
    """qSlicerSegmentEditorScriptedEffect (paint=False) or ...ScriptedPaintEffect (paint=True) on a headless editor."""

    paint = False

    def __init__(self, parent=None):
        self.editor, self.name, self.title, self.perSegment = None, "", "", False
        self.python, self.failures, self.options_widgets = None, [], []
        self.strokes, self.painting, self.erase = [], False, False
        self.fallback_paints = 0

    # setPythonSource: E/qSlicerSegmentEditorScriptedEffect.cxx:147-156 (module = folder name) and
    # E/qSlicerSegmentEditorScriptedPaintEffect.cxx:135-142 (module = file base name); class = base name + "Effect"
    def setPythonSource(self, path):
        base = os.path.splitext(os.path.basename(path))[0]
        module_name = base if self.paint else os.path.basename(os.path.dirname(path))
        class_name = base if base.endswith("Effect") else base + "Effect"
        module = sys.modules.get(module_name)
        if module is None or not hasattr(module, class_name):  # else: reused from sys.modules (:163-167)
            spec = importlib.util.spec_from_file_location(module_name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            spec.loader.exec_module(module)
        self.module_name, self.source = module_name, path
        self.python = getattr(module, class_name)(self)
        return True

    def self(self):
        return self.python

    def call(self, method, *args):
        """PythonCppAPI.callMethod: only forwarded names reach Python; an exception returns None (C++ default)."""
        if method not in (PAINT_FORWARDED if self.paint else PLAIN_FORWARDED) or not hasattr(self.python, method):
            return None
        try:
            return getattr(self.python, method)(*args)
        except Exception as error:  # noqa: BLE001 - PythonQt prints the traceback and the C++ side carries on
            self.failures.append((method, error))
            return None

    # --- parameters: E/qSlicerSegmentEditorAbstractEffect.cxx:541-650, attribute "<effect name>.<parameter>"
    def _key(self, name):
        return f"{self.name}.{name}"

    def parameterSetNode(self):
        return self.editor.editor_node

    def parameter(self, name):
        return self.editor.editor_node.GetAttribute(self._key(name)) or ""

    def integerParameter(self, name):
        return int(float(self.parameter(name) or 0))

    def doubleParameter(self, name):
        return float(self.parameter(name) or 0)

    def setParameter(self, name, value):
        self.editor.editor_node.SetAttribute(self._key(name), str(int(value) if isinstance(value, bool) else value))

    def setParameterDefault(self, name, value):  # :765: only when not defined yet
        if not self.parameter(name):
            self.setParameter(name, value)

    def setCommonParameter(self, name, value):
        self.editor.editor_node.SetAttribute(name, str(value))

    # --- options frame ------------------------------------------------------------------------------------
    def addOptionsWidget(self, widget):
        self.options_widgets.append(widget)

    def addLabeledOptionsWidget(self, label, widget):
        self.options_widgets.append(widget)

    # --- data: E/qSlicerSegmentEditorAbstractEffect.cxx:976-985 -----------------------------------------------
    def sourceVolumeImageData(self):
        # updateVolumeSignal(void*, bool&) is connected with Qt::AutoConnection (:230); emitted from another
        # thread it is queued, the slot never fills `success`, and the method returns nullptr.
        if threading.current_thread() is not threading.main_thread():
            return None
        logic = self.editor.logic
        return logic.GetAlignedSourceVolume() if logic.UpdateAlignedSourceVolume() else None

    def defaultModifierLabelmap(self):
        self.editor.logic.ResetModifierLabelmapToDefault()
        return self.editor.logic.GetModifierLabelmap()

    def saveStateForUndo(self):
        self.editor.logic.SaveStateForUndo()

    def modifySelectedSegmentByLabelmap(self, labelmap, mode, *args):
        node = self.editor.editor_node
        self.editor.logic.ModifySegmentByLabelmap(node.GetSegmentationNode(), node.GetSelectedSegmentID(), labelmap,
                                                  mode, True, False)

    def confirmCurrentSegmentVisible(self):
        """E/qSlicerSegmentEditorAbstractEffect.cxx:663-760: no dialog for a visible segment; else the answer."""
        node = self.editor.editor_node
        display = node.GetSegmentationNode().GetDisplayNode()
        if display is None or display.GetSegmentVisibility(node.GetSelectedSegmentID()):
            return CONFIRMED_WITHOUT_DIALOG
        self.editor.visibility_questions += 1
        return self.editor.hidden_segment_answer

    # --- paint adaptor only ---------------------------------------------------------------------------------
    def paintOptionsFrame(self):
        return Widget()

    def setColorSmudgeCheckboxVisible(self, visible):
        pass

    def paintBrushesIntoLabelmap(self, labelmap, view_widget):
        """The stroke's brush disks (radius `editor.brush_radius_mm`, in the view's plane) into `labelmap`."""
        from MVABridgeLib.image_data import array_view, index_to_ras
        array, ijk_to_ras = array_view(labelmap), index_to_ras(labelmap)
        k, j, i = np.mgrid[0:array.shape[0], 0:array.shape[1], 0:array.shape[2]]
        centres = (ijk_to_ras @ np.stack([i.ravel(), j.ravel(), k.ravel(), np.ones(i.size)])).T[:, :3]
        normal = _slice_normal(view_widget) if view_widget.className() == "qMRMLSliceWidget" else None
        inside = np.zeros(len(centres), bool)
        for point in self.strokes:
            offset = centres - point
            if normal is not None:
                along = offset @ normal
                spacing = np.abs(ijk_to_ras[:3, :3].T @ normal).max()
                offset = offset - np.outer(along, normal)
                inside |= (np.abs(along) <= spacing / 2) & (np.linalg.norm(offset, axis=1) <= self.editor.brush_radius_mm)
            else:
                inside |= np.linalg.norm(offset, axis=1) <= self.editor.brush_radius_mm
        array[...] = inside.reshape(array.shape).astype(array.dtype)
        labelmap.Modified()
        return list(labelmap.GetExtent())

    def clearBrushes(self):
        self.strokes = []


class ScriptedPaintEffect(ScriptedEffect):
    paint = True


def _slice_normal(view_widget):
    from MVABridgeLib.image_data import matrix_to_array
    normal = matrix_to_array(view_widget.mrmlSliceNode().GetSliceToRAS())[:3, 2]
    return normal / np.linalg.norm(normal)


# --- the Segment Editor widget ------------------------------------------------------------------------------
class SegmentEditor:
    """qMRMLSegmentEditorWidget's event routing over a headless SegmentEditorSession."""

    def __init__(self, session, layout):
        self.session, self.logic, self.editor_node = session, session.logic, session.editor_node
        self.layout, self.effects, self.active = layout, {}, None
        self.hidden_segment_answer, self.visibility_questions, self.brush_radius_mm = NOT_CONFIRMED, 0, 2.0

    def add_effect(self, adaptor):
        """Register a clone, as the factory does for each editor widget: it builds options and defaults once."""
        clone = adaptor.call("clone") or adaptor
        clone.editor = self
        clone.name, clone.title = adaptor.python.scriptedEffect.name, adaptor.python.scriptedEffect.title
        clone.call("setupOptionsFrame")
        clone.call("setMRMLDefaults")
        self.effects[clone.name] = clone
        return clone

    def setActiveEffectByName(self, name):
        if self.active is not None:
            self.active.call("deactivate")
        self.active = self.effects.get(name)
        if self.active is not None:
            self.active.call("activate")
            self.active.call("updateGUIFromMRML")

    def select_source_volume(self, volume_node):
        """W/qMRMLSegmentEditorWidget.cxx:427-434 (notifyEffectsOfSourceVolumeNodeChange): every registered effect,
        active or not, hears sourceVolumeNodeChanged."""
        self.editor_node.SetAndObserveSourceVolumeNode(volume_node)
        self.logic.SetSourceVolumeNode(volume_node)
        for effect in self.effects.values():
            effect.call("sourceVolumeNodeChanged")

    def press_key(self, symbol, view_widget):
        """W/qMRMLSegmentEditorWidget.cxx:2342-2346: Esc is a main-window QShortcut that deactivates the active
        effect; Qt gives shortcuts the key before the view, so the effect never sees it."""
        if symbol == "Escape":
            self.setActiveEffectByName(None)
            return True
        return self.interact(KEY_PRESS, view_widget, Interactor(key=symbol))

    def interact(self, event_id, view_widget, interactor):
        """W/qMRMLSegmentEditorWidget.cxx:2086: interactor events to the active effect; True = event aborted."""
        effect = self.active
        if effect is None:
            return False
        if effect.paint:
            return _paint_effect_events(effect, event_id, view_widget, interactor)
        result = effect.call("processInteractionEvents", interactor, event_id, view_widget)
        # E/qSlicerSegmentEditorScriptedEffect.cxx:375-380: anything but a Python bool counts as False
        return result is True

    def view_node_modified(self, view_widget):
        """W/qMRMLSegmentEditorWidget.cxx:2096: slice node changes reach processViewNodeEvents (plain adaptor)."""
        if self.active is not None:
            self.active.call("processViewNodeEvents", view_widget.mrmlSliceNode(), vtk.vtkCommand.ModifiedEvent,
                              view_widget)


def _paint_effect_events(effect, event_id, view_widget, interactor):
    """E/qSlicerSegmentEditorPaintEffect.cxx:1050-1260, the parts that decide what reaches Python."""
    if view_widget.className() == "qMRMLThreeDWidget" and not effect.integerParameter("EditIn3DViews"):
        return False  # :1057
    any_modifier = interactor.GetShiftKey() or interactor.GetControlKey() or interactor.GetAltKey()  # :1064
    if event_id == KEY_PRESS:
        return False  # only +/- resize the brush (:1068-1083)
    point = _event_ras(view_widget, interactor)
    if event_id == LEFT_PRESS and not any_modifier:  # :1157
        effect.erase = False
        answer = effect.confirmCurrentSegmentVisible()  # :1188-1200
        if answer in (NOT_CONFIRMED, CONFIRMED_WITH_DIALOG):
            return True
        effect.painting, effect.strokes = True, [point]
        return True
    if event_id == MOUSE_MOVE and effect.painting:
        effect.strokes.append(point)
        return True
    if event_id == LEFT_RELEASE and effect.painting:  # :1232-1248
        effect.strokes.append(point)
        effect.painting = False
        if effect.call("paintApply", view_widget) is None and effect.failures and effect.failures[-1][0] == "paintApply":
            _plain_paint(effect, view_widget)  # E/qSlicerSegmentEditorScriptedPaintEffect.cxx:419-423
        return True
    return False


def _plain_paint(effect, view_widget):
    """qSlicerSegmentEditorPaintEffect::paintApply (E/qSlicerSegmentEditorPaintEffect.cxx:1646-1706)."""
    effect.fallback_paints += 1
    modifier = effect.defaultModifierLabelmap()
    effect.saveStateForUndo()
    effect.paintBrushesIntoLabelmap(modifier, view_widget)
    mode = slicer.vtkSlicerSegmentEditorLogic.ModificationModeRemove if effect.erase else \
        slicer.vtkSlicerSegmentEditorLogic.ModificationModeAdd
    effect.modifySelectedSegmentByLabelmap(modifier, mode)
    effect.clearBrushes()


def _event_ras(view_widget, interactor):
    from MVABridgeLib.image_data import matrix_to_array
    if view_widget.className() != "qMRMLSliceWidget":
        return np.zeros(3)
    x, y = interactor.GetEventPosition()
    return (matrix_to_array(view_widget.mrmlSliceNode().GetXYToRAS()) @ np.array([x, y, 0.0, 1.0]))[:3]


# --- the application ----------------------------------------------------------------------------------------
class Application:
    """slicer.app and slicer.util's dialogs: what an effect reads from the application, and what it showed."""

    def __init__(self, slice_widgets, settings, testing=True):
        self.slice_widgets, self.settings, self.testing = dict(slice_widgets), settings, testing
        self.errors, self.statuses, self.questions, self.answer = [], [], [], True
        manager = types.SimpleNamespace(sliceViewNames=lambda: list(self.slice_widgets),
                                        sliceWidget=lambda name: self.slice_widgets.get(name))
        self.layoutManager = lambda: manager

    def testingEnabled(self):
        return self.testing

    def processEvents(self):
        pass

    def connect(self, signal, slot):
        pass


def install(monkeypatch, app):
    """Put the stand-ins where the effect files import them from; undone by pytest's monkeypatch."""
    monkeypatch.setitem(sys.modules, "qt", qt_module(app.settings))
    ctk = types.ModuleType("ctk")
    ctk.ctkCollapsibleGroupBox = ctk.ctkCollapsibleButton = type("ctkCollapsible", (Widget,), {})
    monkeypatch.setitem(sys.modules, "ctk", ctk)
    effects = types.ModuleType("qSlicerSegmentationsEditorEffectsPythonQt")
    effects.qSlicerSegmentEditorScriptedEffect, effects.qSlicerSegmentEditorScriptedPaintEffect = \
        ScriptedEffect, ScriptedPaintEffect
    monkeypatch.setitem(sys.modules, "qSlicerSegmentationsEditorEffectsPythonQt", effects)
    bases = types.ModuleType("SegmentEditorEffects")

    class AbstractScriptedSegmentEditorEffect:  # AbstractScriptedSegmentEditorEffect.py:49-50
        def __init__(self, scriptedEffect):
            self.scriptedEffect = scriptedEffect

        def xyToRas(self, xy, viewWidget):  # :85-88 -> qSlicerSegmentEditorAbstractEffect::xyToRas (XYToRAS)
            return list(_event_ras(viewWidget, Interactor(xy)))

    bases.AbstractScriptedSegmentEditorEffect = AbstractScriptedSegmentEditorEffect
    bases.AbstractScriptedSegmentEditorPaintEffect = type("AbstractScriptedSegmentEditorPaintEffect",
                                                          (AbstractScriptedSegmentEditorEffect,), {})
    monkeypatch.setitem(sys.modules, "SegmentEditorEffects", bases)
    i18n = types.ModuleType("slicer.i18n")
    i18n.tr = lambda text: text
    monkeypatch.setitem(sys.modules, "slicer.i18n", i18n)
    monkeypatch.setattr(slicer, "i18n", i18n, raising=False)
    monkeypatch.setattr(slicer, "app", app, raising=False)
    monkeypatch.setattr(slicer, "qMRMLSliderWidget", type("qMRMLSliderWidget", (Widget,), {}), raising=False)
    monkeypatch.setattr(slicer.util, "errorDisplay", lambda text, *a, **k: app.errors.append(str(text)))
    monkeypatch.setattr(slicer.util, "showStatusMessage", lambda text, *a, **k: app.statuses.append(str(text)))
    monkeypatch.setattr(slicer.util, "confirmOkCancelDisplay",
                        lambda text, *a, **k: app.questions.append(str(text)) or app.answer)
    monkeypatch.setattr(slicer.util, "createProgressDialog",
                        lambda *a, **k: types.SimpleNamespace(value=0, wasCanceled=False, labelText="",
                                                              close=lambda: None, show=lambda: None))
    monkeypatch.setattr(slicer.util, "mainWindow", lambda: types.SimpleNamespace(cursor=None))
