"""The compute worker process: frames in on stdin, frames out on stdout (see wire_format and operations).

Run as ``python -m MVAComputeLib.worker_main [--threads N]`` by LocalWorker. Requests run one at a time
in order; a ``cancel`` frame drops a queued request or marks the running one, whose result is then not
sent (it gets a ``cancelled`` reply instead). Anything the libraries print goes to stderr, so stdout
carries frames only.
"""
import argparse
import os
import queue
import sys
import threading
import traceback

os.environ.setdefault("ITK_GLOBAL_DEFAULT_THREADER", "Pool")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="MVAComputeLib.worker_main")
    parser.add_argument("--threads", type=int, default=None, help="torch threads of this worker")
    args = parser.parse_args(argv)
    # Keep the real stdout for frames and send stray prints (libraries, warnings) to stderr.
    channel = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    if args.threads:
        # torch (through OpenMP and MKL) takes its thread count from these when it loads: torch is imported by the
        # first operation that needs it (SAM), so a worker that only pings or computes supervoxels starts without
        # paying for it (most of a worker's start-up time)
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[name] = str(args.threads)
    from MVAComputeLib.operations import Operations
    WorkerLoop(Operations(args.threads), sys.stdin.buffer, channel).run()
    return 0


class WorkerLoop:
    """Reads requests on one thread and runs them on another, so cancel frames are seen while a request runs."""

    def __init__(self, operations, inbound, outbound):
        self.operations = operations
        self.inbound = inbound
        self.outbound = outbound
        self._write_lock = threading.Lock()
        self._jobs = queue.Queue()
        self._cancelled = set()
        self._state_lock = threading.Lock()

    def run(self):
        from MVAComputeLib.compute_errors import ProtocolError
        from MVAComputeLib.wire_format import read_message
        runner = threading.Thread(target=self._run_jobs, name="compute-jobs", daemon=True)
        runner.start()
        while True:
            try:
                message = read_message(self.inbound)
            except ProtocolError as error:
                self._send({"kind": "error", "id": None, "error": "ProtocolError", "message": str(error)})
                break  # the stream is out of step: nothing after this can be trusted
            if message is None:
                break
            header, arrays = message
            kind, request_id = header.get("kind"), header.get("id")
            if kind == "cancel":
                with self._state_lock:
                    self._cancelled.add(request_id)
            elif kind == "request":
                self._jobs.put((request_id, header.get("op"), header.get("params") or {}, arrays))
            else:
                self._send({"kind": "error", "id": request_id, "error": "ProtocolError",
                            "message": f"A worker takes request and cancel frames, not {kind!r}"})
        self._jobs.put(None)
        runner.join(timeout=5)

    def _is_cancelled(self, request_id):
        with self._state_lock:
            return request_id in self._cancelled

    def _run_jobs(self):
        from MVAComputeLib.compute_errors import RequestCancelledError
        from MVAComputeLib.operations import OperationContext
        while True:
            job = self._jobs.get()
            if job is None:
                return
            request_id, op, params, arrays = job
            if self._is_cancelled(request_id):
                self._send({"kind": "cancelled", "id": request_id, "message": "cancelled before it started"})
                continue
            context = OperationContext(
                cancelled=lambda rid=request_id: self._is_cancelled(rid),
                progress=lambda fraction, rid=request_id: self._send(
                    {"kind": "progress", "id": rid, "fraction": float(fraction)}))
            try:
                result_params, result_arrays = self.operations.run(op, params, arrays, context)
            except RequestCancelledError:
                self._send({"kind": "cancelled", "id": request_id, "message": "cancelled"})
            # The worker answers every failure of an operation as an error reply instead of dying with it.
            except Exception as error:  # noqa: BLE001
                if self._is_cancelled(request_id) or type(error).__name__.endswith("Cancelled"):
                    self._send({"kind": "cancelled", "id": request_id, "message": "cancelled"})
                else:
                    traceback.print_exc(file=sys.stderr)
                    self._send({"kind": "error", "id": request_id, "error": type(error).__name__,
                                "message": str(error) or type(error).__name__})
            else:
                if self._is_cancelled(request_id):
                    self._send({"kind": "cancelled", "id": request_id, "message": "cancelled while running"})
                else:
                    self._send({"kind": "result", "id": request_id, "params": result_params}, result_arrays)
            finally:
                with self._state_lock:
                    self._cancelled.discard(request_id)

    def _send(self, header, arrays=None):
        from MVAComputeLib.wire_format import encode_message
        frame = encode_message(header, arrays)
        with self._write_lock:
            try:
                self.outbound.write(frame)
                self.outbound.flush()
            except (BrokenPipeError, ValueError):
                pass  # the client has gone; the loop ends when stdin closes


if __name__ == "__main__":
    sys.exit(main())
