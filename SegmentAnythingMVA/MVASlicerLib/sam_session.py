"""The one SAM engine and prefetcher of a Slicer session, configured by the SegmentAnythingMVA module."""
import qt

SETTINGS_PREFIX = "SegmentAnythingMVA/"
DEFAULTS = {"Model": "vit_b", "Device": "auto", "CacheMB": 1024, "Checkpoint": "", "Prefetch": True,
            "InputSize": "full"}

_engine = None
_prefetcher = None


def setting(name):
    value = qt.QSettings().value(SETTINGS_PREFIX + name, DEFAULTS[name])
    if isinstance(DEFAULTS[name], bool):
        return str(value).lower() in ("true", "1")
    return type(DEFAULTS[name])(value)


def input_size_setting():
    """The InputSize setting as create_engine's `input_size` (an unreadable value means the full size)."""
    from SegmentAnythingLib.engine_factory import input_size_from_text
    try:
        return input_size_from_text(setting("InputSize"))
    except ValueError:
        return None


def set_setting(name, value):
    qt.QSettings().setValue(SETTINGS_PREFIX + name, value)


def load_engine(progress=None, cancel=None):
    """(Re)build the engine from the settings; downloads the checkpoint on first use."""
    global _engine, _prefetcher
    from SegmentAnythingLib.engine_factory import create_engine
    if _prefetcher is not None:
        _prefetcher.stop()
        _prefetcher = None
    engine = create_engine(setting("Model"), setting("Checkpoint") or None, setting("Device"),
                           progress=progress, cancel=cancel, cache_mb=setting("CacheMB"),
                           input_size=input_size_setting())
    engine.model_name = setting("Model")
    _engine = engine
    return engine


def loaded_engine():
    """The engine if a model is loaded, else None (never loads or downloads one)."""
    return _engine


def shared_engine():
    return _engine if _engine is not None else load_engine()


def shared_prefetcher():
    global _prefetcher
    if not setting("Prefetch"):
        return None
    if _prefetcher is None:
        from SegmentAnythingLib.algorithms.sam_prefetch import EmbeddingPrefetcher
        _prefetcher = EmbeddingPrefetcher(shared_engine())
    return _prefetcher


def unload_engine():
    global _engine, _prefetcher
    if _prefetcher is not None:
        _prefetcher.stop()
    _engine, _prefetcher = None, None


def status():
    """One line: the loaded model, cached embeddings and background work."""
    if _engine is None:
        return "No model loaded"
    cache = _engine.cache
    text = (f"{_engine.model_name} on {_engine.device} (input {_engine.input_size or _engine.native_size}): {len(cache)} slices cached, "
            f"{cache.memory_bytes / 1e6:.0f} of {setting('CacheMB')} MB")
    if _engine.last_embedding is not None:
        seconds, side = _engine.last_embedding
        text += f"; last embedding {seconds:.1f} s at {side} px"
    if _prefetcher is not None:
        text += "; " + _prefetcher.status().summary()
    return text


def clear_cache():
    if _engine is not None:
        _engine.cache.clear()
