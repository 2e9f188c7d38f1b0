"""nbgrader's collect for an exchange that students share, trusting only what the filesystem vouches for.

Every account can write into the exchange's inbound/, and a submission's folder name (`<student>+<assignment>+<time>
+<random>`) and timestamp.txt are written by whoever submits. Stock collect (nbgrader 0.9.6) only warns when a folder
is not owned by the student it names, then collects it, so a student could hand in "as" a classmate; it trusts the
time in the name, so a late submission could be backdated; one folder with a malformed name stops the whole collect;
and it copies following symlinks and opens FIFOs as the instructor. Here:

- a folder counts for a student only if that student's account owns it (and it is a real folder, not a link);
  others are left out and named in the log;
- every file is opened without following links and without blocking, and copied only if what was opened is a
  regular file the student owns: a link swapped in while the collect runs reads nothing of the instructor's; links
  are copied as links (the autograde preflight then refuses them: rnncourse/handins.py); FIFOs, sockets, devices,
  and entries another account put there are not copied; depth and size are bounded;
- its time is the later of the claimed time and what the kernel recorded: the newest change time (ctime, which no
  user can set) of the folder and everything in it, read before and again after the copy, so a change made while
  the collect runs counts as made then; less CLOCK_SLACK for the seconds a submit takes to copy. The student's own
  timestamp.txt is never copied: the collect writes the trusted one;
- the copy goes to a hidden folder beside submitted/<student>/ and replaces the old one in one rename, so a failed
  or killed collect leaves the earlier collected hand-in as it was;
- a malformed name, or any failure of one student's folder, is logged and skipped: the others are collected.

Selected in nbgrader_config.py: c.ExchangeFactory.collect = "rnncourse.trustedcollect.TrustedCollect".
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import glob
import os
import pwd
import shutil
import stat
from collections import defaultdict

from nbgrader.api import Gradebook, MissingEntry
from nbgrader.exchange.default.collect import ExchangeCollect
from nbgrader.utils import check_mode

CLOCK_SLACK = dt.timedelta(seconds=60)  # a submit copying a large folder on a busy server still fits


def owner_name(st: os.stat_result) -> str | None:
    try:
        return pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        return None


def last_change(path: str) -> dt.datetime:
    """The newest ctime of `path` and everything below it (links not followed), as naive UTC like nbgrader's."""
    newest = os.lstat(path).st_ctime
    for folder, dirs, files in os.walk(path):
        for name in dirs + files:
            newest = max(newest, os.lstat(os.path.join(folder, name)).st_ctime)
    return dt.datetime.fromtimestamp(newest, dt.timezone.utc).replace(tzinfo=None)


MAX_DEPTH = 8  # folders inside a submission; a hand-in is a few notebooks


class Unfit(Exception):
    """A submission folder that cannot be collected as it is (too large, too deep, unreadable)."""


def copy_owned(src_dir_fd: int, dest: str, uid: int, budget: list[int], log, ignore: list[str],
               depth: int = 0) -> None:
    """Copy the folder open at src_dir_fd into the new folder dest: the student's own regular files (read through a
    descriptor opened with O_NOFOLLOW | O_NONBLOCK and checked with fstat), links as links, subfolders to MAX_DEPTH;
    budget[0] is the bytes still allowed."""
    os.mkdir(dest, 0o755)
    for name in sorted(os.listdir(src_dir_fd)):
        if (name == "timestamp.txt" and depth == 0) or any(fnmatch.fnmatch(name, glob) for glob in ignore):
            continue  # the trusted time is written by the collect; caches (CourseDirectory.ignore) are not wanted
        st = os.lstat(name, dir_fd=src_dir_fd)
        target = os.path.join(dest, name)
        if st.st_uid != uid:
            log.warning("Not collecting %s: another account put it there", target)
        elif stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(name, dir_fd=src_dir_fd), target)
        elif stat.S_ISDIR(st.st_mode):
            if depth + 1 > MAX_DEPTH:
                raise Unfit(f"folders nested deeper than {MAX_DEPTH}")
            fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=src_dir_fd)
            try:
                if os.fstat(fd).st_uid != uid:
                    raise Unfit(f"{name} changed owner while being collected")
                copy_owned(fd, target, uid, budget, log, ignore, depth + 1)
            finally:
                os.close(fd)
        elif stat.S_ISREG(st.st_mode):
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=src_dir_fd)
            try:
                opened = os.fstat(fd)
                if not stat.S_ISREG(opened.st_mode) or opened.st_uid != uid:
                    log.warning("Not collecting %s: it was swapped while being collected", target)
                    continue
                budget[0] -= opened.st_size
                if budget[0] < 0:
                    raise Unfit("larger than CourseDirectory.max_dir_size")
                with os.fdopen(os.dup(fd), "rb") as source, open(target, "wb") as copy:
                    shutil.copyfileobj(source, copy)
            finally:
                os.close(fd)
        else:
            log.warning("Not collecting %s: not a file, folder or link", target)


class TrustedCollect(ExchangeCollect):

    def trusted_record(self, path: str, changed: dt.datetime | None = None) -> dict | None:
        """The record of one inbound folder with its trusted time, or None (logged) if it does not count; `changed`:
        its last_change when the caller has just read it."""
        name = os.path.basename(path)
        try:
            record = self._path_to_record(path)
        except Exception as problem:  # nbgrader fails (ExchangeError) or dateutil raises (ValueError, OverflowError)
            self.log.warning("Skipping %s: not a submission folder name (%s)", name, problem)
            return None
        st = os.lstat(path)
        if not stat.S_ISDIR(st.st_mode):
            self.log.warning("Skipping %s: not a folder", name)
            return None
        owner = owner_name(st)
        if owner != record["username"]:
            self.log.warning("Skipping %s: it names %s but belongs to %s; a submission counts only for its owner",
                             name, record["username"], owner)
            return None
        try:
            changed = last_change(path) if changed is None else changed
        except Exception as problem:  # e.g. a tree too deep to walk
            self.log.warning("Skipping %s: cannot be read (%s)", name, problem)
            return None
        if changed - record["timestamp"] > CLOCK_SLACK:
            self.log.warning("%s: claims %s but was last changed %s; the later time counts", name,
                             record["timestamp"], changed)
            record["timestamp"] = changed
        return record

    def init_src(self):
        if self.coursedir.course_id == "":
            self.fail("No course id specified. Re-run with --course flag.")
        self.course_path = os.path.join(self.root, self.coursedir.course_id)
        self.inbound_path = os.path.join(self.course_path, "inbound")
        if not os.path.isdir(self.inbound_path):
            self.fail("Course not found: {}".format(self.inbound_path))
        if not check_mode(self.inbound_path, read=True, execute=True):
            self.fail("You don't have read permissions for the directory: {}".format(self.inbound_path))
        student_id = self.coursedir.student_id if self.coursedir.student_id else "*"
        pattern = os.path.join(self.inbound_path, "{}+{}+*".format(student_id, self.coursedir.assignment_id))
        by_student = defaultdict(list)
        for path in glob.glob(pattern):
            try:
                record = self.trusted_record(path)
            except OSError as problem:  # gone or changed while looking
                self.log.warning("Skipping %s: %s", os.path.basename(path), problem)
                continue
            if record is not None:
                by_student[record["username"]].append(record)
        with Gradebook(self.coursedir.db_url, self.coursedir.course_id) as gb:
            try:
                self.duedate = gb.find_assignment(self.coursedir.assignment_id).duedate
            except MissingEntry:
                self.duedate = None
        # As stock collect: the newest submission; with --before-duedate, the newest one before the due date if any.
        self.src_records = []
        for records in by_student.values():
            records = self._sort_by_timestamp(records)
            if self.duedate is not None and self.before_duedate:
                records = [r for r in records if r["timestamp"] <= self.duedate] or records
            self.src_records.append(records[0])

    def collect_one(self, record: dict) -> None:
        """Copy one submission into submitted/<student>/<assignment>/, replacing what was there in one rename. A newer
        submission always replaces an older one (stock collect wants --update for that): the newest counts."""
        student = record["username"]
        src = os.path.join(self.inbound_path, record["filename"])
        dest = self.coursedir.format_path(self.coursedir.submitted_directory, student, self.coursedir.assignment_id)
        existing = self.coursedir.get_existing_timestamp(dest) if os.path.isdir(dest) else None
        if existing is not None and not (record["timestamp"] > existing or (
                self.before_duedate and record["timestamp"] != existing)):
            self.log.info("No newer submission to collect: %s %s", student, self.coursedir.assignment_id)
            return
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        staged = os.path.join(os.path.dirname(dest), f".collecting-{os.getpid()}")
        shutil.rmtree(staged, ignore_errors=True)
        fd = os.open(src, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            uid = os.fstat(fd).st_uid
            copy_owned(fd, staged, uid, [1000 * self.coursedir.max_dir_size], self.log, self.coursedir.ignore)
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise
        finally:
            os.close(fd)
        # A change made while copying counts as made then (read after the copy).
        timestamp = max(record["timestamp"], last_change(src) - CLOCK_SLACK)
        with open(os.path.join(staged, "timestamp.txt"), "w") as handle:
            handle.write(timestamp.strftime("%Y-%m-%d %H:%M:%S.%f UTC"))
        old = f"{staged}-old"
        if os.path.isdir(dest):
            os.rename(dest, old)
        os.rename(staged, dest)
        shutil.rmtree(old, ignore_errors=True)
        self.log.info("%s submission: %s %s", "Updating" if existing else "Collecting", student,
                      self.coursedir.assignment_id)

    def copy_files(self):
        self.log.info("Processing %d submissions of '%s' for course '%s'", len(self.src_records),
                      self.coursedir.assignment_id, self.coursedir.course_id)
        for record in self.src_records:
            try:
                self.collect_one(record)
            except Exception as problem:  # this student's folder only: the class goes on
                self.log.error("Not collected: %s (%s); the other submissions are collected", record["filename"],
                               problem)
