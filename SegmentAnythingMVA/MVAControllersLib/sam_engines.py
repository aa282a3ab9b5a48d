"""The Segment Anything engine of a desktop session, built from its settings (no Qt: settings come in as a
function). The random "tiny" test model is offered only with Slicer's developer mode on."""
from MVAControllersLib.segment_anything_controller import EngineSource

DEFAULTS = {"Model": "vit_b", "Device": "auto", "CacheMB": 1024, "Checkpoint": "", "Prefetch": True,
            "InputSize": "full", "RemoteURL": "", "RemoteToken": "", "EmbeddingStore": ""}
TEST_MODEL = "tiny"


def offered_models(developer_mode, model_names=None):
    """Model names for the module's list: the tiny random-weight model only for developers (it segments nothing)."""
    if model_names is None:
        from SegmentAnythingLib.engine_factory import MODEL_NAMES as model_names
    return [name for name in model_names if developer_mode or name not in (TEST_MODEL, "sam2_tiny")]


def typed_setting(raw_value, name):
    default = DEFAULTS[name]
    if raw_value is None:
        return default
    if isinstance(default, bool):
        return str(raw_value).lower() in ("true", "1")
    return type(default)(raw_value)


class SettingsEngineSource(EngineSource):
    """One engine and prefetcher per Slicer session, rebuilt by `load` from `setting(name)`."""

    def __init__(self, setting, developer_mode=lambda: False):
        self.setting = setting
        self.developer_mode = developer_mode
        self.engine = None
        self._prefetcher = None

    def loaded(self):
        return self.engine

    def load(self, progress=None, cancel=None):
        """Build the engine (downloads the checkpoint on first use); `progress(fraction)`, `cancel() -> bool`."""
        from SegmentAnythingLib.engine_factory import create_engine, input_size_from_text
        if self.setting("Model") == TEST_MODEL and not self.developer_mode():
            raise ValueError("The 'tiny' model has random weights and segments nothing (it tests the plumbing): "
                             "choose a real model in the SegmentAnythingMVA module")
        self.unload()
        try:
            input_size = input_size_from_text(self.setting("InputSize"))
        except ValueError:
            input_size = None
        download = (lambda done, total: progress(done / total if total else 0.0)) if progress else None
        engine = create_engine(self.setting("Model"), self.setting("Checkpoint") or None, self.setting("Device"),
                               progress=download, cancel=cancel, cache_mb=self.setting("CacheMB"),
                               input_size=input_size, remote_url=self.setting("RemoteURL") or None,
                               remote_token=self.setting("RemoteToken") or None)
        engine.model_name = self.setting("Model")
        self.engine = engine
        from SegmentAnythingLib.sam2_engine_factory import is_sam2_model
        if is_sam2_model(engine.model_name):  # a SAM 2 model also serves Smart Propagation's strategy sam2
            from SegmentAnythingLib.sam2_propagation import register_sam2_propagation
            register_sam2_propagation(engine)
        return engine

    def embedding_store(self, bridge):
        """The EmbeddingStore setting, else a store beside the source volume's file (mva-embeddings.zarr)."""
        from SegmentAnythingLib.stored_embeddings import store_for_volume_node
        return store_for_volume_node(bridge.backend.source_volume_node(), self.setting("EmbeddingStore"))

    def prefetcher(self, engine):
        if not self.setting("Prefetch"):
            return None
        if self._prefetcher is None or self._prefetcher.engine is not engine:
            from SegmentAnythingLib.algorithms.sam_prefetch import EmbeddingPrefetcher
            self._prefetcher = EmbeddingPrefetcher(engine)
        return self._prefetcher

    def model_spec(self, engine):
        """The model as the compute worker builds it (same checkpoint, encoder input and device setting)."""
        return {"name": engine.model_name, "checkpoint": self.setting("Checkpoint") or None,
                "input_size": engine.input_size, "device": self.setting("Device")}

    def unload(self):
        if self._prefetcher is not None:
            self._prefetcher.stop()
        self.engine, self._prefetcher = None, None

    def status(self):
        engine = self.engine
        if engine is None:
            return "No model loaded"
        cache = engine.cache
        text = (f"{engine.model_name} on {engine.device} (input {engine.input_size or engine.native_size}): "
                f"{len(cache)} slices cached, {cache.memory_bytes / 1e6:.0f} of {self.setting('CacheMB')} MB")
        if getattr(engine, "last_embedding", None) is not None:
            seconds, side = engine.last_embedding
            text += f"; last embedding {seconds:.1f} s at {side} px"
        if self._prefetcher is not None:
            text += "; " + self._prefetcher.status().summary()
        return text
