"""Smart Regions through the bridge: a click (or drag) adds or removes whole regions, one undo step each.

3D mode uses supervoxels of the whole source volume (computed once per volume and parameter set);
2D mode uses superpixels of the clicked slice plane, in any view orientation. In 3D a single click on the
atypical rim of a region takes only the rim-like part of it (RegionsOptions.rim_deviations).

Writes follow the bridge's edit contract: a click adds its regions; a remove-click erases the region under the
cursor (the user marked it "not this") and takes back the similar neighbours that smart merge would add only
where Smart Regions itself wrote them, so a removal never eats into work drawn by hand or by other tools.
"""
import copy

import numpy as np
from scipy import ndimage
from skimage.segmentation import find_boundaries

from MVABridgeLib.errors import InvalidMaskError
from MVABridgeLib.tool_edits import EditResult, ToolEdits
from MVABridgeLib.slice_geometry import VoxelPatch
from SmartRegionsLib.algorithms.region_corrections import (
    ClickMemory, example_part, example_side, local_value, near_part)
from SmartRegionsLib.algorithms.region_graph import RegionGraph
from SmartRegionsLib.algorithms.region_homogeneity import clicked_side, typical_deviation
from SmartRegionsLib.algorithms.region_lookup import RankTolerance, click_regions, default_merge_tolerance
from SmartRegionsLib.algorithms.supervoxel_cache import SupervoxelCache
from SmartRegionsLib.algorithms.supervoxels import compute_superpixels
from SmartRegionsLib.algorithms.tissue_refinement import tissue_part
from SmartRegionsLib.regions_options import RegionsOptions


# A region whose voxels lie on the click's side (nearest click example) at least this often is taken whole:
# the rest is noise, and cutting it out would leave speckle holes.
WHOLE_REGION_SHARE = 0.9
# A click on a non-empty segment that would add more than this times what it holds adds one grid cell's part of
# its region instead ...
GROWTH_LIMIT = 4.0
# ... and a negative click that would remove more than this share of it, including a voxel the user clicked to add,
# removes one grid cell's part (a removal that spares every positive click takes back a leak, however large: a first
# click that flooded the background). Chosen on the 3D protocol's tuning variants (noise, bias, partial volume of
# MNI WM and CT liver / effusion): worst_drop on CT liver with 60 HU noise 0.318 -> 0, effusion 0.061 / 0.042 -> 0
# (which never reach 0.90 either way); with a growth limit of 1.5 as well, the partial-volume effusion no longer
# reached 0.90 in 20 clicks (15 before).
REMOVAL_LIMIT = 0.5
# A positive click at most this many in-plane pixels from the segment corrects a thin rim of missed tissue: it adds
# only what lies within RIM_REACH times that distance of the click. Chosen on the one-slice protocol of the tuning
# variants (bias, noise, partial volume): worst_drop <= 0.01 on 5 of 11 (was 2); a reach of 6 or 10 left the
# standard effusion slice at 0.076 / 0.104.
RIM_PIXELS = 2.0
RIM_REACH = 3.0


class SmartRegionsLogic:
    """Region clicks written through a SegmentEditBridge."""

    def __init__(self, bridge, options=None, cache=None):
        self.bridge = bridge
        self.options = options or RegionsOptions()
        self.cache = cache or SupervoxelCache()
        self.edits = ToolEdits("Smart Regions")
        self.click_memory = ClickMemory()  # 3D mode: corrections split a region clicked both ways
        self._objects = {}  # id(labels) -> bounding boxes of its regions
        self._plane_labels = {}
        self._plane_graph = None
        self._auto_tolerance = (None, None)

    # --- regions ------------------------------------------------------------------------------------------
    def volume_token(self):
        """Identity of the source volume's content (node id and modification time); read it on the VTK thread."""
        node = self.bridge.backend.source_volume_node()
        return (node.GetID(), node.GetMTime()) if node is not None else None


    def volume_labels(self, progress=None, cancel=None, token=None):
        """Supervoxel labels (k, j, i) of the source volume (cached; recomputed when volume or options change).

        Pass `token` (from `volume_token`) to call this from a worker thread without touching VTK objects.
        """
        volume = self.bridge.work_volume() if token is None else self.bridge.cached_work_volume()
        return self.cache.supervoxels(volume.array, volume.spacing_kji, self.options.parameters(),
                                      token=token or self.volume_token(), progress=progress, cancel=cancel)

    def has_volume_labels(self):
        """True when the supervoxels for the current volume and options are already computed."""
        volume = self.bridge.work_volume()
        return self.cache.contains(volume.array, volume.spacing_kji, self.options.parameters(), token=self.volume_token())

    def plane_labels(self, plane):
        """Superpixel labels (rows, cols) of a slice plane (2D mode), cached per plane."""
        key = (plane.pixel_to_ras_matrix.tobytes(), plane.shape, self.volume_token(), self.options.parameters())
        if key not in self._plane_labels:
            volume = self.bridge.work_volume()
            image = plane.sample(volume.array, volume.index_to_ras, order=0)  # the voxels its edits write
            spacing = tuple(float(np.linalg.norm(plane.pixel_to_ras_matrix[:3, c])) for c in (1, 0))
            labels = compute_superpixels(image, spacing, self.options.parameters())
            self._plane_labels = {key: labels}
            self._plane_graph = RegionGraph(labels, image)
        return self._plane_labels[key]

    # --- edits ----------------------------------------------------------------------------------------------
    def click(self, plane, pixel_rc, add=True):
        """Add (or remove) the region under `pixel_rc` of `plane`; returns the voxels handed to the editor."""
        return self.drag(plane, [pixel_rc], add)

    def drag(self, plane, pixels_rc, add=True):
        """Add (or remove) every region a stroke passes over, as one undo step; returns the EditResult."""
        memory = copy.deepcopy(self.click_memory)
        try:
            return self._drag(plane, pixels_rc, add)
        except Exception:
            self.click_memory = memory  # a failed action leaves no remembered click either
            raise

    def _drag(self, plane, pixels_rc, add):
        if len(pixels_rc) == 0:
            raise InvalidMaskError("A click or drag needs at least one pixel (row, col); got none")
        for pixel in pixels_rc:
            plane.check_pixel(pixel)
        if self.options.mode == "2d":
            start, clicked, merged = self._plane_choice(plane, pixels_rc, add)
        else:
            start, clicked, merged = self._volume_choice(plane, pixels_rc, add)
            if clicked is not None and add and len(pixels_rc) == 1 and self.options.tissue_refinement:
                start, clicked, merged = self._refined_addition(plane, pixels_rc[0], start, clicked, merged)
            if clicked is not None and len(pixels_rc) == 1:
                start, clicked, merged = self._bounded_change(plane, pixels_rc[0], start, clicked, merged, add)
            if clicked is not None and add and len(pixels_rc) == 1:
                start, clicked, merged = self._rim_correction(plane, pixels_rc[0], start, clicked, merged)
        if clicked is None:
            return EditResult(message="Nothing changed: no region under the cursor (outside the region of interest)")
        if add:
            return self.bridge.write_decision(self.edits, start, add=clicked | merged)
        return self.bridge.write_decision(self.edits, start, erase=clicked, retract=merged)

    def _plane_choice(self, plane, pixels_rc, add):
        """(start, clicked, merged) voxel blocks of a 2D-mode click: the regions under the pixels and the similar
        neighbours smart merge adds."""
        labels, graph = self.plane_labels(plane), self._plane_graph
        clicked, chosen = set(), set()
        for r, c in pixels_rc:
            pixel = (int(round(r)), int(round(c)))
            if labels[pixel] == 0:
                continue
            clicked.add(int(labels[pixel]))
            chosen.update(int(v) for v in click_regions(labels, pixel, graph, self._tolerance(add), self._hops(add)))
        if not clicked:
            return None, None, None
        volume = self.bridge.work_volume()
        clicked_2d = np.isin(labels, list(clicked))
        union = np.isin(labels, list(chosen | clicked))
        taken, _ = plane.mask_to_volume(clicked_2d, volume.index_to_ras, volume.shape, union)
        everything, _ = plane.mask_to_volume(union, volume.index_to_ras, volume.shape, union)
        return taken.start_kji, taken.mask_kji, everything.mask_kji & ~taken.mask_kji

    def _hops(self, add):
        return self.options.merge_hops if add else self.options.remove_merge_hops

    def _tolerance(self, add):
        """Smart merge applies to removals too (fewer hops), so a click takes back what a merged click leaked into."""
        if self.options.merge_tolerance is None:
            return None
        if self.options.merge_tolerance == "auto":
            return RankTolerance(self.options.merge_rank_fraction)
        if self.options.merge_tolerance == "range":
            volume = self.bridge.work_volume()
            if self._auto_tolerance[0] is not volume:  # a percentile scan of the volume: once per volume
                self._auto_tolerance = (volume, default_merge_tolerance(volume.array))
            return self._auto_tolerance[1]
        return float(self.options.merge_tolerance)

    def _volume_choice(self, plane, pixels_rc, add):
        """(start, clicked, merged) voxel blocks of a 3D-mode click (supervoxels)."""
        volume = self.bridge.work_volume()
        labels = self.volume_labels()
        indices = plane.pixel_voxels_kji(np.asarray(pixels_rc, float), volume.index_to_ras)
        indices = np.clip(indices, 0, np.array(labels.shape) - 1)
        clicked = {int(labels[tuple(index)]) for index in indices} - {0}
        if not clicked:
            return None, None, None
        self.click_memory.reset_for((self.volume_token(), self.options.parameters()))
        earlier, other = self.click_memory.examples(add), self.click_memory.examples(not add)
        same = earlier
        if len(indices) == 1:
            index = tuple(int(v) for v in indices[0])
            value = local_value(volume.array, index)
            same = earlier + [value]
            self.click_memory.record(int(labels[index]), add, value, index)
            mixed = self._example_split(volume, labels, index, same, other)
            if mixed is not None:
                return mixed.start_kji, mixed.mask_kji, np.zeros_like(mixed.mask_kji)
            side = self._straddling_side(volume, labels, index)
            if side is not None:
                return side.start_kji, side.mask_kji, np.zeros_like(side.mask_kji)
            rim = self._rim_patch(volume, labels, index) if not other else None
            if rim is not None:
                return rim.start_kji, rim.mask_kji, np.zeros_like(rim.mask_kji)
        tolerance = self._tolerance(add)
        graph = self.cache.graph(labels, volume.array) if tolerance is not None else None
        blocked = None
        if graph is not None and other:
            # a correction merges only into regions more like this sign's clicks than like the other sign's;
            # a click on new-looking tissue (the earlier clicks of its sign) takes its region, not its lookalikes
            blocked = ~example_side(graph.mean, earlier or same, other)
            blocked[list(self.click_memory.protected(add, exclude=clicked))] = True
        elif graph is not None and earlier:
            # no example of the other sign yet: a later click merges only into regions similar to what it or an
            # earlier click of its sign pointed at, not to its region's mean (an edge region must not lead the
            # merge into the next tissue)
            blocked = self._unlike_examples(graph, tolerance, same)
        hops = self.options.merge_hops if blocked is not None or not earlier else self._hops(add)
        straddling = self._straddling(graph, clicked)
        if straddling is not None:
            blocked = straddling if blocked is None else blocked | straddling
            if earlier and self._clicked_straddles(graph, clicked):
                blocked[:] = True  # a correction on a rim region: its mean says nothing of the tissue
        chosen = set(clicked)
        for index in indices:
            if labels[tuple(index)]:
                chosen.update(int(v) for v in click_regions(labels, tuple(index), graph, tolerance, hops, blocked))
        chosen -= self.click_memory.protected(add, exclude=clicked)  # merge never undoes an opposite click
        boxes = self._bounding_boxes(labels)
        low = np.min([[b.start for b in boxes[c - 1]] for c in chosen], axis=0)
        high = np.max([[b.stop for b in boxes[c - 1]] for c in chosen], axis=0)
        block = labels[low[0]:high[0], low[1]:high[1], low[2]:high[2]]
        lookup = np.zeros(int(labels.max()) + 1, np.uint8)  # label -> 2 clicked, 1 merged; faster than np.isin
        lookup[list(chosen)] = 1
        lookup[list(clicked)] = 2
        taken = lookup[block]
        return tuple(int(v) for v in low), taken == 2, taken == 1

    def _refined_addition(self, plane, pixel_rc, start, clicked, merged):
        volume = self.bridge.work_volume()
        index = plane.pixel_voxels_kji(np.asarray([pixel_rc], float), volume.index_to_ras)[0]
        index = tuple(int(v) for v in np.clip(index, 0, np.array(volume.shape) - 1))
        part = self._tissue_part(volume, self.volume_labels(), start, clicked | merged, index)
        if part is None:
            return start, clicked, merged
        return part.start_kji, part.mask_kji, np.zeros_like(part.mask_kji)

    def _tissue_part(self, volume, labels, start, taken, index):
        """The clicked tissue's voxels (`tissue_part`) among what a positive click took (`taken`, a block at
        `start`) and the regions beside it, as (start, mask); None keeps the choice as it is.

        The tissue is the clicked region's (its median local mean), or the clicked voxel's local mean when the
        region straddles an edge, and the segment's own tissue beside the click.
        """
        graph = self.cache.graph(labels, volume.array)
        end = tuple(a + n for a, n in zip(start, taken.shape))
        touched = np.unique(labels[tuple(slice(a, b) for a, b in zip(start, end))][taken])
        near = set(int(v) for v in touched) - {0}
        for label in list(near):
            near.update(int(v) for v in graph.neighbours(label))
        boxes = self._bounding_boxes(labels)
        low = np.minimum(np.min([[b.start for b in boxes[c - 1]] for c in near], axis=0), start)
        high = np.maximum(np.max([[b.stop for b in boxes[c - 1]] for c in near], axis=0), end)
        window = tuple(slice(int(a), int(b)) for a, b in zip(low, high))
        block = np.zeros(tuple(int(b - a) for a, b in zip(low, high)), bool)
        block[tuple(slice(int(a - l), int(a - l + n)) for a, l, n in zip(start, low, taken.shape))] = taken
        segment = self.bridge.selected_block(tuple(int(v) for v in low), block.shape)
        ratio = self.options.merge_spread_ratio
        straddling = graph.std > (np.inf if ratio is None else float(ratio)) * typical_deviation(graph.size, graph.std)
        part = tissue_part(volume.array[window], labels[window], block, segment, straddling, graph.neighbours,
                           tuple(int(v - a) for v, a in zip(index, low)), volume.spacing_kji)
        return None if part is None else VoxelPatch(tuple(int(v) for v in low), part)

    def _bounded_change(self, plane, pixel_rc, start, clicked, merged, add):
        """(start, clicked, merged) as given, or, when a positive click would add more than `GROWTH_LIMIT` times the
        segment (a negative one remove more than `REMOVAL_LIMIT` of it, with a voxel of an earlier positive click),
        only the clicked part within one grid cell around the click (no merge).

        A correction adds the missed piece next to what is there, or removes the leaked piece; a region merged
        across many cells (the body's soft tissue) under a click on a partial-volume voxel of a small structure
        would bury it, and one that holds most of the object would take the object with it.
        """
        segment = int(np.count_nonzero(self.bridge.selected_mask()))
        if segment == 0:
            return start, clicked, merged
        if add:
            within = int(np.count_nonzero(clicked)) + int(np.count_nonzero(merged)) <= GROWTH_LIMIT * segment
        else:
            taken = clicked | merged
            removed = np.count_nonzero(taken & self.bridge.selected_block(start, clicked.shape))
            within = removed <= REMOVAL_LIMIT * segment or not self._holds_positive_click(start, taken)
        if within:
            return start, clicked, merged
        volume = self.bridge.work_volume()
        index = plane.pixel_voxels_kji(np.asarray([pixel_rc], float), volume.index_to_ras)[0]
        index = np.clip(index, 0, np.array(volume.shape) - 1) - np.asarray(start)
        steps = np.maximum(1, np.round(self.options.region_size_mm / np.asarray(volume.spacing_kji))).astype(int)
        box = tuple(slice(max(int(v) - s // 2, 0), max(int(v) - s // 2, 0) + s) for v, s in zip(index, steps))
        cell = np.zeros_like(clicked)
        cell[box] = clicked[box]
        pieces, _ = ndimage.label(cell)
        at = pieces[tuple(int(v) for v in index)] if all(0 <= v < n for v, n in zip(index, clicked.shape)) else 0
        if at == 0:
            return start, clicked, merged
        return start, pieces == at, np.zeros_like(clicked)

    def _holds_positive_click(self, start, block):
        """Whether the bool `block` (placed at `start`) holds the voxel of an earlier positive click."""
        for point in self.click_memory.points(True):
            local = tuple(int(p) - int(a) for p, a in zip(point, start))
            if all(0 <= v < n for v, n in zip(local, block.shape)) and block[local]:
                return True
        return False

    def _rim_correction(self, plane, pixel_rc, start, clicked, merged):
        """(start, clicked, merged) as given, or, for a positive click within RIM_PIXELS pixels of the segment on the
        clicked plane, only the part connected to the click within RIM_REACH times that distance of it.

        A person clicks in the middle of what is missing, so a click that close to the segment points at a thin rim
        of missed tissue; a region reaching far beyond the rim (the neighbouring tissue a border region also holds,
        a region merged across the body) would add much more than was missing. The distance is measured on the plane
        the person sees (in 3D on an oblique plane). Negative clicks stay as they are: a leak thin on this plane
        can be large in 3D, and removing it whole is what the person asked for.
        """
        volume = self.bridge.work_volume()
        index = plane.pixel_voxels_kji(np.asarray([pixel_rc], float), volume.index_to_ras)[0]
        index = np.clip(np.asarray(index, int), 0, np.array(volume.shape) - 1)
        spacing = np.asarray(volume.spacing_kji, float)
        axis = plane.aligned_axis
        pixel = float(np.sqrt(np.prod(np.delete(spacing, axis)))) if axis is not None else float(spacing.min())
        half = np.ceil(RIM_PIXELS * pixel / spacing).astype(int) + 1
        if axis is not None:
            half[axis] = 0  # the rim as the person sees it: on the clicked slice
        low = np.maximum(index - half, 0)
        high = np.minimum(index + half + 1, volume.shape)
        segment = self.bridge.selected_block(tuple(int(v) for v in low), tuple(int(v) for v in high - low))
        points = np.argwhere(segment)
        if len(points) == 0 or segment[tuple(index - low)]:
            # a click on the segment itself points at no missed rim: it asks for the regions (in 3D too) as they are
            return start, clicked, merged
        depth = float(np.sqrt(np.min(np.sum(((points + low - index) * spacing) ** 2, axis=1))))
        if depth > RIM_PIXELS * pixel:
            return start, clicked, merged
        kept = near_part(clicked | merged, np.asarray(index) - np.asarray(start), spacing,
                         RIM_REACH * max(depth, pixel))
        if kept is None:
            return start, clicked, merged
        return start, clicked & kept, merged & kept

    def _clicked_straddles(self, graph, clicked):
        """True when a clicked region deviates more than `merge_spread_ratio` times a region of one tissue."""
        typical = typical_deviation(graph.size, graph.std)
        ratio = float(self.options.merge_spread_ratio)
        return typical > 0 and max(float(graph.std[c]) for c in clicked) > ratio * typical

    def _straddling(self, graph, clicked):
        """Regions (bool, by label) far less homogeneous than the clicked ones: they straddle an edge, and smart
        merge neither takes nor walks through them (None when merge is off or the option is None)."""
        ratio = self.options.merge_spread_ratio
        if graph is None or ratio is None:
            return None
        return graph.std > float(ratio) * max(float(graph.std[c]) for c in clicked)

    def _straddling_side(self, volume, labels, index):
        """The side of the clicked region holding the click, when the region holds two tissues (else None)."""
        if not self.options.split_clicked_region:
            return None
        label = int(labels[index])
        if label == 0:
            return None
        box = self._bounding_boxes(labels)[label - 1]
        side = clicked_side(volume.array[box], labels[box] == label, tuple(v - b.start for v, b in zip(index, box)))
        return None if side is None else VoxelPatch(tuple(int(b.start) for b in box), side)

    @staticmethod
    def _unlike_examples(graph, tolerance, examples):
        """Regions (bool, by label) whose mean is farther than the merge tolerance from every value in `examples`
        (None when there are none): smart merge's own test, against the earlier clicks' local values (a clicked
        region's mean is no example: one straddling an edge would open the merge into the next tissue)."""
        if not examples:
            return None
        means = graph.mean
        values = np.asarray(examples, np.float64)
        if isinstance(tolerance, RankTolerance):  # a value's rank, read off the regions' (mean, rank) pairs
            order = np.argsort(means[1:]) + 1
            values = np.interp(values, means[order], graph.mean_rank[order])
            means = graph.mean_rank
        return np.min(np.abs(means[:, None] - values[None, :]), axis=1) > float(tolerance)

    def _example_split(self, volume, labels, index, same, other):
        """The part of the clicked region like this click's sign, when it also holds tissue like the other
        sign's clicks (else None: the whole region is taken).

        Without this, a region straddling an edge toggles (added whole, removed whole, added again), and a
        correction takes the other side's tissue with it.
        """
        region = int(labels[index])
        if region == 0 or not other:
            return None
        box = self._bounding_boxes(labels)[region - 1]
        inside = labels[box] == region
        part = example_part(volume.array[box], inside, same, other)
        if part.sum() >= WHOLE_REGION_SHARE * inside.sum():
            return None
        pieces, _ = ndimage.label(part)
        at = pieces[tuple(v - b.start for v, b in zip(index, box))]
        if at == 0:
            return None
        return VoxelPatch(tuple(int(b.start) for b in box), pieces == at)

    def _rim_patch(self, volume, labels, index):
        """The part of the clicked region that looks like the click, when the click sits on its atypical rim.

        Returns None for a click on a typical voxel, or when the rim-like part would leave out the clicked voxel
        itself (the whole region is taken then).
        """
        if self.options.rim_deviations is None:
            return None
        label = int(labels[index])
        if label == 0:
            return None
        graph = self.cache.graph(labels, volume.array)
        window = tuple(slice(max(v - 1, 0), v + 2) for v in index)
        local = float(np.mean(volume.array[window]))
        mean, std = graph.mean[label], graph.std[label]
        if abs(local - mean) <= self.options.rim_deviations * std:
            return None
        box = self._bounding_boxes(labels)[label - 1]
        values = volume.array[box].astype(np.float32)
        mask = (labels[box] == label) & (np.abs(values - local) < np.abs(values - mean))
        if not mask[tuple(v - b.start for v, b in zip(index, box))]:
            return None  # the clicked voxel itself is not rim-like: take the whole region
        return VoxelPatch(tuple(int(b.start) for b in box), mask)

    def _bounding_boxes(self, labels):
        if id(labels) not in self._objects:
            self._objects = {id(labels): ndimage.find_objects(labels)}
        return self._objects[id(labels)]

    # --- display ------------------------------------------------------------------------------------------
    def boundaries(self, plane):
        """Region boundaries on a plane, bool (rows, cols), for the overlay."""
        labels = self.plane_labels(plane) if self.options.mode == "2d" else self._labels_on(plane)
        return find_boundaries(labels, connectivity=1, mode="inner") & (labels > 0)

    def hover(self, plane, pixel_rc):
        """Mask on the plane of the region under the cursor (for highlighting)."""
        labels = self.plane_labels(plane) if self.options.mode == "2d" else self._labels_on(plane)
        row, col = (int(round(v)) for v in pixel_rc)
        if not (0 <= row < labels.shape[0] and 0 <= col < labels.shape[1]) or labels[row, col] == 0:
            return np.zeros(plane.shape, bool)
        return labels == labels[row, col]

    def _labels_on(self, plane):
        volume = self.bridge.work_volume()
        return plane.sample(self.volume_labels(), volume.index_to_ras, order=0).astype(np.int64)
