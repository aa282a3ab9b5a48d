"""Small Qt-side helpers of the effect files: clone, icon, slice node observers, parameter-bound widgets."""
import os

import qt
import slicer
import vtk


def clone_effect(effect_file, paint=False):
    """A new scripted effect adaptor running `effect_file` (what every effect's clone() returns).

    Paint effects need qSlicerSegmentEditorScriptedPaintEffect, which names the Python module after the file's
    base name (EditorEffects/qSlicerSegmentEditorScriptedPaintEffect.cxx:135): hence a unique file name there.
    """
    import qSlicerSegmentationsEditorEffectsPythonQt as effects
    adaptor = effects.qSlicerSegmentEditorScriptedPaintEffect if paint else effects.qSlicerSegmentEditorScriptedEffect
    clone = adaptor(None)
    clone.setPythonSource(os.path.abspath(effect_file).replace("\\", "/"))
    return clone


def effect_icon(effect_file):
    """The SegmentEditorEffect.png beside `effect_file`, or an empty icon."""
    path = os.path.join(os.path.dirname(effect_file), "SegmentEditorEffect.png")
    return qt.QIcon(path) if os.path.exists(path) else qt.QIcon()


def observe_slice_nodes(callback):
    """Call `callback(slice_widget)` when a slice view's node changes (for paint effects, whose adaptor forwards no
    processViewNodeEvents). Returns the observations for `remove_observations`."""
    layout = slicer.app.layoutManager()
    observations = []
    for name in layout.sliceViewNames():
        widget = layout.sliceWidget(name)
        node = widget.mrmlSliceNode()
        tag = node.AddObserver(vtk.vtkCommand.ModifiedEvent, lambda caller, event, widget=widget: callback(widget))
        observations.append((node, tag))
    return observations


def remove_observations(observations):
    for node, tag in observations:
        node.RemoveObserver(tag)
    return []


class ParameterWidgets:
    """Widgets bound to effect parameters: defaults, GUI <- MRML (signals blocked), MRML <- GUI."""

    def __init__(self, scripted_effect):
        self.effect, self.widgets = scripted_effect, []  # (parameter, widget, kind, default)

    def combo(self, label, parameter, items, default):
        widget = qt.QComboBox()
        widget.addItems(list(items))
        return self._add(label, parameter, widget, "text", default, "currentIndexChanged(int)")

    def check(self, text, parameter, default, tooltip=""):
        widget = qt.QCheckBox(text)
        widget.toolTip = tooltip
        return self._add(None, parameter, widget, "checked", default, "toggled(bool)")

    def number(self, label, parameter, default, minimum, maximum, step=1.0, suffix=""):
        widget = slicer.qMRMLSliderWidget()
        widget.minimum, widget.maximum, widget.singleStep, widget.suffix = minimum, maximum, step, suffix
        return self._add(label, parameter, widget, "value", default, "valueChanged(double)")

    def _add(self, label, parameter, widget, kind, default, signal):
        self.widgets.append((parameter, widget, kind, default))
        if label:
            self.effect.addLabeledOptionsWidget(label, widget)
        else:
            self.effect.addOptionsWidget(widget)
        widget.connect(signal, lambda *args: self.to_mrml())
        return widget

    def set_defaults(self):
        for parameter, _widget, kind, default in self.widgets:
            self.effect.setParameterDefault(parameter, int(default) if kind == "checked" else default)

    def to_gui(self):
        for parameter, widget, kind, _default in self.widgets:
            widget.blockSignals(True)
            if kind == "text":
                widget.currentText = self.effect.parameter(parameter)
            elif kind == "checked":
                widget.checked = self.effect.integerParameter(parameter) != 0
            else:
                widget.value = self.effect.doubleParameter(parameter)
            widget.blockSignals(False)

    def to_mrml(self):
        for parameter, widget, kind, _default in self.widgets:
            value = {"text": lambda: widget.currentText, "checked": lambda: int(bool(widget.checked)),
                     "value": lambda: widget.value}[kind]()
            self.effect.setParameter(parameter, value)

    def values(self):
        """{parameter: typed value} read from the parameter node."""
        read = {"text": self.effect.parameter, "checked": lambda p: self.effect.integerParameter(p) != 0,
                "value": self.effect.doubleParameter}
        return {parameter: read[kind](parameter) for parameter, _w, kind, _d in self.widgets}
