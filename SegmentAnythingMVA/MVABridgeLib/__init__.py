"""MRML bridge: volumes, slice geometry, windowing and segment edits (Qt-free, runs on slicer-core).

Importing this package sets ITK's pool threader before `slicer` is imported: slicer-core 5.11 otherwise
crashes at interpreter exit after a vtkITK filter has run (SLICER_GUIDE.md section 8).
"""
import os

os.environ.setdefault("ITK_GLOBAL_DEFAULT_THREADER", "Pool")
