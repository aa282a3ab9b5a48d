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
    ray.init(num_cpus=2, object_store_memory=96 * 1024 * 1024, include_dashboard=False, log_to_driver=False)
    yield
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
