"""Grade a whole class in parallel, on this machine or on a Dask cluster.

nbgrader autogrades one notebook after another (its issue #174) and shows no progress (#1456). Here each student is
one task: a worker runs nbgrader's own Autograde app (through its Python API, the way Formgrader does) for that
student, with the course's nbgrader_config.py, so every kernel still runs in the sandbox and writes the same
gradebook rows as `nbgrader autograde`. Tasks go to any `concurrent.futures.Executor`:

- `local_executor(n, course)`: n worker processes on this machine (default: one per core), each preparing itself
  (course config, the sandbox's zygote with torch imported) as it starts, so no task pays for that;
- `dask_executor(address)`: the workers of a running Dask distributed cluster (`dask scheduler` / `dask worker
  ADDRESS --nthreads 1`). Workers must see the course directory at the same path (e.g. NFS) and reach the
  gradebook: use PostgreSQL there (`c.CourseDirectory.db_url` in nbgrader_config.py).

Concurrency and the gradebook: each student's rows are written by exactly one task. PostgreSQL serialises writers
itself. SQLite's default locking can answer "database is locked" when writers collide, so worker processes make
every SQLite transaction take the write lock up front (`BEGIN IMMEDIATE`) and wait for it as long as needed
(SQLAlchemy's documented recipe for pysqlite): transactions queue instead of failing.
"""

from __future__ import annotations

import concurrent.futures as cf
import glob
import multiprocessing
import os
import socket
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from . import handins
from .course import ASSIGNMENT, NOTEBOOKS, course_config, tool_env

SQLITE_WAIT_MS = 10 * 60 * 1000  # how long a worker waits for SQLite's write lock before giving up


@dataclass
class StudentOutcome:
    """What grading one student's submission did, as the worker saw it."""

    student: str
    graded: bool  # every handed-in notebook has an autograded copy and gradebook rows
    score: float = 0.0
    max_score: float = 0.0
    seconds: float = 0.0
    worker: str = ""
    problems: list = field(default_factory=list)  # why something could not be graded, in words
    log: str = ""  # path of the nbgrader log for this student
    worker_start_seconds: float = 0.0  # the worker's one-time start-up (config, zygote), not in `seconds`
    refused: list = field(default_factory=list)  # hand-in entries set aside before grading (rnncourse.handins)

    def line(self) -> str:
        status = f"{self.score:g}/{self.max_score:g}" if self.graded else "NOT GRADED"
        why = f"  ({'; '.join(self.problems)})" if self.problems else ""
        refused = f"  [{'; '.join(self.refused)}]" if self.refused else ""
        return f"{self.student:24s} {status:>12s}  {self.seconds:6.1f} s  {self.worker}{why}{refused}"


# ---- in the worker ---------------------------------------------------------------------------------------------

_API_CACHE: dict = {}
_WORKER_START_SECONDS = 0.0


def prepare_worker(course_dir: str, db_url: str | None = None) -> None:
    """A worker's one-time start-up, run when the worker starts rather than in its first task: load the course
    config, start the sandbox's zygote (torch & co. imported once) and ready the hidden checks, which run in this
    process, so no student's task pays for any of it."""
    global _WORKER_START_SECONDS
    from .kernels.manager import prestart_fork_server

    start = time.monotonic()
    try:
        import nbgrader.converters  # noqa: F401 -- imported here once rather than inside the first student's task
        import nbgrader.preprocessors  # noqa: F401

        prestart_fork_server(_api(course_dir, db_url).config)
        from .grading import verdict

        verdict.prepare()  # the hidden checks run in this process
    except Exception:  # never break the pool: the first task meets the same problem and reports it per student
        pass
    _WORKER_START_SECONDS = time.monotonic() - start


def _serialise_sqlite_writers() -> None:
    """Every SQLite transaction of this process starts with BEGIN IMMEDIATE and waits for the lock (no
    "database is locked" from lock upgrades between concurrent nbgrader writers)."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    if getattr(_serialise_sqlite_writers, "done", False):
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

    _serialise_sqlite_writers.done = True


def _api(course_dir: str, db_url: str | None):
    key = (course_dir, db_url)
    if key not in _API_CACHE:
        from nbgrader.apps import NbGraderAPI
        from nbgrader.coursedir import CourseDirectory

        os.environ.update(tool_env())  # alembic and the kernel's python come from this environment
        warnings.filterwarnings("ignore", module="nbgrader")  # SQLAlchemy SAWarnings about nbgrader's sessions
        _serialise_sqlite_writers()
        config = course_config(Path(course_dir), db_url)
        _API_CACHE[key] = NbGraderAPI(CourseDirectory(config=config), config=config)
    return _API_CACHE[key]


def _autograde(api, student: str, notebook: str, log_file) -> bool:
    """nbgrader's Autograde app for one student (one notebook, or "*" for all), logging to log_file."""
    import logging

    from nbgrader.converters import Autograde
    from nbgrader.utils import temp_attrs

    with temp_attrs(api.coursedir, assignment_id=ASSIGNMENT, student_id=student, notebook_id=notebook):
        app = Autograde(coursedir=api.coursedir, parent=api)
        app.force = True
        app.create_student = True
        handler = logging.StreamHandler(log_file)
        handler.setFormatter(logging.Formatter("[%(asctime)s %(levelname)s] %(message)s"))
        app.log.handlers = [handler]
        app.log.propagate = False
        try:
            app.start()
            return True
        except BaseException:  # nbgrader raises after grading what it could; the log says why
            log_file.write(traceback.format_exc())
            return False


def grade_student(course_dir: str, student: str, db_url: str | None = None) -> StudentOutcome:
    """Autograde one student's submission into the course's gradebook (runs in a worker). A notebook nbgrader could
    not grade with the others (it drops the student's whole assignment then) is graded again on its own, so it
    costs only its own points."""
    start = time.monotonic()
    api = _api(course_dir, db_url)
    course = Path(course_dir)
    logs = course / "logs" / "autograde"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"{student}.log"
    outcome = StudentOutcome(student, graded=False, worker=f"{socket.gethostname()}:{os.getpid()}",
                             log=str(log_path), worker_start_seconds=_WORKER_START_SECONDS)
    handins.set_aside(course, [student])  # the coordinator did it for the class; a task run on its own does it here
    refused = handins.on_record(course, student)
    outcome.refused = [r.note() for r in refused]
    with open(log_path, "w") as log:
        if refused and not handins.has_notebooks(course, student):  # nbgrader would skip the folder: no row at all
            handins.record_not_handed_in(course, student, api.coursedir.db_url)
        else:
            _autograde(api, student, "*", log)
            for notebook in _dropped(course, student):
                _autograde(api, student, notebook, log)
    dropped = _dropped(course, student)
    outcome.problems = [f"{nb} not graded" for nb in dropped]
    try:
        outcome.score, outcome.max_score, rows = _gradebook_score(api, student)
        outcome.graded = rows and not dropped
        if not rows:
            outcome.problems.append("no gradebook rows")
    except Exception as exc:  # a submission the gradebook knows nothing of is reported, not raised
        outcome.problems.append(f"gradebook: {type(exc).__name__}: {exc}")
    outcome.seconds = time.monotonic() - start
    return outcome


def _dropped(course: Path, student: str) -> list[str]:
    """Notebooks the student handed in that have no autograded copy (nbgrader removed them)."""
    from .pipeline import dropped_notebooks
    return [notebook for _, notebook in dropped_notebooks(course, glob.escape(student))]


def _gradebook_score(api, student: str) -> tuple[float, float, bool]:
    from nbgrader.api import Gradebook

    with Gradebook(api.coursedir.db_url, api.coursedir.course_id) as gb:
        submission = gb.find_submission(ASSIGNMENT, student)
        return submission.score, submission.max_score, len(submission.notebooks) == len(NOTEBOOKS)


# ---- in the coordinator ----------------------------------------------------------------------------------------

def local_executor(workers: int | None = None, course_dir: Path | None = None,
                   db_url: str | None = None) -> cf.Executor:
    """Worker processes on this machine (spawned: no threads or locks inherited from the coordinator). Given the
    course, each worker prepares itself (`prepare_worker`) as it starts, while the others already grade."""
    prepare = dict(initializer=prepare_worker, initargs=(str(Path(course_dir).resolve()), db_url)) if course_dir else {}
    return cf.ProcessPoolExecutor(max_workers=workers or os.cpu_count() or 1,
                                  mp_context=multiprocessing.get_context("spawn"), **prepare)


def dask_executor(scheduler_address: str) -> cf.Executor:
    """The workers of a running Dask distributed cluster, as a concurrent.futures executor."""
    from distributed import Client

    client = Client(scheduler_address, timeout="30s")
    executor = client.get_executor(pure=False)  # grading twice must grade twice, not reuse a cached result
    executor.client = client  # so the caller can close it
    return executor


def submitted_students(course_dir: Path, pattern: str = "*") -> list[str]:
    return sorted(p.parent.name for p in (Path(course_dir) / "submitted").glob(f"{pattern}/{ASSIGNMENT}")
                  if p.is_dir())


def grade_class(course_dir: Path, executor: cf.Executor, students: list[str] | None = None,
                db_url: str | None = None, quiet: bool = False) -> list[StudentOutcome]:
    """Grade every student (default: everyone in submitted/) on executor's workers, with a progress bar and one
    status line per student as it finishes. A task that fails outright is reported as not graded."""
    course_dir = Path(course_dir).resolve()
    students = submitted_students(course_dir) if students is None else students
    # Links and special files out of every hand-in before any task starts: judged for the class at once, so a file
    # hard-linked between two hand-ins is refused in both, whichever worker would have come first.
    handins.set_aside(course_dir, students)
    futures = {executor.submit(grade_student, str(course_dir), s, db_url): s for s in students}
    outcomes = []
    with tqdm(total=len(futures), unit="student", desc="autograde", disable=quiet) as bar:
        for future in cf.as_completed(futures):
            student = futures[future]
            try:
                outcome = future.result()
            except Exception as exc:  # the worker itself failed (e.g. it died): the student is listed, not lost
                outcome = StudentOutcome(student, graded=False, problems=[f"worker failed: {type(exc).__name__}: "
                                                                          f"{str(exc)[:200]}"])
            outcomes.append(outcome)
            if not quiet:
                bar.write(outcome.line())
            bar.update(1)
    return sorted(outcomes, key=lambda o: o.student)


def grade(course_dir: Path, workers: int | None = None, scheduler: str | None = None,
          students: list[str] | None = None, db_url: str | None = None, quiet: bool = False) -> list[StudentOutcome]:
    """grade_class on local worker processes, or on the Dask cluster at `scheduler`."""
    executor = dask_executor(scheduler) if scheduler else local_executor(workers, course_dir, db_url)
    try:
        return grade_class(course_dir, executor, students, db_url, quiet)
    finally:
        executor.shutdown(wait=True)
        if getattr(executor, "client", None) is not None:
            executor.client.close()
