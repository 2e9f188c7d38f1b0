"""Grade a whole class in parallel, each student's grade committed whole or not at all.

nbgrader autogrades one notebook after another (its issue #174), shows no progress (#1456), and writes a grade as it
goes, so a grade cut short stays half-written. Here:

1. **Preflight** (`rnncourse.preflight`) reads every hand-in before any kernel starts and prints one table of
   problems; what nbgrader_config.py's `c.Preflight.block` names stops that student's grading, the rest warns.
2. Every student to grade is marked `pending` in the status table (`rnncourse.gradestatus`); a student whose grade is
   `complete` for the same hand-in key (`rnncourse.handinkey`) is skipped (`force` regrades).
3. One task per student runs on a worker (`rnncourse.workerpool`: local processes, or a Dask cluster): under the
   student's lock it grades a staged copy of the hand-in with nbgrader's own Autograde in a private course
   (`rnncourse.staging`), then commits rows and files in one step (`rnncourse.commit`) or records why it failed.
   A task whose worker died is retried on another; Ctrl-C stops the run and prints what was done.

Each run writes its logs to `logs/autograde/<run id>/<student>.log`.

Concurrency and the gradebook: PostgreSQL serialises writers itself. SQLite's default locking can answer "database is
locked" when writers collide, so every SQLite transaction of the runner's processes takes the write lock up front
(`BEGIN IMMEDIATE`) and waits for it (SQLAlchemy's documented recipe for pysqlite): transactions queue instead.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import hashlib
import logging
import os
import re
import shutil
import signal
import socket
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from tqdm import tqdm

from . import commit, gradestatus, handinkey, handins, preflight, staging, workerpool
from .course import ASSIGNMENT, course_config, tool_env

SQLITE_WAIT_MS = 10 * 60 * 1000  # how long a worker waits for SQLite's write lock before giving up
MAX_ATTEMPTS = 3  # tries of a task whose worker died


class GradeFailed(Exception):
    """A student's hand-in could not be graded; the message says why, in words."""


@dataclass
class StudentOutcome:
    """What a run did for one student."""

    student: str
    state: str  # "graded", "up to date" (skipped), "failed", "blocked", "pending" (interrupted)
    score: float = 0.0  # before the late penalty
    max_score: float = 0.0
    penalty: float = 0.0  # the late penalty
    seconds: float = 0.0
    worker: str = ""
    problems: list = field(default_factory=list)  # why it was not graded, in words
    log: str = ""  # this run's nbgrader log for the student
    worker_start_seconds: float = 0.0  # the worker's one-time start-up (config, zygote), not in `seconds`
    attempts: int = 1

    @property
    def graded(self) -> bool:
        return self.state in ("graded", "up to date")

    def line(self) -> str:
        final = max(0.0, self.score - self.penalty)
        status = {"graded": f"{final:g}/{self.max_score:g}", "up to date": "up to date"}.get(
            self.state, self.state.upper() if self.state != "failed" else "NOT GRADED")
        late = [f"late: {self.score:g} - {self.penalty:g}"] if self.penalty else []
        why = f"  ({'; '.join(late + self.problems)})" if late or self.problems else ""
        retried = f"  [attempt {self.attempts}]" if self.attempts > 1 else ""
        return f"{self.student:24s} {status:>12s}  {self.seconds:6.1f} s  {self.worker}{retried}{why}"


# ---- set-up of a process that grades ----------------------------------------------------------------------------

_PROCESS: dict = {}
_WORKER_START_SECONDS = 0.0


def _serialise_sqlite_writers() -> None:
    """Every SQLite transaction of this process starts with BEGIN IMMEDIATE and waits for the lock."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    if _PROCESS.get("sqlite"):
        return

    @event.listens_for(Engine, "connect")
    def _connect(dbapi_connection, connection_record):
        if type(dbapi_connection).__module__.startswith("sqlite3"):
            dbapi_connection.isolation_level = None  # let the "begin" hook below issue BEGIN itself
            dbapi_connection.execute(f"PRAGMA busy_timeout = {SQLITE_WAIT_MS}")

    @event.listens_for(Engine, "begin")
    def _begin(connection):
        if connection.dialect.name == "sqlite":
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    _PROCESS["sqlite"] = True


@dataclass
class _Course:
    """What a grading process keeps for one course: its configuration and an engine on its gradebook."""

    root: Path
    config: object
    db_url: str
    course_id: str
    engine: object


def _course(course_dir: str, db_url: str | None) -> _Course:
    key = (course_dir, db_url)
    if key not in _PROCESS:
        os.environ.update(tool_env())  # alembic and the kernel's python come from this environment
        warnings.filterwarnings("ignore", module="nbgrader")  # SQLAlchemy SAWarnings about nbgrader's sessions
        _serialise_sqlite_writers()
        config = course_config(Path(course_dir), db_url)
        url = config.CourseDirectory.get("db_url") or f"sqlite:///{Path(course_dir) / 'gradebook.db'}"
        _PROCESS[key] = _Course(Path(course_dir), config, url, config.CourseDirectory.get("course_id", ""),
                                gradestatus.engine_for(url))
    return _PROCESS[key]


def prepare_worker(course_dir: str, db_url: str | None = None) -> None:
    """A worker's one-time start-up, run as it starts rather than in its first task: the course config, the
    sandbox's zygote (torch & co. imported once) and the hidden checks, which run in this process."""
    global _WORKER_START_SECONDS
    from .kernels.manager import prestart_fork_server

    start = time.monotonic()
    try:
        import nbgrader.converters  # noqa: F401 -- imported once here rather than inside the first student's task
        import nbgrader.preprocessors  # noqa: F401

        prestart_fork_server(_course(course_dir, db_url).config)
        from .grading import verdict

        verdict.prepare()
    except Exception:  # never break the pool: the first task meets the same problem and reports it per student
        pass
    _WORKER_START_SECONDS = time.monotonic() - start


def log_name(student: str) -> str:
    """A file name for the student's log: the id itself when it is short and plain, else a readable part and a
    hash (an id may be up to 128 characters of anything)."""
    if re.fullmatch(r"[A-Za-z0-9._@+-]{1,80}", student) and not student.startswith("."):
        return student
    readable = re.sub(r"[^A-Za-z0-9._@+-]", "_", student)[:40].lstrip(".")
    return f"{readable}-{hashlib.sha256(student.encode('utf-8', 'surrogateescape')).hexdigest()[:12]}"


def run_log(course_dir: Path, run_id: str, student: str) -> Path:
    folder = Path(course_dir) / "logs" / "autograde" / run_id
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{log_name(student)}.log"


# ---- one student, in a worker -----------------------------------------------------------------------------------

class _MeaninglessChecksumWarnings(logging.Filter):
    """nbgrader warns "Attribute 'checksum' for cell X has changed!" for every test cell of every hand-in (the
    release's copy lacks the hidden tests the gradebook's checksum covers). Only a cell the student edited is news."""

    def __init__(self, edited: set):
        super().__init__()
        self.edited = edited

    def filter(self, record) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        return not (str(record.msg).startswith("Attribute '%s' for cell %s has changed!") and len(args) >= 2
                    and args[0] == "checksum" and args[1] not in self.edited)


def _edited_cells(course_dir: Path, check: preflight.HandinCheck) -> set:
    from . import notebooks, report
    from .course import release_notebook

    edited = set()
    for name, path in check.notebooks.items():
        try:
            changes = report.structure_changes(notebooks.read(release_notebook(course_dir, name)),
                                               notebooks.read(path))
        except Exception:
            continue
        # A deleted cell comes back as the release's copy (rnncourse.preflight): its checksum "changes" as any other.
        edited |= {change.split()[0] for change in changes if "deleted" not in change and "reordered" not in change}
    return edited


def _autograde(root: Path, config, db_url: str, student: str, notebook: str, log_file, edited: set) -> None:
    """nbgrader's Autograde app on the staging course at root (one notebook, or "*" for all)."""
    from nbgrader.converters import Autograde
    from nbgrader.coursedir import CourseDirectory

    staged = copy.deepcopy(config)  # Config(config) would share the sections it changes with the course's config
    staged.CourseDirectory.root = str(root)
    staged.CourseDirectory.db_url = db_url
    staged.Autograde.pre_convert_hook = None  # the hand-in was cleaned and checked before it was staged
    coursedir = CourseDirectory(config=staged)
    coursedir.assignment_id, coursedir.student_id, coursedir.notebook_id = ASSIGNMENT, student, notebook
    app = Autograde(coursedir=coursedir, config=staged)
    app.force = True
    app.create_student = True
    handler = logging.StreamHandler(log_file)
    handler.setFormatter(logging.Formatter("[%(asctime)s %(levelname)s] %(message)s"))
    handler.addFilter(_MeaninglessChecksumWarnings(edited))
    app.log.handlers = [handler]
    app.log.propagate = False
    ours = logging.getLogger("rnncourse")  # the hidden checks and the sandbox log here: into the same file
    ours.addHandler(handler)
    try:
        app.start()
    except Exception:  # nbgrader raises after grading what it could; what is missing is found below
        log_file.write(traceback.format_exc())
    finally:
        ours.removeHandler(handler)


def _grade_in_staging(course: _Course, check: preflight.HandinCheck, folder: Path, log_file,
                      side_by_side: bool = False) -> tuple[str, Path | None]:
    """Autograde the staged hand-in; return the staging gradebook's URL and its autograded folder (None when
    nothing was gradeable). Raises GradeFailed when a notebook could not be graded. side_by_side: the notebooks at
    the same time, each in a staging course of its own (a lone submission on idle cores: see
    _autograde_side_by_side)."""
    student = check.student
    root = folder / "course"
    handin = root / "submitted" / student / ASSIGNMENT
    handin.mkdir(parents=True)
    (root / "source" / ASSIGNMENT).mkdir(parents=True)
    preflight.stage_handin(course.root, check, handin)
    with course.engine.connect() as connection:
        definition = handinkey.definition_digest(connection, course.course_id)
        extension = handinkey.extension_of(connection, course.course_id, student)
    url = staging.gradebook(folder, course.db_url, course.course_id, definition, student, extension)
    if not check.notebooks:
        staging.record_nothing_gradeable(url, course.course_id, student, check.submitted_at)
        return url, None
    edited = _edited_cells(course.root, check)
    autograded = root / "autograded" / student / ASSIGNMENT
    if side_by_side and len(check.notebooks) > 1:
        _autograde_side_by_side(course, check, folder, url, log_file, edited, definition, extension)
    else:
        _autograde(root, course.config, url, student, "*", log_file, edited)
    for name in [n for n in check.notebooks if not (autograded / f"{n}.ipynb").exists()]:
        _autograde(root, course.config, url, student, name, log_file, edited)  # nbgrader drops all on one failure
    missing = [n for n in check.notebooks if not (autograded / f"{n}.ipynb").exists()]
    if missing:
        raise GradeFailed(f"nbgrader could not grade {', '.join(missing)}")
    return url, autograded


def _autograde_side_by_side(course: _Course, check: preflight.HandinCheck, folder: Path, url: str, log_file,
                            edited: set, definition: str, extension) -> None:
    """Grade each notebook of the hand-in in a staging course of its own, in threads (the kernels, the work, are
    processes of their own: the notebooks run on as many cores at once), then bring them together in the staging
    course at folder: each notebook's rows into its gradebook (url) and its graded copy into its autograded/. The
    first part brings nbgrader's rows for every notebook (as grading them all at once would); each other part then
    its own notebook. What a part could not grade stays missing, as it would in one run."""
    from concurrent.futures import ThreadPoolExecutor

    from .commit import write_rows

    student = check.student
    names = sorted(check.notebooks)

    def part(name: str) -> tuple[str, Path]:
        root = folder / f"part-{name}" / "course"
        handin = root / "submitted" / student / ASSIGNMENT
        handin.mkdir(parents=True)
        (root / "source" / ASSIGNMENT).mkdir(parents=True)
        preflight.stage_handin(course.root, check, handin)
        part_url = staging.gradebook(root.parent, course.db_url, course.course_id, definition, student, extension)
        _autograde(root, course.config, part_url, student, name, log_file, edited)
        return part_url, root / "autograded" / student / ASSIGNMENT

    cwd = os.getcwd()  # nbgrader's converters chdir into their course while they run: the threads' last one wins
    try:
        with _autograde_environment_held(), ThreadPoolExecutor(len(names)) as threads:
            parts = dict(zip(names, threads.map(part, names)))
    finally:
        os.chdir(cwd)
    autograded = folder / "course" / "autograded" / student / ASSIGNMENT
    engine = sa.create_engine(url, future=True)
    try:
        for name in names:
            part_url, part_autograded = parts[name]
            graded = part_autograded / f"{name}.ipynb"
            if not graded.exists():
                continue  # left missing: _grade_in_staging grades it again alone
            first = not autograded.exists()
            if first:
                shutil.copytree(part_autograded, autograded)  # timestamp and secret with the first notebook
            else:
                shutil.copy2(graded, autograded / graded.name)
            part_engine = sa.create_engine(part_url, future=True)
            try:
                with part_engine.connect() as staged, engine.begin() as merged:
                    write_rows(merged, staged, course.course_id, student, only=None if first else {name})
            finally:
                part_engine.dispose()
    finally:
        engine.dispose()


@contextlib.contextmanager
def _autograde_environment_held():
    """nbgrader's Autograde sets NBGRADER_EXECUTION=autograde around each notebook with a context manager that
    deletes it afterwards from the whole process (nbgrader.utils.setenv): with notebooks graded in threads, the first
    to finish would take it from the others (nbgrader then drops their notebooks on a KeyError, and their kernels could
    start without it). Set it once for all of them; nbgrader's own setting does nothing meanwhile. A grading worker
    runs one task at a time, so nothing else in the process sees the change."""
    import nbgrader.utils

    setenv, previous = nbgrader.utils.setenv, os.environ.get("NBGRADER_EXECUTION")
    nbgrader.utils.setenv = lambda **kwargs: contextlib.nullcontext()
    os.environ["NBGRADER_EXECUTION"] = "autograde"
    try:
        yield
    finally:
        nbgrader.utils.setenv = setenv
        if previous is None:
            os.environ.pop("NBGRADER_EXECUTION", None)
        else:
            os.environ["NBGRADER_EXECUTION"] = previous


def _staged_score(url: str, course_id: str, student: str) -> tuple[float, float, float]:
    """(score before the late penalty, max score, late penalty) of the staged grade."""
    from nbgrader.api import Gradebook

    with Gradebook(url, course_id) as gb:
        submission = gb.find_submission(ASSIGNMENT, student)
        return submission.score, submission.max_score, submission.late_submission_penalty or 0.0


def _current_keys(course: _Course, students: list[str]) -> dict[str, str | None]:
    """Each student's hand-in key now, the assignment's definition read once."""
    with course.engine.connect() as connection:
        definition = handinkey.definition_digest(connection, course.course_id)
        return {s: handinkey.current_key(connection, course.course_id, s, handins.handin_folder(course.root, s),
                                         definition) for s in students}


def _current_key(course: _Course, student: str) -> str | None:
    return _current_keys(course, [student])[student]


def grade_student(course_dir: str, student: str, run_id: str, db_url: str | None = None,
                  force: bool = False, side_by_side: bool = False) -> StudentOutcome:
    """Grade one student's hand-in and commit it, or record why not (runs in a worker). The hand-in is checked
    again here, under the student's lock: it may have changed since the run's preflight."""
    start = time.monotonic()
    course = _course(course_dir, db_url)
    staging.sweep()  # folders left on this machine by grading processes that were killed
    worker = f"{socket.gethostname()}:{os.getpid()}"
    log_path = run_log(course.root, run_id, student)
    outcome = StudentOutcome(student, "failed", worker=worker, log=str(log_path),
                             worker_start_seconds=_WORKER_START_SECONDS)
    with commit.student_lock(course.root, student), open(log_path, "a") as log_file:
        with course.engine.connect() as connection:
            status = gradestatus.read(connection, course.course_id, ASSIGNMENT).get(student)
        key = _current_key(course, student)
        check = preflight.check_class(course.root, [student], course.config)[1][student]
        commit.finish(course.root, student, status.graded_key if status else "")
        if key is None:
            return _failed(course, outcome, "", "the hand-in folder is gone", start)
        if check.blocked:
            return _failed(course, outcome, key, f"preflight: {check.reason()}", start)
        if not force and gradestatus.graded_from(status, key):  # e.g. graded by another run while this one waited
            with course.engine.begin() as connection:
                _restore_complete(connection, course.course_id, check, status)
            outcome.state, outcome.seconds = "up to date", time.monotonic() - start
            return outcome
        outcome.attempts = status.attempts + 1 if status and status.run_id == run_id else 1
        with course.engine.begin() as connection:
            gradestatus.write(connection, course.course_id, ASSIGNMENT, student, gradestatus.PENDING, key,
                              reason=f"being graded by {worker} (run {run_id})", attempts=outcome.attempts,
                              run_id=run_id, worker=worker)
        try:
            with staging.staged(log_name(student)[:40]) as folder:
                forget = workerpool.on_termination(lambda: _remove(folder))
                try:
                    url, autograded = _grade_in_staging(course, check, folder, log_file, side_by_side)
                    if _current_key(course, student) != key:
                        raise GradeFailed("the hand-in changed while it was being graded; run autograde again")
                    outcome.score, outcome.max_score, outcome.penalty = _staged_score(url, course.course_id,
                                                                                      student)
                    commit.commit(course.root, course.engine, url, autograded, course.course_id, student, key,
                                  run_id, worker, outcome.attempts, note=_warnings(check))
                finally:
                    forget()
        except GradeFailed as failure:
            return _failed(course, outcome, key, f"{failure} (log: {_relative(log_path, course.root)})", start)
        except Exception as error:  # a fault of the runner, not of the hand-in: recorded, and the class goes on
            log_file.write(traceback.format_exc())
            return _failed(course, outcome, key, f"{type(error).__name__}: {str(error)[:300]} "
                                                 f"(log: {_relative(log_path, course.root)})", start)
    outcome.state, outcome.seconds = "graded", time.monotonic() - start
    return outcome


def _restore_complete(connection, course_id: str, check: preflight.HandinCheck, status: gradestatus.Status) -> None:
    """The student's grade is of the hand-in they have now: whatever a later try left (failed, pending) no longer
    applies."""
    if status.state != gradestatus.COMPLETE:
        gradestatus.write(connection, course_id, ASSIGNMENT, check.student, gradestatus.COMPLETE, status.graded_key,
                          reason=_warnings(check))


def _remove(folder: Path) -> None:
    import shutil
    shutil.rmtree(folder, ignore_errors=True)


def _relative(path: Path, root: Path) -> str:
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return str(path)


# Problems the report's own notes already show (refusals, deleted or missing cells, notebooks not submitted).
_NOTED_BY_THE_REPORT = {"refused_entry", "missing_exercises", "empty_notebook", "no_notebooks"}


def _warnings(check: preflight.HandinCheck) -> str:
    """The preflight's warnings to keep with a complete grade (export's notes show them)."""
    return "; ".join(p.detail for p in check.problems
                     if p.action != "blocked" and p.kind not in _NOTED_BY_THE_REPORT)


def _failed(course: _Course, outcome: StudentOutcome, key: str, reason: str, start: float) -> StudentOutcome:
    with course.engine.begin() as connection:
        gradestatus.write(connection, course.course_id, ASSIGNMENT, outcome.student, gradestatus.FAILED, key,
                          reason=reason, worker=outcome.worker)
    outcome.state, outcome.problems, outcome.seconds = "failed", [reason], time.monotonic() - start
    return outcome


# ---- the class, in the coordinator ------------------------------------------------------------------------------

def new_run_id() -> str:
    return dt.datetime.now().strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"


def submitted_students(course_dir: Path, pattern: str = "*") -> list[str]:
    """Students with a hand-in for the assignment whose id matches the glob `pattern` (ids are listed, never used
    as patterns themselves: an id may contain glob characters)."""
    import fnmatch

    submitted = Path(course_dir) / "submitted"
    names = sorted(os.listdir(submitted)) if submitted.is_dir() else []
    return [n for n in names if fnmatch.fnmatchcase(n, pattern) and os.path.lexists(submitted / n / ASSIGNMENT)]


@dataclass
class ClassRun:
    """What one run of the runner did."""

    run_id: str
    outcomes: list
    table: str = ""  # the preflight's table of problems
    interrupted: bool = False
    retries: list = field(default_factory=list)  # (student, reason) for each retried task


def _mark(course: _Course, run_id: str, checks: dict, force: bool, keys: dict) -> tuple[list, list]:
    """Record every student's standing before any task starts: blocked ones failed (with the preflight's reason),
    those to grade pending; return (students to grade, students up to date)."""
    to_grade, up_to_date = [], []
    with course.engine.begin() as connection:
        gradestatus.ensure_table(connection)
        known = gradestatus.read(connection, course.course_id, ASSIGNMENT)
        for student, check in checks.items():
            if not preflight_holdable(student):
                continue
            status, key = known.get(student), keys.get(student) or ""
            if check.blocked:
                gradestatus.write(connection, course.course_id, ASSIGNMENT, student, gradestatus.FAILED, key,
                                  reason=f"preflight: {check.reason()}", run_id=run_id, attempts=0)
            elif not force and gradestatus.graded_from(status, key):
                _restore_complete(connection, course.course_id, check, status)
                up_to_date.append(student)
            else:
                gradestatus.write(connection, course.course_id, ASSIGNMENT, student, gradestatus.PENDING, key,
                                  reason=f"waiting to be graded (run {run_id})", run_id=run_id, attempts=0)
                to_grade.append(student)
    return to_grade, up_to_date


def preflight_holdable(student: str) -> bool:
    """Whether the status table can hold the student's id at all (the preflight lists the others as bad ids)."""
    from nbgrader.api import Student
    return 0 < len(student) <= Student.__table__.c.id.type.length


def grade_class(course_dir: Path, pool, students: list[str] | None = None, db_url: str | None = None,
                quiet: bool = False, force: bool = False) -> ClassRun:
    """Preflight, then grade every student to grade on the pool's workers, with a progress bar and one line per
    student as they finish. Raises nothing for a student's failure; `Interrupted` ends the run early (the partial
    ClassRun is then returned with interrupted=True)."""
    course_dir = Path(course_dir).resolve()
    course = _course(str(course_dir), db_url)
    students = submitted_students(course_dir) if students is None else students
    run_id = new_run_id()
    say = (lambda text: None) if quiet else print
    # Links and special files out of every hand-in before anything reads them, judged for the class at once.
    handins.set_aside(course_dir, students)
    class_problems, checks = preflight.check_class(course_dir, students, course.config)
    table = preflight.format_table(class_problems, checks)
    if table:
        say(table)
    keys = _current_keys(course, [s for s in students if preflight_holdable(s)])
    to_grade, up_to_date = _mark(course, run_id, checks, force, keys)
    outcomes = [StudentOutcome(s, "blocked", problems=[checks[s].reason()]) for s in students if checks[s].blocked]
    outcomes += [StudentOutcome(s, "up to date") for s in up_to_date]
    if up_to_date:
        say(f"  {len(up_to_date)} students already graded from the hand-in they have now (--force regrades them)")
    run = ClassRun(run_id, outcomes, table)
    tasks = [workerpool.Task(s, grade_student, (str(course_dir), s, run_id, db_url, force)) for s in to_grade]
    with tqdm(total=len(tasks), unit="student", desc="autograde", disable=quiet or not tasks) as bar:
        def on_event(event: workerpool.Event) -> None:
            if event.kind == "retry":
                run.retries.append((event.key, event.reason))
                bar.write(f"{event.key:24s} RETRY: {event.reason} (attempt {event.attempt + 1} of {MAX_ATTEMPTS})")
                return
            outcome = _outcome_of(course, event, run_id)
            run.outcomes.append(outcome)
            if not quiet:
                bar.write(outcome.line())
            bar.update(1)

        try:
            pool.run(tasks, on_event)
        except workerpool.Interrupted as stop:
            run.interrupted = True
            done = {o.student for o in run.outcomes}
            for student in [*stop.running, *stop.pending]:
                if student not in done:
                    run.outcomes.append(StudentOutcome(student, "pending", problems=["interrupted: not graded"]))
            _note_interrupted(course, run_id, stop.running + stop.pending)
    staging.sweep()  # what workers killed during the run left on this machine
    run.outcomes.sort(key=lambda o: o.student)
    return run


def _outcome_of(course: _Course, event: workerpool.Event, run_id: str) -> StudentOutcome:
    if event.kind == "done":
        return event.result
    reason = event.reason.strip().splitlines()[-1] if event.kind == "error" else event.reason
    outcome = StudentOutcome(event.key, "failed", attempts=event.attempt)
    with course.engine.begin() as connection:  # the worker could not record it: it died, or the task broke
        gradestatus.write(connection, course.course_id, ASSIGNMENT, event.key, gradestatus.FAILED,
                          _status_key(course, event.key), reason=reason, run_id=run_id)
    outcome.problems = [reason]
    return outcome


def _status_key(course: _Course, student: str) -> str:
    with course.engine.connect() as connection:
        status = gradestatus.read(connection, course.course_id, ASSIGNMENT).get(student)
    return status.handin_key if status else ""


def _note_interrupted(course: _Course, run_id: str, students: list[str]) -> None:
    with course.engine.begin() as connection:
        known = gradestatus.read(connection, course.course_id, ASSIGNMENT)
        for student in students:
            status = known.get(student)
            if status and status.state == gradestatus.PENDING and status.run_id == run_id:
                gradestatus.write(connection, course.course_id, ASSIGNMENT, student, gradestatus.PENDING,
                                  status.handin_key, reason=f"run {run_id} was interrupted before grading it")


def pool_for(course_dir: Path, workers: int | None = None, scheduler: str | None = None, db_url: str | None = None):
    """Local worker processes (each prepared as it starts), or the Dask cluster at `scheduler`."""
    if scheduler:
        return workerpool.DaskPool(scheduler)
    return workerpool.LocalPool(workers or os.cpu_count() or 1, prepare_worker,
                                (str(Path(course_dir).resolve()), db_url), MAX_ATTEMPTS)


def grade(course_dir: Path, workers: int | None = None, scheduler: str | None = None,
          students: list[str] | None = None, db_url: str | None = None, quiet: bool = False,
          force: bool = False) -> list[StudentOutcome]:
    """grade_class on local worker processes or a Dask cluster; the outcomes, one per student."""
    return grade_class(course_dir, pool_for(course_dir, workers, scheduler, db_url), students, db_url, quiet,
                       force).outcomes


def stop_on_signals() -> None:
    """The coordinator stops, cleans up and summarises on Ctrl-C (SIGINT) and on SIGTERM (a `kill`, a job
    scheduler's stop). SIGINT is set explicitly: a shell starts background jobs with SIGINT ignored, and Python
    then never turns it into KeyboardInterrupt, so `kill -INT` would do nothing."""
    def _interrupt(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
