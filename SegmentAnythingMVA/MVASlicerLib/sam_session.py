"""The one SAM engine of a Slicer session (MVAControllersLib.sam_engines), with its settings in QSettings."""
import qt

SETTINGS_PREFIX = "SegmentAnythingMVA/"
_engines = None
_runner = None


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
        _engines = SettingsEngineSource(setting)
    return _engines


def worker_runner():
    """The session's job runner: slice embeddings go to the compute worker (a PythonSlicer subprocess)."""
    global _runner
    if _runner is None:
        from MVAComputeLib.compute_client import ComputeClient
        from MVAControllersLib.worker_jobs import WorkerJobRunner
        _runner = WorkerJobRunner(ComputeClient.local)
    return _runner
