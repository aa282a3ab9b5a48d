"""Workflow statistics: time and interactions per tool, time per case, throughput per annotator and supplier,
Dice agreement between annotators of double-annotated cases. Tables are lists of dicts; `plots` draws them.
"""
import collections
import itertools

import numpy as np
from sqlalchemy import select

from MVAWorkflowLib.models import Assignment, Case, Label, Supplier, ToolEvent, User
from MVAWorkflowLib.service_base import require
from MVAWorkflowLib.storage import StorageError, read_labelmap


def dice(mask_a, mask_b):
    """Dice coefficient of two boolean masks of the same shape; 1.0 when both are empty."""
    mask_a, mask_b = np.asarray(mask_a, bool), np.asarray(mask_b, bool)
    if mask_a.shape != mask_b.shape:
        raise ValueError(f"Masks differ in shape: {mask_a.shape} vs {mask_b.shape}")
    total = int(mask_a.sum()) + int(mask_b.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(mask_a, mask_b).sum()) / total


def _hours(start, end):
    return max((end - start).total_seconds(), 0.0) / 3600.0 if start and end else 0.0


def project_statistics(service, actor, project):
    """All statistics tables of one project (reviewers and admins).

    Returns
    -------
    dict of str -> list of dict
        "tools": tool, events, interactions, time_s, time_per_case_s;
        "cases": case, status, annotators, time_s, interactions, wall_time_s (claim to last submit);
        "annotators": annotator, supplier, claimed, submitted, accepted, returned, time_s, cases_per_hour;
        "suppliers": supplier, annotators, submitted, accepted, time_s;
        "agreement": case, annotator_a, annotator_b, label, dice.
    """
    def work(session):
        require(session, actor, "view_statistics")
        row = service._project(session, project)
        cases = {c.id: c for c in session.scalars(select(Case).where(Case.project_id == row.id))}
        users = {u.id: u for u in session.scalars(select(User))}
        suppliers = {s.id: s.name for s in session.scalars(select(Supplier))}
        assignments = list(session.scalars(select(Assignment).where(Assignment.case_id.in_(cases))))
        events = list(session.scalars(select(ToolEvent).where(ToolEvent.case_id.in_(cases))))
        labels = [(label.value, label.name) for label in session.scalars(
            select(Label).where(Label.project_id == row.id).order_by(Label.value))]
        return cases, users, suppliers, assignments, events, labels
    cases, users, suppliers, assignments, events, labels = service._run(work)

    tools = collections.defaultdict(lambda: {"events": 0, "interactions": 0, "time_s": 0.0, "cases": set()})
    per_case = collections.defaultdict(lambda: {"time_s": 0.0, "interactions": 0})
    per_user_time = collections.defaultdict(float)
    for event in events:
        entry = tools[event.tool]
        entry["events"] += 1
        entry["interactions"] += event.interactions
        entry["time_s"] += event.duration_s
        entry["cases"].add(event.case_id)
        per_case[event.case_id]["time_s"] += event.duration_s
        per_case[event.case_id]["interactions"] += event.interactions
        per_user_time[event.user_id] += event.duration_s
    tool_rows = [{"tool": tool, "events": e["events"], "interactions": e["interactions"],
                  "time_s": round(e["time_s"], 3), "time_per_case_s": round(e["time_s"] / len(e["cases"]), 3)}
                 for tool, e in sorted(tools.items())]

    by_case = collections.defaultdict(list)
    for assignment in assignments:
        by_case[assignment.case_id].append(assignment)
    case_rows = []
    for case_id, case in sorted(cases.items()):
        work_items = by_case.get(case_id, [])
        submitted = [a.submitted_at for a in work_items if a.submitted_at]
        start = min((a.claimed_at for a in work_items), default=None)
        case_rows.append({"case": case.name, "status": case.status,
                          "annotators": ",".join(users[a.annotator_id].username for a in work_items),
                          "time_s": round(per_case[case_id]["time_s"], 3),
                          "interactions": per_case[case_id]["interactions"],
                          "wall_time_s": round(_hours(start, max(submitted)) * 3600, 1) if submitted else None})

    annotator_rows = []
    for user_id in sorted({a.annotator_id for a in assignments}):
        mine = [a for a in assignments if a.annotator_id == user_id]
        done = [a for a in mine if a.submitted_at]
        busy_hours = sum(_hours(a.claimed_at, a.submitted_at) for a in done)
        user = users[user_id]
        annotator_rows.append({
            "annotator": user.username, "supplier": suppliers.get(user.supplier_id),
            "claimed": len(mine), "submitted": len(done),
            "accepted": sum(a.status == "accepted" for a in mine), "returned": sum(a.status == "returned" for a in mine),
            "time_s": round(per_user_time[user_id], 3),
            "cases_per_hour": round(len(done) / busy_hours, 2) if busy_hours > 0 else None})

    supplier_rows = []
    for name in sorted({row["supplier"] for row in annotator_rows if row["supplier"]}):
        rows = [row for row in annotator_rows if row["supplier"] == name]
        supplier_rows.append({"supplier": name, "annotators": len(rows),
                              "submitted": sum(r["submitted"] for r in rows),
                              "accepted": sum(r["accepted"] for r in rows),
                              "time_s": round(sum(r["time_s"] for r in rows), 3)})

    agreement_rows = []
    for case_id, work_items in sorted(by_case.items()):
        saved = [a for a in work_items if a.annotation_path and a.submitted_at]
        for first, second in itertools.combinations(saved, 2):
            try:
                array_a = read_labelmap(first.annotation_path, first.annotation_sha256).array_kji
                array_b = read_labelmap(second.annotation_path, second.annotation_sha256).array_kji
            except StorageError:
                continue  # reported by export; statistics skip unreadable files
            for value, name in labels:
                agreement_rows.append({"case": cases[case_id].name, "annotator_a": users[first.annotator_id].username,
                                       "annotator_b": users[second.annotator_id].username, "label": name,
                                       "dice": round(dice(array_a == value, array_b == value), 4)})
    return {"tools": tool_rows, "cases": case_rows, "annotators": annotator_rows, "suppliers": supplier_rows,
            "agreement": agreement_rows}


def format_table(rows, title=None):
    """Plain-text table of a list of dicts (columns from the first row)."""
    lines = [title] if title else []
    if not rows:
        return "\n".join(lines + ["(none)"])
    columns = list(rows[0])
    cells = [[("" if row.get(c) is None else str(row.get(c))) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines.append("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    lines.extend("  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in cells)
    return "\n".join(lines)


def write_plots(statistics, folder):
    """PNG bar charts: time and interactions per tool, submitted cases per annotator, Dice per label.

    Returns the list of files written (charts with no data are skipped).
    """
    import os

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    os.makedirs(folder, exist_ok=True)
    charts = [
        ("time_per_tool.png", statistics["tools"], "tool", "time_s", "time (s)"),
        ("interactions_per_tool.png", statistics["tools"], "tool", "interactions", "interactions"),
        ("throughput_per_annotator.png", statistics["annotators"], "annotator", "submitted", "submitted cases"),
    ]
    written = []
    for name, rows, x_key, y_key, y_label in charts:
        if not rows:
            continue
        figure, axes = plt.subplots(figsize=(6, 3.5))
        axes.bar([str(r[x_key]) for r in rows], [r[y_key] or 0 for r in rows], color="#4477aa")
        axes.set_ylabel(y_label)
        axes.set_title(name[:-4].replace("_", " "))
        figure.tight_layout()
        path = os.path.join(folder, name)
        figure.savefig(path, dpi=100)
        plt.close(figure)
        written.append(path)
    if statistics["agreement"]:
        by_label = collections.defaultdict(list)
        for row in statistics["agreement"]:
            by_label[row["label"]].append(row["dice"])
        figure, axes = plt.subplots(figsize=(6, 3.5))
        axes.boxplot(list(by_label.values()))
        axes.set_xticks(range(1, len(by_label) + 1), list(by_label))
        axes.set_ylim(0, 1.05)
        axes.set_ylabel("Dice between annotators")
        figure.tight_layout()
        path = os.path.join(folder, "agreement_dice.png")
        figure.savefig(path, dpi=100)
        plt.close(figure)
        written.append(path)
    return written
