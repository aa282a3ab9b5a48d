"""Interaction controllers (layer 2, no Qt): view events in, tool-logic calls, what to show out.

The desktop effects (SegmentEditor*Lib/) and the browser annotator (MVAWebLib/tool_controllers.py) both drive
the smart tools through these classes; a front end only translates its callbacks into `ViewEvent`s and draws
the `Reaction` it gets back.
"""
