"""`mva report`: every tool and baseline in one run, as Markdown tables and PNG plots.

Parts, in the order they run (each writes its own `<part>.md` / `.json`, and `report.md` gathers them):
- `sessions`: whole 3D annotation sessions (`annotate3d`) on MNI white matter, the CT phantom's liver and effusion
  (report_3d.py);
- `variants`: the 2D tools on MNI white / grey matter variants (report_variants.py);
- `supervoxels`: Smart Regions' supervoxels next to SimpleITK SLIC (report_supervoxels.py);
- `session-variants`: the 3D sessions on the robustness variants of the three cases (report_3d.py);
- `slices`: each tool on the largest axial slice of every standard structure (this module).
The most telling parts run first, so a run stopped part-way (report.md is rewritten after each part) has them.
`--quick` runs every part on small volumes with few interactions: a smoke test, not figures.
"""
import json
import os
import resource
import subprocess
import time

from MVAEvaluationLib.evaluation import EvalOptions, evaluate
from MVAEvaluationLib.figures import curves_png

PARTS = ("sessions", "variants", "supervoxels", "session-variants", "slices")
# (tool, its baseline) pairs compared side by side; each row runs on the structures listed
INTERACTIVE = [("brush", "growcut"), ("regions", "growcut")]
PROPAGATION = [("propagate", "copy")]
INTERPOLATION = [("interpolate", "fillbetween")]
QUICK_STRUCTURES = ("effusion", "liver")


class ReportError(ValueError):
    """An unknown report part."""


def slice_cases(folder, quick=False):
    """(case name, structure, volume path, truth path, label): the standard cases, or a small phantom (quick)."""
    if quick:
        from MVAEvaluationLib.phantom import make_ct_phantom
        from MVAEvaluationLib.report_cases import write_case
        from MVAEvaluationLib.variants import Labelled
        os.makedirs(folder, exist_ok=True)
        phantom = make_ct_phantom(shape_kji=(24, 64, 64), seed=1)
        image, labels = write_case(folder, Labelled("ct_phantom_small", phantom.image, phantom.labelmap,
                                                    phantom.ijk_to_ras, dict(phantom.labels)))
        cases = [("ct_phantom_small", image, labels, {s: phantom.labels[s] for s in QUICK_STRUCTURES})]
    else:
        from MVAEvaluationLib.datasets import export_standard_cases
        cases = export_standard_cases(folder)
    for name, image, labels, structures in cases:
        for structure, label in structures.items():
            yield name, structure, image, labels, label


def run_slices_report(output_folder, tools, quick=False, log=print):
    """Every tool and its baseline on the largest axial slice of each standard structure; writes `slices.md`."""
    rows, curves, started = [], {}, time.perf_counter()
    for name, structure, image, labels, label in slice_cases(os.path.join(output_folder, "data"), quick):
        largest = _largest_axial(labels, label)
        done = {}
        for pair in INTERACTIVE + PROPAGATION + INTERPOLATION:
            for tool in (t for t in pair if t in tools):
                if tool not in done:
                    options = EvalOptions(tool=tool, volume=image, truth=labels, label=label,
                                          interactions=6 if quick else 20, slice=largest)
                    done[tool] = dict(evaluate(options, tools), structure=structure)
                    rows.append(done[tool])
                    log(f"{name}/{structure} {tool}: final Dice {done[tool]['final_dice']} "
                        f"({done[tool]['seconds_total']} s)")
                curves.setdefault((name, structure, pair), {})[tool] = done[tool]
    with open(os.path.join(output_folder, "results.json"), "w") as stream:
        json.dump(rows, stream, indent=1)
    plots = write_plots(output_folder, curves)
    with open(os.path.join(output_folder, "slices.md"), "w") as stream:
        stream.write(f"## Each tool on one slice (the largest axial slice of each structure)\n\nMade in "
                     f"{time.perf_counter() - started:.0f} s.\n\n{markdown_table(rows)}\n")
        for plot in plots:
            stream.write(f"\n![{os.path.basename(plot)}]({os.path.basename(plot)})\n")
    return rows, plots


def run_part(part, output_folder, tools, quick, budget, log):
    """Run one part; returns (rows, plots, markdown file name)."""
    if part in ("sessions", "session-variants"):
        from MVAEvaluationLib.report_3d import run_annotate3d_report
        cases = "standard" if part == "sessions" else "variants"
        return (*run_annotate3d_report(output_folder, quick=quick, budget=budget, log=log, cases=cases),
                "annotate3d.md" if part == "sessions" else "annotate3d_variants.md")
    if part == "variants":
        from MVAEvaluationLib.report_variants import run_variants_report
        return (*run_variants_report(output_folder, tools, quick=quick, log=log), "variants2d.md")
    if part == "supervoxels":
        from MVAEvaluationLib.report_supervoxels import run_supervoxels_report
        return (*run_supervoxels_report(output_folder, quick=quick, log=log), "supervoxels.md")
    return (*run_slices_report(output_folder, tools, quick=quick, log=log), "slices.md")


def run_report(output_folder, tools, quick=False, parts=PARTS, budget=None, log=print):
    """Run the chosen parts one after another (nothing in parallel) and write `report.md` with all their tables.

    Parameters
    ----------
    tools : dict
        `tool_runners.TOOLS`.
    parts : sequence of str
        Some of `PARTS`.
    budget : int, optional
        Interactions per 3D session (default 30, quick 8).

    Returns
    -------
    dict of part -> list of result rows

    Raises
    ------
    ReportError
        For an unknown part.
    """
    unknown = [part for part in parts if part not in PARTS]
    if unknown:
        raise ReportError(f"Unknown report parts {unknown}; choose from {', '.join(PARTS)}")
    os.makedirs(output_folder, exist_ok=True)
    results, sections, costs, plots = {}, [], [], []
    started, commit = time.perf_counter(), source_commit()
    for part in parts:
        tic, cpu = time.perf_counter(), _cpu_seconds()
        rows, part_plots, markdown = run_part(part, output_folder, tools, quick, budget, log)
        costs.append((part, time.perf_counter() - tic, _cpu_seconds() - cpu, len(rows)))
        log(f"report part {part}: {costs[-1][1]:.0f} s ({costs[-1][2]:.0f} CPU s), {len(rows)} rows")
        results[part], plots = rows, plots + part_plots
        with open(os.path.join(output_folder, markdown)) as stream:
            sections.append(stream.read())
        # rewritten after every part: a run stopped part-way keeps the parts it finished
        command = (f"mva report{' --quick' if quick else ''} --parts {' '.join(parts)}"
                   f"{f' --budget {budget}' if budget else ''}")
        _write_report(output_folder, command, commit, len(parts), costs, sections, time.perf_counter() - started)
    log(f"Wrote {os.path.join(output_folder, 'report.md')} and {len(plots)} plots")
    return results


def _write_report(output_folder, command, commit, part_count, costs, sections, seconds):
    cost_table = "\n".join(["| part | rows | wall s | CPU s |", "|---|---|---|---|"] +
                           [f"| {part} | {count} | {wall:.0f} | {cpu:.0f} |" for part, wall, cpu, count in costs])
    done = "" if len(costs) == part_count else f" (still running: {len(costs)} of {part_count} parts so far)"
    with open(os.path.join(output_folder, "report.md"), "w") as stream:
        stream.write(f"# SegmentAnythingMVA evaluation\n\nMade by `{command}` on commit {commit} in {seconds:.0f} s"
                     f"{done} ({os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end).\n\n"
                     f"{cost_table}\n\n" + "\n\n".join(sections))


def source_commit():
    """The git commit of the code that ran (with '+changes' when the tree differs), or 'unknown'."""
    folder = os.path.dirname(os.path.abspath(__file__))
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=folder, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "."],
                                 cwd=os.path.dirname(folder), capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("+changes" if changed.strip() else "")


def _cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


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
                     f"{row['noc85']} | {row['noc90']} | {row.get('worst_drop', '-')} | {distance} | "
                     f"{row.get('extent_error_slices', '-')} | "
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
