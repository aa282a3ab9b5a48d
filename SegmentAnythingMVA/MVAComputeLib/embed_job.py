"""`mva embed`: SAM embeddings of every slice of every case into an embedding store, as a Ray job.

The driver plans the work (which records are missing or fail their checksum), Ray actors (one model each,
a fixed number of torch threads, a GPU each when the cluster has them) read the case from its path and
return float16 records, and only the driver writes the store, so workers never race on a chunk. A run that
is cancelled or killed leaves every written record valid; the next run computes only what is missing.
``workers=0`` computes in this process without Ray (a laptop, the service's own small jobs).

Ray is imported only by embed_ray (the Ray side of this job), never by the desktop extension.
"""
from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Optional

from MVAComputeLib.embed_cases import (EmbedInputError, case_plane, embedding_window, plane_layout, read_case,
                                       slice_image)
from SegmentAnythingLib.algorithms.sam_embedding_store import (AXIS_NAMES, EmbeddingStore, encoder_identity,
                                                               volume_digest)


@dataclass
class EmbedSettings:
    """How to embed.

    model, checkpoint, input_size, device : the model spec (operations.normalised_model_spec)
    axes : anatomical orientations to embed ("axial", "coronal", "sagittal")
    window : (width, level) for every case, or None for each case's automatic window (recorded)
    workers : Ray actors (0: in this process, no Ray); threads_per_worker : torch threads of each
    address : Ray cluster address, or None to start a local Ray when none is running
    object_store_mb : object store cap of a local Ray; batch_slices : slices per task
    memory_mb : memory all Ray workers together may use (None: 70 % of what is available, or the cluster's);
        the worker count is cut to what fits (embed_memory)
    verify : re-check the checksum of every stored record before skipping it
    """
    model: str = "tiny"
    checkpoint: Optional[str] = None
    input_size: object = None
    device: str = "auto"
    axes: tuple = ("axial",)
    window: Optional[tuple] = None
    workers: int = 1
    threads_per_worker: int = 1
    address: Optional[str] = None
    object_store_mb: int = 512
    batch_slices: int = 4
    memory_mb: Optional[int] = None
    verify: bool = True

    def model_spec(self):
        return {"name": self.model, "checkpoint": self.checkpoint, "input_size": self.input_size,
                "device": self.device}


@dataclass
class EmbedSummary:
    """What a run did; ``workers`` maps a worker PID to {"slices", "seconds"} (busy time)."""
    cases: int = 0
    slices_total: int = 0
    slices_computed: int = 0
    slices_skipped: int = 0
    seconds: float = 0.0
    workers: dict = field(default_factory=dict)
    cancelled: bool = False
    messages: list = field(default_factory=list)
    worker_memory_mb: float = 0.0  # estimated need of one Ray worker (embed_memory); 0 in this process

    def text(self):
        lines = [f"{self.cases} cases, {self.slices_total} slices: {self.slices_computed} embedded, "
                 f"{self.slices_skipped} already stored, in {self.seconds:.1f} s"
                 + (" (cancelled: run again to resume)" if self.cancelled else "")]
        for pid, stats in sorted(self.workers.items()):
            rate = stats["slices"] / stats["seconds"] if stats["seconds"] > 0 else 0.0
            lines.append(f"  worker {pid}: {stats['slices']} slices in {stats['seconds']:.1f} s "
                         f"({rate:.2f} slices/s)")
        if self.worker_memory_mb:
            lines.append(f"  each worker needs about {self.worker_memory_mb:.0f} MB (estimate)")
        lines += [f"  note: {message}" for message in self.messages]
        return "\n".join(lines)


@dataclass
class _AxisWork:
    case_index: int
    digest: str
    orientation: str
    axis: str
    slices: int
    missing: list


def run_embed(cases, store_path, settings=None, progress=None, cancel=None):
    """Embed `cases` (CaseSources) into the store at `store_path`.

    Parameters
    ----------
    progress : callable(done, total), optional
        Called after each written record (and once at the start).
    cancel : threading.Event or callable() -> bool, optional
        Checked between records; when set, no new work starts and the run returns its summary.

    Returns
    -------
    EmbedSummary

    Raises
    ------
    EmbedInputError
        A case that cannot be read, or bad settings.
    """
    settings = settings or EmbedSettings()
    cancelled = cancel.is_set if hasattr(cancel, "is_set") else (cancel or (lambda: False))
    report = progress or (lambda done, total: None)
    tic = time.perf_counter()
    summary = EmbedSummary(cases=len(cases))
    from MVAComputeLib.operations import engine_for_spec
    engine = engine_for_spec(settings.model_spec())  # the identity needs its weights; inline runs use it too
    identity = encoder_identity(engine)
    if settings.workers > 0:  # refused before the store is touched when not even one worker fits
        from MVAComputeLib.embed_memory import bounded_workers, default_budget_mb, worker_memory_mb
        side = settings.input_size if isinstance(settings.input_size, int) else None
        summary.worker_memory_mb = worker_memory_mb(engine, side)
        local_budget = None if settings.address else default_budget_mb(settings.object_store_mb)
        bounded_workers(settings.workers, summary.worker_memory_mb, settings.memory_mb or local_budget)
    store = EmbeddingStore(store_path, "a")
    work, case_records, case_windows = _plan(cases, store, settings, identity, summary)
    total = sum(len(item.missing) for item in work)
    summary.slices_skipped = summary.slices_total - total
    report(0, total)
    writer = _RecordWriter(case_records, summary, report, total)
    if total and not cancelled():
        if settings.workers <= 0:
            _run_inline(engine, cases, work, case_windows, settings, writer, cancelled)
        else:
            from MVAComputeLib.embed_ray import run_on_ray
            run_on_ray(cases, work, case_windows, settings, writer, cancelled, summary.worker_memory_mb)
    summary.cancelled = bool(cancelled()) and writer.done < total
    summary.seconds = time.perf_counter() - tic
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - summary.seconds))
    for digest, records in case_records.items():
        if digest in writer.touched:
            records.add_run({"started": started, "seconds": round(summary.seconds, 3),
                             "slices": writer.touched[digest], "workers": writer.case_workers[digest],
                             "cancelled": summary.cancelled})
    return summary


def _plan(cases, store, settings, identity, summary):
    work, case_records, case_windows = [], {}, {}
    for index, case in enumerate(cases):
        array, ijk_to_ras = read_case(case)
        digest = volume_digest(array, ijk_to_ras)
        window, source = embedding_window(array, settings.window)
        attrs = {"case_name": case.name, "source_path": case.path, "shape_kji": list(array.shape),
                 "volume_sha256": digest, "model": identity, "window": list(window), "window_source": source}
        records, reason = store.open_case(digest, attrs)
        if reason:
            summary.messages.append(f"{case.name}: recomputing everything because {reason}")
        case_records[digest] = records
        case_windows[digest] = window
        seen = set()
        for orientation in settings.axes:
            plane = case_plane(orientation, 0, ijk_to_ras, array.shape)
            axis = AXIS_NAMES[plane.aligned_axis]
            if axis in seen:
                continue  # an oblique volume can map two orientations onto one array axis
            seen.add(axis)
            slices = array.shape[plane.aligned_axis]
            existing = records.axis(axis)
            if existing is None or len(existing) != slices:
                missing, corrupt = list(range(slices)), []
            else:
                written = set(existing.present().tolist())
                missing = existing.verified_missing(settings.verify)
                corrupt = [index for index in missing if index in written]
            if corrupt:
                summary.messages.append(f"{case.name}: {len(corrupt)} corrupt records on axis {axis} recomputed")
            summary.slices_total += slices
            work.append(_AxisWork(index, digest, orientation, axis, slices, missing))
    return work, case_records, case_windows


class _RecordWriter:
    """The only writer of the store: records as they come back, then progress."""

    def __init__(self, case_records, summary, report, total):
        self.case_records = case_records
        self.summary = summary
        self.report = report
        self.total = total
        self.done = 0
        self.touched = {}
        self.case_workers = {}
        self._axes = {}

    def write(self, item, result):
        key = (item.digest, item.axis)
        records = self._axes.get(key)
        if records is None:
            first = result["records"][0][1]
            records = self._axes[key] = self.case_records[item.digest].require_axis(
                item.axis, item.slices, first.shape, item.orientation, result["layout"], result["original_size"],
                result["input_size"], result["encoder_side"])
        for index, record in result["records"]:
            records.write(index, record)
        count = len(result["records"])
        pid = str(result["pid"])
        stats = self.summary.workers.setdefault(pid, {"slices": 0, "seconds": 0.0, "cpu_seconds": 0.0})
        stats["slices"] += count
        stats["seconds"] += result["seconds"]
        stats["cpu_seconds"] += result.get("cpu_seconds", 0.0)
        self.summary.slices_computed += count
        self.touched[item.digest] = self.touched.get(item.digest, 0) + count
        workers = self.case_workers.setdefault(item.digest, {})
        workers[pid] = workers.get(pid, 0) + count
        self.done += count
        self.report(self.done, self.total)


def _batches(work, size):
    for item in work:
        for start in range(0, len(item.missing), size):
            yield item, item.missing[start:start + size]


def embed_slices(engine, array, ijk_to_ras, orientation, indices, window, cancelled=lambda: False):
    """Embed slices `indices` of one orientation: the result dict the writer takes."""
    tic, cpu = time.perf_counter(), time.process_time()
    records, plane = [], None
    input_size = None
    for index in indices:
        if cancelled():
            break
        plane = case_plane(orientation, index, ijk_to_ras, array.shape)
        embedding, input_size = engine.compute_embedding(slice_image(array, ijk_to_ras, plane, window))
        records.append((int(index), embedding[0].detach().to("cpu").half().numpy()))
    side = records[0][1].shape[-1] * engine.patch_size if records else 0
    return {"records": records, "pid": os.getpid(), "seconds": time.perf_counter() - tic,
            "cpu_seconds": time.process_time() - cpu,
            "layout": plane_layout(plane, ijk_to_ras) if plane is not None else None,
            "original_size": plane.shape if plane is not None else None, "input_size": input_size,
            "encoder_side": side}


def _run_inline(engine, cases, work, case_windows, settings, writer, cancelled):
    volumes = {}
    if settings.threads_per_worker:
        import torch
        torch.set_num_threads(int(settings.threads_per_worker))
    for item, indices in _batches(work, 1):
        if cancelled():
            return
        if item.digest not in volumes:
            volumes.clear()
            volumes[item.digest] = read_case(cases[item.case_index])
        array, ijk_to_ras = volumes[item.digest]
        result = embed_slices(engine, array, ijk_to_ras, item.orientation, indices, case_windows[item.digest])
        writer.write(item, result)


class ProgressLine:
    """A one-line progress bar on stderr: done / total, slices per second."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.tic = time.perf_counter()
        self._lock = threading.Lock()

    def __call__(self, done, total):
        with self._lock:
            elapsed = time.perf_counter() - self.tic
            width = 30
            filled = int(width * done / total) if total else width
            rate = done / elapsed if elapsed > 0 else 0.0
            self.stream.write(f"\rembed [{'#' * filled}{'.' * (width - filled)}] {done}/{total} slices "
                              f"{rate:.2f}/s")
            if done >= total:
                self.stream.write("\n")
            self.stream.flush()


def stored_slices(store_path):
    """{digest: {axis: written records}}: a quick look at a store (tests, `mva embed --status`)."""
    store = EmbeddingStore(store_path, "r")
    result = {}
    for digest in store.case_digests():
        case = store.case(digest)
        result[digest] = {axis: int(len(case.axis(axis).present())) for axis in AXIS_NAMES if case.axis(axis)}
    return result


__all__ = ["EmbedSettings", "EmbedSummary", "run_embed", "embed_slices", "ProgressLine", "stored_slices",
           "EmbedInputError"]
