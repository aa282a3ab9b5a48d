"""Segment Anything algorithms (numpy/torch only; no slicer, vtk or qt).

Modules
-------
sam_checkpoints
    Official checkpoint table, per-user cache folder, resumable verified download.
sam_models
    Device choice, registry models with checkpoints, tiny and random-weight test models.
sam_image
    Slice image validation, SAM preprocessing, prompt coordinates, direct mask upsampling.
sam_encoder
    Image encoder runner: chunked attention, optional smaller input.
sam_decoder
    Fast prompt encoder + mask decoder with per-slice precomputation.
sam_embedding_cache
    Thread-safe LRU embedding cache (fp16, memory bound, optional folder).
sam_engine
    ``SamEngine``: embed slices, decode prompts into candidate masks.
sam_prefetch
    Background embedding of neighbouring slices.
sam_errors
    Exceptions.

Submodules are imported explicitly (``from SegmentAnythingLib.algorithms.sam_engine import
SamEngine``) so that importing the package does not load torch.
"""
