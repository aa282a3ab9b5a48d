"""Segment Anything through the bridge: prompts on a slice plane -> candidate masks -> the selected segment.

One prompt is one undo step. A Segment Anything object (the prompts on one slice in one segment, until a new
object, another slice or another segment) owns only the voxels it wrote: each prediction adds what it predicts
and takes back only its own earlier voxels that nobody edited since; what the user drew or erased in between, and
other objects, survive.
"""
from dataclasses import dataclass, field

import numpy as np

from MVABridgeLib.errors import NothingToApplyError
from MVABridgeLib.tool_edits import ToolEdits
from MVABridgeLib.windowing import display_window_level, window_to_rgb


@dataclass
class PromptSession:
    """Prompts on one slice plane and the state needed to refine and to cycle candidates."""
    plane: object
    key: tuple
    edits: ToolEdits = field(default_factory=lambda: ToolEdits("Segment Anything object"))
    written_2d: np.ndarray = None  # the last mask written on the plane
    points_xy: list = field(default_factory=list)
    labels: list = field(default_factory=list)
    box_xyxy: tuple = None
    prediction: object = None
    candidate: int = 0
    owner: tuple = None  # (segmentation key, segment id) the object is drawn in


class SegmentAnythingLogic:
    """Point and box prompts on any slice plane, with cached embeddings and background prefetch."""

    def __init__(self, bridge, engine, model_name="model", window_level=None, prefetcher=None, embedding_store=None):
        self.bridge = bridge
        self.engine = engine
        self.model_name = model_name
        self.window_level = window_level  # None: the volume's display window/level (what the user sees)
        self.prefetcher = prefetcher
        self._last_prefetch = None  # (axis, slice index) of the last prefetch request: the scrolling direction
        self.session = None
        self.last_result = None  # EditResult of the last write (its message is the status text)
        self._window_stamp = None
        self._window_cache = None
        self.stored = None  # StoredEmbeddings: slices embedded ahead of time by `mva embed`
        self.use_embedding_store(embedding_store)

    def use_embedding_store(self, embedding_store):
        """Read stored slices from `embedding_store` (a path or EmbeddingStore; None: embed every slice on demand)
        from now on, e.g. when another case is shown; the same path keeps the open store. Returns True when
        it changed."""
        import os
        path = None if embedding_store is None else os.fspath(getattr(embedding_store, "path", embedding_store))
        if path == (self.stored.path if self.stored is not None else None):
            return False
        if self.stored is not None:
            self.stored.detach()
            self.stored = None
        if path is not None:
            from SegmentAnythingLib.stored_embeddings import StoredEmbeddings
            self.stored = StoredEmbeddings(embedding_store, self.engine)
        return True

    # --- slice images -------------------------------------------------------------------------------------
    def current_window_level(self):
        if self.window_level is not None:
            return self.window_level
        volume = self.bridge.work_volume()
        if self.stored is not None:  # the store's fixed embedding window, whatever the display shows
            stored_window = self.stored.window_for(volume)
            if stored_window is not None:
                return stored_window
        node = self.bridge.backend.source_volume_node()
        display = node.GetDisplayNode()
        stamp = (id(volume), display.GetMTime() if display is not None else 0)
        if self._window_stamp != stamp:  # automatic W/L scans the volume: do it once per volume and display
            self._window_cache = display_window_level(node, volume.array)
            self._window_stamp = stamp
        return self._window_cache

    def slice_key(self, plane):
        node = self.bridge.backend.source_volume_node()
        window, level = self.current_window_level()
        key = (node.GetID(), node.GetImageData().GetMTime(), plane.pixel_to_ras_matrix.round(6).tobytes(),
               plane.shape, round(window, 3), round(level, 3), self.model_name,
               getattr(self.engine, "img_size", None))
        if self.stored is not None:
            self.stored.register(key, plane, self.bridge.work_volume(), (window, level))
        return key

    def slice_image(self, plane):
        """uint8 RGB (rows, cols, 3) of the plane, windowed as the user sees it."""
        volume = self.bridge.work_volume()
        window, level = self.current_window_level()
        return window_to_rgb(plane.sample(volume.array, volume.index_to_ras), window, level)

    # --- prompts ----------------------------------------------------------------------------------------------
    def _session_for(self, plane):
        key = self.slice_key(plane)
        if self.session is None or self.session.key != key or self.session.owner != self.bridge.selected_key():
            # another slice, or another segment selected: a new object (the old object's prompts are not this one's)
            self.bridge.checked_segment()
            self.session = PromptSession(plane, key, owner=self.bridge.selected_key())
        return self.session

    def add_point(self, plane, pixel_rc, positive=True):
        """Add a positive or negative point and write the best candidate. Returns the SamPrediction."""
        plane.check_pixel(pixel_rc)
        session = self._session_for(plane)
        return self._predict_and_write(session, session.points_xy + [(float(pixel_rc[1]), float(pixel_rc[0]))],
                                       session.labels + [1 if positive else 0], session.box_xyxy)

    def set_box(self, plane, corner_a_rc, corner_b_rc):
        """Set the box prompt from two opposite corners (row, col) and write the best candidate."""
        plane.check_pixel(corner_a_rc)
        plane.check_pixel(corner_b_rc)
        session = self._session_for(plane)
        (r0, c0), (r1, c1) = corner_a_rc, corner_b_rc
        box = (min(c0, c1), min(r0, r1), max(c0, c1), max(r0, r1))
        return self._predict_and_write(session, session.points_xy, session.labels, box)

    def cycle_candidate(self):
        """Show the next of the three candidate masks (one undo step)."""
        session = self.session
        if session is None or session.prediction is None:
            raise NothingToApplyError("No Segment Anything prediction to cycle: click on a slice first")
        if session.owner != self.bridge.selected_key():
            raise NothingToApplyError("The Segment Anything object was drawn in another segment: click to start one "
                                      "in this segment")
        candidate = (session.candidate + 1) % len(session.prediction)
        self._write(session, session.prediction, candidate)
        session.candidate = candidate
        return candidate

    def reset(self):
        """Start a new object: forget the prompts; the segment keeps what was written, and the next object's
        prompts never take it back."""
        self.session = None

    def _predict_and_write(self, session, points_xy, labels, box_xyxy):
        """Predict with these prompts and write; the session keeps them only once the write succeeded."""
        previous = session.prediction.lowres(session.candidate) if session.prediction is not None else None
        prediction = self.engine.predict(
            session.key, np.array(points_xy) if points_xy else None, np.array(labels) if labels else None,
            np.array(box_xyxy, float) if box_xyxy is not None else None,
            previous_logits=previous, image=lambda: self.slice_image(session.plane))
        self._write(session, prediction, 0)
        session.points_xy, session.labels, session.box_xyxy = list(points_xy), list(labels), box_xyxy
        session.prediction, session.candidate = prediction, 0
        return prediction

    def _write(self, session, prediction, candidate):
        mask = np.asarray(prediction.mask(candidate), bool)
        result = self.bridge.write_plane_decision(session.edits, session.plane, add_2d=mask,
                                                  region_2d=session.written_2d)
        session.written_2d = mask
        self.last_result = result
        return result

    # --- background embeddings ----------------------------------------------------------------------------------
    def embedding_job(self, plane):
        """None when the plane's embedding is cached; otherwise a callable that computes it.

        The slice image is read now, on the caller's (GUI) thread; the callable only runs the model, so it can run
        in a worker thread while the GUI stays responsive (it waits for the prefetcher if that is already on it).
        """
        key = self.slice_key(plane)
        if self.engine.has_embedding(key):
            return None
        image = self.slice_image(plane)
        return lambda: self.engine.embed(key, image)

    def prefetch_around(self, plane, count=3):
        """Ask the prefetcher for the embeddings of the `count` slices on each side of a voxel-aligned plane.

        The slice itself comes first; when the user is scrolling, the slices ahead come before those behind.
        """
        if self.prefetcher is None or not plane.is_voxel_aligned:
            return
        size = self.bridge.work_volume().shape[plane.aligned_axis]
        last = self._last_prefetch
        self._last_prefetch = (plane.aligned_axis, plane.slice_index)
        ahead = -1 if last is not None and last[0] == plane.aligned_axis and last[1] > plane.slice_index else 1
        steps = [ahead * distance for distance in range(1, count + 1)] + [-ahead * d for d in range(1, count + 1)]
        if last is None or last == self._last_prefetch:  # not scrolling: nearest first, both sides
            steps = sorted(steps, key=lambda step: (abs(step), -step))
        items = [(self.slice_key(plane), lambda p=plane: self.slice_image(p))]
        for step in steps:
            if 0 <= plane.slice_index + step < size:
                neighbour = plane.neighbour(step)
                items.append((self.slice_key(neighbour), lambda p=neighbour: self.slice_image(p)))
        self.prefetcher.request(items)

    def status(self):
        """One line for the status bar: cached embeddings and background work."""
        cache = self.engine.cache
        text = f"{len(cache)} embeddings cached ({cache.memory_bytes / 1e6:.0f} MB)"
        last = getattr(self.engine, "last_embedding", None)
        if last is not None:
            text += f"; last one {last[0]:.1f} s at {last[1]} px"
        if self.prefetcher is not None:
            text += "; " + self.prefetcher.status().summary()
        if self.stored is not None:
            text += "; " + self.stored.status()
        remote = getattr(self.engine, "remote_encoder", None)
        if remote is not None and remote.message:
            text += "; " + remote.message
        return text
