"""The submissions in the exchange's inbound/, each as the course's trusted collect sees it.

A folder counts only for the account that owns it, and its time is the later of the claimed time and the newest change
time of its files (rnncourse/trustedcollect.py decides both; this module only lists). `changed` is that newest change
time: it names the folder's version, and a folder changed in the last `settle_s` seconds is still being written.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import stat
from dataclasses import dataclass

from .. import preflight
from ..trustedcollect import TrustedCollect

SECRET_BYTES = 1024  # nbgrader writes 128 hex characters
MAX_ENTRIES = 500  # files and folders in one submission folder; a hand-in is a few notebooks. The exchange is read
#                    every second: a folder of a million files must not slow everyone's grading


class _EachMessageOnce(logging.Filter):
    """The exchange is read every second: say what is wrong with a folder once, not every second."""

    def __init__(self):
        super().__init__()
        self.said: set = set()

    def filter(self, record) -> bool:
        message = record.getMessage()
        if message in self.said:
            return False
        self.said.add(message)
        return True


@dataclass(frozen=True)
class Submission:
    student: str
    name: str  # the folder's name in inbound/
    path: str
    time: dt.datetime  # trusted submission time, naive UTC
    changed: dt.datetime  # newest change time of the folder and its files, naive UTC
    record: dict  # TrustedCollect's record, for collect_one

    @property
    def version(self) -> str:
        return self.changed.isoformat(timespec="microseconds")


def collector(coursedir, authenticator, config) -> TrustedCollect:
    """The course's collect, set up to collect given submissions (collect_one) rather than all of them."""
    app = TrustedCollect(coursedir=coursedir, authenticator=authenticator, config=config)
    app.log = logging.getLogger("rnncourse.onsubmit.inbox")
    app.log.addFilter(_EachMessageOnce())
    app.course_path = os.path.join(app.root, coursedir.course_id)
    app.inbound_path = os.path.join(app.course_path, "inbound")
    app.before_duedate = True  # replace whatever submitted/ holds with exactly the submission chosen
    return app


def scan(app: TrustedCollect, assignment: str) -> dict[str, list[Submission]]:
    """student -> their submissions of `assignment`, oldest first. Folders that do not count are logged and left out."""
    suffix = f"+{assignment}+"
    by_student: dict[str, list[Submission]] = {}
    try:
        names = os.listdir(app.inbound_path)
    except OSError as problem:
        app.log.warning("Cannot list %s: %s", app.inbound_path, problem)
        return {}
    for name in names:
        if suffix not in name:
            continue
        path = os.path.join(app.inbound_path, name)
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:  # the gradebook stores names as text: such a folder could never be recorded
            app.log.warning("Skipping %r: its name is not UTF-8", name)
            continue
        try:
            changed = newest_change(path)
            if changed is None:
                app.log.warning("Skipping %s: more than %d files and folders", name, MAX_ENTRIES)
                continue
            record = app.trusted_record(path, changed)
            if record is None:
                continue
        except (OSError, RecursionError) as problem:  # gone or changed while looking
            app.log.warning("Skipping %s: %s", name, problem)
            continue
        by_student.setdefault(record["username"], []).append(
            Submission(record["username"], name, path, record["timestamp"], changed, record))
    for submissions in by_student.values():
        submissions.sort(key=lambda s: (s.time, s.name))
    return by_student


def newest_change(path: str) -> dt.datetime | None:
    """trustedcollect.last_change, or None when the folder holds more than MAX_ENTRIES entries (links not
    followed; the walk stops there)."""
    newest, count = os.lstat(path).st_ctime, 0
    for folder, dirs, files in os.walk(path):
        count += len(dirs) + len(files)
        if count > MAX_ENTRIES:
            return None
        for name in dirs + files:
            newest = max(newest, os.lstat(os.path.join(folder, name)).st_ctime)
    return dt.datetime.fromtimestamp(newest, dt.timezone.utc).replace(tzinfo=None)


def read_secret(submission: Submission) -> str | None:
    """The submission's submission_secret.txt (feedback is released under a hash of it), read without following a
    link or blocking on a FIFO; None when there is no such regular file, or it is not a secret as nbgrader writes
    one (the grading preflight carries only such a secret into the feedback)."""
    try:
        fd = os.open(os.path.join(submission.path, "submission_secret.txt"),
                     os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        secret = os.read(fd, SECRET_BYTES).decode("ascii", "replace")
        return secret if preflight.SECRET.fullmatch(secret.strip()) else None
    finally:
        os.close(fd)


def notebook_ids(submission: Submission, known: list[str]) -> list[str]:
    """The assignment's notebooks the submission holds (the ones a student's fetch_feedback looks for)."""
    try:
        present = set(os.listdir(submission.path))
    except OSError:
        return []
    return [nb for nb in known if f"{nb}.ipynb" in present]
