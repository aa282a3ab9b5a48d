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
RANDOM_SAM_MODELS = ("tiny",)  # randomly initialised: plumbing only


def base_cases(quick=False):
    """(case, structure name, label) of the 3D suite: MNI white matter, CT phantom liver and effusion (quick: a
    small phantom's liver)."""
    from MVAEvaluationLib.datasets import load_mni
    from MVAEvaluationLib.phantom import make_ct_phantom
    if quick:
        phantom = make_ct_phantom(shape_kji=(32, 64, 64), seed=1, oblique_degrees=15.0)
    else:
        phantom = make_ct_phantom(shape_kji=(64, 160, 160), seed=0)
    ct = Labelled("ct_phantom", phantom.image, phantom.labelmap, phantom.ijk_to_ras, dict(phantom.labels), "ct")
    cases = [(ct, "liver", phantom.labels["liver"])]
    if not quick:
        cases.append((ct, "effusion", phantom.labels["effusion"]))
        wm = load_mni("wm")
        mni = crop(Labelled("mni_wm_crop", wm.image, wm.truth.astype(np.uint8), wm.ijk_to_ras, {"wm": 1}, "mri"),
                   MNI_CROP)
        cases.insert(0, (mni, "wm", 1))
    return cases


def suite_cases(quick=False, families=REPORTED_FAMILIES, standard=True):
    """Every base case (unless not `standard`), then their variants of `families`: (family, Labelled, structure,
    label). The base cases come first, so that a report stopped part-way has the standard cases complete.
    """
    cases = base_cases(quick)
    for data, structure, label in cases if standard else ():
        yield "standard", data, structure, label
    for data, structure, label in cases if families else ():
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


def run_annotate3d_report(output_folder, quick=False, budget=None, combinations=None, log=print, cases="all",
                          sam_model="tiny"):
    """Run the 3D suite; write `annotate3d.md` (`annotate3d_variants.md` for the variants alone), the same `.json`
    and one plot per case and structure.

    Parameters
    ----------
    cases : {"all", "standard", "variants"}
        The base cases and their variants, the base cases only, or the variants only.
    sam_model : str
        The SAM model of `sam+propagate`. With the random `tiny` model (no weights on the machine) it runs on the
        base cases only: its Dice measures nothing, and the variants would only repeat that plumbing check.

    Returns
    -------
    rows : list of dict
        One annotate3d result per (case, structure, combination), with "family" and "structure" added.
    plots : list of str
    """
    combinations = tuple(combinations or (QUICK_COMBINATIONS if quick else FULL_COMBINATIONS))
    budget = int(budget or (8 if quick else 30))
    data_folder = os.path.join(output_folder, "data3d")
    os.makedirs(data_folder, exist_ok=True)
    name = "annotate3d_variants" if cases == "variants" else "annotate3d"
    rows, plots, started = [], [], time.perf_counter()
    for family, data, structure, label in suite_cases(quick, () if cases == "standard" else REPORTED_FAMILIES,
                                                      standard=cases != "variants"):
        image_path, labels_path = write_case(data_folder, data)
        chosen = tuple(c for c in combinations if family == "standard" or c != "sam+propagate"
                       or sam_model not in RANDOM_SAM_MODELS)
        results = evaluate_annotate3d(image_path, labels_path, label, chosen, budget, model=sam_model)
        for result in results:
            result.update(family=family, structure=structure, volume=data.name)
            rows.append(result)
            log(f"annotate3d {data.name}/{structure} {result['tool']}: to 0.90 in {result['interactions_to_90']}, "
                f"final {result['final_dice']}, worst drop {result['worst_drop']} ({result['seconds_total']} s)")
        path = os.path.join(output_folder, f"annotate3d_{data.name}_{structure}.png")
        curves_png(path, {r["tool"]: r["dice"] for r in results}, "interactions (clicks, dabs, strokes, presses)",
                   title=f"{data.name} {structure}: 3D Dice during a whole session (dashed: Slicer's ways)",
                   dashed=BASELINES)
        plots.append(path)
        _write_tables(output_folder, name, rows, plots, budget, time.perf_counter() - started, finished=False)
    _write_tables(output_folder, name, rows, plots, budget, time.perf_counter() - started, finished=True)
    return rows, plots


def _write_tables(output_folder, name, rows, plots, budget, seconds, finished):
    """`<name>.json` and `<name>.md`, rewritten after every case so that a stopped run keeps its tables."""
    import json
    with open(os.path.join(output_folder, f"{name}.json"), "w") as stream:
        json.dump(rows, stream, indent=1)
    state = f"Made in {seconds:.0f} s." if finished else f"Still running: the cases so far, after {seconds:.0f} s."
    title = "on the robustness variants" if name.endswith("variants") else "on the standard cases" \
        if all(r["family"] == "standard" for r in rows) else ""
    with open(os.path.join(output_folder, f"{name}.md"), "w") as stream:
        stream.write(f"## 3D annotation sessions {title} (`annotate3d`, budget {budget})\n\n{state}\n\n"
                     "Interactions to 3D Dice 0.90 (worst drop in brackets; '-' = not reached, with the final Dice):"
                     f"\n\n{summary_table(rows)}\n\nEvery session:\n\n{markdown_table(rows)}\n")
        for plot in plots:
            stream.write(f"\n![{os.path.basename(plot)}]({os.path.basename(plot)})\n")


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


def summary_table(rows):
    """One line per case and structure, one column per combination: interactions to 0.90 and the worst drop."""
    tools = list(dict.fromkeys(r["tool"] for r in rows))
    cases = {}
    for row in rows:
        cases.setdefault((row["family"], row["volume"], row["structure"]), {})[row["tool"]] = row
    lines = ["| family | case | structure | " + " | ".join(f"{tool}: to 0.90" for tool in tools) + " |",
             "|" + "---|" * (3 + len(tools))]
    for (family, volume, structure), by_tool in cases.items():
        cells = []
        for tool in tools:
            row = by_tool.get(tool)
            if row is None:
                cells.append("")
                continue
            reached = row["interactions_to_90"]
            cells.append(f"{reached if reached is not None else '- ' + format(row['final_dice'], '.3f')} "
                         f"({row['worst_drop']})")
        lines.append(f"| {family} | {volume} | {structure} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


__all__ = ["COMBINATIONS", "run_annotate3d_report", "markdown_table", "summary_table", "better", "suite_cases"]
