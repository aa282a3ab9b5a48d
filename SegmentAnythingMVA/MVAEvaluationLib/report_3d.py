"""The 3D part of `mva report`: annotate3d sessions of every tool combination on the standard cases and on
their robustness variants (reported families only), as a Markdown table and Dice-vs-interactions plots."""
import os
import time

import numpy as np

from MVAEvaluationLib.annotate3d import evaluate_annotate3d
from MVAEvaluationLib.annotate3d_tools import BASELINES, COMBINATIONS
from MVAEvaluationLib.figures import curves_png
from MVAEvaluationLib.report_cases import MNI_CROP, crop, write_case
from MVAEvaluationLib.variants import REPORTED_FAMILIES, Labelled, make_variants

FULL_COMBINATIONS = ("brush3d", "brush+propagate", "regions", "sam+propagate", "paint+fillbetween", "growcut3d")
QUICK_COMBINATIONS = ("brush3d", "paint+fillbetween", "growcut3d")


def base_cases(quick=False):
    """(case, structure name, label) of the 3D suite: MNI white matter, CT phantom liver and effusion (quick: a
    small phantom's liver)."""
    from MVAEvaluationLib.datasets import load_mni
    from MVAEvaluationLib.phantom import make_ct_phantom
    if quick:
        phantom = make_ct_phantom(shape_kji=(32, 64, 64), seed=1, oblique_degrees=15.0)
    else:
        phantom = make_ct_phantom(shape_kji=(64, 160, 160), seed=0)
    ct = Labelled("ct_phantom", phantom.image, phantom.labelmap, phantom.ijk_to_ras, dict(phantom.labels))
    cases = [(ct, "liver", phantom.labels["liver"])]
    if not quick:
        cases.append((ct, "effusion", phantom.labels["effusion"]))
        wm = load_mni("wm")
        mni = crop(Labelled("mni_wm_crop", wm.image, wm.truth.astype(np.uint8), wm.ijk_to_ras, {"wm": 1}), MNI_CROP)
        cases.insert(0, (mni, "wm", 1))
    return cases


def suite_cases(quick=False, families=REPORTED_FAMILIES):
    """Every base case and its variants of the reported families: (family, Labelled, structure, label)."""
    for data, structure, label in base_cases(quick):
        yield "standard", data, structure, label
        chosen = ("oblique",) if quick else families
        for family, variant in make_variants(data, label, chosen):
            if (variant.labelmap == label).any():
                # some variants depend on the structure (a neighbour touching it, its enhancement): name them so
                variant.name = f"{variant.name}_{structure}"
                yield family, variant, structure, label


def export_suite_cases(folder, quick=False):
    """Write every case of the 3D suite as NIfTI; returns (family, name, image, labels, structure, label) rows."""
    os.makedirs(folder, exist_ok=True)
    rows = []
    for family, data, structure, label in suite_cases(quick):
        image_path, labels_path = write_case(folder, data)
        rows.append((family, data.name, image_path, labels_path, structure, label))
    return rows


def run_annotate3d_report(output_folder, quick=False, budget=None, combinations=None, log=print):
    """Run the 3D suite; write `annotate3d.md`, `annotate3d.json` and one plot per case and structure.

    Returns
    -------
    rows : list of dict
        One annotate3d result per (case, structure, combination), with "family" and "structure" added.
    plots : list of str
    """
    import json
    combinations = tuple(combinations or (QUICK_COMBINATIONS if quick else FULL_COMBINATIONS))
    budget = int(budget or (8 if quick else 30))
    data_folder = os.path.join(output_folder, "data3d")
    os.makedirs(data_folder, exist_ok=True)
    rows, plots, started = [], [], time.perf_counter()
    for family, data, structure, label in suite_cases(quick):
        image_path, labels_path = write_case(data_folder, data)
        results = evaluate_annotate3d(image_path, labels_path, label, combinations, budget)
        for result in results:
            result.update(family=family, structure=structure, volume=data.name)
            rows.append(result)
            log(f"annotate3d {data.name}/{structure} {result['tool']}: to 0.90 in {result['interactions_to_90']}, "
                f"final {result['final_dice']}, worst drop {result['worst_drop']} ({result['seconds_total']} s)")
        path = os.path.join(output_folder, f"annotate3d_{data.name}_{structure}.png")
        curves_png(path, {r["tool"]: r["dice"] for r in results}, "interactions (clicks, dabs, strokes, presses)",
                   title=f"{data.name} {structure}: 3D Dice during a whole session")
        plots.append(path)
    with open(os.path.join(output_folder, "annotate3d.json"), "w") as stream:
        json.dump(rows, stream, indent=1)
    with open(os.path.join(output_folder, "annotate3d.md"), "w") as stream:
        stream.write(f"## 3D annotation sessions (`annotate3d`, budget {budget})\n\nMade in "
                     f"{time.perf_counter() - started:.0f} s.\n\n{markdown_table(rows)}\n")
        for plot in plots:
            stream.write(f"\n![{os.path.basename(plot)}]({os.path.basename(plot)})\n")
    return rows, plots


def better(result, baseline):
    """`result` beats `baseline`: fewer interactions to 0.90, or a higher final Dice when neither reaches it."""
    ours, theirs = result["interactions_to_90"], baseline["interactions_to_90"]
    if ours is not None and theirs is not None:
        return ours < theirs
    if ours is not None or theirs is not None:
        return ours is not None
    return result["final_dice"] > baseline["final_dice"]


def markdown_table(rows):
    """One line per session; 'beats baselines' compares with paint+fillbetween and growcut3d of the same case."""
    header = ("| family | case | structure | tools | to 0.90 | Dice after 5 / 10 / 20 | final Dice | worst_drop | "
              "beats baselines | p50 / p95 ms | s |\n|" + "---|" * 11)
    lines = [header]
    for row in rows:
        same = [r for r in rows if r["volume"] == row["volume"] and r["structure"] == row["structure"]
                and r["tool"] in BASELINES]
        beats = "-" if row["tool"] in BASELINES or not same else \
            ("yes" if all(better(row, b) for b in same) else "no")
        curve = " / ".join(f"{row['dice'][n - 1]:.3f}" if len(row["dice"]) >= n else "-" for n in (5, 10, 20))
        lines.append(f"| {row['family']} | {row['volume']} | {row['structure']} | {row['tool']} | "
                     f"{row['interactions_to_90']} | {curve} | {row['final_dice']} | {row['worst_drop']} | {beats} | "
                     f"{row['latency_ms_p50']} / {row['latency_ms_p95']} | {row['seconds_total']} |")
    return "\n".join(lines)


__all__ = ["COMBINATIONS", "run_annotate3d_report", "markdown_table", "better", "suite_cases"]
