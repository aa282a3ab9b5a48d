"""Segment Anything: click = include, shift+click = exclude, ctrl+drag = box, C = next candidate, N = new object.

Esc is not used: the Segment Editor's Esc shortcut deactivates the effect before the view sees the key
(qMRMLSegmentEditorWidget.cxx, installKeyboardShortcuts: `QShortcut(QKeySequence(Qt::Key_Escape))`).
The model is loaded, and a slice not embedded yet is embedded, in a job (progress, cancel); the click is
applied when it is done. Prefetch images are read here, on the GUI thread.
"""
from MVAControllersLib.tool_controller import ToolController
from MVAControllersLib.view_events import Reaction

CYCLE_KEYS, NEW_OBJECT_KEYS = ("c", "C"), ("n", "N")
PREFETCH_SLICES = 3


class EngineSource:
    """Where a controller gets its SamEngine. `loaded()` never loads; `load(progress, cancel)` may download."""

    def loaded(self):
        raise NotImplementedError

    def load(self, progress, cancel):
        raise NotImplementedError

    def prefetcher(self, engine):
        """An EmbeddingPrefetcher for `engine`, or None (prefetch off)."""
        return None

    def model_spec(self, engine):
        """How a compute worker builds the same model ({"name", "checkpoint", "input_size", "device"}), or None
        to embed in this process."""
        return None

    def embedding_store(self, bridge):
        """Path of the embedding store (`mva embed`) for the bridge's volume, or None: slices embedded on demand."""
        return None


class SegmentAnythingController(ToolController):
    name = "Segment Anything"

    def __init__(self, bridge, engines, runner=None, confirm_edit=None):
        super().__init__(bridge, runner, confirm_edit)
        self.engines = engines
        self.logic = None
        self.box_start = None  # (plane, pixel) of a ctrl+press
        self.prefetching = set()  # slice keys sent to the compute worker, not back yet
        self.left_session = None  # the object's prompts when the effect was left (Smart Propagation reads them)

    def deactivate(self):
        """Leaving the effect: the next click starts a new object, but this one's prompts stay readable
        (`object_session`) until then, for Smart Propagation's strategy sam2."""
        left = self.object_session
        reaction = super().deactivate()
        self.left_session = left
        return reaction

    @property
    def object_session(self):
        """The current object's PromptSession, else the one left when the effect was deactivated, else None."""
        session = self.logic.session if self.logic is not None else None
        return session if session is not None else self.left_session

    def reset(self):
        self.box_start = None
        self.prefetching = set()
        if self.logic is not None:
            self.logic.reset()

    def ensure_logic(self, engine):
        """The logic over `engine`, reading the embedding store of the volume shown now (looked up on every call:
        another case or volume, or a store made since, is followed)."""
        from SegmentAnythingLib.segment_anything_logic import SegmentAnythingLogic
        store = self.engines.embedding_store(self.bridge)
        if self.logic is None or self.logic.engine is not engine:
            if self.logic is not None:
                self.logic.use_embedding_store(None)  # the earlier engine's cache no longer reads its store
            self.logic = SegmentAnythingLogic(self.bridge, engine, getattr(engine, "model_name", "model"),
                                              prefetcher=self.engines.prefetcher(engine), embedding_store=store)
        else:
            self.logic.use_embedding_store(store)
        return self.logic

    # --- events ---------------------------------------------------------------------------------------------
    def on_press(self, event):
        if self.busy:
            return Reaction(consumed=True, status="Wait for the model or the slice's embedding (or cancel)")
        plane = self.plane_of(event.slice_node)
        pixel = self.pixel_of(plane, event)
        self.last_slice_node = event.slice_node
        if event.control:
            self.box_start = (plane, pixel)
            return Reaction(consumed=True, status="Box: release at the opposite corner")
        return self.prompt(plane, ("point", pixel, not event.shift))

    def on_move(self, event):
        return Reaction(consumed=self.box_start is not None)

    def on_release(self, event):
        if self.box_start is None:
            return Reaction(consumed=False)
        (plane, corner), self.box_start = self.box_start, None
        pixel = self.pixel_of(plane, event)
        return self.prompt(plane, ("box", corner, pixel))

    def on_key(self, event):
        if event.key in CYCLE_KEYS:
            return self._cycle()
        if event.key in NEW_OBJECT_KEYS:
            return self._new_object()
        return Reaction(consumed=False)

    # --- prompts --------------------------------------------------------------------------------------------
    def prompt(self, plane, prompt):
        """Apply a prompt now, or after loading the model / embedding the slice in a job."""
        engine = self.engines.loaded()
        if engine is None:
            def loaded(_engine):
                return self.prompt(plane, prompt)
            return self.start_job("Loading the Segment Anything model", self.engines.load, loaded)
        logic = self.ensure_logic(engine)
        key = logic.slice_key(plane)
        if engine.has_embedding(key):
            return self._write_prompt(plane, prompt)
        image = logic.slice_image(plane)  # read on the GUI thread
        spec = self.engines.model_spec(engine)
        return self.start_job("Embedding this slice", lambda progress, cancel: engine.embed(key, image),
                              lambda _embedding: self._write_prompt(plane, prompt),
                              request=("embed", {"model": spec}, {"image": image}) if spec else None,
                              from_reply=lambda reply: store_embedding(engine, key, reply))

    def _write_prompt(self, plane, prompt):
        logic = self.logic
        if prompt[0] == "point":
            self.edit(logic.add_point, plane, prompt[1], prompt[2])
        else:
            self.edit(logic.set_box, plane, prompt[1], prompt[2])
        self.prefetch(plane)
        return Reaction(consumed=True, redraw=True, status=self.candidates_text())

    def cycle_candidate(self):
        return self.guarded(self._cycle)

    def _cycle(self):
        if self.logic is None:
            raise ValueError("No Segment Anything prediction to cycle: click on a slice first")
        self.edit(self.logic.cycle_candidate)
        return Reaction(consumed=True, status=self.candidates_text())

    def new_object(self):
        return self.guarded(self._new_object)

    def _new_object(self):
        self.reset()
        self.left_session = None
        return Reaction(consumed=True, status="New object: click on a slice to start")

    def candidates_text(self):
        session = self.logic.session if self.logic is not None else None
        if session is None or session.prediction is None:
            return "Click on a slice to start"
        scores = ", ".join(f"[{s:.2f}]" if i == session.candidate else f"{s:.2f}"
                           for i, s in enumerate(session.prediction.scores))
        return "Candidates (predicted IoU): " + scores

    # --- background embeddings ------------------------------------------------------------------------------
    def case_opened(self, slice_node):
        """A case is shown and the model is loaded: look its volume up in the embedding store now (volume digest,
        axes, decoder warm-up) and read and prepare the stored slice in the view, so a first click there only
        decodes and one elsewhere only reads its record. Nothing when no model is loaded."""
        return self.guarded(self._case_opened, slice_node, consumed=False)

    def _case_opened(self, slice_node):
        engine = self.engines.loaded()
        if engine is not None:
            logic = self.ensure_logic(engine)
            key = logic.slice_key(self.plane_of(slice_node))
            prepare = getattr(engine, "prepare_embedding", None)
            if prepare is not None and logic.stored is not None and logic.stored.contains(key):
                prepare(key)
        return Reaction()

    def view_changed(self, slice_node):
        """The view scrolled or moved: embed its slice and neighbours in the background (model loaded only)."""
        return self.guarded(self._view_changed, slice_node, consumed=False)

    def _view_changed(self, slice_node):
        engine = self.engines.loaded()
        if engine is None:
            return Reaction()
        self.ensure_logic(engine)
        self.prefetch(self.plane_of(slice_node))
        return Reaction()

    def prefetch(self, plane, count=PREFETCH_SLICES):
        """Queue the plane and its neighbours, nearest first; their images are read now (GUI thread). With a
        compute worker they are embedded there, else by the engine's prefetcher thread."""
        logic = self.logic
        spec = self.engines.model_spec(logic.engine) if logic is not None else None
        to_worker = spec is not None and hasattr(self.runner, "submit_side")
        if logic is None or (logic.prefetcher is None and not to_worker) or not plane.is_voxel_aligned:
            return 0
        size = self.bridge.work_volume().shape[plane.aligned_axis]
        planes = [plane] + [plane.neighbour(step) for distance in range(1, count + 1) for step in (distance, -distance)
                            if 0 <= plane.slice_index + step < size]
        items = []
        for each in planes:
            key = logic.slice_key(each)
            if not logic.engine.has_embedding(key) and key not in self.prefetching:
                image = logic.slice_image(each)
                items.append((key, lambda image=image: image))
        if to_worker:
            engine = logic.engine
            for key, image in items:
                sent = self.runner.submit_side(("embed", {"model": spec}, {"image": image()}),
                                               lambda reply, key=key: self._prefetched(engine, key, reply))
                if not sent:
                    to_worker = False
                    break
                self.prefetching.add(key)
        if items and not to_worker and logic.prefetcher is not None:
            logic.prefetcher.request(items)
        return len(items)

    def _prefetched(self, engine, key, reply):
        self.prefetching.discard(key)
        if not engine.has_embedding(key):
            store_embedding(engine, key, reply)

    def status(self):
        return self.logic.status() if self.logic is not None else "No model loaded yet"


def store_embedding(engine, key, reply):
    """Put a compute worker's "embed" reply into the engine's cache under `key` (then prompts decode here)."""
    import numpy as np
    import torch
    embedding = torch.from_numpy(np.ascontiguousarray(reply.arrays["embedding"]))
    return engine.cache.put(key, embedding, tuple(reply.params["original_size"]), tuple(reply.params["input_size"]))
