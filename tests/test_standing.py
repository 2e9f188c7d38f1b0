"""A grade is shown only where it is the grade of the hand-in now in submitted/: the score table, `nbgrader export`
and the reports read the runner's status rows (rnncourse.gradestatus) beside nbgrader's. Fast: gradebook rows and
status rows are written directly, no kernel runs."""

from __future__ import annotations

import csv
import re
import shutil
import warnings
from pathlib import Path

import pytest
from conftest import POINTS as NOTEBOOK_POINTS
from conftest import TOTAL_POINTS, generated_course
from nbgrader.api import Gradebook
from nbgrader.plugins import CsvExportPlugin

from rnncourse import classreport, gradestatus, handinkey, notebooks, pipeline, report, submissions
from rnncourse.course import ASSIGNMENT, NOTEBOOKS, gradebook_url, release_notebook, submitted_dir

NB01 = NOTEBOOKS[0]
POINTS = TOTAL_POINTS  # the assignment's points, all notebooks
# A student's row of the score table with full marks: each notebook's points, then the total.
FULL_ROW = r"\s+".join(f"{p:g} / {p:g}" for p in [*NOTEBOOK_POINTS.values(), POINTS])
COMMA_ID = 'o\'neil, "ann"'
OLD_KEY = "0" * 64  # the key of a hand-in graded before the one now in submitted/
REASON = "worker died; log: logs/autograde/run1/{}.log"


# ---- building a gradebook by hand --------------------------------------------------------------------------------

def hand_in(course: Path, student: str) -> Path:
    """The release as it was, every notebook: what matters here is the files, not the answers."""
    return submissions.write_submission(course, student, {nb: notebooks.read(release_notebook(course, nb))
                                                          for nb in NOTEBOOKS})


def add_rows(course: Path, student: str, full_marks: bool) -> None:
    """What autograde leaves: the student's gradebook rows, every grade full or 0, and the graded copies."""
    shutil.copytree(submitted_dir(course, student), course / "autograded" / student / ASSIGNMENT)
    with warnings.catch_warnings(), Gradebook(gradebook_url(course), report.course_id(course)) as gb:
        warnings.simplefilter("ignore")
        gb.update_or_create_student(student)
        submission = gb.add_submission(ASSIGNMENT, student, timestamp=submissions.ON_TIME.isoformat())
        for notebook in submission.notebooks:
            for grade in notebook.grades:
                grade.auto_score = grade.max_score if full_marks else 0.0
                grade.needs_manual_grade = False
        gb.db.commit()


def current_key(connection, course: Path, student: str) -> str | None:
    course_id = report.course_id(course)
    return handinkey.handin_key(submitted_dir(course, student),
                                handinkey.definition_digest(connection, course_id, ASSIGNMENT),
                                handinkey.extension_of(connection, course_id, student, ASSIGNMENT))


def set_status(course: Path, student: str, state: str, graded: str = "", reason: str = "") -> None:
    """The runner's row for the student; graded: "current" (nbgrader's rows are from the hand-in in submitted/),
    "old" (from an earlier hand-in) or "" (never graded)."""
    engine = gradestatus.engine_for(gradebook_url(course))
    try:
        with engine.begin() as connection:
            gradestatus.ensure_table(connection)
            key = current_key(connection, course, student)
            graded_key = {"current": key, "old": OLD_KEY, "": ""}[graded]
            gradestatus.write(connection, report.course_id(course), ASSIGNMENT, student, state, handin_key=key,
                              reason=reason, graded_key=graded_key)
    finally:
        engine.dispose()


def change_hand_in(course: Path, student: str) -> None:
    path = submitted_dir(course, student) / f"{NB01}.ipynb"
    path.write_bytes(path.read_bytes() + b"\n")  # still the same notebook, but not the same file


# student -> rows: gradebook rows with full marks (True), with 0 (False: an earlier grade, hidden) or none (None);
# status, graded (see set_status), reason: the runner's row, if any; changed: the hand-in changed after grading;
# handed_in: every notebook, or the folder with only timestamp.txt.
CLASS = {
    "complete_same": dict(rows=True, status=gradestatus.COMPLETE, graded="current"),
    "complete_changed": dict(rows=True, status=gradestatus.COMPLETE, graded="current", changed=True),
    "pending": dict(rows=False, status=gradestatus.PENDING, graded="old"),
    "failed_regrade": dict(rows=False, status=gradestatus.FAILED, graded="old", reason=True),
    "failed_first": dict(rows=None, status=gradestatus.FAILED, graded="", reason=True),
    "regrade_failed_same": dict(rows=True, status=gradestatus.FAILED, graded="current", reason=True),
    COMMA_ID: dict(rows=True, status=gradestatus.COMPLETE, graded="current"),
    "no_notebooks": dict(rows=None, handed_in="folder only"),
    "plain_nbgrader": dict(rows=True),  # graded before the runner kept status rows
}
SHOWN = {"complete_same", "regrade_failed_same", COMMA_ID, "plain_nbgrader"}  # all with full marks
HIDDEN = {  # student -> (label, a part of the note)
    "complete_changed": ("stale", "the hand-in, its due date or extension, or the assignment's tests changed "
                                  "after it was graded"),
    "pending": ("pending", "pending: a grading run started on this hand-in and did not finish"),
    "failed_regrade": ("failed", "not graded: " + REASON.format("failed_regrade")),
    "failed_first": ("failed", "not graded: " + REASON.format("failed_first")),
    "no_notebooks": (report.NOT_GRADED, "not graded: no notebook in the hand-in"),
}
ROSTER_ONLY = "roster_only"  # on nbgrader's roster, handed in nothing


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return generated_course(tmp_path_factory.mktemp("standing") / "base")


def copy_of(base: Path, name: str) -> Path:
    return Path(shutil.copytree(base, base.parent / name, symlinks=True))


@pytest.fixture(scope="module")
def course(base) -> Path:
    """Every case of CLASS in one course, with a status table."""
    course = copy_of(base, "class")
    for student, case in CLASS.items():
        if case.get("handed_in") == "folder only":
            submitted_dir(course, student).mkdir(parents=True)
            (submitted_dir(course, student) / "timestamp.txt").write_text("2026-11-20 12:00:00.000000 UTC")
        else:
            hand_in(course, student)
        if case["rows"] is not None:
            add_rows(course, student, full_marks=case["rows"])
        if "status" in case:
            set_status(course, student, case["status"], case["graded"],
                       REASON.format(student) if case.get("reason") else "")
        if case.get("changed"):
            change_hand_in(course, student)
    with warnings.catch_warnings(), Gradebook(gradebook_url(course), report.course_id(course)) as gb:
        warnings.simplefilter("ignore")
        gb.update_or_create_student(ROSTER_ONLY)
    return course


@pytest.fixture(scope="module")
def plain(base) -> Path:
    """A course graded by plain nbgrader: gradebook rows, no status table."""
    course = copy_of(base, "plain")
    for student, full_marks in (("full", True), ("zero", False)):
        hand_in(course, student)
        add_rows(course, student, full_marks)
    return course


@pytest.fixture(scope="module")
def exported(course) -> dict:
    """grades.csv as real `nbgrader export` writes it, by student id."""
    result = pipeline.export(course)
    assert result.ok, result.log.read_text()[-3000:]
    with open(course / "grades.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len({r["student_id"] for r in rows}), "one row per student"
    return {r["student_id"]: r for r in rows}


def test_standings_of_every_student_with_a_hand_in_or_a_status_row(course):
    standings = report.standings(course)
    assert set(standings) == set(CLASS)
    for student in SHOWN:
        assert standings[student].shown, student
    for student, (label, note) in HIDDEN.items():
        if student != "no_notebooks":  # no status row: collect decides, from the missing gradebook rows
            assert not standings[student].shown and standings[student].label == label, standings[student]
            assert note in standings[student].note
    assert standings["plain_nbgrader"] == gradestatus.Standing(True, "", "")
    assert standings["regrade_failed_same"] == gradestatus.Standing(
        True, gradestatus.COMPLETE, "a later regrade failed: " + REASON.format("regrade_failed_same"))


def test_collect_gives_numbers_only_for_the_current_hand_in(course):
    results = report.collect(course)
    by_student = classreport.by_student(results)
    assert set(by_student) == set(CLASS), "every hand-in and status row, nobody who handed in nothing"
    for student in SHOWN:
        assert all(r.shown for r in by_student[student])
        assert sum(r.final_score for r in by_student[student]) == POINTS, student
    for student, (label, note) in HIDDEN.items():
        rows = by_student[student]
        assert len(rows) == len(NOTEBOOKS) and all(r.standing.label == label for r in rows), student
        assert all(r.score is None and r.final_score is None and set(r.cells.values()) == {None} for r in rows)
        assert all(r.max_score > 0 and r.notes == [] for r in rows)
    assert report.scores_by_cell(course)["failed_regrade"][NB01]["test_rnn_step"] is None


def test_the_score_table_shows_the_label_in_place_of_numbers(course):
    text = report.format_tables(report.collect(course))
    score_table = text.split("\n\n")[0].splitlines()[2:]  # then come the per-function tables
    lines = {line.split("  ")[0]: line for line in score_table}
    for student, (label, note) in HIDDEN.items():
        word = re.escape(label.upper())
        assert re.match(rf"{student}\s+{word}\s+{word}\s+{word}\s+{word}\s+.*{re.escape(note)}", lines[student]), \
            lines[student]
        assert re.search(rf"^{student}\s+{word}$", text, re.M), "the per-function tables say it too"
    assert re.match(rf"complete_same\s+{FULL_ROW}\s*$", lines["complete_same"])
    assert re.match(rf"regrade_failed_same\s+{FULL_ROW}\s+a later regrade failed: "
                    rf"{re.escape(REASON.format('regrade_failed_same'))}$", lines["regrade_failed_same"])
    assert re.search(rf"^{re.escape(COMMA_ID)}\s+{NOTEBOOK_POINTS[NB01]:g} / {NOTEBOOK_POINTS[NB01]:g}", text, re.M)
    assert "see logs" not in text, "no note points to a log that may not exist"


def test_export_blanks_what_is_not_the_current_grade(course, exported):
    tests = [name for name in exported["complete_same"] if ":" in name]
    assert len(tests) > 10 and all(name.split(":")[0] in NOTEBOOKS for name in tests)
    for student in SHOWN - {"plain_nbgrader"}:
        row = exported[student]
        assert float(row["score"]) == float(row["raw_score"]) == POINTS and float(row["max_score"]) == POINTS
        assert all(float(row[name]) > 0 for name in tests) and row["grading_status"] == gradestatus.COMPLETE
    for student, (label, note) in HIDDEN.items():
        row = exported[student]
        assert row["grading_status"] == label and note in row["notes"], row
        assert row["raw_score"] == row["late_submission_penalty"] == row["score"] == "", row
        assert all(row[name] == "" for name in tests) and float(row["max_score"]) == POINTS, row
    assert exported["regrade_failed_same"]["notes"] == "a later regrade failed: " + REASON.format("regrade_failed_same")
    assert exported["complete_same"]["notes"] == ""


def test_export_has_a_row_for_every_hand_in_and_keeps_nbgraders_roster(exported):
    assert set(exported) == set(CLASS) | {ROSTER_ONLY}
    assert exported["failed_first"]["last_name"] == "", "not on nbgrader's roster, still a row"
    roster_only = exported[ROSTER_ONLY]
    assert roster_only["grading_status"] == classreport.NOT_SUBMITTED and float(roster_only["score"]) == 0
    assert exported["plain_nbgrader"]["grading_status"] == "" and float(exported["plain_nbgrader"]["score"]) == POINTS
    assert exported[COMMA_ID]["student_id"] == COMMA_ID


def test_reports_list_who_is_not_graded_and_count_only_current_grades(course):
    summary = classreport.summarise(course)
    assert summary.submitted == sorted(CLASS)
    assert set(summary.totals) == SHOWN and set(summary.totals.values()) == {POINTS}
    assert set(summary.not_graded) == set(HIDDEN)
    assert all(note in summary.not_graded[student] for student, (_, note) in HIDDEN.items())
    assert all(rate == 1.0 for rate in summary.pass_rates.values()), "only the full-marks students count"
    text, files = classreport.write_reports(course)
    assert f"{len(CLASS)} submissions, {len(SHOWN)} fully graded, {len(HIDDEN)} not (fully) graded" in text
    assert f"mean {POINTS:.1f}" in text
    for student, (_, note) in HIDDEN.items():
        assert re.search(rf"^NOT GRADED  {re.escape(student)}: .*{re.escape(note)}", text, re.M), text
    assert files[2].read_text() == text + "\n"


def test_a_course_without_status_rows_shows_nbgraders_numbers(plain, tmp_path):
    results = classreport.by_student(report.collect(plain))
    assert sum(r.final_score for r in results["full"]) == POINTS and sum(r.final_score for r in results["zero"]) == 0
    assert all(r.standing == gradestatus.Standing(True, "", "") for rows in results.values() for r in rows)
    text = report.format_tables(report.collect(plain))
    assert re.search(rf"^full\s+{FULL_ROW}\s*$", text, re.M), text
    summary = classreport.format_summary(classreport.summarise(plain))
    assert "2 submissions, 2 fully graded, 0 not (fully) graded" in summary
    assert pipeline.export(plain).ok
    with open(plain / "grades.csv", newline="") as f:
        ours = list(csv.DictReader(f))
    assert {r["student_id"]: r["grading_status"] for r in ours} == {"full": "", "zero": ""}
    assert all(r[f"{NB01}:test_rnn_step"] == ("2" if r["student_id"] == "full" else "0") for r in ours)
    with warnings.catch_warnings(), Gradebook(gradebook_url(plain), report.course_id(plain)) as gb:
        warnings.simplefilter("ignore")
        CsvExportPlugin(to=str(tmp_path / "nbgrader.csv")).export(gb)
    with open(tmp_path / "nbgrader.csv", newline="") as f:
        theirs = list(csv.DictReader(f))
    assert {r["student_id"]: {k: r[k] for k in classreport.NBGRADER_COLUMNS} for r in ours} == \
        {r["student_id"]: r for r in theirs}, "nbgrader's columns as nbgrader writes them"


def test_definition_digest_is_the_assignments_own(base):
    """Another assignment's cells do not change this one's key; this one's points do."""
    course = copy_of(base, "definition")
    engine = gradestatus.engine_for(gradebook_url(course))

    def digest():
        with engine.connect() as connection:
            return handinkey.definition_digest(connection, report.course_id(course), ASSIGNMENT)

    try:
        before = digest()
        with warnings.catch_warnings(), Gradebook(gradebook_url(course), report.course_id(course)) as gb:
            warnings.simplefilter("ignore")
            gb.add_assignment("other")
            gb.add_notebook("other_nb", "other")
            gb.add_grade_cell("test_other", "other_nb", "other", max_score=5, cell_type="code")
        assert digest() == before
        with warnings.catch_warnings(), Gradebook(gradebook_url(course), report.course_id(course)) as gb:
            warnings.simplefilter("ignore")
            cell = gb.find_notebook(NB01, ASSIGNMENT).grade_cells[0]
            cell.max_score += 1
            gb.db.commit()
        assert digest() != before
    finally:
        engine.dispose()
