"""nbgrader's collect for an exchange that students share, trusting only what the filesystem vouches for.

Every account can write into the exchange's inbound/, and a submission's folder name (`<student>+<assignment>+<time>
+<random>`) and timestamp.txt are written by whoever submits. Stock collect (nbgrader 0.9.6) only warns when a folder
is not owned by the student it names, then collects it, so a student could hand in "as" a classmate; it trusts the
time in the name, so a late submission could be backdated; one folder with a malformed name stops the whole collect;
and it copies following symlinks and opens FIFOs as the instructor. Here:

- a folder counts for a student only if that student's account owns it (and it is a real folder, not a link);
  others are left out and named in the log;
- its time is the later of the claimed time and what the kernel recorded: the newest change time (ctime, which no
  user can set) of the folder and everything in it, less CLOCK_SLACK for the seconds a submit takes to copy;
- a malformed name is logged and skipped;
- links are copied as links (the autograde preflight then refuses them: rnncourse/handins.py); FIFOs, sockets,
  devices, and entries another account put into the folder are not copied at all.

Selected in nbgrader_config.py: c.ExchangeFactory.collect = "rnncourse.trustedcollect.TrustedCollect".
"""

from __future__ import annotations

import datetime as dt
import glob
import os
import pwd
import shutil
import stat
from collections import defaultdict

from nbgrader.api import Gradebook, MissingEntry
from nbgrader.exchange.default.collect import ExchangeCollect
from nbgrader.utils import check_mode, ignore_patterns

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


def students_own_entries(uid: int, log):
    """copytree's ignore: leave out what the student did not put there (entries another account owns) and what is
    not a file, folder or link (opening a FIFO would block the collect; devices, sockets)."""
    def ignore(folder: str, names: list[str]) -> list[str]:
        left_out = []
        for name in names:
            st = os.lstat(os.path.join(folder, name))
            if st.st_uid != uid or not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)
                                        or stat.S_ISLNK(st.st_mode)):
                log.warning("Not collecting %s: not the student's own file, folder or link",
                            os.path.join(folder, name))
                left_out.append(name)
        return left_out
    return ignore


class TrustedCollect(ExchangeCollect):

    def trusted_record(self, path: str) -> dict | None:
        """The record of one inbound folder with its trusted time, or None (logged) if it does not count."""
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
        changed = last_change(path)
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
            record = self.trusted_record(path)
            if record is not None:
                by_student[record["username"]].append(record)
        with Gradebook(self.coursedir.db_url, self.coursedir.course_id) as gb:
            try:
                self.duedate = gb.find_assignment(self.coursedir.assignment_id).duedate
            except MissingEntry:
                self.duedate = None
        # As stock collect: the newest submission; with --before-duedate, the newest one before the due date if any.
        self.src_records = []
        self.trusted_times = {}
        for records in by_student.values():
            records = self._sort_by_timestamp(records)
            if self.duedate is not None and self.before_duedate:
                records = [r for r in records if r["timestamp"] <= self.duedate] or records
            self.src_records.append(records[0])
            self.trusted_times[records[0]["filename"]] = records[0]["timestamp"]

    def do_copy(self, src, dest, log=None):
        """Copy links as links, leave out special and foreign entries, write the trusted time into timestamp.txt."""
        if self.get_size(src) > 1000 * self.coursedir.max_dir_size:
            raise RuntimeError(f"{os.path.basename(src)}: folder larger than CourseDirectory.max_dir_size")
        configured = ignore_patterns(exclude=self.coursedir.ignore, include=self.coursedir.include,
                                     max_file_size=self.coursedir.max_file_size, log=self.log)
        own = students_own_entries(os.lstat(src).st_uid, self.log)
        shutil.copytree(src, dest, symlinks=True,
                        ignore=lambda folder, names: set(configured(folder, names)) | set(own(folder, names)))
        timestamp = self.trusted_times.get(os.path.basename(src))
        if timestamp is not None:
            timestamp_txt = os.path.join(dest, "timestamp.txt")
            if os.path.islink(timestamp_txt):
                os.unlink(timestamp_txt)
            with open(timestamp_txt, "w") as handle:
                handle.write(timestamp.strftime("%Y-%m-%d %H:%M:%S.%f UTC"))
