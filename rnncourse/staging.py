"""A private course directory where one student's hand-in is graded before anything of it reaches the course.

nbgrader's Autograde writes the gradebook as it goes (a dozen commits per notebook) and replaces `autograded/` first
thing, so a grade killed half-way leaves half a grade. Here it runs in a staging course of its own: a folder in this
machine's temporary space holding the staged hand-in (`rnncourse.preflight.stage_handin`), an SQLite gradebook with
the assignment's definition copied from the course's gradebook (same row ids, so grades map back one to one) and the
student's extension, and the course's configuration otherwise unchanged (sandbox, late policy, preprocessors).
`rnncourse.commit` then moves the result into the course in one step.

A staging folder belongs to one task. It is removed when the task ends; a task killed outright (SIGKILL) leaves it,
and the next task on this machine removes every staging folder whose process is gone (`sweep`).
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import tempfile
import warnings
from pathlib import Path

import sqlalchemy as sa

from .course import ASSIGNMENT
from .kernels.removal import remove_tree

PREFIX = "rnncourse-stage-"
_OWNER = re.compile(rf"^{re.escape(PREFIX)}(\d+)-")
# nbgrader's rows that define an assignment, parents first; copied into each staging gradebook.
_DEFINITION_TABLES = ("course", "assignment", "notebook", "base_cell", "grade_cells", "solution_cells",
                      "task_cells", "source_cell")
_TEMPLATES: dict = {}  # (main db url, definition digest) -> template gradebook file, one per process


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep(root: str | None = None) -> list[str]:
    """Remove the staging folders (and the fork server's and sandboxes' folders) of processes that no longer exist
    on this machine; return what was removed."""
    removed = []
    roots = {root or tempfile.gettempdir(), "/var/tmp"}
    for folder in sorted(p for r in roots for p in glob.glob(os.path.join(r, "rnncourse-*"))):
        match = re.match(r"^rnncourse-[a-z]+-(\d+)-", os.path.basename(folder))
        if match and os.path.isdir(folder) and not _alive(int(match.group(1))):
            remove_tree(folder)
            removed.append(folder)
    return removed


def new_folder(student_tag: str) -> Path:
    """A fresh staging folder owned by this process (its pid in the name, for `sweep`)."""
    return Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-{student_tag}-"))


def _copy_rows(source, dest, table, where) -> list:
    rows = [dict(r._mapping) for r in source.execute(sa.select(table).where(where))]
    if rows:
        dest.execute(sa.insert(table), rows)
    return rows


def _template(main_url: str, course_id: str, definition: str) -> Path:
    """An SQLite gradebook holding only the assignment's definition, built once per process and definition."""
    key = (main_url, definition)
    if key in _TEMPLATES and _TEMPLATES[key].exists():
        return _TEMPLATES[key]
    from nbgrader.api import Base, Gradebook

    folder = Path(tempfile.mkdtemp(prefix=f"rnncourse-template-{os.getpid()}-"))
    path = folder / "gradebook.db"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        Gradebook(f"sqlite:///{path}", course_id).close()  # nbgrader's schema and alembic version
    tables = Base.metadata.tables
    main, template = sa.create_engine(main_url, future=True), sa.create_engine(f"sqlite:///{path}", future=True)
    try:
        with main.connect() as src, template.begin() as dst:
            dst.execute(sa.delete(tables["course"]))
            _copy_rows(src, dst, tables["course"], tables["course"].c.id == course_id)
            assignments = _copy_rows(src, dst, tables["assignment"],
                                     sa.and_(tables["assignment"].c.name == ASSIGNMENT,
                                             tables["assignment"].c.course_id == course_id))
            notebooks = _copy_rows(src, dst, tables["notebook"],
                                   tables["notebook"].c.assignment_id.in_([a["id"] for a in assignments]))
            notebook_ids = [n["id"] for n in notebooks]
            cells = _copy_rows(src, dst, tables["base_cell"], tables["base_cell"].c.notebook_id.in_(notebook_ids))
            cell_ids = [c["id"] for c in cells]
            for name in ("grade_cells", "solution_cells", "task_cells"):
                _copy_rows(src, dst, tables[name], tables[name].c.id.in_(cell_ids))
            _copy_rows(src, dst, tables["source_cell"], tables["source_cell"].c.notebook_id.in_(notebook_ids))
    finally:
        main.dispose()
        template.dispose()
    _TEMPLATES[key] = path
    return path


def gradebook(folder: Path, main_url: str, course_id: str, definition: str, student: str, extension) -> str:
    """The staging gradebook in folder, for student; returns its URL."""
    from nbgrader.api import Gradebook

    path = folder / "gradebook.db"
    shutil.copyfile(_template(main_url, course_id, definition), path)
    url = f"sqlite:///{path}"
    if extension is not None:  # nbgrader counts lateness from the due date plus the student's extension
        with warnings.catch_warnings(), Gradebook(url, course_id) as gb:
            warnings.simplefilter("ignore")
            gb.update_or_create_student(student)
            gb.add_submission(ASSIGNMENT, student, extension=extension)
    return url


def record_nothing_gradeable(url: str, course_id: str, student: str, submitted_at) -> None:
    """nbgrader's rows for a hand-in without a notebook to grade (it refuses to run on one): each notebook scored 0
    as nbgrader scores a missing notebook, nothing left to grade by hand."""
    from nbgrader.api import Gradebook

    with warnings.catch_warnings(), Gradebook(url, course_id) as gb:
        warnings.simplefilter("ignore")
        gb.update_or_create_student(student)
        when = {"timestamp": submitted_at.strftime("%Y-%m-%d %H:%M:%S.%f UTC")} if submitted_at else {}
        gb.update_or_create_submission(ASSIGNMENT, student, **when)
        for notebook in gb.find_assignment(ASSIGNMENT).notebooks:
            for grade in gb.find_submission_notebook(notebook.name, ASSIGNMENT, student).grades:
                grade.auto_score = 0
                grade.needs_manual_grade = False
        gb.db.commit()


@contextlib.contextmanager
def staged(student_tag: str):
    """A staging folder for one task, removed when the task ends however it ends."""
    folder = new_folder(student_tag)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
