"""Move one student's staged grade into the course: gradebook rows and autograded/ files together, or nothing.

The order makes every crash safe (a crash is any point at which the process may die):

1. the staged `autograded/` folder is copied next to the student's, as `.section09.ready-<key>` (unused until 3);
2. one database transaction writes the student's nbgrader rows (created as nbgrader's `add_submission` would, or
   updated in place: manual scores and comments kept, as nbgrader's regrade keeps them) and turns their status row
   `complete` with the hand-in's key (`rnncourse.gradestatus`);
3. the ready folder replaces `autograded/<student>/section09` (two renames, the old copy removed after).

Dead before 2: nothing changed but a ready folder, which `finish` removes. Dead after 2: the gradebook has the new
grade, and `finish` completes step 3 from the ready folder whose key the status row names. Tasks for one student are
serialised by a lock (`student_lock`) that the kernel releases when its holder dies, and each task runs `finish`
first, so two runs at once, or a run after a killed one, find the student's folder and rows in agreement.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
from pathlib import Path

import sqlalchemy as sa

from . import gradestatus
from .course import ASSIGNMENT

READY = f".{ASSIGNMENT}.ready-"
OLD = f".{ASSIGNMENT}.old-"
LOCKS = Path(".grading") / "locks"


@contextlib.contextmanager
def student_lock(course_dir: Path, student: str):
    """Hold the student's grading lock (waits for another run's task on the same student to end). The lock is the
    open file's; the kernel drops it when the holding process dies, however it dies."""
    folder = Path(course_dir) / LOCKS
    folder.mkdir(parents=True, exist_ok=True)
    name = hashlib.sha256(student.encode("utf-8", "surrogateescape")).hexdigest()[:32] + ".lock"
    with open(folder / name, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _student_folder(course_dir: Path, student: str) -> Path:
    return Path(course_dir) / "autograded" / student


def finish(course_dir: Path, student: str, graded_key: str) -> None:
    """Complete or undo what a task that died during a commit left in the student's autograded/ folder: a ready
    folder of the committed key (graded_key) takes its place; any other ready or old folder goes."""
    folder = _student_folder(course_dir, student)
    if not folder.is_dir():
        return
    target = folder / ASSIGNMENT
    committed = [p for p in folder.glob(f"{READY}*") if graded_key and p.name.startswith(f"{READY}{graded_key}")]
    for ready in committed[:1]:
        _swap_in(ready, target)
    olds = sorted(folder.glob(f"{OLD}*"))
    if not target.exists() and olds:  # died between the two renames of a commit whose ready folder is gone
        os.rename(olds.pop(), target)
    for leftover in [*folder.glob(f"{READY}*"), *olds]:
        shutil.rmtree(leftover, ignore_errors=True)


def _swap_in(ready: Path, target: Path) -> None:
    old = target.with_name(f"{OLD}{ready.name.removeprefix(READY)}")
    if target.exists():
        os.rename(target, old)
    os.rename(ready, target)
    shutil.rmtree(old, ignore_errors=True)


def place_files(course_dir: Path, student: str, staged_autograded: Path, handin_key: str, run_id: str) -> Path:
    """Step 1: the staged autograded folder copied beside the student's, under a name no reader looks at."""
    folder = _student_folder(course_dir, student)
    folder.mkdir(parents=True, exist_ok=True)
    ready = folder / f"{READY}{handin_key}-{run_id}"
    partial = folder / f".{ASSIGNMENT}.partial-{handin_key}-{run_id}"
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(staged_autograded, partial)
    os.rename(partial, ready)
    return ready


def _rows(connection, table, where) -> list[dict]:
    return [dict(r._mapping) for r in connection.execute(sa.select(table).where(where))]


def write_rows(main, staged, course_id: str, student: str, only: set | None = None) -> None:
    """Step 2's nbgrader part, inside the caller's transaction on the course gradebook (`main`), from the staging
    gradebook (`staged`, a connection); `only`: just these notebooks' rows (by name)."""
    from nbgrader.api import Assignment, Base, Student

    tables = Base.metadata.tables
    assignment_id = main.execute(sa.select(Assignment.id).where(Assignment.name == ASSIGNMENT,
                                                                Assignment.course_id == course_id)).scalar_one()
    if main.execute(sa.select(Student.id).where(Student.id == student)).first() is None:
        main.execute(sa.insert(tables["student"]).values(
            **_rows(staged, tables["student"], tables["student"].c.id == student)[0]))
    submitted = tables["submitted_assignment"]
    new_sub = _rows(staged, submitted, sa.and_(submitted.c.student_id == student,
                                               submitted.c.assignment_id == assignment_id))[0]
    old_sub = _rows(main, submitted, sa.and_(submitted.c.student_id == student,
                                             submitted.c.assignment_id == assignment_id))
    if old_sub:
        sub_id = old_sub[0]["id"]
        main.execute(sa.update(submitted).where(submitted.c.id == sub_id).values(timestamp=new_sub["timestamp"]))
    else:
        sub_id = new_sub["id"]
        main.execute(sa.insert(submitted).values(**new_sub))
    notebooks = tables["submitted_notebook"]
    names = dict(main.execute(sa.select(tables["notebook"].c.id, tables["notebook"].c.name)).all())
    for nb in _rows(staged, notebooks, notebooks.c.assignment_id == new_sub["id"]):
        if only is not None and names.get(nb["notebook_id"]) not in only:
            continue
        old_nb = _rows(main, notebooks, sa.and_(notebooks.c.assignment_id == sub_id,
                                                notebooks.c.notebook_id == nb["notebook_id"]))
        values = dict(flagged=False, late_submission_penalty=nb["late_submission_penalty"])
        if old_nb:
            nb_id = old_nb[0]["id"]
            main.execute(sa.update(notebooks).where(notebooks.c.id == nb_id).values(**values))
        else:
            nb_id = nb["id"]
            main.execute(sa.insert(notebooks).values(**dict(nb, assignment_id=sub_id, **values)))
        _merge_cells(main, staged, tables["grade"], nb["id"], nb_id, _grade_values)
        _merge_cells(main, staged, tables["comment"], nb["id"], nb_id, _comment_values)


def _grade_values(new: dict, old: dict | None) -> dict:
    manual = old is not None and old["manual_score"] is not None  # nbgrader: a manual score asks for review
    return dict(auto_score=new["auto_score"], needs_manual_grade=bool(new["needs_manual_grade"] or manual))


def _comment_values(new: dict, old: dict | None) -> dict:
    return dict(auto_comment=new["auto_comment"])


def _merge_cells(main, staged, table, staged_nb_id: str, main_nb_id: str, values_of) -> None:
    """Each staged grade or comment onto the course's row of the same cell: updated when there, else inserted."""
    existing = {r["cell_id"]: r for r in _rows(main, table, table.c.notebook_id == main_nb_id)}
    for new in _rows(staged, table, table.c.notebook_id == staged_nb_id):
        old = existing.get(new["cell_id"])
        if old is not None:
            main.execute(sa.update(table).where(table.c.id == old["id"]).values(**values_of(new, old)))
        else:
            main.execute(sa.insert(table).values(**dict(new, notebook_id=main_nb_id, **values_of(new, None))))


def commit(course_dir: Path, engine, staged_url: str, staged_autograded: Path | None, course_id: str, student: str,
           handin_key: str, run_id: str, worker: str, attempts: int, note: str = "") -> None:
    """Steps 1 to 3 for one student (the caller holds `student_lock`). staged_autograded is None when nothing was
    gradeable (no notebook): the student's autograded folder then goes, as nbgrader's --force would remove it."""
    ready = place_files(course_dir, student, staged_autograded, handin_key, run_id) if staged_autograded else None
    staged_engine = sa.create_engine(staged_url, future=True)
    try:
        with staged_engine.connect() as staged, engine.begin() as main:
            gradestatus.ensure_table(main)
            write_rows(main, staged, course_id, student)
            gradestatus.write(main, course_id, ASSIGNMENT, student, gradestatus.COMPLETE, handin_key, reason=note,
                              attempts=attempts, run_id=run_id, worker=worker, graded_key=handin_key)
    except BaseException:
        if ready is not None:
            shutil.rmtree(ready, ignore_errors=True)
        raise
    finally:
        staged_engine.dispose()
    target = _student_folder(course_dir, student) / ASSIGNMENT
    if ready is not None:
        _swap_in(ready, target)
    elif target.is_dir():
        shutil.rmtree(target)
