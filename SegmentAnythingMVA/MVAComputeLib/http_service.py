"""The inference service: the compute worker's protocol over HTTP (FastAPI + uvicorn), and embed jobs.

Endpoints (all need ``Authorization: Bearer <token>``; TLS is left to a reverse proxy in front):

``GET /v1/health``
    ``{"ok", "worker_pid", "notice"}``.
``POST /v1/compute``
    Body: one request frame (wire_format, ``application/x-mva-frame``); answer: its result, error or
    cancelled frame. Anything that is not a frame (a pickle, JSON) is refused with 415 before it is read.
``POST /v1/cancel/{request_id}``
    Cancel a running or queued compute request.
``POST /v1/embed-jobs``
    JSON ``{"project": name, "axes": [...], "model": {...}, "window": [width, level] or null}``: embeds the
    cases that project lists in the service's workflow database (``--project-db``) into its store; nothing
    else can be opened. Answer ``{"job": id}``.
``GET /v1/embed-jobs/{id}`` / ``DELETE /v1/embed-jobs/{id}``
    Job state (``running``, ``done``, ``cancelled``, ``failed``; ``done``/``total`` slices; summary) / cancel.

The compute runs in one worker subprocess (local_worker), so a crashing model restarts instead of taking the
service down. FastAPI and uvicorn are imported here only.
"""

import asyncio
import contextlib
import hmac
import threading
import uuid

from MVAComputeLib.compute_client import ComputeClient
from MVAComputeLib.compute_errors import ProtocolError
from MVAComputeLib.wire_format import MEDIA_TYPE, decode_message, encode_message

REQUEST_TIMEOUT_S = 600.0


class EmbedJobs:
    """Embed jobs of the service, one thread each."""

    def __init__(self, project_db, store, workers):
        self.project_db = project_db
        self.store = store
        self.workers = workers
        self._jobs = {}
        self._lock = threading.Lock()

    def start(self, request):
        from MVAComputeLib.embed_cases import EmbedInputError, cases_from_project
        from MVAComputeLib.embed_job import EmbedSettings
        if not self.project_db or not self.store:
            raise EmbedInputError("This service runs no embed jobs: start it with --project-db and --store")
        project = request.get("project")
        if not project:
            raise EmbedInputError("Name the project to embed: {\"project\": NAME}")
        cases = cases_from_project(self.project_db, project)  # only what the project lists
        model = request.get("model") or {}
        window = request.get("window")
        settings = EmbedSettings(model=model.get("name", "vit_b"), checkpoint=None,
                                 input_size=model.get("input_size"), device=model.get("device", "auto"),
                                 axes=tuple(request.get("axes") or ("axial",)),
                                 window=tuple(window) if window else None, workers=self.workers)
        job_id = uuid.uuid4().hex
        job = {"state": "running", "done": 0, "total": None, "summary": "", "error": "", "cancel": threading.Event()}
        with self._lock:
            self._jobs[job_id] = job
        threading.Thread(target=self._run, args=(job, cases, settings), name=f"embed-{job_id[:8]}",
                         daemon=True).start()
        return job_id

    def _run(self, job, cases, settings):
        from MVAComputeLib.embed_job import run_embed

        def progress(done, total):
            job["done"], job["total"] = done, total
        try:
            summary = run_embed(cases, self.store, settings, progress=progress, cancel=job["cancel"])
            job["summary"] = summary.text()
            job["state"] = "cancelled" if summary.cancelled else "done"
        # A job's failure is reported in its state; the service goes on serving.
        except Exception as error:  # noqa: BLE001
            job["state"], job["error"] = "failed", f"{type(error).__name__}: {error}"

    def status(self, job_id):
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            return None
        return {key: value for key, value in job.items() if key != "cancel"}

    def cancel(self, job_id):
        with self._lock:
            job = self._jobs.get(job_id)
        if job is not None:
            job["cancel"].set()
        return job is not None


def create_app(token, client=None, threads=None, project_db=None, store=None, embed_workers=1):
    """The FastAPI application of the service (`client`: a ComputeClient; default a local worker)."""
    from fastapi import Depends, FastAPI, HTTPException, Request, Response

    if not token:
        raise ValueError("The inference service needs a token")
    expected = token.encode("utf-8")
    client = client or ComputeClient.local(threads=threads)
    jobs = EmbedJobs(project_db, store, embed_workers)
    @contextlib.asynccontextmanager
    async def lifespan(_app):
        yield
        client.close()

    app = FastAPI(title="SegmentAnythingMVA inference service", docs_url=None, redoc_url=None, openapi_url=None,
                  lifespan=lifespan)

    def authorised(request: Request):
        header = request.headers.get("authorization", "")
        supplied = header[7:].encode("utf-8") if header.lower().startswith("bearer ") else b""
        if not hmac.compare_digest(supplied, expected):
            raise HTTPException(status_code=401, detail="wrong or missing token")

    @app.get("/v1/health", dependencies=[Depends(authorised)])
    def health():
        return {"ok": True, "worker_pid": client.worker_pid, "notice": client.notice}

    @app.post("/v1/compute", dependencies=[Depends(authorised)])
    async def compute(request: Request):
        body = await request.body()
        try:
            header, arrays = decode_message(body)
        except ProtocolError as error:
            raise HTTPException(status_code=415, detail=str(error)) from None
        if header.get("kind") != "request" or not isinstance(header.get("id"), str):
            raise HTTPException(status_code=400, detail="POST /v1/compute takes one request frame with an id")
        request_id = client.submit(header.get("op"), header.get("params") or {}, arrays, request_id=header["id"])
        try:
            reply = await asyncio.to_thread(client.wait, request_id, REQUEST_TIMEOUT_S)
        except TimeoutError:
            client.cancel(request_id)
            raise HTTPException(status_code=504, detail="the worker did not answer in time") from None
        kind = {"done": "result", "error": "error", "cancelled": "cancelled"}[reply.status]
        frame = encode_message({"kind": kind, "id": reply.request_id, "params": reply.params, "error": reply.error,
                                "message": reply.message}, reply.arrays)
        return Response(content=frame, media_type=MEDIA_TYPE)

    @app.post("/v1/cancel/{request_id}", dependencies=[Depends(authorised)])
    def cancel(request_id: str):
        client.cancel(request_id)
        return {"cancelled": request_id}

    @app.post("/v1/embed-jobs", dependencies=[Depends(authorised)])
    async def start_job(request: Request):
        from MVAComputeLib.embed_cases import EmbedInputError
        try:
            payload = await request.json()
        except ValueError:
            raise HTTPException(status_code=400, detail="send the job as JSON") from None
        try:
            return {"job": jobs.start(payload if isinstance(payload, dict) else {})}
        except EmbedInputError as error:
            raise HTTPException(status_code=400, detail=str(error)) from None

    @app.get("/v1/embed-jobs/{job_id}", dependencies=[Depends(authorised)])
    def job_status(job_id: str):
        status = jobs.status(job_id)
        if status is None:
            raise HTTPException(status_code=404, detail=f"no embed job {job_id}")
        return status

    @app.delete("/v1/embed-jobs/{job_id}", dependencies=[Depends(authorised)])
    def cancel_job(job_id: str):
        if not jobs.cancel(job_id):
            raise HTTPException(status_code=404, detail=f"no embed job {job_id}")
        return {"cancelling": job_id}

    app.state.compute_client = client
    return app


def serve(host, port, token, threads=None, project_db=None, store=None, embed_workers=1):
    """Run the service until interrupted (uvicorn)."""
    import uvicorn
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"mva inference-service: listening on {host}: put a TLS reverse proxy in front of it")
    app = create_app(token, threads=threads, project_db=project_db, store=store, embed_workers=embed_workers)
    uvicorn.run(app, host=host, port=int(port), log_level="warning")
    return 0
