"""rnncourse.preflight: every problem kind, blocked and only warned; the timestamp forms accepted and rejected; deleted
exercises restored in the staged copy; submitted/ and the gradebook left as they were; and a staged hand-in with a
deleted exercise graded for real by nbgrader, which fails on the hand-in as it was."""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import os
import shutil
import sqlite3
from pathlib import Path

import nbformat
import pytest
from conftest import generated_course

from rnncourse import handins, notebooks, pipeline, preflight, report, submissions
from rnncourse.course import ASSIGNMENT, NOTEBOOKS, course_config, release_notebook, repo_root, source_notebook

NB01 = NOTEBOOKS[0]
UTC = dt.timezone.utc
ON_TIME = dt.datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
NOW = dt.datetime(2026, 11, 21, 12, 0, tzinfo=UTC)  # the moment every check runs at
DELETED = ("rnn_unroll", "test_rnn_unroll")  # an exercise: its solution cell and its test cell
NOT_JSON = '{"cells": [ this is not JSON'


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    return generated_course(tmp_path_factory.mktemp("preflight") / "course")


@pytest.fixture(scope="module")
def release(course):
    return notebooks.read(release_notebook(course, NB01))


@pytest.fixture(scope="module")
def solved(course, release):
    return notebooks.filled(release, notebooks.solutions(notebooks.read(source_notebook(course, NB01))))


def without(nb, grade_ids):
    cut = copy.deepcopy(nb)
    cut.cells = [cell for cell in cut.cells if notebooks.nbgrader_meta(cell).get("grade_id") not in grade_ids]
    return cut


def hand_in(course, student, nb, when=ON_TIME) -> Path:
    return submissions.write_submission(course, student, {NB01: nb}, when)


def check_one(course, student, block=None, now=NOW, **settings) -> preflight.HandinCheck:
    class_problems, checks = preflight.check_class(course, [student], config(course, block, **settings), now)
    assert class_problems == []
    return checks[student]


def config(course, block=None, **settings):
    loaded = course_config(course)
    if block is not None:
        loaded.Preflight.block = block
    for name, value in settings.items():
        setattr(loaded.Preflight, name, value)
    return loaded


def name_for(prefix: str, value) -> str:
    """A student id of its own for each parameter of a test."""
    return f"{prefix}_{hashlib.sha1(repr(value).encode()).hexdigest()[:8]}"


def only(check) -> preflight.Problem:
    assert len(check.problems) == 1, check.problems
    return check.problems[0]


def tree_digest(*folders: Path) -> str:
    """Every entry's path, type, mode, size, mtime and content (a link's target, never followed)."""
    digest = hashlib.sha256()
    for folder in folders:
        for root, dirs, files in os.walk(folder):
            dirs.sort()
            for name in sorted(dirs + files):
                path = Path(root) / name
                st = os.lstat(path)
                digest.update(f"{path}|{st.st_mode}|{st.st_size}|{st.st_mtime_ns}|".encode())
                if path.is_symlink():
                    digest.update(os.readlink(path).encode())
                elif path.is_file():
                    digest.update(path.read_bytes())
    return digest.hexdigest()


# ---- a clean hand-in -----------------------------------------------------------------------------------------------

def test_clean_handin_has_no_problem_and_a_missing_notebook_is_none(course, solved):
    folder = hand_in(course, "clean", solved)  # notebooks 02 and 03 not handed in: nbgrader scores them 0
    check = check_one(course, "clean")
    assert check.problems == [] and not check.blocked and check.reason() == ""
    assert check.notebooks == {NB01: folder / f"{NB01}.ipynb"}
    assert check.submitted_at == ON_TIME
    assert preflight.format_table([], {"clean": check}) == ""


def test_the_course_config_sets_the_default_block_list():
    loaded = preflight.Preflight(config=course_config(repo_root()))
    assert loaded.block == preflight.DEFAULT_BLOCK and preflight.Preflight().block == preflight.DEFAULT_BLOCK
    assert set(preflight.DEFAULT_BLOCK) <= set(preflight.KINDS)
    assert loaded.future_tolerance_s == 300


def test_an_unknown_kind_in_block_is_refused_with_the_kinds():
    with pytest.raises(ValueError, match="unknown problem kinds \\['timestamp_late'\\].*invalid_json"):
        preflight.Preflight(block=["invalid_json", "timestamp_late"])


# ---- notebooks nbgrader cannot read ---------------------------------------------------------------------------------

def test_invalid_json_blocks_and_says_where(course, solved):
    folder = hand_in(course, "not_json", solved)
    (folder / f"{NB01}.ipynb").write_text('{"cells": [ this')
    check = check_one(course, "not_json")
    problem = only(check)
    assert problem == preflight.Problem(
        "invalid_json", f"{NB01}.ipynb is not valid JSON (line 1, column 13: Expecting value)", "blocked")
    assert check.blocked and check.reason() == problem.detail


def test_invalid_json_when_only_warned_is_graded_as_not_submitted(course, solved):
    folder = hand_in(course, "not_json_warned", solved)
    (folder / f"{NB01}.ipynb").write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff")
    check = check_one(course, "not_json_warned", block=[])
    problem = only(check)
    assert (problem.kind, problem.action) == ("invalid_json", "warned")
    assert "not UTF-8" in problem.detail and "graded as not submitted (0 points)" in problem.detail
    assert check.notebooks == {} and not check.blocked


@pytest.mark.parametrize("text, why", [
    ("[]", "JSON list, not a notebook"),
    ('"a notebook"', "JSON str, not a notebook"),
    ("{}", "missing a key: cells"),
    ('{"nbformat": 4, "nbformat_minor": 5, "metadata": {}}', "missing an expected key: cells"),
    ('{"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [{"cell_type": "code"}]}', ""),
])
def test_json_that_is_not_a_notebook(course, solved, text, why):
    student = name_for("not_nb", text)
    folder = hand_in(course, student, solved)
    (folder / f"{NB01}.ipynb").write_text(text)
    blocked, warned = check_one(course, student), check_one(course, student, block=[])
    assert (only(blocked).kind, only(blocked).action) == ("not_a_notebook", "blocked")
    assert only(blocked).detail.startswith(f"{NB01}.ipynb ") and why in only(blocked).detail
    assert only(warned).action == "warned" and warned.notebooks == {}


# ---- student ids ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("student, why", [
    ("s" * 129, "129 characters long; the gradebook holds at most 128"),
    ("group1_*", "glob pattern"),
    ("who?", "glob pattern"),
    ("s[12]", "glob pattern"),
    ("line\nbreak", "non-printable"),
    ("bell\x07", "non-printable"),
    ("zero\u200bwidth", "non-printable"),
    (".hidden", "starts with '.'"),
    ("-rf", "starts with '-'"),
    ("alice ", "white space"),  # nbgrader strips ids: it would grade the folder of "alice"
    (" alice", "white space"),
])
def test_bad_ids_block_and_their_folder_is_not_read(course, student, why):
    if "\n" not in student and "\x07" not in student:  # the others' folders cannot be made portably: not needed
        folder = hand_in(course, student, nbformat.v4.new_notebook())
        (folder / f"{NB01}.ipynb").write_text(NOT_JSON)  # not reported: the folder is not read
    check = check_one(course, student)
    assert (only(check).kind, only(check).action) == ("bad_id", "blocked") and why in only(check).detail
    warned = check_one(course, student, block=[])
    assert only(warned).action == "warned" and "nothing is graded" in only(warned).detail
    assert warned.notebooks == {}


def test_the_longest_id_the_gradebook_holds_is_fine(course, solved):
    hand_in(course, "s" * 128, solved)
    assert check_one(course, "s" * 128).problems == []


def test_a_handin_that_is_a_file_is_blocked_not_a_crash(course, solved):
    hand_in(course, "good_neighbour", solved)
    (course / "submitted" / "file_handin").mkdir()
    (course / "submitted" / "file_handin" / "section09").write_text("not a folder")
    _, checks = preflight.check_class(course, ["file_handin", "good_neighbour"], config(course), NOW)
    assert (only(checks["file_handin"]).kind, only(checks["file_handin"]).action) == ("unreadable", "blocked")
    assert "is not a folder" in checks["file_handin"].reason()
    assert checks["good_neighbour"].problems == [], "one odd hand-in never stops the class"


def test_graded_cells_with_forged_metadata_are_staged_as_released(course, release, solved, tmp_path):
    """A solution marked as a test (nbgrader: MissingEntry, the notebook dropped) or a test worth 1000 points."""
    forged = copy.deepcopy(solved)
    for cell in forged.cells:
        meta = notebooks.nbgrader_meta(cell)
        if meta.get("grade_id") == "rnn_step":
            meta.update(grade=True, points=5)
        if meta.get("grade_id") == "test_rnn_step":
            meta.update(points=1000, locked=False)
    hand_in(course, "forger", forged)
    check = check_one(course, "forger")
    assert (only(check).kind, only(check).action) == ("metadata_changed", "restored")
    assert "rnn_step, test_rnn_step" in only(check).detail
    preflight.stage_handin(course, check, tmp_path / "staged")
    staged = notebooks.read(tmp_path / "staged" / f"{NB01}.ipynb")
    released = {notebooks.nbgrader_meta(c).get("grade_id"): notebooks.nbgrader_meta(c) for c in release.cells}
    for cell in staged.cells:
        grade_id = notebooks.nbgrader_meta(cell).get("grade_id")
        if grade_id:
            assert notebooks.nbgrader_meta(cell) == released[grade_id]


# ---- timestamps ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, utc", [
    ("2026-11-20T12:00:00+01:00", dt.datetime(2026, 11, 20, 11, 0, tzinfo=UTC)),
    ("2026-11-20 12:00:00.5Z", dt.datetime(2026, 11, 20, 12, 0, 0, 500000, tzinfo=UTC)),
    ("2026-11-20T12:00:00+0100", dt.datetime(2026, 11, 20, 11, 0, tzinfo=UTC)),
    ("2026-11-20 12:00:00 +0100", dt.datetime(2026, 11, 20, 11, 0, tzinfo=UTC)),  # nbgrader: 11:58:20
    ("2026-11-20T09:30:00-08:00\n", dt.datetime(2026, 11, 20, 17, 30, tzinfo=UTC)),
    ("2026-11-20 12:00:00.123456 UTC", dt.datetime(2026, 11, 20, 12, 0, 0, 123456, tzinfo=UTC)),
    ("2026-11-20 12:00:00 UTC", dt.datetime(2026, 11, 20, 12, 0, tzinfo=UTC)),
])
def test_accepted_timestamps_and_the_staged_form_nbgrader_reads_back(course, solved, tmp_path, text, utc):
    from nbgrader.utils import parse_utc

    assert preflight.parse_timestamp(text) == (utc, None)
    folder = hand_in(course, "stamp_ok", solved)
    (folder / "timestamp.txt").write_text(text)
    check = check_one(course, "stamp_ok")
    assert check.problems == [] and check.submitted_at == utc
    preflight.stage_handin(course, check, tmp_path / "staged")
    staged = (tmp_path / "staged" / "timestamp.txt").read_text()
    assert staged == utc.strftime("%Y-%m-%d %H:%M:%S.%f UTC")
    assert parse_utc(staged) == utc.replace(tzinfo=None)  # nbgrader reads the staged form right


@pytest.mark.parametrize("text, kind", [
    ("10:00 PST", "timestamp_unparseable"),  # nbgrader: 10:00 UTC today
    ("2026-11-20 10:00:00 PST", "timestamp_unparseable"),  # nbgrader: 10:00 UTC
    ("11/12/2026", "timestamp_unparseable"),  # nbgrader: 12 November
    ("yesterday", "timestamp_unparseable"),
    ("2026-11-20", "timestamp_unparseable"),  # a day, no time of day
    ("2026-11-20 12:00:00 GMT", "timestamp_unparseable"),  # only nbgrader's own "UTC" is taken by name
    ("2026-11-20T12:00:00", "timestamp_no_offset"),
    ("2026-11-20 12:00:00.000000", "timestamp_no_offset"),
    ("2026-13-45 00:00:00 UTC", "timestamp_unparseable"),  # month 13 in nbgrader's own form
    ("0001-01-01T00:00:00+01:00", "timestamp_unparseable"),  # before year 1 in UTC
    ("9999-12-31T23:59:59-01:00", "timestamp_unparseable"),  # after year 9999 in UTC
])
def test_rejected_timestamps(text, kind):
    assert preflight.parse_timestamp(text)[1] == kind


def write_timestamp(course, solved, student, content: bytes | None) -> Path:
    folder = hand_in(course, student, solved)
    if content is None:
        (folder / "timestamp.txt").unlink()
    else:
        (folder / "timestamp.txt").write_bytes(content)
    return folder


@pytest.mark.parametrize("content, kind, submitted_at, consequence", [
    (None, "timestamp_missing", None, "graded as on time"),
    (b"  \n", "timestamp_missing", None, "graded as on time"),
    (b"10:00 PST", "timestamp_unparseable", None, "graded as on time"),
    (b"\x00\xff\xfe\x81garbage", "timestamp_unparseable", None, "graded as on time"),
    (b"2026-11-20T12:00:00", "timestamp_no_offset", ON_TIME, "read as UTC"),
    (b"2026-11-22T12:00:00Z", "timestamp_future", NOW + dt.timedelta(days=1), "graded as handed in then"),
])
def test_timestamp_problems_block_or_warn(course, solved, content, kind, submitted_at, consequence):
    student = name_for(kind, content)
    write_timestamp(course, solved, student, content)
    blocked = check_one(course, student)
    assert (only(blocked).kind, only(blocked).action) == (kind, "blocked") and "timestamp.txt" in only(blocked).detail
    warned = check_one(course, student, block=[])
    assert (only(warned).kind, only(warned).action) == (kind, "warned") and consequence in only(warned).detail
    assert warned.submitted_at == submitted_at and NB01 in warned.notebooks


def test_a_timestamp_within_the_clock_skew_allowed_is_not_in_the_future(course, solved):
    write_timestamp(course, solved, "skew", (NOW + dt.timedelta(seconds=299)).isoformat().encode())
    assert check_one(course, "skew").problems == []
    assert only(check_one(course, "skew", future_tolerance_s=60)).kind == "timestamp_future"


def test_an_unusable_timestamp_is_not_staged(course, solved, tmp_path):
    write_timestamp(course, solved, "no_stamp_staged", b"yesterday")
    check = check_one(course, "no_stamp_staged", block=[])
    preflight.stage_handin(course, check, tmp_path / "staged")
    assert sorted(p.name for p in (tmp_path / "staged").iterdir()) == [f"{NB01}.ipynb"]


# ---- the due date --------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def undated(course, tmp_path_factory) -> Path:
    """A copy of the course whose gradebook has no due date for the assignment, with two hand-ins."""
    copy_dir = tmp_path_factory.mktemp("undated") / "course"
    shutil.copytree(course, copy_dir, ignore=shutil.ignore_patterns("submitted", "refused"))
    with sqlite3.connect(copy_dir / "gradebook.db") as db:
        db.execute("UPDATE assignment SET duedate = NULL WHERE name = ?", (ASSIGNMENT,))
    for student in ("ann", "bob"):
        submissions.write_submission(copy_dir, student, {})
    return copy_dir


def test_no_due_date_under_a_late_policy_blocks_the_class_with_the_fix(undated):
    class_problems, checks = preflight.check_class(undated, ["ann", "bob"], now=NOW)
    (problem,) = class_problems
    assert (problem.kind, problem.action) == ("no_due_date", "blocked")
    assert f'nbgrader db assignment add {ASSIGNMENT} --duedate="2026-11-20 17:00:00 UTC"' in problem.detail
    assert "nbgrader_config.py" in problem.detail and "rnncourse.latepenalty.LatePenalty" in problem.detail
    assert all(check.blocked and problem.detail in check.reason() for check in checks.values())
    table = preflight.format_table(class_problems, checks)
    assert table.splitlines()[0] == "preflight: 3 problems (1 blocked, 2 warned); 2 of 2 students not graded"
    assert [line.split()[:3] for line in table.splitlines()[1:]] == [  # the class's problem once, not per student
        ["(class)", "blocked", "no_due_date"], ["ann", "warned", "no_notebooks"], ["bob", "warned", "no_notebooks"]]


def test_no_due_date_when_only_warned_grades_without_penalties(undated):
    settings = config(undated, [k for k in preflight.DEFAULT_BLOCK if k != "no_due_date"])
    class_problems, checks = preflight.check_class(undated, ["ann"], settings, NOW)
    assert [(p.kind, p.action) for p in class_problems] == [("no_due_date", "warned")]
    assert "graded without late penalties" in class_problems[0].detail
    assert not checks["ann"].blocked


def test_no_due_date_matters_only_under_a_late_policy(undated):
    stock = config(undated)
    stock.AssignLatePenalties.plugin_class = "nbgrader.plugins.LateSubmissionPlugin"
    assert preflight.check_class(undated, [], stock, NOW)[0] == []
    stock.LateSubmissionPlugin.penalty_method = "zero"
    (problem,), _ = preflight.check_class(undated, [], stock, NOW)
    assert problem.kind == "no_due_date" and "penalty_method = 'zero'" in problem.detail


# ---- notebooks without their exercises -----------------------------------------------------------------------------

def graded_cells(nb):
    return [cell for cell in nb.cells if notebooks.nbgrader_meta(cell).get("grade_id")]


def stage(course, check, tmp_path):
    preflight.stage_handin(course, check, tmp_path / "staged")
    staged = notebooks.read(tmp_path / "staged" / f"{NB01}.ipynb")
    nbformat.validate(staged)
    return staged


def test_a_deleted_exercise_is_restored_in_place(course, release, solved, tmp_path):
    folder = hand_in(course, "deleted_exercise", without(solved, DELETED))
    check = check_one(course, "deleted_exercise")
    assert only(check) == preflight.Problem(
        "missing_exercises",
        f"{NB01}.ipynb: deleted rnn_unroll, test_rnn_unroll; restored from release/ for grading", "restored")
    assert not check.blocked and check.notebooks == {NB01: folder / f"{NB01}.ipynb"}
    staged = stage(course, check, tmp_path)
    assert [cell.source for cell in staged.cells] == [  # the student's answers, the release's cells where deleted
        (release if notebooks.nbgrader_meta(cell).get("grade_id") in DELETED else solved).cells[i].source
        for i, cell in enumerate(solved.cells)]
    assert [cell.id for cell in staged.cells] == [cell.id for cell in release.cells]
    assert notebooks.read(folder / f"{NB01}.ipynb").cells == without(solved, DELETED).cells  # submitted/ as it was


def test_a_notebook_without_cell_ids_gets_its_exercise_after_the_graded_cell_before(release, solved):
    old = without(solved, DELETED)
    old.nbformat_minor = 4
    for cell in old.cells:
        del cell["id"]
    restored = preflight.with_exercises_restored(old, release)
    nbformat.validate(restored)
    ids = [notebooks.nbgrader_meta(cell).get("grade_id") for cell in restored.cells]
    assert ids.index("rnn_unroll") == ids.index("test_rnn_step") + 1
    assert ids.index("test_rnn_unroll") == ids.index("rnn_unroll") + 1
    assert all("id" not in cell for cell in restored.cells)


def test_exercises_deleted_from_the_top_go_first(release, solved):
    first = ["rnn_step", "test_rnn_step"]
    bare = without(solved, first)
    bare.cells = [cell for cell in bare.cells if notebooks.nbgrader_meta(cell).get("grade_id")]  # nothing before
    restored = preflight.with_exercises_restored(bare, release)
    assert [notebooks.nbgrader_meta(c)["grade_id"] for c in restored.cells[:3]] == [*first, "rnn_unroll"]


@pytest.mark.parametrize("cells, what", [
    ([], "has no cells"),
    ([nbformat.v4.new_markdown_cell("my notes")], "holds none of the exercises (1 cells, none graded)"),
])
def test_an_empty_notebook_is_staged_as_the_release(course, release, tmp_path, cells, what):
    empty = nbformat.v4.new_notebook(cells=cells, metadata=release.metadata)
    hand_in(course, "empty_nb", empty)
    check = check_one(course, "empty_nb")
    assert (only(check).kind, only(check).action) == ("empty_notebook", "warned") and what in only(check).detail
    staged = stage(course, check, tmp_path)
    assert graded_cells(staged) == graded_cells(release)
    assert staged.cells[len(graded_cells(release)):] == cells  # the student's own cells kept, after
    assert only(check_one(course, "empty_nb", block=["empty_notebook"])).action == "blocked"


def test_missing_exercises_can_be_made_to_block(course, solved):
    hand_in(course, "deleted_blocked", without(solved, DELETED))
    check = check_one(course, "deleted_blocked", block=["missing_exercises"])
    assert only(check) == preflight.Problem("missing_exercises", f"{NB01}.ipynb: deleted rnn_unroll, test_rnn_unroll",
                                            "blocked")


# ---- what else is in a hand-in -------------------------------------------------------------------------------------

def test_unknown_files_are_ignored_and_not_staged_and_caches_are_not_problems(course, solved, tmp_path):
    folder = hand_in(course, "extras", solved)
    (folder / "notes.txt").write_text("my notes")
    (folder / f"{NB01} (copy).ipynb").write_text("{}")
    for name in ("data", ".ipynb_checkpoints", "__pycache__"):
        (folder / name).mkdir()
        (folder / name / "x").write_text("x")
    check = check_one(course, "extras")
    assert [(p.kind, p.action, p.detail) for p in check.problems] == [
        ("unknown_file", "ignored", f"{name} is not part of the assignment; not graded, not copied for grading")
        for name in (f"{NB01} (copy).ipynb", "data/", "notes.txt")]
    preflight.stage_handin(course, check, tmp_path / "staged")
    assert sorted(p.name for p in (tmp_path / "staged").iterdir()) == [f"{NB01}.ipynb", "timestamp.txt"]


def test_refused_entries_are_listed_as_refused(course, solved):
    folder = hand_in(course, "linker", solved)
    os.symlink("../../../source", folder / "steal")
    handins.set_aside(course, ["linker"])  # as the runner does before preflight
    check = check_one(course, "linker")
    assert only(check) == preflight.Problem("refused_entry", "refused symlink steal -> ../../../source", "refused")
    assert only(check_one(course, "linker", block=["refused_entry"])).action == "blocked"


def test_no_notebooks_warns_that_everything_scores_zero(course):
    folder = submissions.write_submission(course, "nothing", {})
    assert sorted(p.name for p in folder.iterdir()) == ["timestamp.txt"]
    check = check_one(course, "nothing")
    assert (only(check).kind, only(check).action) == ("no_notebooks", "warned")
    assert "every notebook scores 0" in only(check).detail and check.notebooks == {}
    assert check_one(course, "nothing", block=["no_notebooks"]).blocked


def test_a_blocked_handin_is_not_staged(course, solved, tmp_path):
    folder = hand_in(course, "stage_blocked", solved)
    (folder / f"{NB01}.ipynb").write_text(NOT_JSON)
    with pytest.raises(ValueError, match="not to be graded"):
        preflight.stage_handin(course, check_one(course, "stage_blocked"), tmp_path / "staged")


# ---- the class as a whole ------------------------------------------------------------------------------------------

def test_preflight_changes_nothing_in_the_course(course, solved, tmp_path):
    students = []
    for student, nb in {"t_clean": solved, "t_deleted": without(solved, DELETED),
                        "t_empty": nbformat.v4.new_notebook()}.items():
        hand_in(course, student, nb)
        students.append(student)
    (course / "submitted" / "t_deleted" / ASSIGNMENT / "extra.txt").write_text("x")
    write_timestamp(course, solved, "t_stamp", b"10:00 PST")
    students.append("t_stamp")
    watched = [course / "submitted", course / "release", course / "gradebook.db"]
    before = tree_digest(*watched[:2]) + hashlib.sha256(watched[2].read_bytes()).hexdigest()
    _, checks = preflight.check_class(course, students, now=NOW)
    for student, check in checks.items():
        if not check.blocked:
            preflight.stage_handin(course, check, tmp_path / student)
    assert tree_digest(*watched[:2]) + hashlib.sha256(watched[2].read_bytes()).hexdigest() == before
    assert not (course / "refused").joinpath("t_deleted").exists()


def test_format_table_has_a_line_of_counts_and_one_row_per_problem(course, solved):
    hand_in(course, "a_fine", solved)
    hand_in(course, "b_deleted", without(solved, DELETED))
    broken = hand_in(course, "c_broken", solved)
    (broken / f"{NB01}.ipynb").write_text('{"cells": [ this')
    (broken / "timestamp.txt").write_text("10:00 PST")
    class_problems, checks = preflight.check_class(course, ["a_fine", "b_deleted", "c_broken"], now=NOW)
    lines = preflight.format_table(class_problems, checks).splitlines()
    assert lines[0] == "preflight: 3 problems (2 blocked, 1 restored); 1 of 3 students not graded"
    assert [line.split()[:3] for line in lines[1:]] == [
        ["b_deleted", "restored", "missing_exercises"],
        ["c_broken", "blocked", "invalid_json"],
        ["c_broken", "blocked", "timestamp_unparseable"],
    ]
    assert lines[2].endswith(f"{NB01}.ipynb is not valid JSON (line 1, column 13: Expecting value)")
    kinds = ["missing_exercises", "invalid_json", "timestamp_unparseable"]
    assert len({line.index(kind) for line, kind in zip(lines[1:], kinds)}) == 1  # aligned columns


# ---- graded for real -----------------------------------------------------------------------------------------------

def graded_copy(course: Path, dest: Path) -> Path:
    """The course without its hand-ins: a course directory to grade one student's folder in."""
    shutil.copytree(course, dest, ignore=shutil.ignore_patterns("submitted", "refused", "logs"))
    return dest


@pytest.mark.autograde
def test_a_staged_handin_with_a_deleted_exercise_is_graded_with_its_other_points(course, solved, tmp_path):
    student = "real_deleted"
    hand_in(course, student, without(solved, DELETED))
    (check,) = preflight.check_class(course, [student], now=NOW)[1].values()

    as_handed_in = graded_copy(course, tmp_path / "as_handed_in")  # stock nbgrader on the hand-in as it is
    shutil.copytree(handins.handin_folder(course, student), handins.handin_folder(as_handed_in, student))
    result = pipeline.nbgrader(as_handed_in, "autograde", ASSIGNMENT, "--force", f"--student={student}")
    assert "KeyError: 'rnn_unroll'" in result.log.read_text()
    assert not (as_handed_in / "autograded" / student / ASSIGNMENT / f"{NB01}.ipynb").exists()  # dropped

    staged = graded_copy(course, tmp_path / "staged")
    preflight.stage_handin(course, check, handins.handin_folder(staged, student))
    result = pipeline.nbgrader(staged, "autograde", ASSIGNMENT, "--force", f"--student={student}")
    assert result.ok, result.log.read_text()[-3000:]
    scores = report.scores_by_cell(staged)[student][NB01]
    full = notebooks.points(solved)
    assert scores == dict(full, test_rnn_unroll=0.0)
    assert sum(scores.values()) == sum(full.values()) - full["test_rnn_unroll"]
