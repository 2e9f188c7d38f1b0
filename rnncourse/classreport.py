"""Reports after grading a class: the grades CSV with one column per test, two charts and a one-screen summary.

- `GradesWithTestsExport`: nbgrader's grades CSV plus a column per test cell (`<notebook>:<grade id>`, the points
  earned), a `notes` column (late, not graded, timed out, ...) and a `grading_status` column (the runner's status of
  the grade, `rnncourse.gradestatus`). A number appears only where it is the grade of the hand-in now in
  submitted/; every student with a hand-in has a row. nbgrader_config.py names it as `c.ExportApp.plugin_class`,
  so plain `nbgrader export` writes it.
- `write_reports(course_dir)`: `reports/score_histogram.png`, `reports/test_pass_rates.png` and
  `reports/summary.txt`, all from the gradebook and the course folders. A student who handed something in that could
  not be graded is listed by name with the reason, never silently left out.
"""

from __future__ import annotations

import csv
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from nbgrader.api import MissingEntry
from nbgrader.plugins import ExportPlugin

from . import report
from .course import ASSIGNMENT, NOTEBOOKS

REPORT_DIR = "reports"
# nbgrader's CsvExportPlugin's columns, in its order; the numbers a row leaves blank while the grade is not shown.
NBGRADER_COLUMNS = ["assignment", "duedate", "timestamp", "student_id", "last_name", "first_name", "email",
                    "raw_score", "late_submission_penalty", "score", "max_score"]
WITHHELD_COLUMNS = ("raw_score", "late_submission_penalty", "score")
NOT_SUBMITTED = "not submitted"  # grading_status of a roster student with no hand-in and no gradebook rows


def test_columns(results: list[report.NotebookResult]) -> list[tuple[str, str]]:
    """(notebook, test grade id) in teaching order: notebook order, then as the notebook shows them."""
    seen: dict = {}
    for r in sorted(results, key=lambda r: NOTEBOOKS.index(r.notebook) if r.notebook in NOTEBOOKS else 99):
        for grade_id in r.cells:
            seen.setdefault((r.notebook, grade_id), None)
    return list(seen)


def by_student(results: list[report.NotebookResult]) -> dict[str, list[report.NotebookResult]]:
    grouped: dict = {}
    for r in results:
        grouped.setdefault(r.student, []).append(r)
    return grouped


class GradesWithTestsExport(ExportPlugin):
    """nbgrader's grades CSV plus one column per test cell, a notes column and a grading_status column. The rows are
    nbgrader's (one per assignment and student on its roster) plus one for each student with a hand-in or a status
    row that the roster lacks, written with the csv module (nbgrader's own writer does not quote: an id with a comma
    would break the file)."""

    def export(self, gradebook) -> None:
        dest = Path(self.to or "grades.csv")
        course_dir = Path(self.parent.coursedir.root) if self.parent is not None else Path.cwd()
        results = by_student(report.collect(course_dir))
        columns = test_columns([r for rows in results.values() for r in rows])
        self.log.info("Exporting grades to %s", dest)
        with open(dest, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=NBGRADER_COLUMNS + [f"{nb}:{grade_id}" for nb, grade_id in columns]
                                    + ["notes", "grading_status"])
            writer.writeheader()
            for assignment in gradebook.assignments:
                if self.assignment and assignment.name not in map(str, self.assignment):
                    continue
                ours = assignment.name == ASSIGNMENT
                for student_id, student in self.students(gradebook, results if ours else {}):
                    row = nbgrader_row(gradebook, assignment, student_id, student)
                    if ours:
                        row.update(rnncourse_columns(results.get(student_id, []), columns))
                    writer.writerow(row)

    def students(self, gradebook, beyond_roster) -> list[tuple[str, object]]:
        """(id, nbgrader Student or None) for nbgrader's roster in its order, then the ids of beyond_roster it
        lacks; only those asked for with --student."""
        roster = [(s.id, s) for s in gradebook.students]
        known = {student_id for student_id, _ in roster}
        everyone = roster + [(student_id, None) for student_id in sorted(beyond_roster) if student_id not in known]
        wanted = {str(s) for s in self.student}
        return [(student_id, s) for student_id, s in everyone if not wanted or student_id in wanted]


def nbgrader_row(gradebook, assignment, student_id: str, student=None) -> dict:
    """The row nbgrader's CsvExportPlugin writes for the student (None: not on its roster, so no names); no
    submission scores 0, as there."""
    row = dict(assignment=assignment.name, duedate=assignment.duedate, timestamp="", student_id=student_id,
               last_name=getattr(student, "last_name", None), first_name=getattr(student, "first_name", None),
               email=getattr(student, "email", None), raw_score=0.0, late_submission_penalty=0.0, score=0.0,
               max_score=assignment.max_score)
    try:
        submission = gradebook.find_submission(assignment.name, student_id)
    except MissingEntry:
        pass
    else:
        penalty = submission.late_submission_penalty
        row.update(timestamp=submission.timestamp, raw_score=submission.score, late_submission_penalty=penalty,
                   score=max(0.0, submission.score - penalty))
    return {key: "" if value is None else str(value) for key, value in row.items()}


def rnncourse_columns(rows: list[report.NotebookResult], columns: list[tuple[str, str]]) -> dict:
    """One student's per-test, notes and grading_status columns; where their numbers are not shown, blanks in
    place of nbgrader's scores too."""
    if not rows:
        return {"grading_status": NOT_SUBMITTED}
    by_notebook = {r.notebook: r for r in rows}
    values = {}
    for nb, grade_id in columns:
        r = by_notebook.get(nb)
        values[f"{nb}:{grade_id}"] = f"{r.cells[grade_id]:g}" if r and r.shown and grade_id in r.cells else ""
    values["notes"] = report.student_notes(rows)
    values["grading_status"] = rows[0].standing.label if rows[0].standing else ""
    if not all(r.shown for r in rows):
        values.update(dict.fromkeys(WITHHELD_COLUMNS, ""))
    return values


@dataclass
class ClassSummary:
    submitted: list = field(default_factory=list)  # students with a folder in submitted/ or a grading status row
    totals: dict = field(default_factory=dict)  # student -> final score (after late penalty)
    max_score: float = 0.0
    not_graded: dict = field(default_factory=dict)  # student -> reason
    late: dict = field(default_factory=dict)  # student -> (hours late, points taken)
    pass_rates: dict = field(default_factory=dict)  # (notebook, grade id) -> fraction with full points
    notebook_means: dict = field(default_factory=dict)  # notebook -> (mean, max)


def summarise(course_dir: Path) -> ClassSummary:
    course_dir = Path(course_dir)
    results = report.collect(course_dir)
    grouped = by_student(results)
    # collect gives a standing to exactly the students with a hand-in or a status row, and rows to each of them
    summary = ClassSummary(submitted=sorted(s for s, rows in grouped.items() if rows[0].standing is not None))
    for student in summary.submitted:
        rows = grouped[student]
        if not rows[0].shown:  # no grade of the current hand-in: listed with why, kept out of every statistic
            summary.not_graded[student] = rows[0].standing.note
            continue
        failed = [f"{r.notebook}: {n}" for r in rows for n in r.notes if n.startswith("not graded")]
        if failed:
            summary.not_graded[student] = "; ".join(failed)
        summary.totals[student] = sum(r.final_score for r in rows)
        penalty = sum(r.late_penalty for r in rows)
        if rows[0].seconds_late > 0:
            summary.late[student] = (rows[0].seconds_late / 3600, penalty)
    summary.max_score = max((sum(r.max_score for r in rows) for rows in grouped.values()), default=0.0)
    graded = [r for r in results if r.student in summary.totals and not any(n.startswith("not") for n in r.notes)]
    for nb, grade_id in test_columns(results):
        outcomes = [r.cells[grade_id] >= r.cell_max.get(grade_id, 0) for r in graded if r.notebook == nb]
        summary.pass_rates[(nb, grade_id)] = sum(outcomes) / len(outcomes) if outcomes else 0.0
    for nb in NOTEBOOKS:
        scores = [r.final_score for r in graded if r.notebook == nb]
        if scores:
            summary.notebook_means[nb] = (statistics.mean(scores), max(r.max_score for r in graded if r.notebook == nb))
    return summary


def format_summary(s: ClassSummary, files: list[Path] = ()) -> str:
    """One screen: counts, score statistics, who could not be graded, who was late, the hardest tests."""
    lines = [f"Section 9 ({ASSIGNMENT}): {len(s.submitted)} submissions, {len(s.submitted) - len(s.not_graded)} fully "
             f"graded, {len(s.not_graded)} not (fully) graded"]
    if s.totals:
        totals = list(s.totals.values())
        lines.append(f"Scores of {s.max_score:g} (after late penalties): mean {statistics.mean(totals):.1f}, median "
                     f"{statistics.median(totals):g}, min {min(totals):g}, max {max(totals):g}")
        lines.append("  per notebook: " + ", ".join(f"{nb[:2]} {mean:.1f}/{mx:g}"
                                                     for nb, (mean, mx) in s.notebook_means.items()))
    for student, reason in sorted(s.not_graded.items()):
        lines.append(f"NOT GRADED  {student}: {reason}")
    if s.late:
        lines.append(f"Late: {len(s.late)} — " + ", ".join(f"{st} {h:.1f} h (-{p:g})" for st, (h, p) in
                                                           sorted(s.late.items())))
    hardest = sorted(s.pass_rates.items(), key=lambda item: item[1])[:5]
    if hardest:
        lines.append("Lowest pass rates: " + ", ".join(f"{nb[:2]}/{gid.removeprefix('test_')} {rate:.0%}"
                                                       for (nb, gid), rate in hardest))
    if files:
        lines.append("Reports: " + "  ".join(str(f) for f in files))
    return "\n".join(lines)


def plot_histogram(s: ClassSummary, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(6.4, 3.6), layout="constrained")
    top = max(s.max_score, 1)
    ax.hist(list(s.totals.values()), bins=min(20, int(top) + 1), range=(0, top), color="tab:blue", edgecolor="white")
    ax.set_xlabel(f"score after late penalties (of {top:g})")
    ax.set_ylabel("students")
    ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_title(f"{ASSIGNMENT}: {len(s.totals)} graded submissions")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_pass_rates(s: ClassSummary, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{nb[:2]} {gid.removeprefix('test_')}" for nb, gid in s.pass_rates]
    rates = [100 * r for r in s.pass_rates.values()]
    colors = [f"C{NOTEBOOKS.index(nb) if nb in NOTEBOOKS else 3}" for nb, _ in s.pass_rates]
    fig, ax = plt.subplots(figsize=(6.4, 0.28 * len(labels) + 1.2), layout="constrained")
    ax.barh(range(len(labels)), rates, color=colors)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("% of graded submissions with full points")
    ax.set_title("pass rate per test (colour: notebook)")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_reports(course_dir: Path) -> tuple[str, list[Path]]:
    """Write the charts and summary under reports/; return the summary text and the files written."""
    out = Path(course_dir) / REPORT_DIR
    out.mkdir(exist_ok=True)
    s = summarise(course_dir)
    files = [out / "score_histogram.png", out / "test_pass_rates.png", out / "summary.txt"]
    plot_histogram(s, files[0])
    plot_pass_rates(s, files[1])
    text = format_summary(s, files)
    files[2].write_text(text + "\n")
    return text, files
