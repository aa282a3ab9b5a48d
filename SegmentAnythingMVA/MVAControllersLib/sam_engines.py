"""The Segment Anything engine of a desktop session, built from its settings (no Qt: settings come in as a
function). The random "tiny" test model is offered only with Slicer's developer mode on."""
from MVAControllersLib.segment_anything_controller import EngineSource

DEFAULTS = {"Model": "vit_b", "Device": "auto", "CacheMB": 1024, "Checkpoint": "", "Prefetch": True,
            "InputSize": "full", "RemoteURL": "", "RemoteToken": "", "EmbeddingStore": "",
            "DecoderThreads": 0}  # 0: $MVA_DECODER_THREADS, else 1 (torch threads of a click's decoding)
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
                               remote_token=self.setting("RemoteToken") or None,
                               decoder_threads=self.setting("DecoderThreads") or None)
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


SAM2_MISSING = ("Strategy sam2 needs the 'sam2' package (SAM 2.1 and MedSAM2), which this Slicer's Python does not "
                "have. It is not installed automatically because it may upgrade Slicer's torch; install it from the "
                "Python console with: slicer.util.pip_install('sam2') (SAM2_BUILD_CUDA=0 skips its CUDA extension), "
                "then restart Slicer. The other strategies work without it.")


def sam2_available(find_spec=None):
    """True when the `sam2` package can be imported (checked without importing it)."""
    import importlib.util
    return (find_spec or importlib.util.find_spec)("sam2") is not None


def offered_sam2_models(developer_mode):
    """SAM 2 model names for Smart Propagation's list: the random "sam2_tiny" only for developers."""
    from SegmentAnythingLib.sam2_engine_factory import SAM2_MODEL_NAMES
    return offered_models(developer_mode, SAM2_MODEL_NAMES)


def propagation_models(sam2_model, developer_mode, device="auto", sam_source=None, find_spec=None):
    """{strategy: model spec} the compute worker propagates with: "sam2" from the chosen SAM 2 model (None
    without the sam2 package, or for the random "sam2_tiny" outside developer mode: see `sam2_refusal`), "sam"
    from the session's loaded SAM 1 model (None when none is loaded)."""
    from SegmentAnythingLib.sam2_engine_factory import is_sam2_model
    usable = sam2_refusal(sam2_model, developer_mode, find_spec) is None
    models = {"sam2": {"name": sam2_model, "device": device} if usable else None, "sam": None}
    engine = sam_source.loaded() if sam_source is not None else None
    name = getattr(engine, "model_name", "")
    if engine is not None and not is_sam2_model(name):
        models["sam"] = sam_source.model_spec(engine)
    elif engine is not None and name == sam2_model and usable:  # the module's model: its checkpoint file too
        models["sam2"] = sam_source.model_spec(engine)
    return models


def sam2_refusal(sam2_model, developer_mode, find_spec=None):
    """Why strategy sam2 cannot run with `sam2_model` here (a message), or None when it can."""
    from SegmentAnythingLib.sam2_engine_factory import SAM2_TINY_NAME
    if not sam2_available(find_spec):
        return SAM2_MISSING
    if sam2_model == SAM2_TINY_NAME and not developer_mode:
        return ("'sam2_tiny' has random weights and segments nothing (it tests the plumbing): choose a SAM 2.1 or "
                "MedSAM2 model")
    return None

