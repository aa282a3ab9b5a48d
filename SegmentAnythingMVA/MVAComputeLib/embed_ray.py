"""The Ray side of `mva embed`: a pool of actors (one SAM model each) kept per Ray session, batches of slices
handed out two per actor, results written by the driver (embed_job._RecordWriter) as they come back.

Memory is bounded twice: the local Ray gets a capped object store and a memory resource of the workers' budget,
every actor reserves its estimated need (embed_memory), and the driver starts only as many actors as fit."""
import os

from MVAComputeLib.embed_cases import EmbedInputError, read_case
from MVAComputeLib.embed_memory import bounded_workers, default_budget_mb
from SegmentAnythingLib.algorithms.sam_embedding_store import volume_digest


def run_on_ray(cases, work, case_windows, settings, writer, cancelled, worker_mb=None):
    """Embed `work` on Ray actors; `worker_mb` is one worker's estimated need (embed_memory.worker_memory_mb)."""
    import ray

    from MVAComputeLib.embed_job import _batches
    _ensure_ray(settings)
    workers = settings.workers
    if worker_mb:
        workers, note = bounded_workers(settings.workers, worker_mb, memory_budget_mb(settings),
                                        "this machine" if not settings.address else "the Ray cluster")
        if note:
            writer.summary.messages.append(note)
    actors = _actors(settings, workers, worker_mb)
    try:
        batches = iter(_batches(work, max(1, settings.batch_slices)))
        in_flight = {}
        idle = list(actors) * 2  # two tasks queued per actor keep it busy while the driver writes
        while True:
            while idle and not cancelled():
                step = next(batches, None)
                if step is None:
                    break
                item, indices = step
                case = cases[item.case_index]
                actor = idle.pop(0)
                reference = actor.embed.remote(case.path, case.kind, case.series_uid, item.digest,
                                               item.orientation, indices, case_windows[item.digest])
                in_flight[reference] = (actor, item)
            if not in_flight:
                return
            ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=0.5)
            for reference in ready:
                actor, item = in_flight.pop(reference)
                writer.write(item, ray.get(reference))
                idle.append(actor)
            if cancelled():
                for reference in in_flight:
                    ray.cancel(reference, force=False)  # queued tasks are dropped; a running batch finishes
                return
    except ray.exceptions.RayError as error:
        release_workers()
        raise EmbedInputError(f"A Ray worker failed: {error}") from None


_POOL = {"session": None, "actors": {}}


def memory_budget_mb(settings):
    """MB all workers together may use: --memory-mb, else the running Ray's memory resource (which a local Ray
    started here got from default_budget_mb), else None (not known: the worker count is not cut)."""
    import ray
    if settings.memory_mb:
        return float(settings.memory_mb)
    memory = ray.cluster_resources().get("memory")
    return memory / 2**20 if memory else None


def actor_options(settings, workers, worker_mb=None):
    """Ray options of one embedding actor: its CPUs, a GPU share, its memory reservation and environment."""
    import ray
    gpus = float(ray.cluster_resources().get("GPU", 0))
    # Workers share the cluster's GPUs (a fraction each when there are more workers than GPUs).
    gpu_share = min(1.0, gpus / workers) if gpus else 0
    options = {"num_cpus": settings.threads_per_worker, "num_gpus": gpu_share,
               "runtime_env": {"env_vars": _worker_environment(settings.threads_per_worker)}}
    if worker_mb:
        options["memory"] = int(worker_mb * 2**20)  # Ray places no more actors than the memory resource holds
    return options


def _actors(settings, workers, worker_mb=None):
    """`workers` actors for this model spec and thread count, kept between runs of one Ray session
    (a model load and a torch import per worker are paid once, not per run)."""
    import ray
    session = ray.get_runtime_context().get_job_id()
    if _POOL["session"] != session:
        _POOL.update(session=session, actors={})
    key = (repr(sorted(settings.model_spec().items())), int(settings.threads_per_worker))
    pool = _POOL["actors"].setdefault(key, [])
    if len(pool) < workers:
        actor_class = ray.remote(EmbedActor).options(**actor_options(settings, workers, worker_mb))
        pool += [actor_class.remote(settings.model_spec(), settings.threads_per_worker)
                 for _ in range(workers - len(pool))]
    return pool[:workers]


def release_workers():
    """Stop the pooled embedding actors (their models' memory is freed)."""
    import ray
    for pool in _POOL["actors"].values():
        for actor in pool:
            ray.kill(actor)
    _POOL["actors"] = {}


def _worker_environment(threads):
    from MVAComputeLib.local_worker import module_folders
    folders = module_folders()
    if os.environ.get("PYTHONPATH"):
        folders.append(os.environ["PYTHONPATH"])
    return {"PYTHONPATH": os.pathsep.join(folders), "OMP_NUM_THREADS": str(int(threads)),
            "ITK_GLOBAL_DEFAULT_THREADER": "Pool"}


def _ensure_ray(settings):
    import ray
    if ray.is_initialized():
        return
    if settings.address:
        ray.init(address=settings.address, log_to_driver=False)
        return
    budget_mb = settings.memory_mb or default_budget_mb(settings.object_store_mb)
    memory = {"_memory": int(budget_mb * 2**20)} if budget_mb else {}  # Ray's reservable memory resource
    ray.init(num_cpus=max(1, settings.workers * settings.threads_per_worker), include_dashboard=False,
             object_store_memory=int(settings.object_store_mb) * 1024 * 1024, log_to_driver=False,
             runtime_env={"env_vars": _worker_environment(settings.threads_per_worker)}, **memory)


class EmbedActor:
    """A Ray actor holding one SAM model: embeds slice batches of cases read from their paths."""

    def __init__(self, spec, threads):
        import torch
        os.environ.setdefault("ITK_GLOBAL_DEFAULT_THREADER", "Pool")
        torch.set_num_threads(int(threads))
        from MVAComputeLib.operations import engine_for_spec
        self.engine = engine_for_spec(spec)
        self._volume = (None, None)

    def embed(self, path, kind, series_uid, digest, orientation, indices, window):
        from MVAComputeLib.embed_job import embed_slices
        from MVAWorkflowLib.case_sources import CaseSource
        if self._volume[0] != digest:
            array, ijk_to_ras = read_case(CaseSource("case", path, kind, series_uid))
            if volume_digest(array, ijk_to_ras) != digest:
                raise EmbedInputError(f"{path} changed while it was being embedded; run `mva embed` again")
            self._volume = (digest, (array, ijk_to_ras))
        array, ijk_to_ras = self._volume[1]
        return embed_slices(self.engine, array, ijk_to_ras, orientation, indices, window)
