"""Import torch's compiled extensions before trame-slicer's rendering libraries (import this module first).

Measured here: importing triton (pulled in by torchvision.ops, which Segment Anything imports on its first use)
after vtkRenderingOpenGL2 / LayerDM are loaded segfaults the process. Without torch the other tools still work.
"""
try:
    import torchvision.ops  # noqa: F401
except ImportError:
    pass
