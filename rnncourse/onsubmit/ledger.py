"""What the on-submit service did with each submission, in the gradebook's database beside nbgrader's tables.

One row per submission folder in the exchange and version of it (the newest change time of its files: a folder changed
after the service saw it is a new version, graded again, so nothing is graded from a half-written copy). The row is
written after the grade is committed and its feedback released, so a service killed at any point redoes at most the
unrecorded step: the runner skips a hand-in already graded from the same files (its hand-in key), and feedback is
written again over itself. The rate limit counts the `graded` rows of the last window.

States: `graded` (score, seconds), `failed` (note says why), `waiting` (over the rate limit; eligible_at), `superseded`
(a newer submission came first), `after_cutoff` (received after the late policy's cutoff: never graded).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa

TABLE_NAME = "rnncourse_on_submit"
GRADED, FAILED, WAITING, SUPERSEDED, AFTER_CUTOFF = "graded", "failed", "waiting", "superseded", "after_cutoff"
FINAL = {GRADED, FAILED, SUPERSEDED, AFTER_CUTOFF}  # nothing more to do for the submission

_metadata = sa.MetaData()
table = sa.Table(
    TABLE_NAME, _metadata,
    sa.Column("course_id", sa.String(128), primary_key=True),
    sa.Column("assignment", sa.String(128), primary_key=True),
    sa.Column("student", sa.String(128), primary_key=True),
    sa.Column("submission", sa.String(255), primary_key=True),  # the folder's name in the exchange's inbound/
    sa.Column("version", sa.String(32), primary_key=True),  # its newest change time, ISO
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("received_at", sa.DateTime, nullable=False),  # the trusted submission time (naive UTC)
    sa.Column("eligible_at", sa.DateTime, nullable=True),  # waiting: when it will be graded
    sa.Column("graded_at", sa.DateTime, nullable=True),
    sa.Column("score", sa.Float, nullable=True),  # after the late penalty
    sa.Column("max_score", sa.Float, nullable=True),
    sa.Column("seconds", sa.Float, nullable=True),  # received (or eligible) -> feedback released
    sa.Column("note", sa.Text, nullable=False, default=""),
)


@dataclass(frozen=True)
class Row:
    student: str
    submission: str
    version: str
    state: str
    received_at: dt.datetime
    eligible_at: dt.datetime | None = None
    graded_at: dt.datetime | None = None
    score: float | None = None
    max_score: float | None = None
    seconds: float | None = None
    note: str = ""


def ensure_table(engine) -> None:
    with engine.begin() as connection:
        table.create(connection, checkfirst=True)


def read(engine, course_id: str, assignment: str) -> dict[tuple[str, str], Row]:
    """(submission, version) -> Row, for every submission the service has handled."""
    with engine.connect() as connection:
        rows = connection.execute(sa.select(table).where(table.c.course_id == course_id,
                                                         table.c.assignment == assignment))
        return {(r.submission, r.version): Row(r.student, r.submission, r.version, r.state, r.received_at,
                                               r.eligible_at, r.graded_at, r.score, r.max_score, r.seconds, r.note)
                for r in rows}


def record(engine, course_id: str, assignment: str, row: Row) -> None:
    """Insert or replace the row of (row.submission, row.version)."""
    key = dict(course_id=course_id, assignment=assignment, student=row.student, submission=row.submission,
               version=row.version)
    values = dict(state=row.state, received_at=row.received_at, eligible_at=row.eligible_at, graded_at=row.graded_at,
                  score=row.score, max_score=row.max_score, seconds=row.seconds, note=row.note[:2000])
    where = sa.and_(*(table.c[k] == v for k, v in key.items()))
    with engine.begin() as connection:
        if connection.execute(sa.update(table).where(where).values(**values)).rowcount == 0:
            connection.execute(sa.insert(table).values(**key, **values))
