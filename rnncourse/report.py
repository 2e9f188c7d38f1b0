"""Scores straight from the gradebook (nbgrader's Python API), plus what the autograded notebooks say went wrong."""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from nbgrader.api import Gradebook, MissingEntry

from . import handins, notebooks, outcomes
from .course import ASSIGNMENT, autograded_notebook, gradebook_url, release_notebook, source_notebook, submitted_dir

# Errors worth a note to the instructor, by the name nbgrader or Python gives them. Failed tests are not notes:
# the per-function table already shows them.
_NOTABLE_ERRORS = {
    "CellTimeoutError": "timed out",
    "SyntaxError": "syntax error",
    "IndentationError": "syntax error",
    "MemoryError": "out of memory",
    outcomes.KERNEL_DIED: "kernel died",
}
_OUT_OF_MEMORY = re.compile(r"not enough memory|can't allocate memory|Unable to allocate|out of memory", re.I)


@dataclass
class NotebookResult:
    student: str
    notebook: str
    score: float
    max_score: float
    cells: dict = field(default_factory=dict)  # grade id of each test cell -> score
    notes: list = field(default_factory=list)
    cell_max: dict = field(default_factory=dict)  # grade id of each test cell -> its points
    late_penalty: float = 0.0  # points nbgrader's late-penalty plugin took from this notebook
    seconds_late: float = 0.0

    @property
    def final_score(self) -> float:
        return max(0.0, self.score - self.late_penalty)


def collect(course_dir: Path) -> list[NotebookResult]:
    """One result per (student, notebook) of the assignment, students in alphabetical order."""
    results, order = [], {}
    with warnings.catch_warnings(), Gradebook(gradebook_url(course_dir)) as gb:
        warnings.simplefilter("ignore")  # SQLAlchemy's SAWarnings about nbgrader's session use are not ours to fix
        assignment = gb.find_assignment(ASSIGNMENT)
        notebook_names = [nb.name for nb in assignment.notebooks]
        for student in sorted(s.id for s in gb.students):
            for name in notebook_names:
                try:
                    submitted = gb.find_submission_notebook(name, ASSIGNMENT, student)
                except MissingEntry:
                    continue  # this student handed in nothing for the assignment
                result = NotebookResult(student, name, submitted.score, submitted.max_score,
                                        late_penalty=submitted.late_submission_penalty or 0.0,
                                        seconds_late=submitted.assignment.total_seconds_late)
                code_grades = [g for g in submitted.grades if g.cell_type == "code"]
                scores = {g.name: g.score for g in code_grades}
                result.cell_max = {g.name: g.max_score for g in code_grades}
                for grade_id in order.setdefault(name, _cell_order(course_dir, name, scores)):
                    result.cells[grade_id] = scores.get(grade_id, 0.0)
                result.notes = notes(course_dir, student, name)
                results.append(result)
    return results


def _cell_order(course_dir: Path, notebook: str, scores: dict) -> list:
    """Test cells in the order the notebook shows them (the gradebook has no order)."""
    path = source_notebook(course_dir, notebook)
    shown = list(notebooks.test_cells(notebooks.read(path))) if path.exists() else []
    return [c for c in shown if c in scores] + sorted(c for c in scores if c not in shown)


def notes(course_dir: Path, student: str, notebook: str) -> list[str]:
    """What went wrong beyond failed tests: refused hand-in entries (rnncourse.handins), errors worth a look, and
    changes to the notebook's structure."""
    path = autograded_notebook(course_dir, student, notebook)
    handed_in = submitted_dir(course_dir, student) / f"{notebook}.ipynb"
    refused, refused_elsewhere = handins.refusal_notes(course_dir, student, notebook)
    if not handed_in.exists():
        return (refused or ["not submitted"]) + refused_elsewhere
    try:
        submitted = notebooks.read(handed_in)
    except Exception as exc:  # nbformat raises several kinds for a damaged file
        return [f"not graded: invalid notebook ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})"] \
            + refused_elsewhere
    if not path.exists():
        return ["not graded: nbgrader removed it (see logs/autograde.log)"] + refused_elsewhere
    found = list(refused_elsewhere)
    for index, cell in enumerate(notebooks.read(path).cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") != "error":
                continue
            what = _NOTABLE_ERRORS.get(output.get("ename"))
            if what is None and _OUT_OF_MEMORY.search(output.get("evalue", "")):
                what = "out of memory"
            if what:
                where = notebooks.nbgrader_meta(cell).get("grade_id") or f"cell {index + 1}"
                found.append(f"{what} in {where}")
    release = release_notebook(course_dir, notebook)
    if release.exists():
        found += structure_changes(notebooks.read(release), submitted)
    return found


def structure_changes(release_nb, submitted_nb) -> list[str]:
    """Graded and read-only cells the student deleted, duplicated, retyped or edited, or whose nbgrader metadata
    changed. nbgrader restores them from the gradebook before grading; the note tells the instructor it happened."""
    def locked(nb):
        cells: dict = {}
        for cell in nb.cells:
            meta = notebooks.nbgrader_meta(cell)
            if meta.get("grade_id") and (meta.get("locked") or (meta.get("grade") and not meta.get("solution"))):
                cells.setdefault(meta["grade_id"], []).append(cell)
        return cells

    given, returned = locked(release_nb), locked(submitted_nb)
    changes = []
    for grade_id, (original, *_) in given.items():
        copies = returned.get(grade_id, [])
        if not copies:
            changes.append(f"{grade_id} deleted (restored)")
            continue
        if len(copies) > 1:
            changes.append(f"{grade_id} duplicated")
        cell = copies[0]
        if cell.cell_type != original.cell_type:
            changes.append(f"{grade_id} changed to {cell.cell_type} (restored)")
        elif cell.source != original.source:
            changes.append(f"{grade_id} edited (restored)")
        elif notebooks.nbgrader_meta(cell) != notebooks.nbgrader_meta(original):
            changes.append(f"{grade_id} metadata changed (restored)")
    def order(nb):
        ids = [notebooks.nbgrader_meta(cell).get("grade_id") for cell in nb.cells]
        return list(dict.fromkeys(i for i in ids if i))

    handed, released = order(submitted_nb), order(release_nb)
    if [i for i in handed if i in released] != [i for i in released if i in handed]:
        changes.append("cells reordered (graded in the order handed in)")
    return changes


def scores_by_cell(course_dir: Path) -> dict:
    """{student: {notebook: {test cell grade id: score}}}: what tests compare."""
    table: dict = {}
    for r in collect(course_dir):
        table.setdefault(r.student, {})[r.notebook] = dict(r.cells)
    return table


def format_tables(results: list[NotebookResult]) -> str:
    """A per-student, per-notebook score table, then each notebook's per-function breakdown."""
    if not results:
        return "No graded submissions in the gradebook."
    students = sorted({r.student for r in results})
    names = sorted({r.notebook for r in results})
    by_key = {(r.student, r.notebook): r for r in results}
    width = max(len(s) for s in students + ["student"]) + 2
    column = max(len(n) for n in names + ["not submitted"]) + 2

    def fmt(score, max_score):
        return f"{score:g} / {max_score:g}"

    header = "student".ljust(width) + "".join(n.ljust(column) for n in names) + "total".ljust(12) + "notes"
    lines = [header, "-" * len(header)]
    for student in students:
        row = [by_key.get((student, n)) for n in names]
        total = sum(r.final_score for r in row if r)
        max_total = sum(r.max_score for r in row if r)
        note = "; ".join(f"{r.notebook}: {x}" for r in row if r for x in r.notes)
        penalty = sum(r.late_penalty for r in row if r)
        if penalty:
            late = max(r.seconds_late for r in row if r)
            note = "; ".join(filter(None, [f"late {late / 3600:.1f} h: -{penalty:g} points", note]))
        lines.append(student.ljust(width) + "".join((fmt(r.score, r.max_score) if r else "not submitted").ljust(column)
                                                    for r in row) + fmt(total, max_total).ljust(12) + note)
    for name in names:
        cells = next(list(r.cells) for r in results if r.notebook == name)
        short = [c.removeprefix("test_") for c in cells]
        lines += ["", f"{name}: points per graded function", "student".ljust(width)
                  + "".join(s.ljust(max(len(s), 5) + 2) for s in short)]
        for student in students:
            r = by_key.get((student, name))
            if r:
                lines.append(student.ljust(width) + "".join(f"{r.cells.get(c, 0):g}".ljust(max(len(s), 5) + 2)
                                                            for c, s in zip(cells, short)))
    return "\n".join(lines)


