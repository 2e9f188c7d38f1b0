"""Grading a class in parallel for real: nbgrader's Autograde in two local worker processes on a SQLite gradebook.
Late submissions sit on both sides of every boundary of the course's policy (10% per started day, 0 after 3 days);
nbgrader computes the lateness from timestamp.txt and the due date. (The same runner on PostgreSQL and a Dask
cluster, compared row by row with a local run, is in test_faults.py.)"""

from __future__ import annotations

import csv
import datetime as dt
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import POINTS, TOTAL_POINTS, generated_course, make_course

from rnncourse import classgrade, classreport, notebooks, pipeline, report, submissions
from rnncourse.course import ASSIGNMENT, NOTEBOOKS, gradebook_url, release_notebook, source_notebook

pytestmark = pytest.mark.autograde

NB01 = NOTEBOOKS[0]
DUE = dt.datetime(2026, 11, 20, 17, 0, tzinfo=dt.timezone.utc)
SECOND, DAY = dt.timedelta(seconds=1), dt.timedelta(days=1)
# student -> (handed in at, share of the score lost under the course policy)
LATENESS = {
    "on_time_at_due": (DUE, 0.0),
    "late_1s": (DUE + SECOND, 0.1),
    "late_1day": (DUE + DAY, 0.1),
    "late_1day_1s": (DUE + DAY + SECOND, 0.2),
    "late_3days": (DUE + 3 * DAY, 0.3),
    "late_3days_1s": (DUE + 3 * DAY + SECOND, 1.0),
}
WRONG_EMBED = "def embed(token_ids, E):\n    return E[0].expand(*token_ids.shape, -1)  # always row 0"
INVALID = "x_not_a_notebook"
NB01_POINTS = POINTS[NB01]


@dataclass
class GradedClass:
    path: Path
    db_url: str
    outcomes: dict  # student -> StudentOutcome


def write_class(course: Path) -> None:
    """Notebook 01 only (the fastest), solved; lateness as in LATENESS; one wrong embed; one unreadable file."""
    answers = notebooks.solutions(notebooks.read(source_notebook(course, NB01)))
    release = notebooks.read(release_notebook(course, NB01))
    solved = notebooks.filled(release, answers)
    for student, (when, _) in LATENESS.items():
        submissions.write_submission(course, student, {NB01: solved}, when)
    submissions.write_submission(course, "wrong_embed", {NB01: notebooks.filled(release, dict(answers,
                                                                                              embed=WRONG_EMBED))})
    folder = submissions.write_submission(course, INVALID, {NB01: solved})
    (folder / f"{NB01}.ipynb").write_text('{"cells": [ this is not JSON')


def prepare(course: Path) -> Path:
    generated_course(course)
    write_class(course)
    return course


@pytest.fixture(scope="module")
def sqlite_class(tmp_path_factory) -> GradedClass:
    course = prepare(tmp_path_factory.mktemp("classgrade") / "sqlite")
    outcomes = classgrade.grade(course, workers=2, quiet=True)
    return GradedClass(course, gradebook_url(course), {o.student: o for o in outcomes})


def _gradebook(course: Path, db_url: str) -> dict:
    """student -> (per-test scores of notebook 01, late penalty, number of submission rows, of grade rows)."""
    from nbgrader.api import Gradebook, MissingEntry

    table = {}
    with warnings.catch_warnings(), Gradebook(db_url) as gb:
        warnings.simplefilter("ignore")
        for student in gb.students:
            try:
                nb = gb.find_submission_notebook(NB01, ASSIGNMENT, student.id)
            except MissingEntry:
                continue
            rows = [s for s in gb.assignment_submissions(ASSIGNMENT) if s.student_id == student.id]
            table[student.id] = ({g.name: g.score for g in nb.grades if g.cell_type == "code"},
                                 nb.late_submission_penalty or 0.0, len(rows), len(nb.grades))
    return table


def expected_total(student: str) -> float:
    return round(NB01_POINTS * (1 - LATENESS[student][1]), 6)


# ---- local worker processes, SQLite ------------------------------------------------------------------------

@pytest.mark.parametrize("student", LATENESS)
def test_late_penalty_at_each_boundary_through_nbgrader(sqlite_class, student):
    outcome = sqlite_class.outcomes[student]
    assert outcome.graded and outcome.max_score == TOTAL_POINTS
    final = {r.notebook: r.final_score for r in report.collect(sqlite_class.path) if r.student == student}
    assert final[NB01] == pytest.approx(expected_total(student)), f"{student}: {LATENESS[student]}"


def test_every_student_graded_exactly_once_no_database_errors(sqlite_class):
    scores = _gradebook(sqlite_class.path, sqlite_class.db_url)
    assert set(scores) == {*LATENESS, "wrong_embed"}, "the unreadable hand-in is not graded (and listed, see below)"
    grade_rows = {student: row[3] for student, row in scores.items()}
    assert all(row[2] == 1 for row in scores.values()), "one submission row per student"
    assert len(set(grade_rows.values())) == 1, f"every student has each grade exactly once: {grade_rows}"
    logs = "".join(p.read_text() for p in (sqlite_class.path / "logs" / "autograde").glob("*/*.log"))
    assert "database is locked" not in logs and "IntegrityError" not in logs
    assert len({o.worker for o in sqlite_class.outcomes.values() if o.graded}) == 2, "both workers should have graded"


def test_a_submission_that_cannot_be_graded_is_listed_not_dropped(sqlite_class):
    bad = sqlite_class.outcomes[INVALID]
    assert bad.state == "blocked" and f"{NB01}.ipynb is not valid JSON" in bad.problems[0]
    text, files = classreport.write_reports(sqlite_class.path)
    assert re.search(rf"NOT GRADED\s+{INVALID}: not graded: preflight: {NB01}.ipynb is not valid JSON", text), text
    assert "wrong_embed" not in [line.split()[2].rstrip(":") for line in text.splitlines() if "NOT GRADED" in line]


def test_reports_csv_per_test_columns_and_charts(sqlite_class):
    assert pipeline.export(sqlite_class.path).ok
    rows = {r["student_id"]: r for r in csv.DictReader(open(sqlite_class.path / "grades.csv"))}
    assert rows["wrong_embed"][f"{NB01}:test_embed"] == "0" and rows["on_time_at_due"][f"{NB01}:test_embed"] == "2"
    assert float(rows["late_1day_1s"]["late_submission_penalty"]) == pytest.approx(0.2 * NB01_POINTS)
    assert float(rows["late_3days_1s"]["score"]) == 0
    assert rows[INVALID]["score"] == "" and "not valid JSON" in rows[INVALID]["notes"]
    text, files = classreport.write_reports(sqlite_class.path)
    for png in files[:2]:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert len(text.splitlines()) <= 24, "the summary fits one screen"
    assert "Late: 5" in text and "late_3days_1s" in text


def test_a_course_that_turns_the_sandbox_off_is_warned_not_refused(tmp_path, capsys):
    """`c.SandboxedExecute.sandbox = False` (e.g. a machine without bubblewrap) grades, with a loud warning; the
    course as committed gets the sandbox check and no warning."""
    from rnncourse import cli

    course = make_course(tmp_path / "course")
    cli.check_sandbox(course)
    assert "WARNING" not in capsys.readouterr().out
    with open(course / "nbgrader_config.py", "a") as config:
        config.write("\nc.SandboxedExecute.sandbox = False\n")
    cli.check_sandbox(course)
    assert "WARNING: the grading sandbox is off" in capsys.readouterr().out
