"""Browser annotator on trame-slicer: the project's smart tools as trame-slicer segmentation effects.

Layer 3 (web). Tools reach the segmentation only through MVABridgeLib.SegmentEditBridge, here over
`TrameEditBackend` (trame-slicer's SegmentationEditor, its SegmentModifier and undo stack).
"""
import os
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The tool packages live in the module folders of the repository (as in Slicer); make them importable
# when this package runs from a checkout (the installed package maps them already).
for _folder in ("SegmentAnythingMVA", "SmartBrush", "SmartPropagation"):
    _path = os.path.join(_ROOT, _folder)
    if os.path.isdir(_path) and _path not in sys.path:
        sys.path.append(_path)

os.environ.setdefault("ITK_GLOBAL_DEFAULT_THREADER", "Pool")

