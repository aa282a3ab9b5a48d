"""Smart Regions algorithms (numpy/scipy/scikit-image/SimpleITK only; no slicer, vtk or qt).

Modules
-------
supervoxels
    ``compute_supervoxels`` (volume or ROI), ``compute_superpixels`` (2D), ``compute_slice_superpixels``
    (2D mode inside a volume); banded grid regions that follow intensity edges.
band_refinement
    ``refine_thresholds``: a band threshold between two tissues one band holds (noise-aware).
supervoxel_merge
    ``block_noise``, ``merge_regions``: small fragments, then adjacent regions of one tissue, merged.
region_graph
    ``RegionGraph`` (per-region size, mean, std, mean rank, adjacency), ``merge_small_regions``.
region_split
    ``split_keys``: optional cut of regions holding two tissues (``SupervoxelParameters.split_separation``).
region_lookup
    Region under a click, region masks, smart merge of similar neighbours (``RankTolerance``), slice
    boundaries, hover mask.
region_homogeneity
    ``clicked_side``: the clicked tissue's part of a region holding two (or three) tissues.
region_corrections
    ``ClickMemory``, ``example_side``: clicks as examples of their sign, so corrections do not toggle.
supervoxel_cache
    ``SupervoxelCache``: recompute only when the image token or parameters change.
region_click_loop
    ``simulate_region_clicks``: Dice per simulated click for evaluation.
region_errors
    Exceptions.
"""
