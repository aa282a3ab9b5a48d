"""The supervoxel part of `mva report`: Smart Regions' supervoxels next to SimpleITK SLIC in the same run.

Edges followed (boundary recall), leaks (undersegmentation error), the best a click-per-region tool can reach
(oracle Dice), seconds, and the grid over homogeneous tissue (fraction of a uniform noisy phantom lying on a
region boundary), on the CT phantom, MNI white/grey matter and an MNI variant of every reported family.
"""
import os
import time

import numpy as np

from MVAEvaluationLib.figures import bars_png
from MVAEvaluationLib.supervoxel_quality import compare, grid_artefact
from MVAEvaluationLib.variants import make_variants

MEASURES = ("boundary_recall", "undersegmentation_error", "oracle_dice")


def _spacing_kji(ijk_to_ras):
    return tuple(float(s) for s in np.linalg.norm(np.asarray(ijk_to_ras)[:3, :3], axis=0)[::-1])


def supervoxel_cases(quick=False):
    """(name, image, labels, spacing_kji): the CT phantom, MNI white (1) / grey (2) matter and its variants."""
    from MVAEvaluationLib.datasets import load_mni
    from MVAEvaluationLib.phantom import make_ct_phantom
    from MVAEvaluationLib.report_cases import MNI_CROP, crop
    from MVAEvaluationLib.report_variants import QUICK_CROP
    from MVAEvaluationLib.variants import Labelled
    phantom = make_ct_phantom(shape_kji=(32, 64, 64) if quick else (64, 160, 160), seed=0)
    yield "ct_phantom", phantom.image, phantom.labelmap, phantom.spacing_kji
    white, grey = load_mni("wm"), load_mni("gm")
    labels = (white.truth + 2 * grey.truth * (1 - white.truth)).astype(np.uint8)
    if not quick:
        yield "mni_wm_gm", white.image, labels, _spacing_kji(white.ijk_to_ras)
    block = crop(Labelled("mni_wm_gm_crop", white.image, labels, white.ijk_to_ras, {"wm": 1, "gm": 2}),
                 QUICK_CROP if quick else MNI_CROP)
    for _, variant in make_variants(block, 1, ("oblique",) if quick else ("anisotropic", "oblique", "contrast",
                                                                           "combined")):
        yield variant.name, variant.image, variant.labelmap, _spacing_kji(variant.ijk_to_ras)


def run_supervoxels_report(output_folder, quick=False, log=print):
    """Compare ours and SLIC on every case and measure the grid artefact; write `supervoxels.md` / `.json` and a plot.

    Returns
    -------
    rows : list of dict
        One per (case, method): "case", "method", "regions", "seconds", boundary recall, USE, oracle Dice.
    plots : list of str
    """
    import json
    started = time.perf_counter()
    rows = []
    for name, image, labels, spacing in supervoxel_cases(quick):
        for method, measures in compare(image, labels, spacing).items():
            rows.append(dict(measures, case=name, method=method))
        ours, slic = rows[-2], rows[-1]
        log(f"supervoxels {name}: boundary recall ours {ours['boundary_recall']} SLIC {slic['boundary_recall']}, "
            f"{ours['seconds']} s vs {slic['seconds']} s")
    grid = grid_artefact((32, 32, 32) if quick else (96, 96, 96))
    for method, fraction in grid.items():
        rows.append({"case": "uniform noisy phantom", "method": method, "boundary_fraction": fraction})
    log(f"supervoxels, grid over uniform tissue: boundary fraction {grid}")
    plot = os.path.join(output_folder, "supervoxels.png")
    bars_png(plot, mean_measures(rows), title="Supervoxels vs SimpleITK SLIC (mean over the cases; "
                                              "boundary fraction: uniform phantom, lower is better)")
    with open(os.path.join(output_folder, "supervoxels.json"), "w") as stream:
        json.dump(rows, stream, indent=1)
    with open(os.path.join(output_folder, "supervoxels.md"), "w") as stream:
        stream.write(f"## Supervoxels vs SimpleITK SLIC (same run)\n\nMade in {time.perf_counter() - started:.0f} s."
                     f"\n\n{supervoxels_table(rows)}\n\n![supervoxels.png](supervoxels.png)\n")
    return rows, [plot]


def mean_measures(rows):
    """{measure: {method: mean over the cases}}, the grid artefact's boundary fraction included."""
    groups = {}
    for measure in MEASURES + ("boundary_fraction",):
        by_method = {}
        for row in rows:
            if measure in row:
                by_method.setdefault(row["method"], []).append(row[measure])
        groups[measure.replace("_", " ")] = {method: float(np.mean(v)) for method, v in by_method.items()}
    return groups


def supervoxels_table(rows):
    """One line per case: regions, boundary recall, USE, oracle Dice and seconds of ours / SLIC, the time ratio."""
    header = ("| case | regions ours / SLIC | boundary recall | undersegmentation error | oracle Dice | seconds | "
              "time ours / SLIC |\n|" + "---|" * 7)
    lines = [header]
    by_case = {}
    for row in rows:
        by_case.setdefault(row["case"], {})[row["method"]] = row
    grid = None
    for case, methods in by_case.items():
        ours, slic = methods.get("ours", {}), methods.get("SimpleITK SLIC", {})
        if "boundary_fraction" in ours:
            grid = (case, ours["boundary_fraction"], slic.get("boundary_fraction"))
            continue
        ratio = ours["seconds"] / slic["seconds"] if slic.get("seconds") else float("nan")
        cells = " | ".join(f"{ours[m]} / {slic[m]}" for m in ("regions",) + MEASURES + ("seconds",))
        lines.append(f"| {case} | {cells} | {ratio:.2f} |")
    if grid:
        lines.append(f"\nGrid over homogeneous tissue ({grid[0]}): fraction of its voxels on a region boundary, "
                     f"ours {grid[1]}, SLIC {grid[2]} (lower is better).")
    return "\n".join(lines)
