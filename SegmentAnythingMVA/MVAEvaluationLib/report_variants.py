"""The 2D part of `mva report` on the robustness variants: Smart Brush vs Grow from seeds on the largest axial slice,
propagation vs copying the previous mask, interpolation vs Fill between slices, for MNI white and grey matter.

Every variant of the reported families (`variants.REPORTED_FAMILIES`, never used to choose parameters) is cut to a
slab of slices around its own largest axial slice: the 2D tools only read that slice and its neighbours, and the
slab keeps propagation (+1 ... +20 slices) and interpolation (truth on every 5th slice) at a cost that lets the whole
report run in an hour on two cores.
"""
import os
import time

import numpy as np

from MVAEvaluationLib.evaluation import EvalOptions, evaluate
from MVAEvaluationLib.figures import curves_png
from MVAEvaluationLib.report_cases import MNI_CROP, axial_slab, crop, write_case
from MVAEvaluationLib.variants import REPORTED_FAMILIES, Labelled, make_variants

VARIANT_STRUCTURES = ("wm", "gm")
VARIANT_TOOLS = ("brush", "growcut", "propagate", "copy", "interpolate", "fillbetween")
QUICK_TOOLS = ("brush", "growcut", "propagate", "interpolate", "fillbetween")
SLAB_HALF_SLICES = 20
DABS = 20
# The quick report's MNI block: a small piece of the white matter around the largest axial slice (k, j, i).
QUICK_CROP = (slice(87, 108), slice(70, 150), slice(50, 130))


def mni_labelled(structure, quick=False):
    """The MNI template with the truth of `structure` as label 1, cropped (the 3D suite's central block)."""
    from MVAEvaluationLib.datasets import load_mni
    mni = load_mni(structure)
    data = Labelled(f"mni_{structure}", mni.image, mni.truth.astype(np.uint8), mni.ijk_to_ras, {structure: 1}, "mri")
    return crop(data, QUICK_CROP if quick else MNI_CROP)


def variant_cases(quick=False, families=REPORTED_FAMILIES):
    """(family, structure, slab, index of the largest axial slice in the slab) for every 2D variant case."""
    for structure in VARIANT_STRUCTURES[:1] if quick else VARIANT_STRUCTURES:
        data = mni_labelled(structure, quick)
        chosen = ("oblique",) if quick else families
        half = 6 if quick else SLAB_HALF_SLICES
        for family, variant in [("standard", data)] + make_variants(data, 1, chosen):
            if not (variant.labelmap == 1).any():
                continue
            slab, largest = axial_slab(variant, 1, half)
            slab.name = variant.name
            yield family, structure, slab, largest


def run_variants_report(output_folder, tools, quick=False, log=print):
    """Run the 2D tools on every variant case; write `variants2d.md`, `variants2d.json` and plots.

    Parameters
    ----------
    tools : dict
        `tool_runners.TOOLS` (tool name -> runner).

    Returns
    -------
    rows : list of dict
        One `mva eval` result per (case, tool), with "family", "structure" and "case" added.
    plots : list of str
    """
    import json
    chosen_tools = QUICK_TOOLS if quick else VARIANT_TOOLS
    dabs = 6 if quick else DABS
    data_folder = os.path.join(output_folder, "data2d")
    os.makedirs(data_folder, exist_ok=True)
    rows, started = [], time.perf_counter()
    for family, structure, slab, largest in variant_cases(quick):
        image_path, labels_path = write_case(data_folder, slab)
        for tool in chosen_tools:
            options = EvalOptions(tool=tool, volume=image_path, truth=labels_path, label=1, interactions=dabs,
                                  slice=largest)
            result = dict(evaluate(options, tools), family=family, structure=structure, case=slab.name)
            rows.append(result)
            log(f"2D variant {slab.name} {tool}: final Dice {result['final_dice']} ({result['seconds_total']} s)")
    plots = write_variant_plots(output_folder, rows)
    with open(os.path.join(output_folder, "variants2d.json"), "w") as stream:
        json.dump(rows, stream, indent=1)
    with open(os.path.join(output_folder, "variants2d.md"), "w") as stream:
        stream.write(f"## 2D tools on the robustness variants (MNI crop, slab of +-{6 if quick else SLAB_HALF_SLICES} "
                     f"slices around the largest axial slice, {dabs} dabs)\n\nMade in "
                     f"{time.perf_counter() - started:.0f} s.\n\n{variants_table(rows)}\n")
        for plot in plots:
            stream.write(f"\n![{os.path.basename(plot)}]({os.path.basename(plot)})\n")
    return rows, plots


def _by_case(rows):
    cases = {}
    for row in rows:
        cases.setdefault((row["family"], row["structure"], row["case"]), {})[row["tool"]] = row
    return cases


def _dice_at(row, count):
    return row["dice"][count - 1] if row and len(row["dice"]) >= count else None


def brush_above_growcut(brush, growcut, start=5):
    """The brush's Dice is above Grow from seeds' after every dab count from `start` on (a finished run keeps its
    last Dice); None when one of them is missing."""
    if not brush or not growcut:
        return None
    counts = range(start, max(len(brush["dice"]), len(growcut["dice"])) + 1)
    return all((brush["dice"][min(n, len(brush["dice"])) - 1] > growcut["dice"][min(n, len(growcut["dice"])) - 1])
               for n in counts)


def _number(value, digits=3):
    return "-" if value is None else f"{value:.{digits}f}"


def variants_table(rows):
    """One line per (family, case): brush and Grow from seeds after 5 / 20 dabs, whether the brush stays above from
    5 dabs on, propagation and copy at +5 slices, interpolation and Fill between, the brush's worst drop."""
    header = ("| family | case | brush 5 / 20 dabs | growcut 5 / 20 dabs | brush above growcut from 5 | "
              "propagate / copy at +5 | interpolate / fillbetween | brush worst_drop |\n|" + "---|" * 8)
    lines = [header]
    for (family, structure, case), tools in _by_case(rows).items():
        brush, growcut = tools.get("brush"), tools.get("growcut")
        last = max(len(brush["dice"]) if brush else 0, len(growcut["dice"]) if growcut else 0)
        above = brush_above_growcut(brush, growcut)
        at5 = [_number((tools.get(t) or {}).get("dice_by_distance", {}).get("5")) for t in ("propagate", "copy")]
        gap = [_number((tools.get(t) or {}).get("final_dice")) for t in ("interpolate", "fillbetween")]
        lines.append(f"| {family} | {case} | {_number(_dice_at(brush, 5))} / {_number(_dice_at(brush, last))} | "
                     f"{_number(_dice_at(growcut, 5))} / {_number(_dice_at(growcut, last))} | "
                     f"{'-' if above is None else 'yes' if above else 'no'} | {at5[0]} / {at5[1]} | "
                     f"{gap[0]} / {gap[1]} | {(brush or {}).get('worst_drop', '-')} |")
    return "\n".join(lines)


def write_variant_plots(folder, rows):
    """Per structure: the brush (solid) and Grow from seeds (dashed) Dice vs dabs, and propagation (solid) and copy
    (dashed) Dice vs distance; one colour per variant family."""
    import matplotlib
    families = list(dict.fromkeys(row["family"] for row in rows))
    palette = {family: matplotlib.colormaps["tab10"](n % 10) for n, family in enumerate(families)}
    plots = []
    for structure in dict.fromkeys(row["structure"] for row in rows):
        mine = [row for row in rows if row["structure"] == structure]
        for kind, tools, baseline, xlabel, title in (
                ("brush", ("brush", "growcut"), "growcut", "dabs (simulated clicks)",
                 "brush (solid) vs Grow from seeds (dashed)"),
                ("propagation", ("propagate", "copy"), "copy", "distance from the seed slice (slices)",
                 "propagation (solid) vs copy (dashed)")):
            chosen = [row for row in mine if row["tool"] in tools]
            if not chosen:
                continue
            series = {f"{row['tool']} {row['family']}": row["dice"] for row in chosen}
            colours = {f"{row['tool']} {row['family']}": palette[row["family"]] for row in chosen}
            path = os.path.join(folder, f"variants2d_{structure}_{kind}.png")
            plots.append(curves_png(path, series, xlabel, title=f"MNI {structure} variants: {title}",
                                    dashed=(baseline,), colours=colours))
    return plots
