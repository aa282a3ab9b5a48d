"""Annotated pictures of what each effect does, made by running the tools headless on the MNI template."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from MVAEvaluationLib.datasets import load_mni  # noqa: E402
from MVAEvaluationLib.evaluation import Case  # noqa: E402
from MVAEvaluationLib.simulated_user import dab_mask  # noqa: E402


def _outline(ax, mask, colour, label=None, width=1.4):
    if mask.any():
        ax.contour(mask.astype(float), levels=[0.5], colors=[colour], linewidths=width)
        if label:
            ax.plot([], [], color=colour, label=label)


def _spread_points(mask, count, spacing=40):
    """`count` pixels deep inside `mask`, at least `spacing` pixels apart (distance-transform maxima)."""
    from scipy import ndimage
    depth = ndimage.distance_transform_edt(mask)
    points = []
    for _ in range(count):
        row, col = np.unravel_index(int(np.argmax(depth)), depth.shape)
        points.append((int(row), int(col)))
        rows, cols = np.ogrid[:mask.shape[0], :mask.shape[1]]
        depth[(rows - row) ** 2 + (cols - col) ** 2 < spacing ** 2] = 0
    return points


def effect_pictures(path):
    """Write one PNG with a panel per effect (Smart Brush, Smart Regions, Smart Propagation)."""
    from SmartBrushLib.smart_brush_logic import SmartBrushLogic
    from SmartPropagationLib.smart_propagation_logic import PropagationOptions, SmartPropagationLogic
    from SmartRegionsLib.smart_regions_logic import SmartRegionsLogic
    data = load_mni("wm")
    case = Case("MNI152", data.image, data.truth, data.ijk_to_ras)
    plane = case.plane("axial", 97)
    image = plane.sample(data.image, data.ijk_to_ras)
    truth = plane.sample(data.truth, data.ijk_to_ras, order=0) > 0
    fig, axes = plt.subplots(1, 3, figsize=(13.5, 5.6))

    brush = SmartBrushLogic(case.bridge)
    grey = plane.sample(load_mni("gm").truth, data.ijk_to_ras, order=0) > 0
    positive = _spread_points(truth, 3)  # dabs inside white matter...
    negative = _spread_points(grey, 3)  # ...and on grey matter, as a user marks "not this"
    strokes_in, strokes_out = np.zeros(truth.shape, bool), np.zeros(truth.shape, bool)
    for point in positive:
        strokes_in |= dab_mask(truth.shape, point, 3)
    for point in negative:
        strokes_out |= dab_mask(truth.shape, point, 3)
    brush.add_stroke(plane, strokes_in)
    preview = brush.add_stroke(plane, strokes_out, erase=True)
    ax = axes[0]
    ax.imshow(image, cmap="gray")
    ax.imshow(np.ma.masked_where(~preview.mask_2d, preview.mask_2d), cmap="autumn", alpha=0.35)
    ax.imshow(np.ma.masked_where(~strokes_in, strokes_in), cmap="summer", alpha=1.0)
    ax.imshow(np.ma.masked_where(~strokes_out, strokes_out), cmap="cool", alpha=1.0)
    ax.set_title("Smart Brush: 3 dabs on white matter (green), 3 on grey matter\n(cyan, shift) -> preview of similar tissue (orange)", fontsize=10)

    regions = SmartRegionsLogic(case.bridge)
    labels = regions._labels_on(plane)
    edges = regions.boundaries(plane) & (image > 10)
    click = (110, 140)
    regions.click(plane, click)
    taken = plane.sample(case.segment(), data.ijk_to_ras, order=0) > 0
    ax = axes[1]
    ax.imshow(image, cmap="gray")
    ax.imshow(np.ma.masked_where(~edges, edges), cmap="winter", alpha=0.5)
    ax.imshow(np.ma.masked_where(~taken, taken), cmap="autumn", alpha=0.45)
    ax.plot(click[1], click[0], "g+", markersize=14, markeredgewidth=2.5)
    ax.set_title(f"Smart Regions: {len(np.unique(labels)) - 1} supervoxels cut this slice (blue edges);\n"
                 "one click + smart merge (orange)",
                 fontsize=10)
    case.session.undo()

    seed = np.zeros(data.truth.shape, bool)
    seed[97] = data.truth[97]
    case.set_segment(seed)
    propagation = SmartPropagationLogic(case.bridge, PropagationOptions(max_slices=data.image.shape[0]))
    result = propagation.compute_preview(plane)
    coronal = case.plane("coronal", 120)
    predicted = coronal.sample(result.volume_mask(data.truth.shape), data.ijk_to_ras, order=0) > 0
    ax = axes[2]
    ax.imshow(coronal.sample(data.image, data.ijk_to_ras), cmap="gray")
    ax.imshow(np.ma.masked_where(~predicted, predicted), cmap="autumn", alpha=0.4)
    seed_row = np.flatnonzero(coronal.sample(seed, data.ijk_to_ras, order=0).any(axis=1))
    if seed_row.size:
        ax.axhline(seed_row[0], color="lime", linewidth=1.5)
    first, last = min(result.masks), max(result.masks)
    ax.set_title(f"Smart Propagation from axial slice 97 (green line)\nto slices {first}-{last}, stopped where "
                 "the object ends", fontsize=10)
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    fig.subplots_adjust(top=0.86)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    case.close()
    return path
