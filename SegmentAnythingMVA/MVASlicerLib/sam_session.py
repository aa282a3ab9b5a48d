"""The one SAM engine of a Slicer session (MVAControllersLib.sam_engines), with its settings in QSettings."""
import qt

SETTINGS_PREFIX = "SegmentAnythingMVA/"
_engines = None
_client = None


def setting(name):
    from MVAControllersLib.sam_engines import typed_setting
    return typed_setting(qt.QSettings().value(SETTINGS_PREFIX + name), name)


def set_setting(name, value):
    qt.QSettings().setValue(SETTINGS_PREFIX + name, value)


def developer_mode():
    return str(qt.QSettings().value("Developer/DeveloperMode", "false")).lower() in ("true", "1")


def engines():
    """The session's SettingsEngineSource (an EngineSource for the Segment Anything controller)."""
    global _engines
    if _engines is None:
        from MVAControllersLib.sam_engines import SettingsEngineSource
        _engines = SettingsEngineSource(setting, developer_mode)
    return _engines


def compute_client():
    """The session's compute worker (a PythonSlicer subprocess), started on first use."""
    global _client
    if _client is None:
        from MVAComputeLib.compute_client import ComputeClient
        _client = ComputeClient.local()
    return _client


def worker_runner():
    """A job runner for one effect: its embeddings / supervoxels go to the session's compute worker."""
    from MVAControllersLib.worker_jobs import WorkerJobRunner
    return WorkerJobRunner(compute_client)
