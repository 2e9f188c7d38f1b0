"""A fingerprint of what a grade depends on: the hand-in's files, the assignment's definition, the due date.

Two runs that see the same key would compute the same grade, so a rerun skips a student whose grade is complete for
the current key (`rnncourse.classgrade`), and `export` shows a number only when the grade's key is the current one
(`rnncourse.gradestatus.standing`). The key covers every regular file of `submitted/<student>/<assignment>/` by
path and content (editors' `.ipynb_checkpoints/` and `__pycache__/` excepted, as nbgrader's exchange ignores them),
the assignment's cells as the gradebook knows them (a changed test or point value means regrading), its due date and
the student's extension (a changed late penalty).
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import sqlalchemy as sa

from .course import ASSIGNMENT

IGNORED_DIRS = {".ipynb_checkpoints", "__pycache__"}


def handin_digest(folder: Path) -> str | None:
    """sha256 over the hand-in's regular files (relative path and bytes, in name order); None when the folder is
    missing. Links and special files are not followed or read (rnncourse.handins sets them aside before grading)."""
    folder = Path(folder)
    if not folder.is_dir() or folder.is_symlink():
        return None
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d not in IGNORED_DIRS)
        for name in sorted(files):
            path = Path(root) / name
            st = os.lstat(path)
            if not stat.S_ISREG(st.st_mode):
                continue
            relative = path.relative_to(folder).as_posix().encode("utf-8", "surrogateescape")
            digest.update(len(relative).to_bytes(8, "big") + relative + st.st_size.to_bytes(8, "big"))
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


def definition_digest(connection, course_id: str, assignment: str = ASSIGNMENT) -> str:
    """sha256 over the assignment's due date and cells (name, checksum, points) as the gradebook holds them."""
    from nbgrader.api import Assignment, GradeCell, Notebook, SourceCell

    digest = hashlib.sha256()
    due = connection.execute(sa.select(Assignment.duedate).where(Assignment.name == assignment,
                                                                 Assignment.course_id == course_id)).scalar()
    digest.update(repr(due).encode())
    sources = connection.execute(
        sa.select(Notebook.name, SourceCell.name, SourceCell.checksum).join(Assignment)
        .join(SourceCell, SourceCell.notebook_id == Notebook.id)
        .where(Assignment.name == assignment, Assignment.course_id == course_id))
    # GradeCell on its own (it brings its base_cell row): joining BaseCell and then GradeCell makes SQLAlchemy alias
    # the second base_cell, unconstrained, which pairs every notebook with every grade cell of the gradebook.
    points = connection.execute(
        sa.select(Notebook.name, GradeCell.name, GradeCell.max_score).join(Assignment)
        .join(GradeCell, GradeCell.notebook_id == Notebook.id)
        .where(Assignment.name == assignment, Assignment.course_id == course_id))
    for row in sorted(map(tuple, sources)) + sorted(map(tuple, points)):
        digest.update(repr(row).encode())
    return digest.hexdigest()


def extension_of(connection, course_id: str, student: str, assignment: str = ASSIGNMENT):
    from nbgrader.api import Assignment, SubmittedAssignment

    return connection.execute(
        sa.select(SubmittedAssignment.extension).join(Assignment)
        .where(Assignment.name == assignment, Assignment.course_id == course_id,
               SubmittedAssignment.student_id == student)).scalar()


def current_key(connection, course_id: str, student: str, folder: Path, definition: str | None = None) -> str | None:
    """The key of the student's hand-in in `folder` now; pass `definition` (definition_digest) when keying many
    students, so the assignment's cells are read once."""
    definition = definition_digest(connection, course_id) if definition is None else definition
    return handin_key(folder, definition, extension_of(connection, course_id, student))


def handin_key(folder: Path, definition: str, extension=None) -> str | None:
    """The key of one student's hand-in under the assignment's definition digest; None when nothing is handed in."""
    files = handin_digest(folder)
    if files is None:
        return None
    return hashlib.sha256(f"{files}\n{definition}\n{extension!r}".encode()).hexdigest()
