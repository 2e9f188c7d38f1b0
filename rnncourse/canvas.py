"""Writes `canvas.csv`: the section's grades in the layout Canvas LMS's gradebook import reads (Grades -> Import).

The layout is the one Canvas's own gradebook export writes and its importer parses (canvas-lms:
`app/models/gradebook_exporter.rb`, `app/models/gradebook_importer.rb`,
`ui/features/gradebook_uploads/jquery/process_gradebook_upload.js`):

    Student,ID,SIS User ID,SIS Login ID,Section,section09
        Points Possible,,,,,48
    "Lovelace, Ada",10001,S0001,alovelace,Section 9 A,43.2

- `Student` is "Last, First", Canvas's sortable name, in which order Canvas lists its own export.
- `ID` is Canvas's user id (roster.csv's `lms_user_id`). The importer finds each student by `ID`, then
  `SIS User ID`, then `SIS Login ID`, and only then by name; `Section` must be there but is not used to match.
- The assignment column is headed by the assignment's name, without a Canvas id: the importer takes the Canvas
  assignment of that exact name, or creates one. The "Points Possible" row gives a created assignment its points.
- A number is the points earned after nbgrader's late penalty: the `score` column of nbgrader's grades.csv.
  A blank cell is "no score": the import leaves an ungraded student ungraded and clears a score Canvas holds
  (its preview lists that change first); `0` is a score of 0; `EX` excuses the student, which nbgrader has no
  state for, so this file never writes it (and a 0 imported over an excuse in Canvas replaces it).

Where the people come from: the course directory's `roster.csv` (id, first_name, last_name, email, lms_user_id,
sis_user_id, sis_login_id, section; `id` is the nbgrader student id), else the gradebook's names and lms_user_id
with the SIS and Section columns empty. Everyone in the gradebook or with a hand-in is written too, roster or not.
"""

from __future__ import annotations

import csv
import datetime as dt
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from nbgrader.api import Gradebook

from . import report
from .classreport import by_student
from .course import ASSIGNMENT, gradebook_url
from .roster import RosterError, read_rows  # noqa: F401 -- RosterError: what read_roster raises

CANVAS_CSV = "canvas.csv"
ROSTER_CSV = "roster.csv"
HEADER = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", ASSIGNMENT]
# Canvas's export writes this label (indented) in the Student column; its importer skips the row as a student and
# reads the points of any assignment it creates from it.
POINTS_POSSIBLE = "    Points Possible"
# roster.csv's columns this module reads (email is nbgrader's, for `nbgrader db student import`).
ROSTER_COLUMNS = ("id", "first_name", "last_name", "lms_user_id", "sis_user_id", "sis_login_id", "section")
SHOW_NAMES = 10  # students named in a note; the rest are counted


@dataclass
class Person:
    id: str
    first_name: str = ""
    last_name: str = ""
    lms_user_id: str = ""
    sis_user_id: str = ""
    sis_login_id: str = ""
    section: str = ""

    @property
    def sortable_name(self) -> str:
        """'Last, First' as Canvas writes it; whichever part is known, else the nbgrader id."""
        return ", ".join(p for p in (self.last_name, self.first_name) if p) or self.id


@dataclass
class CanvasExport:
    """What was written, and who the instructor should look at before importing."""

    path: Path
    points_possible: float
    students: int = 0
    roster: Path | None = None  # None: no roster.csv, people from the gradebook only
    not_on_roster: list = field(default_factory=list)
    late: list = field(default_factory=list)  # score is after the late penalty
    missing: list = field(default_factory=list)  # no hand-in: 0 once due, blank before
    due_passed: bool = True
    not_graded: dict = field(default_factory=dict)  # student -> why the cell is blank
    name_only: list = field(default_factory=list)  # no ID and no SIS ids: Canvas can match them by name only

    def notes(self) -> list[str]:
        lines = [f"canvas: {self.path} ({self.students} students, {ASSIGNMENT} out of {_number(self.points_possible)}"
                 f" points; import in Canvas with Grades -> Import)"]
        if self.roster is None:
            lines.append(f"canvas: no {ROSTER_CSV} in the course directory: names and ID (lms_user_id) from the "
                         f"gradebook, SIS User ID, SIS Login ID and Section left empty")
        elif self.not_on_roster:
            lines.append(f"canvas: not on {ROSTER_CSV} (SIS columns empty): {_names(self.not_on_roster)}")
        if self.late:
            lines.append(f"canvas: late, scored after the late penalty: {_names(self.late)}")
        if self.missing:
            lines.append(f"canvas: no hand-in, {'scored 0' if self.due_passed else 'left blank (not due yet)'}: "
                         f"{_names(self.missing)}")
        by_reason: dict = {}
        for student, why in self.not_graded.items():
            by_reason.setdefault(why, []).append(student)
        for why, students in by_reason.items():
            lines.append(f"canvas: left blank ({why}): {_names(students)}")
        if self.name_only:
            lines.append(f"canvas: no Canvas ID or SIS id, so Canvas can match them only by name: "
                         f"{_names(self.name_only)}")
        return lines


def read_roster(course_dir: Path) -> dict[str, Person] | None:
    """nbgrader id -> Person from the course directory's roster.csv; None when there is none."""
    path = Path(course_dir) / ROSTER_CSV
    if not path.exists():
        return None
    return {row["id"]: Person(**{c: row.get(c, "") for c in ROSTER_COLUMNS})
            for row in read_rows(path, required=ROSTER_COLUMNS)}


def write_canvas_csv(course_dir: Path, dest: Path | None = None) -> CanvasExport:
    """Write canvas.csv (or dest) for the course's assignment from the gradebook; return what it holds. A roster.csv
    that cannot be read raises RosterError, and removes an earlier canvas.csv."""
    course_dir = Path(course_dir)
    dest = Path(dest) if dest else course_dir / CANVAS_CSV
    try:
        roster = read_roster(course_dir)
    except RosterError:
        dest.unlink(missing_ok=True)  # an earlier export's file must not be imported as this one's
        raise
    # The same rows and standings as grades.csv (rnncourse.report): a number only for a grade of the hand-in now in
    # submitted/. collect's gradebook session is closed before ours opens: one at a time.
    results = by_student(report.collect(course_dir))
    with warnings.catch_warnings(), Gradebook(gradebook_url(course_dir), report.course_id(course_dir)) as gb:
        warnings.simplefilter("ignore")  # SQLAlchemy's SAWarnings about nbgrader's session use are not ours to fix
        assignment = gb.find_assignment(ASSIGNMENT)
        points, duedate = assignment.max_score, assignment.duedate
        known = {s.id: Person(s.id, s.first_name or "", s.last_name or "", s.lms_user_id or "") for s in gb.students}
    # No due date: nbgrader counts nothing late, and its export scores a missing hand-in 0; so does this file.
    due_passed = duedate is None or duedate <= dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)  # naive UTC
    export = CanvasExport(dest, points, roster=course_dir / ROSTER_CSV if roster is not None else None,
                          due_passed=due_passed)
    people = _people(roster, known, results, export)
    rows = []
    for person in people:
        score = _score(person.id, results.get(person.id, []), export)
        rows.append([person.sortable_name, person.lms_user_id, person.sis_user_id, person.sis_login_id,
                     person.section, score])
        if not (person.lms_user_id or person.sis_user_id or person.sis_login_id):
            export.name_only.append(person.id)
    with open(dest, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(HEADER)
        writer.writerow([POINTS_POSSIBLE, "", "", "", "", _number(points)])
        writer.writerows(rows)
    export.students = len(rows)
    return export


def _people(roster: dict[str, Person] | None, known: dict[str, Person], results: dict,
            export: CanvasExport) -> list[Person]:
    """Everyone on the roster, in the gradebook or with a hand-in, in Canvas's order (by sortable name). The roster's
    value of each field wins; the gradebook fills what it leaves empty."""
    people = []
    for student in sorted(set(roster or {}) | set(known) | set(results)):
        person = (roster or {}).get(student)
        if person is None:
            person = known.get(student, Person(student))
            if roster is not None:
                export.not_on_roster.append(student)
        elif student in known:
            gradebook = known[student]
            for name in ("first_name", "last_name", "lms_user_id"):
                if not getattr(person, name):
                    setattr(person, name, getattr(gradebook, name))
        people.append(person)
    return sorted(people, key=lambda p: (p.sortable_name.casefold(), p.id))


def _score(student: str, rows: list, export: CanvasExport) -> str:
    """The student's cell: points after the late penalty, 0 or blank for no hand-in, blank when not graded."""
    if not rows:
        # On the roster (or nbgrader's), no hand-in and no gradebook rows. A blank cell would leave them ungraded,
        # and Canvas's Current Score skips ungraded work (only its Final Score counts it as 0): their grade would
        # read as if the assignment did not exist. Once it is due, a missing hand-in scores 0, as in nbgrader's
        # grades.csv; before, it is not missing yet.
        export.missing.append(student)
        return "0" if export.due_passed else ""
    if not all(r.shown for r in rows):
        # Handed in but not graded (failed, pending, changed since): grades.csv shows no number either. A 0 would
        # stand in Canvas as the grade; blank leaves it open until autograde runs again and this is re-imported.
        export.not_graded[student] = next(r.standing.note for r in rows if not r.shown)
        return ""
    penalty = sum(r.late_penalty for r in rows)
    if penalty > 0:
        export.late.append(student)
    # nbgrader's export: max(0, raw score - late penalty) over the assignment (its `score` column).
    return _number(max(0.0, sum(r.score for r in rows) - penalty))


def _number(value: float) -> str:
    """Two decimals at most, as Canvas shows and compares scores; no trailing zeros (48, 43.2)."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _names(names: list) -> str:
    names = sorted(names)
    shown = ", ".join(names[:SHOW_NAMES])
    return shown + (f" and {len(names) - SHOW_NAMES} more" if len(names) > SHOW_NAMES else "")
