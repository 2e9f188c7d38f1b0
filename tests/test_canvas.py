"""canvas.csv, the file Canvas's gradebook import reads (rnncourse.canvas): its header and Points Possible row, and
the cell of each kind of student: graded, late, on the roster with no hand-in, handed in but not graded, in the
gradebook but not on the roster; a course without roster.csv. Fast: the gradebook is written with nbgrader's API,
no kernel runs; one test runs real `nbgrader export` through `pipeline.export`."""

from __future__ import annotations

import csv
import datetime as dt
import shutil
import warnings
from pathlib import Path

import pytest
from conftest import POINTS, TOTAL_POINTS
from nbgrader.api import Gradebook

from rnncourse import canvas, pipeline, report
from rnncourse.course import ASSIGNMENT, gradebook_url, new_course_dir, submitted_dir

DUE = dt.datetime(2026, 11, 20, 17, 0)  # naive UTC, as nbgrader keeps due dates
ROSTER = """\
id,first_name,last_name,email,lms_user_id,sis_user_id,sis_login_id,section
s9-ada,Ada,Lovelace,ada.lovelace@example.edu,10001,S0001,alovelace,Section 9 A
s9-alan,Alan,Turing,alan.turing@example.edu,10002,S0002,aturing,Section 9 A
s9-grace,Grace,Hopper,grace.hopper@example.edu,,S0003,ghopper,Section 9 B
s9-edsger,Edsger,Dijkstra,edsger.dijkstra@example.edu,10004,S0004,edijkstra,Section 9 B
"""
LATE_FRACTION = 0.10  # of each notebook's score: the course's penalty for one started day late
HEADER = "Student,ID,SIS User ID,SIS Login ID,Section,section09"
POINTS_ROW = f"    Points Possible,,,,,{TOTAL_POINTS:g}"
# The rows with the roster: s9-grace's Canvas ID is the gradebook's (the roster leaves it empty).
EXPECTED = {
    "s9-ada": ["Lovelace, Ada", "10001", "S0001", "alovelace", "Section 9 A", f"{TOTAL_POINTS:g}"],
    "s9-alan": ["Turing, Alan", "10002", "S0002", "aturing", "Section 9 A",
                f"{TOTAL_POINTS * (1 - LATE_FRACTION):g}"],  # 43.2: late, after the penalty
    "s9-grace": ["Hopper, Grace", "10003", "S0003", "ghopper", "Section 9 B", "0"],  # no hand-in, past due
    "s9-edsger": ["Dijkstra, Edsger", "10004", "S0004", "edijkstra", "Section 9 B", ""],  # handed in, not graded
    "walk_in": ["Liskov, Barbara", "20001", "", "", "", "15"],  # in the gradebook, not on the roster
}


def add_graded(gb: Gradebook, student: str, scores: dict, late_fraction: float = 0.0) -> None:
    """The student's gradebook rows as autograde leaves them: notebook -> points, and the late penalty's share."""
    submission = gb.add_submission(ASSIGNMENT, student, timestamp=(DUE - dt.timedelta(hours=5)).isoformat())
    for notebook in submission.notebooks:
        for grade in notebook.grades:
            grade.auto_score = scores.get(notebook.name, 0.0)
            grade.needs_manual_grade = False
        notebook.late_submission_penalty = late_fraction * scores.get(notebook.name, 0.0)
    gb.db.commit()


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    """A course whose gradebook has one test cell per notebook worth the notebook's points, and every case."""
    course = new_course_dir(tmp_path_factory.mktemp("canvas") / "course")
    (course / canvas.ROSTER_CSV).write_text(ROSTER)
    with warnings.catch_warnings(), Gradebook(gradebook_url(course), report.course_id(course)) as gb:
        warnings.simplefilter("ignore")
        gb.add_assignment(ASSIGNMENT, duedate=DUE)
        for notebook, points in POINTS.items():
            gb.add_notebook(notebook, ASSIGNMENT)
            gb.add_grade_cell("test_all", notebook, ASSIGNMENT, max_score=points, cell_type="code")
        gb.add_student("s9-ada", first_name="Ada", last_name="Lovelace", lms_user_id="10001")
        add_graded(gb, "s9-ada", POINTS)
        gb.add_student("s9-alan", first_name="Alan", last_name="Turing")
        add_graded(gb, "s9-alan", POINTS, late_fraction=LATE_FRACTION)
        gb.add_student("s9-grace", first_name="Grace", last_name="Hopper", lms_user_id="10003")
        gb.add_student("walk_in", first_name="Barbara", last_name="Liskov", lms_user_id="20001")
        add_graded(gb, "walk_in", {"01_rnn_unrolling": 15.0})
    # s9-edsger handed in a folder without notebooks, and has no gradebook rows: nothing graded to show
    submitted_dir(course, "s9-edsger").mkdir(parents=True)
    (submitted_dir(course, "s9-edsger") / "timestamp.txt").write_text("2026-11-20 12:00:00.000000 UTC")
    return course


def copy_of(course: Path, name: str) -> Path:
    return Path(shutil.copytree(course, course.parent / name))


def rows_of(path: Path) -> dict[str, list[str]]:
    """Student rows by Student column, below the header and the Points Possible row."""
    with open(path, newline="", encoding="utf-8") as f:
        return {row[0]: row for row in list(csv.reader(f))[2:]}


@pytest.fixture(scope="module")
def written(course) -> tuple[canvas.CanvasExport, list[str]]:
    export = canvas.write_canvas_csv(course)
    return export, (course / canvas.CANVAS_CSV).read_text(encoding="utf-8").splitlines()


def test_header_and_points_possible_row_as_canvas_writes_them(written):
    """Canvas's importer wants Student, ID, then (SIS User ID, SIS Login ID) and Section before the assignments, and
    reads a created assignment's points from the row whose Student cell says Points Possible."""
    _, lines = written
    assert lines[:2] == [HEADER, POINTS_ROW]
    assert canvas.HEADER == HEADER.split(",")


def test_each_kind_of_student(written, course):
    export, lines = written
    rows = rows_of(course / canvas.CANVAS_CSV)
    assert rows == {row[0]: row for row in EXPECTED.values()}
    assert len(lines) == 2 + len(EXPECTED)
    assert list(rows) == sorted(rows, key=str.casefold), "rows in Canvas's order, by sortable name"
    assert export.students == len(EXPECTED)
    assert export.late == ["s9-alan"]
    assert export.missing == ["s9-grace"]
    assert export.not_on_roster == ["walk_in"]
    assert list(export.not_graded) == ["s9-edsger"]
    assert "no notebook in the hand-in" in export.not_graded["s9-edsger"]


def test_notes_name_who_to_look_at(written):
    notes = "\n".join(written[0].notes())
    assert f"out of {TOTAL_POINTS:g} points" in notes
    assert "not on roster.csv (SIS columns empty): walk_in" in notes
    assert "late, scored after the late penalty: s9-alan" in notes
    assert "no hand-in, scored 0: s9-grace" in notes
    assert "left blank (not graded: no notebook in the hand-in): s9-edsger" in notes
    assert "no roster.csv" not in notes
    assert "match them only by name" not in notes  # everyone has a Canvas ID


def test_without_roster_the_gradebook_names_the_students(course):
    plain = copy_of(course, "no-roster")
    (plain / canvas.ROSTER_CSV).unlink()
    export = canvas.write_canvas_csv(plain)
    rows = rows_of(plain / canvas.CANVAS_CSV)
    assert rows == {
        "Lovelace, Ada": ["Lovelace, Ada", "10001", "", "", "", f"{TOTAL_POINTS:g}"],
        "Turing, Alan": ["Turing, Alan", "", "", "", "", f"{TOTAL_POINTS * (1 - LATE_FRACTION):g}"],
        "Hopper, Grace": ["Hopper, Grace", "10003", "", "", "", "0"],
        "s9-edsger": ["s9-edsger", "", "", "", "", ""],  # a hand-in only: the id is all that is known
        "Liskov, Barbara": ["Liskov, Barbara", "20001", "", "", "", "15"],
    }
    notes = "\n".join(export.notes())
    assert "no roster.csv in the course directory" in notes
    assert "not on roster.csv" not in notes
    assert "can match them only by name: s9-alan, s9-edsger" in notes


def test_before_the_due_date_no_hand_in_is_not_a_zero(course):
    early = copy_of(course, "not-due")
    with warnings.catch_warnings(), Gradebook(gradebook_url(early), report.course_id(early)) as gb:
        warnings.simplefilter("ignore")
        now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
        gb.update_or_create_assignment(ASSIGNMENT, duedate=now + dt.timedelta(days=7))
    export = canvas.write_canvas_csv(early)
    assert rows_of(early / canvas.CANVAS_CSV)["Hopper, Grace"][-1] == ""
    assert "no hand-in, left blank (not due yet): s9-grace" in "\n".join(export.notes())


@pytest.mark.parametrize("roster, problem", [
    ("id,first_name,last_name,email,lms_user_id,section\ns9-ada,Ada,Lovelace,a@x,10001,A\n",
     "lacks the columns sis_user_id, sis_login_id"),
    (ROSTER + "s9-ada,Ada,Lovelace,a@x,10001,S0001,alovelace,Section 9 A\n", "line 6: the id 's9-ada' is there twice"),
    (ROSTER + ",Nobody,Known,n@x,,,,\n", "line 6: no id"),
])
def test_a_roster_that_cannot_be_read_stops_the_export(course, tmp_path, roster, problem):
    (tmp_path / canvas.ROSTER_CSV).write_text(roster)
    with pytest.raises(canvas.RosterError, match=problem):
        canvas.read_roster(tmp_path)


def test_make_export_writes_canvas_csv_beside_grades_csv(course, capsys):
    """`python -m rnncourse export` runs pipeline.export: real `nbgrader export`, then canvas.csv; the numbers agree
    with grades.csv's score column (after the late penalty; blank where grades.csv is blank). A roster that cannot be
    read fails the step and leaves no canvas.csv to import by mistake."""
    exported = copy_of(course, "exported")
    roster = exported / canvas.ROSTER_CSV
    roster.write_text(ROSTER + "s9-ada,Ada,Lovelace,a@x,10001,S0001,alovelace,Section 9 A\n")
    (exported / canvas.CANVAS_CSV).write_text("an earlier export\n")
    refused = pipeline.export(exported)
    assert not refused.ok
    assert "canvas.csv not written" in capsys.readouterr().out
    assert "the id 's9-ada' is there twice" in refused.log.read_text()
    assert not (exported / canvas.CANVAS_CSV).exists()

    roster.write_text(ROSTER)
    result = pipeline.export(exported)
    assert result.ok, result.log.read_text()[-2000:]
    out = capsys.readouterr().out
    assert f"canvas: {exported / canvas.CANVAS_CSV} ({len(EXPECTED)} students" in out
    assert "canvas: not on roster.csv" in result.log.read_text()
    with open(exported / "grades.csv", newline="") as f:
        grades = {row["student_id"]: row["score"] for row in csv.DictReader(f)}
    rows = rows_of(exported / canvas.CANVAS_CSV)
    for student, expected in EXPECTED.items():
        cell = rows[expected[0]][-1]
        assert cell == expected[-1]
        assert (float(cell) if cell else "") == (float(grades[student]) if grades[student] else ""), student
