"""Heavy compute outside the GUI process, with one protocol for a local worker and a remote service.

Qt-free and Slicer-free. The desktop effects and the browser annotator talk to a `ComputeClient`
(compute_client); the client talks to a worker subprocess (local_worker, worker_main) or to the inference
service over HTTP (http_transport, http_service); both ends speak wire_format frames (a JSON header plus raw
little-endian arrays, never pickle) and run the handlers of `operations`. `remote_encoding` gives a SamEngine
whose image encoder runs remotely, falling back to local compute with a message. `embed_job` (Ray) and
`embed_cases` fill an embedding store ahead of the annotators (`mva embed`).

Ray, FastAPI and uvicorn are imported only by embed_job and http_service, never by the client side.
"""
