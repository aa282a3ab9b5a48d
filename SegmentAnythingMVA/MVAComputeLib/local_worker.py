"""A compute worker as a subprocess of an explicitly found Python, fed and read through pipes.

Inside Slicer ``sys.executable`` is the application itself, so neither multiprocessing (spawn re-runs the
application, fork copies a GUI process) nor ``sys.executable`` can start a worker: the worker runs under
Slicer's ``PythonSlicer`` interpreter, found on PATH (Slicer's launcher puts its ``bin`` folder there) or
next to the application (Slicer's Python FAQ: PythonSlicer lives in the ``bin`` folder of the install).
Headless, the current interpreter is used. ``$MVA_WORKER_PYTHON`` overrides both.

Writes go through a writer thread and reads through a reader thread, so ``submit`` and ``poll`` never
wait for the worker, even when it is busy or stalled. When the worker dies (a crash, kill -9), its
unanswered requests are answered with WorkerCrashedError, a new worker is started and ``notice`` says so.
"""
from __future__ import annotations

import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading

from MVAComputeLib.compute_errors import ComputeUnavailableError, ProtocolError, WorkerCrashedError

WORKER_MODULE = "MVAComputeLib.worker_main"


def find_worker_python(executable=None):
    """Path of the Python interpreter that runs the worker.

    Parameters
    ----------
    executable : str, optional
        The running program (default ``sys.executable``): a Python interpreter headless, the Slicer
        application inside Slicer.

    Raises
    ------
    ComputeUnavailableError
        Inside an application without a PythonSlicer next to it or on PATH.
    """
    override = os.environ.get("MVA_WORKER_PYTHON")
    if override:
        if not os.path.isfile(override):
            raise ComputeUnavailableError(f"$MVA_WORKER_PYTHON names {override}, which does not exist")
        return override
    executable = os.path.abspath(executable or sys.executable)
    if os.path.basename(executable).lower().startswith("python"):
        return executable  # python3, python3.11, PythonSlicer, python-real
    suffix = ".exe" if sys.platform.startswith("win") else ""
    folder = os.path.dirname(executable)
    candidates = [os.path.join(folder, "PythonSlicer" + suffix), os.path.join(folder, "bin", "PythonSlicer" + suffix),
                  shutil.which("PythonSlicer")]
    for candidate in candidates:
        if candidate and os.path.isfile(candidate):
            return candidate
    raise ComputeUnavailableError(
        f"{executable} is an application, not a Python interpreter, and no PythonSlicer was found next to it or "
        "on PATH; set $MVA_WORKER_PYTHON to the Python that should run the compute worker")


def module_folders():
    """Folders holding this extension's packages (added to the worker's PYTHONPATH)."""
    import MVAComputeLib
    folders = [os.path.dirname(os.path.dirname(os.path.abspath(MVAComputeLib.__file__)))]
    for name in ("SegmentAnythingLib", "SmartRegionsLib", "SmartBrushLib", "SmartPropagationLib"):
        module = sys.modules.get(name)
        if module is None:
            try:
                module = __import__(name)
            except ImportError:
                continue
        folders.append(os.path.dirname(os.path.dirname(os.path.abspath(module.__file__))))
    return list(dict.fromkeys(folders))


class LocalWorker:
    """Transport of a ComputeClient to a worker subprocess (started at once, restarted after a crash)."""

    def __init__(self, threads=None, python=None):
        self.threads = threads
        self.python = python or find_worker_python()
        self._on_reply = self._on_progress = self._tell = None
        self._lock = threading.Lock()
        self._in_flight = set()
        self._closed = False
        self._process = None
        self._outbox = None
        self.restarts = 0

    # --- transport interface (ComputeClient) -------------------------------------------------------------------
    def attach(self, on_reply, on_progress, tell):
        self._on_reply, self._on_progress, self._tell = on_reply, on_progress, tell
        self._start()

    def send(self, header, arrays):
        from MVAComputeLib.wire_format import encode_message
        frame = encode_message(header, arrays)  # encoding errors reach the caller, nothing is sent
        with self._lock:
            if self._closed:
                raise ComputeUnavailableError("The compute worker was closed")
            if header["kind"] == "request":
                self._in_flight.add(header["id"])
            outbox = self._outbox
        outbox.put(frame)

    def close(self):
        with self._lock:
            self._closed = True
            process, outbox = self._process, self._outbox
        if outbox is not None:
            outbox.put(None)
        if process is not None:
            try:
                process.wait(timeout=3)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=3)

    @property
    def pid(self):
        process = self._process
        return None if process is None else process.pid

    # --- the process ---------------------------------------------------------------------------------------------
    def _start(self, outbox=None):
        environment = dict(os.environ)
        folders = module_folders()
        if environment.get("PYTHONPATH"):
            folders.append(environment["PYTHONPATH"])
        environment["PYTHONPATH"] = os.pathsep.join(folders)
        environment.setdefault("ITK_GLOBAL_DEFAULT_THREADER", "Pool")
        command = [self.python, "-m", WORKER_MODULE]
        if self.threads:
            command += ["--threads", str(int(self.threads))]
            environment["OMP_NUM_THREADS"] = str(int(self.threads))
        self._log = tempfile.TemporaryFile()
        try:
            process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
                                       env=environment, bufsize=0)
        except OSError as error:
            raise ComputeUnavailableError(f"Cannot start the compute worker with {self.python}: {error}") from None
        outbox = outbox if outbox is not None else queue.Queue()
        with self._lock:
            self._process, self._outbox = process, outbox
        threading.Thread(target=self._write_loop, args=(process, outbox), name="compute-writer", daemon=True).start()
        threading.Thread(target=self._read_loop, args=(process,), name="compute-reader", daemon=True).start()

    def _write_loop(self, process, outbox):
        while True:
            frame = outbox.get()
            if frame is None:
                break
            try:
                process.stdin.write(frame)
                process.stdin.flush()
            except (BrokenPipeError, OSError, ValueError):
                break  # the reader sees the end of the process and restarts it
        try:
            process.stdin.close()
        except (BrokenPipeError, OSError):
            pass

    def _read_loop(self, process):
        from MVAComputeLib.compute_client import Reply
        from MVAComputeLib.wire_format import read_message
        while True:
            try:
                message = read_message(process.stdout)
            except (ProtocolError, OSError, ValueError):
                message = None
            if message is None:
                break
            header, arrays = message
            if header.get("kind") == "progress":
                self._on_progress(header.get("id"), header.get("fraction"))
                continue
            reply = Reply.from_frame(header, arrays)
            if reply is None:
                continue
            with self._lock:
                self._in_flight.discard(reply.request_id)
            self._on_reply(reply)
        code = process.wait()
        self._worker_ended(process, code)

    def _worker_ended(self, process, code):
        from MVAComputeLib.compute_client import Reply
        with self._lock:
            if self._closed or process is not self._process:
                return
            lost, self._in_flight = self._in_flight, set()
            self._outbox.put(None)
            # Requests sent from now on wait in a fresh queue for the new worker.
            self._outbox = outbox = queue.Queue()
        how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
        detail = self._log_tail()
        message = (f"The compute worker (PID {process.pid}) stopped unexpectedly ({how}); a new worker is starting"
                   + (f". Its last words: {detail}" if detail else "") + ". Submit the request again.")
        self.restarts += 1
        self._tell(message)
        for request_id in lost:
            self._on_reply(Reply(request_id, "error", error=WorkerCrashedError.__name__, message=message))
        try:
            self._start(outbox)
        except ComputeUnavailableError as error:
            with self._lock:
                self._closed = True
                waiting, self._in_flight = self._in_flight, set()
            for request_id in waiting:
                self._on_reply(Reply(request_id, "error", error=ComputeUnavailableError.__name__, message=str(error)))
            self._tell(f"{message} Restarting failed: {error}")

    def _log_tail(self, limit=300):
        try:
            self._log.seek(0, os.SEEK_END)
            size = self._log.tell()
            self._log.seek(max(0, size - limit))
            text = self._log.read().decode("utf-8", "replace").strip()
        except (OSError, ValueError):
            return ""
        return text.splitlines()[-1] if text else ""
