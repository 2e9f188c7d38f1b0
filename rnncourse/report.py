"""Scores straight from the gradebook (nbgrader's Python API), shown only where they are the grade of the hand-in now
in `submitted/` (`rnncourse.gradestatus`), plus what the autograded notebooks say went wrong."""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from nbgrader.api import Gradebook, MissingEntry

from . import gradestatus, handinkey, handins, notebooks, outcomes
from .course import (ASSIGNMENT, autograded_notebook, course_config, gradebook_url, release_notebook, source_notebook,
                     submitted_dir)
from .gradestatus import Standing

NOT_GRADED = "not graded"  # a Standing's label for a hand-in with no gradebook rows and no status row saying why

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
    score: float | None  # None: the gradebook holds no grade of the current hand-in to show (see `standing`)
    max_score: float
    cells: dict = field(default_factory=dict)  # grade id of each test cell -> score (None when not shown)
    notes: list = field(default_factory=list)
    cell_max: dict = field(default_factory=dict)  # grade id of each test cell -> its points
    late_penalty: float = 0.0  # points nbgrader's late-penalty plugin took from this notebook
    seconds_late: float = 0.0
    standing: Standing | None = None  # None: no hand-in and no status row (a roster student nbgrader graded)

    @property
    def shown(self) -> bool:
        """Whether the numbers are the student's grade (else they are None and `standing` says why)."""
        return self.score is not None

    @property
    def final_score(self) -> float | None:
        return None if self.score is None else max(0.0, self.score - self.late_penalty)


def course_id(course_dir: Path) -> str:
    return course_config(course_dir).CourseDirectory.get("course_id", "")


def standings(course_dir: Path) -> dict[str, Standing]:
    """student -> Standing for every student with a hand-in in submitted/ or a status row, from one connection to
    the gradebook. Only students with a status row need their hand-in's key (no row: nbgrader's numbers stand)."""
    course_dir, course = Path(course_dir), course_id(course_dir)
    engine = gradestatus.engine_for(gradebook_url(course_dir))
    try:
        with engine.connect() as connection:
            statuses = gradestatus.read(connection, course, ASSIGNMENT)
            definition = handinkey.definition_digest(connection, course, ASSIGNMENT) if statuses else ""

            def current_key(student: str) -> str | None:
                return handinkey.current_key(connection, course, student, submitted_dir(course_dir, student),
                                             definition)

            students = set(statuses) | set(handins.handin_students(course_dir))
            return {student: gradestatus.standing(statuses.get(student),
                                                  current_key(student) if student in statuses else None)
                    for student in sorted(students)}
    finally:
        engine.dispose()


def collect(course_dir: Path) -> list[NotebookResult]:
    """One result per (student, notebook) of the assignment for every student with gradebook rows, a hand-in or a
    status row, students in alphabetical order. A result whose standing is not shown carries no numbers."""
    course_dir = Path(course_dir)
    standing_of = standings(course_dir)  # its connection closes before nbgrader's session opens: one at a time
    results = []
    with warnings.catch_warnings(), Gradebook(gradebook_url(course_dir), course_id(course_dir)) as gb:
        warnings.simplefilter("ignore")  # SQLAlchemy's SAWarnings about nbgrader's session use are not ours to fix
        assignment = gb.find_assignment(ASSIGNMENT)
        tests = {nb.name: _cell_order(course_dir, nb) for nb in assignment.notebooks}
        for student in sorted({s.id for s in gb.students} | set(standing_of)):
            for notebook in assignment.notebooks:
                try:
                    submitted = gb.find_submission_notebook(notebook.name, ASSIGNMENT, student)
                except MissingEntry:
                    submitted = None
                if submitted is None and student not in standing_of:
                    continue  # on nbgrader's roster, handed in nothing
                results.append(_result(course_dir, student, notebook, tests[notebook.name], submitted,
                                       standing_of.get(student)))
    return results


def _result(course_dir: Path, student: str, notebook, tests: list, submitted,
            standing: Standing | None) -> NotebookResult:
    """A notebook's result from its gradebook rows (`submitted`, None when there are none), numbers only when the
    standing lets them be shown."""
    if submitted is None:
        standing = _without_rows(course_dir, student, standing)
    result = NotebookResult(student, notebook.name, None, notebook.max_score, standing=standing,
                            cell_max={c.name: c.max_score for c in notebook.grade_cells if c.name in tests})
    if standing is not None and not standing.shown:
        result.cells = dict.fromkeys(tests)  # the columns, with nothing in them
        return result
    scores = {g.name: g.score for g in submitted.grades if g.cell_type == "code"}
    result.score = submitted.score
    result.late_penalty = submitted.late_submission_penalty or 0.0
    result.seconds_late = submitted.assignment.total_seconds_late
    result.cells = {grade_id: scores.get(grade_id, 0.0) for grade_id in tests}
    result.notes = notes(course_dir, student, notebook.name)
    return result


def _without_rows(course_dir: Path, student: str, standing: Standing | None) -> Standing:
    """A hand-in with no gradebook rows has nothing to show, whatever its status row says; say why where the row
    does not."""
    if standing is not None and not standing.shown:
        return standing
    why = "no notebook in the hand-in" if not handins.has_notebooks(course_dir, student) else \
        "no gradebook rows for this hand-in; run autograde"
    return Standing(False, NOT_GRADED, f"not graded: {why}")


def _cell_order(course_dir: Path, notebook) -> list:
    """The notebook's test cells (code grade cells, as the gradebook defines them) in the order the notebook shows
    them (the gradebook has no order)."""
    tests = {c.name for c in notebook.grade_cells if c.cell_type == "code"}
    path = source_notebook(course_dir, notebook.name)
    shown = list(notebooks.test_cells(notebooks.read(path))) if path.exists() else []
    return [c for c in shown if c in tests] + sorted(c for c in tests if c not in shown)


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
    if not path.exists():  # why: in nbgrader's log of the run (a failed grade's status reason names that log)
        return ["not graded: nbgrader removed it"] + refused_elsewhere
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
    """{student: {notebook: {test cell grade id: score, None where not shown}}}: what tests compare."""
    table: dict = {}
    for r in collect(course_dir):
        table.setdefault(r.student, {})[r.notebook] = dict(r.cells)
    return table


def withheld(result: NotebookResult) -> str:
    """What stands in place of a result's numbers when they are not shown: FAILED, PENDING, STALE, NOT GRADED."""
    return result.standing.label.upper()


def student_notes(rows: list[NotebookResult]) -> str:
    """One student's notes on one line: what their standing says (once), then each notebook's notes."""
    standing_notes = dict.fromkeys(r.standing.note for r in rows if r.standing is not None and r.standing.note)
    return "; ".join([*standing_notes, *(f"{r.notebook}: {note}" for r in rows for note in r.notes)])


def format_tables(results: list[NotebookResult]) -> str:
    """A per-student, per-notebook score table, then each notebook's per-function breakdown. A student whose numbers
    are not shown gets their standing's label in place of each score and of the total."""
    if not results:
        return "No graded submissions in the gradebook."
    students = sorted({r.student for r in results})
    names = sorted({r.notebook for r in results})
    by_key = {(r.student, r.notebook): r for r in results}
    width = max(len(s) for s in students + ["student"]) + 2
    column = max(len(n) for n in names + ["not submitted"]) + 2

    def fmt(score, max_score):
        return f"{score:g} / {max_score:g}"

    def score_text(r):
        return "not submitted" if r is None else fmt(r.score, r.max_score) if r.shown else withheld(r)

    header = "student".ljust(width) + "".join(n.ljust(column) for n in names) + "total".ljust(12) + "notes"
    lines = [header, "-" * len(header)]
    for student in students:
        row = [by_key.get((student, n)) for n in names]
        present = [r for r in row if r]
        note = student_notes(present)
        hidden = [r for r in present if not r.shown]
        if hidden:
            total = withheld(hidden[0])
        else:
            total = fmt(sum(r.final_score for r in present), sum(r.max_score for r in present))
            penalty = sum(r.late_penalty for r in present)
            if penalty:
                late = max(r.seconds_late for r in present)
                note = "; ".join(filter(None, [f"late {late / 3600:.1f} h: -{penalty:g} points", note]))
        lines.append(student.ljust(width) + "".join(score_text(r).ljust(column) for r in row) + total.ljust(12)
                     + note)
    for name in names:
        cells = next(list(r.cells) for r in results if r.notebook == name)
        short = [c.removeprefix("test_") for c in cells]
        lines += ["", f"{name}: points per graded function", "student".ljust(width)
                  + "".join(s.ljust(max(len(s), 5) + 2) for s in short)]
        for student in students:
            r = by_key.get((student, name))
            if r and not r.shown:
                lines.append(student.ljust(width) + withheld(r))
            elif r:
                lines.append(student.ljust(width) + "".join(f"{r.cells.get(c, 0):g}".ljust(max(len(s), 5) + 2)
                                                            for c, s in zip(cells, short)))
    return "\n".join(lines)
