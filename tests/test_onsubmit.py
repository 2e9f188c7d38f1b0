"""The on-submit grading service on a real course hub (JupyterHub starts it as the instructor): students submit
through the exchange with `nbgrader submit` as their own accounts, and nobody runs anything as the instructor.

test_killed_mid_grade: the service is killed (SIGKILL) while it grades; the hub starts it again, and every
submission ends graded exactly once: the gradebook is checked row by row (nbgrader's grades, the runner's status, the
service's ledger), each submission's feedback is in the exchange, and nothing half-collected is left. This hub shows
the score only in on-submit feedback (c.OnSubmit.feedback = "score"); the browser test shows per-test feedback and the
rate limit's words (tests/test_hub_browser.py)."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from nbgrader.utils import notebook_hash

from hubfixture import course_hub
from rnncourse import gradestatus, notebooks
from rnncourse.submissions import PARTIAL_SOLVED
from rnncourse.course import ASSIGNMENT, NOTEBOOKS, release_notebook, repo_root, source_notebook
from rnncourse.hub import accounts, layout
from rnncourse.onsubmit import ledger

pytestmark = pytest.mark.hub

STUDENTS = ["ann", "bob", "cyd"]
# What each hands in first: ann all three notebooks, the first functions of each solved (the demo's "partial"), bob
# notebook 01 untouched, cyd notebook 01 solved. Then ann alone hands in all three solved.
HANDED_IN = {"ann": {nb: PARTIAL_SOLVED[nb] for nb in NOTEBOOKS}, "bob": {NOTEBOOKS[0]: ()},
             "cyd": {NOTEBOOKS[0]: None}}
EXPECTED = {"ann": 20.0, "bob": 0.0, "cyd": 15.0}  # the demo's partial scores 20 (README)
SERVICE_RESTART_S = 90  # the hub polls its services every 30 s
GRADED_S = 600  # the class graded, the restart included, on a busy 2-core machine


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    with course_hub(STUDENTS, tmp_path_factory.mktemp("onsubmit"),
                    'c.OnSubmit.feedback = "score"\nc.OnSubmit.per_minutes = 0') as running:
        saved = dict(os.environ)
        os.environ.update(running.env)  # this hub's exchange and instructor, for accounts.run_as
        try:
            yield running
        finally:
            os.environ.clear()
            os.environ.update(saved)


def as_user(user: str, command: str, cwd: Path) -> str:
    done = accounts.run_as(user, ["bash", "-c", command], cwd)
    assert done.returncode == 0, f"{user}: {command}\n{done.stdout}{done.stderr}"
    return done.stdout + done.stderr


def hand_in(student: str, answers: dict) -> None:
    """The student fetches section09 (once), saves their answers and submits (what their terminal would run).
    answers: notebook -> the grade ids of the functions solved (None: all); notebooks not named are not handed in."""
    home = layout.home(student)
    folder = home / ASSIGNMENT
    if not folder.exists():
        as_user(student, f"nbgrader fetch_assignment {ASSIGNMENT}", home)
    for nb in NOTEBOOKS:
        path = folder / f"{nb}.ipynb"
        if nb not in answers:
            path.unlink(missing_ok=True)
            continue
        solutions = notebooks.solutions(notebooks.read(source_notebook(repo_root(), nb)))
        chosen = {k: v for k, v in solutions.items() if answers[nb] is None or k in answers[nb]}
        notebooks.write(notebooks.filled(notebooks.read(release_notebook(repo_root(), nb)), chosen), path)
        shutil.chown(path, student)
    as_user(student, f"nbgrader submit {ASSIGNMENT}", home)


def gradebook(hub):
    return sa.create_engine(f"sqlite:///{hub.course_dir / 'gradebook.db'}")


def ledger_rows(hub) -> list:
    engine = gradebook(hub)
    try:
        ledger.ensure_table(engine)
        return list(ledger.read(engine, layout.COURSE_ID, ASSIGNMENT).values())
    finally:
        engine.dispose()


def statuses(hub) -> dict:
    engine = gradebook(hub)
    try:
        with engine.connect() as connection:
            return gradestatus.read(connection, layout.COURSE_ID, ASSIGNMENT)
    finally:
        engine.dispose()


def service_pids(hub) -> list[int]:
    found = subprocess.run(["pgrep", "-u", hub.instructor, "-f", "-x", ".*python -m rnncourse.onsubmit .*"],
                           capture_output=True, text=True).stdout.split()
    return [int(pid) for pid in found]


def wait_for(condition, timeout_s: float, what: str, hub):
    deadline = time.monotonic() + timeout_s
    while not (result := condition()):
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s} s\n" + \
            (hub.course_dir / "logs" / "on-submit.log").read_text()[-3000:]
        time.sleep(0.2)
    return result


def test_killed_mid_grade(hub):
    teacher = hub.instructor
    due = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=7)).strftime("%Y-%m-%d %H:%M:%S UTC")
    as_user(teacher, f"nbgrader db assignment add {ASSIGNMENT} --duedate='{due}' && "
                     f"nbgrader release_assignment {ASSIGNMENT}", hub.course_dir)
    first = wait_for(lambda: service_pids(hub), SERVICE_RESTART_S, "the hub started the grading service", hub)
    for student in hub.students:
        hand_in(student, HANDED_IN[student.split("-")[-1]])

    # Kill the service while a student's grade is in progress (the runner's row says "being graded").
    wait_for(lambda: any(s.state == gradestatus.PENDING and "being graded" in s.reason
                         for s in statuses(hub).values()), GRADED_S, "a grade in progress", hub)
    for pid in first:
        os.kill(pid, signal.SIGKILL)
    killed_at = time.monotonic()
    restarted = wait_for(lambda: [p for p in service_pids(hub) if p not in first], SERVICE_RESTART_S,
                         "the hub started the service again", hub)
    assert restarted

    # Every submission graded once: one ledger row each, all graded.
    inbound = sorted(os.listdir(hub.course_exchange / "inbound"))
    assert len(inbound) == len(hub.students)
    rows = wait_for(lambda: (r := ledger_rows(hub)) and len(r) == len(inbound) and
                    all(x.state == ledger.GRADED for x in r) and r, GRADED_S, "every submission graded", hub)
    assert sorted(r.submission for r in rows) == inbound
    print(f"killed, restarted and graded in {time.monotonic() - killed_at:.0f} s")

    # The gradebook, row by row: each student one submission, scored as handed in; the runner's rows complete.
    results = hub.results()
    status = statuses(hub)
    for student in hub.students:
        short = student.split("-")[-1]
        total = sum(r.final_score for (s, _), r in results.items() if s == student)
        assert total == EXPECTED[short], (student, total)
        assert status[student].state == gradestatus.COMPLETE and status[student].graded_key == \
            status[student].handin_key, status[student]
        row = next(r for r in rows if r.student == student)
        assert (row.score, row.max_score) == (EXPECTED[short], 48.0), row
    with gradebook(hub).connect() as connection:
        per_student = connection.execute(sa.text(
            "select student.id, count(*) from submitted_assignment join student on student.id = "
            "submitted_assignment.student_id group by student.id")).all()
        grades = connection.execute(sa.text(
            "select count(*), count(distinct notebook_id || '/' || cell_id) from grade")).one()
    assert sorted(per_student) == sorted((s, 1) for s in hub.students)
    assert grades[0] == grades[1]  # no grade cell written twice
    assert not list((hub.course_dir / "submitted").glob("*/.collecting-*"))

    # Each submission's feedback is released under its own secret: the score, and no test names (score only).
    for name in inbound:
        folder = hub.course_exchange / "inbound" / name
        secret = (folder / "submission_secret.txt").read_text()
        for nb in [p.stem for p in folder.glob("*.ipynb")]:
            page = (hub.course_exchange / "feedback" / f"{notebook_hash(secret=secret, notebook_id=nb)}.html")
            text = page.read_text()
            assert "Your results" in text and "points" in text, name
            assert "check_" not in text and "| test | result |" not in text and "HIDDEN" not in text

    log = (hub.course_dir / "logs" / "on-submit.log").read_text()
    assert log.count("on-submit grading on") >= 2  # started, killed, started again
    # The service grades as the instructor, not root, and still forks its kernels from a zygote (no interpreter
    # start and `import torch` per notebook): no grading log says it fell back to starting them one by one.
    grading_logs = [p for p in (hub.course_dir / "logs").rglob("*.log") if p.name != "on-submit.log"]
    assert grading_logs
    for path in grading_logs:
        assert "kernels start one by one" not in path.read_text(errors="replace"), path

    # ann alone submits again, all solved: graded again.
    ann = hub.students[0]
    hand_in(ann, {nb: None for nb in NOTEBOOKS})
    wait_for(lambda: len([r for r in ledger_rows(hub) if r.state == ledger.GRADED]) == len(inbound) + 1, GRADED_S,
             "ann's second submission graded", hub)
    assert sum(r.final_score for (s, _), r in hub.results().items() if s == ann) == 48.0
    newest = max((r for r in ledger_rows(hub) if r.student == ann), key=lambda r: r.received_at)
    assert (newest.state, newest.score) == (ledger.GRADED, 48.0)
