"""`mva report`: the standard suite for every tool and baseline, as a Markdown table and PNG plots."""
import json
import os
import time

from MVAEvaluationLib.datasets import export_standard_cases
from MVAEvaluationLib.evaluation import EvalOptions, evaluate
from MVAEvaluationLib.figures import curves_png

# (tool, its baseline) pairs compared side by side; each row runs on the structures listed
INTERACTIVE = [("brush", "growcut"), ("regions", "growcut")]
PROPAGATION = [("propagate", "copy")]
INTERPOLATION = [("interpolate", "fillbetween")]
MNI_STRUCTURES = ("wm", "gm", "brain")
PHANTOM_STRUCTURES = ("lung", "nodule", "effusion", "liver")


def suite(cases, quick=False):
    """(case name, structure, volume path, truth path, label) for every structure of the standard cases."""
    for name, image, labels, structures in cases:
        for structure, label in structures.items():
            if quick and structure not in ("wm", "nodule", "liver"):
                continue
            yield name, structure, image, labels, label


def run_report(output_folder, tools, quick=False, log=print, sessions_3d=True):
    os.makedirs(output_folder, exist_ok=True)
    cases = export_standard_cases(os.path.join(output_folder, "data"))
    rows, curves = [], {}
    started = time.perf_counter()
    for name, structure, image, labels, label in suite(cases, quick):
        largest = _largest_axial(labels, label)
        done = {}
        for pair in INTERACTIVE + PROPAGATION + INTERPOLATION:
            for tool in (t for t in pair if t in tools):
                if tool not in done:
                    options = EvalOptions(tool=tool, volume=image, truth=labels, label=label,
                                          interactions=10 if quick else 20, slice=largest)
                    done[tool] = dict(evaluate(options, tools), structure=structure)
                    rows.append(done[tool])
                    log(f"{name}/{structure} {tool}: final Dice {done[tool]['final_dice']} "
                        f"({done[tool]['seconds_total']} s)")
                curves.setdefault((name, structure, pair), {})[tool] = done[tool]
    with open(os.path.join(output_folder, "results.json"), "w") as stream:
        json.dump(rows, stream, indent=1)
    table = markdown_table(rows)
    plots = write_plots(output_folder, curves)
    with open(os.path.join(output_folder, "report.md"), "w") as stream:
        stream.write(f"# SegmentAnythingMVA evaluation\n\nMade by `mva report{' --quick' if quick else ''}` "
                     f"in {time.perf_counter() - started:.0f} s.\n\n{table}\n")
        for plot in plots:
            stream.write(f"\n![{os.path.basename(plot)}]({os.path.basename(plot)})\n")
    if sessions_3d:
        from MVAEvaluationLib.report_3d import run_annotate3d_report
        rows_3d, plots_3d = run_annotate3d_report(output_folder, quick=quick, log=log)
        with open(os.path.join(output_folder, "annotate3d.md")) as section, \
                open(os.path.join(output_folder, "report.md"), "a") as stream:
            stream.write("\n" + section.read())
        rows, plots = rows + rows_3d, plots + plots_3d
    log(f"Wrote {os.path.join(output_folder, 'report.md')} and {len(plots)} plots")
    return rows


def _largest_axial(labels_path, label):
    from MVABridgeLib.volume_io import read_volume
    labels, _ = read_volume(labels_path)
    return int(((labels == label).sum(axis=(1, 2))).argmax())


def markdown_table(rows):
    header = ("| case | structure | tool | Dice after 1 / 5 / 10 / 20 | final Dice | NoC85 | NoC90 | worst_drop | "
              "Dice at 1 / 5 / 10 / 20 slices | extent error | p50 / p95 ms | s |\n|" + "---|" * 12)
    lines = [header]
    for row in rows:
        interactive = " / ".join(f"{row['dice'][n - 1]:.3f}" if len(row["dice"]) >= n else "-"
                                 for n in (1, 5, 10, 20)) if "dice_by_distance" not in row and row.get("gap") is None \
            else "-"
        distance = " / ".join(f"{row['dice_by_distance'].get(k, float('nan')):.3f}" for k in ("1", "5", "10", "20")) \
            if "dice_by_distance" in row else "-"
        lines.append(f"| {row['volume']} | {row['structure']} | {row['tool']} | {interactive} | {row['final_dice']} | "
                     f"{row['noc85']} | {row['noc90']} | {row.get('worst_drop', '-')} | {distance} | {row.get('extent_error_slices', '-')} | "
                     f"{row['latency_ms_p50']} / {row['latency_ms_p95']} | {row['seconds_total']} |")
    return "\n".join(lines)


def write_plots(folder, curves):
    """One plot per structure for the interactive tools (Dice vs interactions) and one for propagation."""
    grouped = {}
    for (name, structure, pair), results in curves.items():
        kind = "interactive" if pair in INTERACTIVE else "propagation" if pair in PROPAGATION else None
        if kind:
            grouped.setdefault((name, structure, kind), {}).update(results)
    plots = []
    for (name, structure, kind), results in grouped.items():
        path = os.path.join(folder, f"{name}_{structure}_{kind}.png")
        if kind == "propagation":
            series = {tool: r["dice"][:30] for tool, r in results.items()}
            curves_png(path, series, "distance from the seed slice (slices)",
                       title=f"{name} {structure}: Dice vs distance, propagation vs copy")
        else:
            series = {tool: r["dice"] for tool, r in results.items()}
            curves_png(path, series, "interactions (simulated clicks / dabs)",
                       title=f"{name} {structure}: Dice vs interactions")
        plots.append(path)
    return plots
