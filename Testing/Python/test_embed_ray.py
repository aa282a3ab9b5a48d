"""`mva embed` as a Ray job: one local Ray for this module (num_cpus=2, capped object store, not local mode)."""
import os
import threading

import numpy as np
import pytest

from MVAComputeLib.embed_cases import cases_from_path
from MVAComputeLib.embed_job import EmbedSettings, run_embed, stored_slices
from SegmentAnythingLib.algorithms.sam_embedding_store import EmbeddingStore

ray = pytest.importorskip("ray")
ONE_THREAD = dict(axes=("axial",), threads_per_worker=1, batch_slices=2)


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    from MVAComputeLib.embed_ray import _actors, release_workers
    ray.init(num_cpus=2, object_store_memory=96 * 1024 * 1024, include_dashboard=False, log_to_driver=False)
    _actors(EmbedSettings(workers=2, **ONE_THREAD), 2)  # both workers start (import torch) side by side, once
    yield
    release_workers()
    ray.shutdown()


@pytest.fixture(scope="module")
def a_case_folder(tmp_path_factory):
    from MVAWorkflowLib.testing import write_case_volumes
    folder = tmp_path_factory.mktemp("cases")
    write_case_volumes(folder, names=("one", "two"), shape_kji=(6, 20, 18))
    return folder


def records(store_path):
    store = EmbeddingStore(store_path)
    return {(digest, index): store.case(digest).axis("k").read(index).tobytes()
            for digest in stored_slices(store_path) for index in range(6)}


def test_two_ray_workers_give_the_embeddings_of_one(a_case_folder, tmp_path):
    cases = cases_from_path(a_case_folder)
    one = run_embed(cases, tmp_path / "one.zarr", EmbedSettings(workers=1, **ONE_THREAD))
    two = run_embed(cases, tmp_path / "two.zarr", EmbedSettings(workers=2, **ONE_THREAD))
    assert one.slices_computed == two.slices_computed == 12
    assert len(one.workers) == 1 and len(two.workers) == 2 and str(os.getpid()) not in two.workers
    store = EmbeddingStore(tmp_path / "two.zarr")
    recorded = set()
    for digest in store.case_digests():
        recorded |= set(store.case(digest).attrs["runs"][-1]["workers"])
    assert recorded == set(two.workers)
    assert records(tmp_path / "one.zarr") == records(tmp_path / "two.zarr")
    assert "slices/s" in two.text()


def test_a_cancelled_ray_job_leaves_a_valid_store_that_resumes(a_case_folder, tmp_path):
    cases = cases_from_path(a_case_folder)
    stop = threading.Event()
    first = run_embed(cases, tmp_path / "store.zarr", EmbedSettings(workers=2, **ONE_THREAD),
                      progress=lambda done, total: done >= 2 and stop.set(), cancel=stop)
    assert first.cancelled and 2 <= first.slices_computed < 12
    written = sum(axes.get("k", 0) for axes in stored_slices(tmp_path / "store.zarr").values())
    assert written == first.slices_computed
    second = run_embed(cases, tmp_path / "store.zarr", EmbedSettings(workers=2, **ONE_THREAD))
    assert second.slices_computed == 12 - written and not second.cancelled
    assert all(np.isfinite(np.frombuffer(value, np.float16)).all() for value in records(tmp_path / "store.zarr")
               .values())


def test_a_worker_estimate_counts_its_model_and_grows_with_the_input_side():
    from MVAComputeLib.embed_memory import RUNTIME_MB, worker_memory_mb
    from MVAComputeLib.operations import engine_for_spec
    engine = engine_for_spec("tiny")
    weights_mb = sum(p.numel() * p.element_size() for p in engine.model.parameters()) / 2**20
    native = worker_memory_mb(engine)
    double = worker_memory_mb(engine, 2 * engine.native_size)
    assert native > RUNTIME_MB + weights_mb
    assert double - RUNTIME_MB - weights_mb == pytest.approx(4 * (native - RUNTIME_MB - weights_mb))


def test_the_worker_count_is_cut_to_the_memory_budget_and_none_below_one_worker():
    from MVAComputeLib.embed_cases import EmbedInputError
    from MVAComputeLib.embed_memory import bounded_workers
    assert bounded_workers(4, 1000, 4500) == (4, "")
    workers, note = bounded_workers(4, 1000, 2500)
    assert workers == 2 and "4 workers asked, 2 fit in 2500 MB" in note
    assert bounded_workers(3, 1000, None) == (3, "")
    with pytest.raises(EmbedInputError, match="needs about 1000 MB .* only 600 MB .* --memory-mb"):
        bounded_workers(1, 1000, 600)


def test_a_local_ray_is_started_with_a_capped_object_store_and_memory(monkeypatch):
    from MVAComputeLib import embed_ray
    started = {}
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **options: started.update(options))
    embed_ray._ensure_ray(EmbedSettings(workers=2, threads_per_worker=1, object_store_mb=128, memory_mb=3000))
    assert started["object_store_memory"] == 128 * 2**20 and started["_memory"] == 3000 * 2**20
    assert started["num_cpus"] == 2 and "address" not in started
    options = embed_ray.actor_options(EmbedSettings(threads_per_worker=1), 2, worker_mb=900)
    assert options["memory"] == 900 * 2**20 and options["num_cpus"] == 1


def test_ray_runs_as_many_workers_as_fit_and_refuses_when_one_does_not(a_case_folder, tmp_path):
    from MVAComputeLib.embed_cases import EmbedInputError
    from MVAComputeLib.embed_memory import worker_memory_mb
    from MVAComputeLib.operations import engine_for_spec
    cases = cases_from_path(a_case_folder)
    need = worker_memory_mb(engine_for_spec("tiny"))
    with pytest.raises(EmbedInputError, match="One embedding worker needs about"):
        run_embed(cases, tmp_path / "refused.zarr", EmbedSettings(workers=2, memory_mb=int(need / 2), **ONE_THREAD))
    assert not (tmp_path / "refused.zarr").exists()  # refused before the store was made
    summary = run_embed(cases, tmp_path / "one.zarr", EmbedSettings(workers=2, memory_mb=int(need * 1.5),
                                                                    **ONE_THREAD))
    assert summary.slices_computed == 12 and len(summary.workers) == 1
    assert any("2 workers asked, 1 fit" in message for message in summary.messages)
