"""An instructor's bad day, for real: workers killed mid-grade, Ctrl-C, the runner killed, a notebook replaced by
garbage, two runs at once, and malformed hand-ins and timestamps, each through `python -m rnncourse autograde`.
After each, the gradebook and grades.csv are compared row by row with an uninterrupted run of the same class: nothing
lost, nothing duplicated, nothing stale, every student who is not graded visible as such, and no process or
temporary folder left. Once on SQLite with local workers, once on PostgreSQL with a Dask cluster."""

from __future__ import annotations

import csv
import datetime as dt
import glob
import os
import signal
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import nbformat
import psutil
import pytest
from conftest import POINTS, generated_course
from services import dask_cluster, postgres_server

from rnncourse import gradestatus, notebooks, pipeline, submissions
from rnncourse.course import ASSIGNMENT, NOTEBOOKS, gradebook_url, release_notebook, source_notebook, tool_env

pytestmark = pytest.mark.autograde

NB01 = NOTEBOOKS[0]
DUE = dt.datetime(2026, 11, 20, 17, 0, tzinfo=dt.timezone.utc)
ON_TIME = DUE - dt.timedelta(hours=5)
SLOW = "slow"  # sleeps in its first cell: the task that gets killed
SLOW_SECONDS = 5
LONG_ID = "x" * 140  # longer than the gradebook's student id column (128)
GLOB_ID = "stu[1]"
# student -> what the class's uninterrupted run must show: "graded" or "blocked" (preflight) and the reason's words
EXPECTED = {
    "solved_a": ("graded", ""), "solved_late": ("graded", ""), SLOW: ("graded", ""),
    "deleted_exercise": ("graded", ""), "empty_notebook": ("graded", ""), "no_notebooks": ("graded", ""),
    "invalid_json": ("blocked", "not valid JSON"), GLOB_ID: ("blocked", ""), LONG_ID: ("blocked", ""),
    "time_garbage": ("blocked", "timestamp"), "time_pst": ("blocked", "timestamp"),
    "time_future": ("blocked", "future"), "time_missing": ("blocked", "timestamp"),
    "time_no_offset": ("blocked", "offset"),
}
GRADED = sorted(s for s, (what, _) in EXPECTED.items() if what == "graded")
FEW = "s[lo]*"  # slow, solved_a, solved_late: the runs that only need a few students grade these


def _solved(course: Path):
    answers = notebooks.solutions(notebooks.read(source_notebook(course, NB01)))
    return notebooks.read(release_notebook(course, NB01)), answers


def write_class(course: Path) -> None:
    release, answers = _solved(course)
    solved = notebooks.filled(release, answers)
    for student in ("solved_a", GLOB_ID, LONG_ID):
        submissions.write_submission(course, student, {NB01: solved}, ON_TIME)
    late = submissions.write_submission(course, "solved_late", {NB01: solved}, DUE + dt.timedelta(days=1, seconds=1))
    notebooks.write(solved, late / "scratch.ipynb")  # an unknown extra notebook: ignored with a note
    slow = notebooks.filled(release, answers)
    slow.cells.insert(1, nbformat.v4.new_code_cell(f"import time\ntime.sleep({SLOW_SECONDS})"))
    submissions.write_submission(course, SLOW, {NB01: slow}, ON_TIME)
    deleted = notebooks.filled(release, answers)
    deleted.cells = [c for c in deleted.cells if notebooks.nbgrader_meta(c).get("grade_id") not in
                     ("embed", "test_embed")]
    submissions.write_submission(course, "deleted_exercise", {NB01: deleted}, ON_TIME)
    empty = notebooks.filled(release, {})
    empty.cells = []
    submissions.write_submission(course, "empty_notebook", {NB01: empty}, ON_TIME)
    submissions.write_submission(course, "no_notebooks", {}, ON_TIME)
    folder = submissions.write_submission(course, "invalid_json", {NB01: solved}, ON_TIME)
    (folder / f"{NB01}.ipynb").write_text('{"cells": [ this is not JSON')
    for student, text in {"time_garbage": "\x00\x01 not a time", "time_pst": "2026-11-20 10:00:00 PST",
                          "time_future": "2099-01-01T00:00:00+00:00", "time_no_offset": "2026-11-20T10:00:00"}.items():
        folder = submissions.write_submission(course, student, {NB01: solved}, ON_TIME)
        (folder / "timestamp.txt").write_text(text)
    folder = submissions.write_submission(course, "time_missing", {NB01: solved}, ON_TIME)
    (folder / "timestamp.txt").unlink()


def prepare(course: Path, db_url: str | None = None) -> Path:
    generated_course(course, db_url)
    write_class(course)
    return course


# ---- running and watching the runner -----------------------------------------------------------------------------

def start_runner(course: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "rnncourse", "autograde", "--course-dir", str(course), *args],
                            env=tool_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def run_runner(course: Path, *args: str) -> tuple[int, str]:
    proc = start_runner(course, *args)
    output, _ = proc.communicate(timeout=900)
    return proc.returncode, output


def statuses(db_url: str) -> dict:
    engine = gradestatus.engine_for(db_url)
    try:
        with engine.connect() as connection:
            return gradestatus.read(connection, "section9-rnn", ASSIGNMENT)
    finally:
        engine.dispose()


def wait_for(condition, what: str, seconds: float = 300, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the runner ended (exit {proc.returncode}) before {what}:\n{proc.stdout.read()}")
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def grader_of(db_url: str, student: str) -> int | None:
    """The pid of the process grading `student` now, from its status row ("being graded by host:pid")."""
    try:
        status = statuses(db_url).get(student)
    except Exception:  # the table may not exist yet
        return None
    if status and status.state == gradestatus.PENDING and status.reason.startswith("being graded by"):
        return int(status.worker.rsplit(":", 1)[1])
    return None


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def assert_all_gone(processes: list[psutil.Process], seconds: float = 60) -> None:
    def gone():
        return not [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    wait_for(gone, "the runner's processes to end", seconds)


def leftover_folders() -> list[str]:
    """Grading folders on this machine whose process is gone (the runner's sweep removes them)."""
    found = glob.glob("/tmp/rnncourse-*") + glob.glob("/var/tmp/rnncourse-*")
    dead = []
    for path in found:
        parts = os.path.basename(path).split("-")
        if len(parts) > 2 and parts[2].isdigit() and not psutil.pid_exists(int(parts[2])):
            dead.append(path)
    return dead


# ---- what a run left behind -------------------------------------------------------------------------------------

def gradebook_rows(db_url: str) -> dict:
    """student -> (number of submissions, timestamp, {notebook: (late penalty, {grade: (auto, manual)})})."""
    from nbgrader.api import Gradebook

    table = {}
    with warnings.catch_warnings(), Gradebook(db_url) as gb:
        warnings.simplefilter("ignore")
        for submission in gb.assignment_submissions(ASSIGNMENT):
            notebooks_ = {nb.name: (nb.late_submission_penalty,
                                    {g.name: (g.auto_score, g.manual_score) for g in nb.grades})
                          for nb in submission.notebooks}
            count = sum(s.student_id == submission.student_id for s in gb.assignment_submissions(ASSIGNMENT))
            table[submission.student_id] = (count, submission.timestamp, notebooks_)
    return table


def flagged(db_url: str, student: str) -> bool:
    """nbgrader's own flag on the student's submitted notebook, which Formgrader shows."""
    from nbgrader.api import Gradebook

    with warnings.catch_warnings(), Gradebook(db_url) as gb:
        warnings.simplefilter("ignore")
        return gb.find_submission_notebook(NB01, ASSIGNMENT, student).flagged


def exported(course: Path) -> dict:
    assert pipeline.export(course).ok
    with open(course / "grades.csv", newline="") as f:
        return {row["student_id"]: row for row in csv.DictReader(f)}


@dataclass
class Snapshot:
    rows: dict
    csv: dict
    states: dict


def snapshot(course: Path, db_url: str) -> Snapshot:
    return Snapshot(gradebook_rows(db_url), exported(course),
                    {s: st.state for s, st in statuses(db_url).items()})


def assert_same_as(reference: Snapshot, now: Snapshot) -> None:
    assert now.rows.keys() == reference.rows.keys()
    for student, row in reference.rows.items():
        assert now.rows[student] == row, student
    assert now.states == reference.states
    assert now.csv.keys() == reference.csv.keys()
    for student, row in reference.csv.items():
        assert now.csv[student] == row, student


# ---- the uninterrupted run --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Snapshot:
    course = prepare(tmp_path_factory.mktemp("faults") / "reference")
    code, output = run_runner(course, "--workers", "2")
    assert code == 1, output  # the blocked students are not graded, and the exit code says so
    snap = snapshot(course, gradebook_url(course))
    snap.output = output
    return snap


def test_the_uninterrupted_run_grades_the_class_as_expected(reference):
    assert sorted(reference.rows) == GRADED, "every graded student has rows; no blocked one does"
    assert all(row[0] == 1 for row in reference.rows.values()), "one submission row each"
    for student, (what, words) in EXPECTED.items():
        if what == "blocked":
            line = next((l for l in reference.output.splitlines() if l.startswith(f"  BLOCKED  {student}:")), "")
            assert words in line, f"{student}: {line!r}\n{reference.output}"
    assert reference.states == {s: ("complete" if what == "graded" else "failed")
                                for s, (what, _) in EXPECTED.items() if s != LONG_ID}


def test_malformed_hand_ins_are_graded_as_the_readme_says(reference):
    csv_rows = reference.csv
    full = reference.rows["solved_a"][2][NB01][1]
    assert reference.rows["deleted_exercise"][2][NB01][1]["test_embed"][0] == 0, "the restored exercise scores 0"
    assert {g: s for g, s in reference.rows["deleted_exercise"][2][NB01][1].items() if g != "test_embed"} \
        == {g: s for g, s in full.items() if g != "test_embed"}, "the other exercises keep their points"
    assert reference.rows["solved_late"][2][NB01][1] == full, "an unknown extra notebook is ignored"
    assert reference.rows["solved_late"][2][NB01][0] == pytest.approx(0.2 * POINTS[NB01]), "late: 2 started days, 20%"
    assert "scratch.ipynb is not part of the assignment" in csv_rows["solved_late"]["notes"]
    assert all(s == (0, None) for s in reference.rows["empty_notebook"][2][NB01][1].values())
    assert all(s == (0, None) for nb in reference.rows["no_notebooks"][2].values() for s in nb[1].values())
    assert csv_rows["no_notebooks"]["score"] == "0.0", "a folder without notebooks is a student with 0, not lost"
    for student, (what, _) in EXPECTED.items():
        if what == "blocked" and student in csv_rows:
            assert csv_rows[student]["score"] == "", f"{student} was not graded: no number"


# ---- SQLite, local workers: Ctrl-C, resume, a killed worker, SIGKILL, invalid regrade, two runs ----------------

@pytest.fixture(scope="module")
def sqlite_course(tmp_path_factory) -> Path:
    return prepare(tmp_path_factory.mktemp("faults") / "sqlite")


def test_ctrl_c_stops_and_summarises_then_a_rerun_resumes_through_a_killed_worker(sqlite_course, reference):
    course, url = sqlite_course, gradebook_url(sqlite_course)
    proc = start_runner(course, "--workers", "2")
    wait_for(lambda: grader_of(url, SLOW) and any(s.state == "complete" for s in statuses(url).values()),
             "one student graded and the slow one in progress", proc=proc)
    processes = descendants(proc.pid)
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, output
    assert "INTERRUPTED" in output and f"PENDING  {SLOW}" in output, output
    assert "Traceback" not in output, output
    assert_all_gone(processes)
    states = {s: st.state for s, st in statuses(url).items()}
    assert states[SLOW] == "pending"
    rows = exported(course)
    pending = [s for s, state in states.items() if state == "pending"]
    assert all(rows[s]["score"] == "" and "pending" in rows[s]["notes"] for s in pending if s in rows), \
        "a student the run did not finish shows no number"
    done = [s for s, state in states.items() if state == "complete"]

    # The rerun resumes; the worker grading the slow student is killed (as the OOM killer would): a retry, not a grade.
    proc = start_runner(course, "--workers", "2")
    os.kill(wait_for(lambda: grader_of(url, SLOW), "the slow student in progress", proc=proc), signal.SIGKILL)
    output, _ = proc.communicate(timeout=600)
    assert proc.returncode == 1, output  # the blocked students
    assert f"{len(done)} students already graded" in output, output
    assert f"{SLOW:24s} RETRY" in output and "killed by signal 9" in output, output
    assert "[attempt 2]" in next(l for l in output.splitlines() if l.startswith(SLOW) and "/" in l)
    assert_same_as(reference, snapshot(course, url))
    assert not leftover_folders()


def test_a_killed_runner_takes_its_workers_and_the_rerun_repairs(sqlite_course, reference):
    course, url = sqlite_course, gradebook_url(sqlite_course)
    proc = start_runner(course, "--workers", "2", "--force", "--student", FEW)
    wait_for(lambda: grader_of(url, SLOW), "the slow student in progress", proc=proc)
    processes = descendants(proc.pid)
    proc.kill()
    proc.communicate(timeout=60)
    assert_all_gone(processes)
    assert statuses(url)[SLOW].state == "pending"
    code, output = run_runner(course, "--workers", "2")
    assert code == 1, output
    assert_same_as(reference, snapshot(course, url))
    assert not leftover_folders()


def test_a_notebook_replaced_by_garbage_is_not_graded_and_its_old_grade_not_shown(sqlite_course, reference):
    course, url = sqlite_course, gradebook_url(sqlite_course)
    handed_in = submissions.submitted_dir(course, "solved_a") / f"{NB01}.ipynb"
    good = handed_in.read_bytes()
    handed_in.write_text("{ garbage")
    code, output = run_runner(course, "--workers", "2")
    assert code == 1 and "  BLOCKED  solved_a: 01_rnn_unrolling.ipynb is not valid JSON" in output, output
    rows = exported(course)
    assert rows["solved_a"]["score"] == "" and "not valid JSON" in rows["solved_a"]["notes"]
    assert gradebook_rows(url)["solved_a"] == reference.rows["solved_a"], "the earlier grade is kept, not shown"
    assert flagged(url, "solved_a"), "Formgrader shows the submission flagged"
    handed_in.write_bytes(good)
    code, output = run_runner(course, "--workers", "2")
    assert f"{len(GRADED)} students already graded" in output, "back to the graded hand-in: nothing to regrade"
    assert not flagged(url, "solved_a")
    assert_same_as(reference, snapshot(course, url))


def test_two_runs_at_once_grade_each_student_once_and_keep_their_own_logs(sqlite_course, reference):
    course, url = sqlite_course, gradebook_url(sqlite_course)
    runs = [start_runner(course, "--workers", "1", "--force", "--student", "solved_a") for _ in range(2)]
    outputs = [run.communicate(timeout=600)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    logs = {Path(p).parent.name for p in glob.glob(str(course / "logs" / "autograde" / "*" / "solved_a.log"))}
    assert len(logs) >= 2, "each run writes its own log folder"
    assert_same_as(reference, snapshot(course, url))


# ---- PostgreSQL and Dask: a killed Dask worker, a killed runner ------------------------------------------------

def test_postgres_and_dask_survive_a_killed_worker_and_a_killed_runner(tmp_path, reference):
    with postgres_server() as db_url, dask_cluster(tmp_path / "dask", n_workers=3) as (address, workers):
        course = prepare(tmp_path / "course", db_url)
        proc = start_runner(course, "--scheduler", address)
        victim = wait_for(lambda: grader_of(db_url, SLOW), "the slow student in progress", proc=proc)
        assert victim in [w.pid for w in workers], "the task runs in a Dask worker process"
        os.kill(victim, signal.SIGKILL)
        output, _ = proc.communicate(timeout=600)
        assert proc.returncode == 1, output
        assert "[attempt 2]" in next(l for l in output.splitlines() if l.startswith(SLOW)), output
        assert_same_as(reference, snapshot(course, db_url))

        proc = start_runner(course, "--scheduler", address, "--force", "--student", FEW)
        wait_for(lambda: grader_of(db_url, SLOW), "the slow student in progress", proc=proc)
        proc.kill()
        proc.communicate(timeout=60)
        code, output = run_runner(course, "--scheduler", address)
        assert code == 1, output
        assert_same_as(reference, snapshot(course, db_url))
        assert LONG_ID not in gradebook_rows(db_url), "a 140-character id is refused before PostgreSQL sees it"
        assert not leftover_folders(), "the killed worker's folders were swept by the next task on this machine"
