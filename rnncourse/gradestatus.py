"""Where each student's grade stands, kept in the gradebook's own database beside nbgrader's tables.

nbgrader's tables say what was graded, not whether that grade is whole or from the hand-in now in `submitted/`. The
runner (`rnncourse.classgrade`) keeps one row per (course, assignment, student) in the table `rnncourse_grade_status`:

- `pending`: a run means to grade this hand-in and has not finished it (a run killed or interrupted leaves this);
- `failed`: the last try could not grade it; `reason` says why in words; earlier rows are kept, but not shown as a grade;
- `complete`: nbgrader's rows and autograded/ are from the hand-in whose key (`rnncourse.handinkey`) is `handin_key`.

`graded_key` is the key of the hand-in that nbgrader's rows are from; only a commit changes it. The row turns `complete` in the same transaction that writes the student's grades (`rnncourse.commit`), so it never
claims more than is there. `export`, the score table and the reports read it (`standing`); Formgrader's instructor
sees the student's submitted notebooks flagged while their grade is not complete. nbgrader itself ignores the table.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa

PENDING, FAILED, COMPLETE = "pending", "failed", "complete"
TABLE_NAME = "rnncourse_grade_status"
REASON_CHARS = 2000

_metadata = sa.MetaData()
table = sa.Table(
    TABLE_NAME, _metadata,
    sa.Column("course_id", sa.String(128), primary_key=True),
    sa.Column("assignment", sa.String(128), primary_key=True),
    sa.Column("student", sa.String(128), primary_key=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("handin_key", sa.String(64), nullable=False, default=""),  # the hand-in the last try was about
    sa.Column("graded_key", sa.String(64), nullable=False, default=""),  # the hand-in nbgrader's rows are from
    sa.Column("reason", sa.Text, nullable=False, default=""),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),  # tries of the current run (worker deaths retry)
    sa.Column("run_id", sa.String(64), nullable=False, default=""),
    sa.Column("worker", sa.String(255), nullable=False, default=""),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)


@dataclass(frozen=True)
class Status:
    student: str
    state: str
    handin_key: str = ""
    graded_key: str = ""
    reason: str = ""
    attempts: int = 0
    run_id: str = ""
    worker: str = ""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)  # naive UTC, as nbgrader stores times


def ensure_table(connection) -> None:
    table.create(connection, checkfirst=True)


def write(connection, course_id: str, assignment: str, student: str, state: str, handin_key: str = "",
          reason: str = "", attempts: int | None = None, run_id: str | None = None, worker: str | None = None,
          graded_key: str | None = None) -> None:
    """Insert or replace the student's row inside the caller's transaction. Fields given as None keep their value;
    only the commit of a grade passes graded_key."""
    key = dict(course_id=course_id, assignment=assignment, student=student)
    values = dict(state=state, handin_key=handin_key, reason=reason[:REASON_CHARS], updated_at=_now())
    for name, value in (("attempts", attempts), ("run_id", run_id), ("worker", worker),
                        ("graded_key", graded_key)):
        if value is not None:
            values[name] = value
    where = sa.and_(*(table.c[k] == v for k, v in key.items()))
    if connection.execute(sa.update(table).where(where).values(**values)).rowcount == 0:
        connection.execute(sa.insert(table).values(**{**key, "attempts": 0, "run_id": "", "worker": "",
                                                       "graded_key": "", **values}))
    _flag_submission(connection, course_id, assignment, student, flagged=state != COMPLETE)


def _flag_submission(connection, course_id: str, assignment: str, student: str, flagged: bool) -> None:
    """nbgrader's own flag on the student's submitted notebooks: Formgrader shows it beside each submission."""
    from nbgrader.api import Assignment, SubmittedAssignment, SubmittedNotebook

    submissions = sa.select(SubmittedAssignment.id).join(Assignment, Assignment.id == SubmittedAssignment.assignment_id) \
        .where(Assignment.name == assignment, Assignment.course_id == course_id,
               SubmittedAssignment.student_id == student)
    connection.execute(sa.update(SubmittedNotebook).where(SubmittedNotebook.assignment_id.in_(submissions))
                       .values(flagged=flagged))


def read(connection, course_id: str, assignment: str) -> dict[str, Status]:
    """student -> Status for every student the runner has a row for."""
    if not sa.inspect(connection).has_table(TABLE_NAME):
        return {}
    rows = connection.execute(sa.select(table).where(table.c.course_id == course_id,
                                                     table.c.assignment == assignment))
    return {r.student: Status(r.student, r.state, r.handin_key, r.graded_key, r.reason, r.attempts, r.run_id,
                              r.worker) for r in rows}


def engine_for(db_url: str):
    """An engine on the gradebook (SQLite waits for its lock rather than failing)."""
    args = {"connect_args": {"timeout": 600}} if db_url.startswith("sqlite") else {}
    return sa.create_engine(db_url, future=True, **args)


def graded_from(status: Status | None, key: str | None) -> bool:
    """Whether nbgrader's rows are a complete grade of the hand-in with this key (only a commit sets graded_key, so
    this holds even when a later try on the same hand-in failed or was cut short)."""
    return status is not None and status.graded_key != "" and status.graded_key == key


@dataclass(frozen=True)
class Standing:
    """Whether a student's numbers in the gradebook may be shown as their grade."""

    shown: bool  # the numbers are from the hand-in in submitted/ now (or from plain nbgrader: no status row)
    label: str  # "complete", "pending", "failed", "stale"; "" when the runner never graded the student
    note: str  # what the instructor reads beside the row (why not shown; warnings); "" when there is nothing to say


def standing(status: Status | None, current_key: str | None) -> Standing:
    """How to show a student's gradebook numbers, given their status row and the key of the hand-in in submitted/
    now (None: the folder is gone)."""
    if status is None:
        return Standing(True, "", "")
    if current_key is None and status.graded_key:  # the folder was removed after grading: the grade stands, said so
        return Standing(True, COMPLETE, "graded from a hand-in that is no longer in submitted/")
    current = graded_from(status, current_key)
    if status.state == COMPLETE and current:
        return Standing(True, COMPLETE, status.reason)  # the preflight's warnings, e.g. an extra file ignored
    if current:  # a regrade of the same hand-in did not finish: the earlier grade of it stands
        return Standing(True, COMPLETE, f"a later regrade {status.state}: {status.reason}".rstrip(": "))
    if status.state == PENDING:
        return Standing(False, PENDING, "pending: a grading run started on this hand-in and did not finish; "
                                        "run autograde again")
    if status.state == FAILED:
        return Standing(False, FAILED, f"not graded: {status.reason}")
    return Standing(False, "stale", "not graded: the hand-in, its due date or extension, or the assignment's tests "
                                    "changed after it was graded; run autograde again")
