"""Vet a class's hand-ins before any kernel starts, and write of each the copy nbgrader should grade instead.

nbgrader meets a broken hand-in only while grading it, and then often drops the student's whole assignment or grades
it wrongly without a word: a notebook that is not JSON, a solution cell deleted with its test cell (KeyError in
OverwriteCells' add_missing_cells), a `timestamp.txt` its parser misreads (`10:00 PST` as UTC, `+0100` as 100 s,
`11/12/2026` as 12 November). The class runner calls `check_class` first, prints `format_table`'s one table, and
grades each student who is not blocked from a staging copy that `stage_handin` writes: the gradeable notebooks with
deleted exercises restored from release/, and the timestamp in the one form nbgrader reads right. The hand-in in
submitted/ is never changed; links and special files were set aside before (rnncourse.handins).

Which problems stop a student's grading is `c.Preflight.block` in nbgrader_config.py; every other kind only warns,
and the problem's detail says how the student is graded anyway.
"""

from __future__ import annotations

import copy
import json
import os
import re
import warnings
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import nbformat
from traitlets import Float, List, Unicode, validate
from traitlets.config import LoggingConfigurable

from . import handins, notebooks
from .course import (ASSIGNMENT, DEMO_DUE_DATE, NOTEBOOKS, course_config, gradebook_url, release_notebook,
                     submitted_dir)

KINDS: dict[str, str] = {
    "invalid_json": "a notebook file that is not JSON",
    "not_a_notebook": "a notebook file that is JSON but not a notebook nbformat can read",
    "bad_id": "a student id the gradebook cannot hold or nbgrader would read as a glob pattern",
    "timestamp_missing": "timestamp.txt missing or empty",
    "timestamp_unparseable": "timestamp.txt neither ISO 8601 with an offset nor nbgrader's '%Y-%m-%d %H:%M:%S.%f UTC'",
    "timestamp_no_offset": "timestamp.txt is a date and time without a UTC offset",
    "timestamp_future": "timestamp.txt is later than now (beyond Preflight.future_tolerance_s)",
    "no_due_date": "a late policy is configured but the assignment has no due date in the gradebook",
    "empty_notebook": "a notebook without cells, or without any of the assignment's graded cells",
    "missing_exercises": "graded cells (solutions, tests) deleted from a notebook",
    "unknown_file": "a file or folder that is not part of the assignment",
    "refused_entry": "a link or special file that was set aside before grading",
    "no_notebooks": "none of the assignment's notebooks handed in",
    "metadata_changed": "nbgrader metadata of a graded cell changed (e.g. a solution marked as a test)",
    "unreadable": "the hand-in could not be read at all (e.g. section09 is a file, not a folder); always blocks",
}
DEFAULT_BLOCK = ["invalid_json", "not_a_notebook", "bad_id", "timestamp_missing", "timestamp_unparseable",
                 "timestamp_no_offset", "timestamp_future", "no_due_date"]
# What happens to a problem whose kind is not blocked; any kind not listed is "warned".
_ACTION_WHEN_NOT_BLOCKED = {"missing_exercises": "restored", "unknown_file": "ignored", "refused_entry": "refused",
                            "metadata_changed": "restored"}
# What of a graded cell's nbgrader metadata decides how nbgrader grades it.
_GRADING_KEYS = ("grade", "solution", "locked", "task", "points")

TIMESTAMP = "timestamp.txt"
# How nbgrader's exchange writes a collected hand-in's time; the staged timestamp.txt is written the same way.
COLLECTED_FORMAT = "%Y-%m-%d %H:%M:%S.%f UTC"
_COLLECTED = re.compile(r"(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d{1,6})?) UTC")
_CACHES = {".ipynb_checkpoints", "__pycache__"}  # made by Jupyter and Python, not by the student: no problem at all
_GLOB_CHARS = "*?[]"
# nbgrader's exchange names a student's released feedback after this file's secret (a hex string it wrote at Submit),
# so it travels with the graded hand-in; anything else in it is ignored.
SUBMISSION_SECRET = "submission_secret.txt"
SECRET = re.compile(r"[0-9a-f]{16,256}")
_SHOWN_CHARS = 60
_NOT_GRADED = "graded as not submitted (0 points)"


@dataclass(frozen=True)
class Problem:
    kind: str  # one of KINDS
    detail: str  # what is wrong, in words an instructor can act on (and how the student is graded when not blocked)
    action: str  # "blocked", "warned", "restored", "ignored" or "refused"


@dataclass
class HandinCheck:
    student: str
    problems: list[Problem]
    notebooks: dict[str, Path]  # assignment notebook name -> its gradeable file in submitted/
    submitted_at: datetime | None  # UTC; None when there is no usable timestamp

    @property
    def blocked(self) -> bool:
        return any(p.action == "blocked" for p in self.problems)

    def reason(self) -> str:
        return "; ".join(p.detail for p in self.problems if p.action == "blocked")


class Preflight(LoggingConfigurable):
    """Which hand-in problems stop grading, and the clock skew allowed in timestamps."""

    block = List(Unicode(), default_value=DEFAULT_BLOCK, help=(
        "Problem kinds that stop a student's grading (no_due_date: the whole class's); every other kind only warns "
        "and the student is graded as its detail says. Kinds: " + "; ".join(f"{k}: {v}" for k, v in KINDS.items())
    )).tag(config=True)
    future_tolerance_s = Float(300, min=0, help=(
        "Seconds a timestamp.txt may lie ahead of this machine's clock (clock skew) before it counts as in the "
        "future.")).tag(config=True)

    @validate("block")
    def _known_kinds(self, proposal):
        unknown = [kind for kind in proposal["value"] if kind not in KINDS]
        if unknown:
            raise ValueError(f"Preflight.block: unknown problem kinds {unknown}; the kinds are {list(KINDS)}")
        return proposal["value"]

    def problem(self, kind: str, detail: str, if_graded: str = "") -> Problem:
        """The problem as configured: blocked, or its default action with how the student is graded anyway."""
        if kind in self.block:
            return Problem(kind, detail, "blocked")
        return Problem(kind, f"{detail}; {if_graded}" if if_graded else detail,
                       _ACTION_WHEN_NOT_BLOCKED.get(kind, "warned"))

    # ---- the class --------------------------------------------------------------------------------------------

    def class_problems(self, course_dir: Path) -> list[Problem]:
        policy = late_policy(self.config)
        if policy is None or due_date(course_dir, self.config) is not None:
            return []
        return [self.problem(
            "no_due_date",
            f"{ASSIGNMENT} has no due date in the gradebook while a late policy is configured ({policy}), so "
            f"lateness cannot be counted: set it with `nbgrader db assignment add {ASSIGNMENT} "
            f"--duedate=\"{DEMO_DUE_DATE}\"` (with your date), or take \"no_due_date\" out of c.Preflight.block "
            f"in nbgrader_config.py to grade without it",
            "graded without late penalties")]

    # ---- one hand-in ------------------------------------------------------------------------------------------

    def check_handin(self, course_dir: Path, student: str, releases: dict, now: datetime) -> HandinCheck:
        check = HandinCheck(student, [], {}, None)
        bad_id = id_problem(student)
        if bad_id:  # nothing under such a name is read: the name alone may make a path or pattern mean more
            check.problems.append(self.problem("bad_id", bad_id, "its hand-in is not read, nothing is graded"))
            return check
        folder = handins.handin_folder(course_dir, student)
        if os.path.lexists(folder) and (folder.is_symlink() or not folder.is_dir()):  # a link was set aside already
            check.problems.append(Problem("unreadable", f"submitted/{handins.printable(student)}/{ASSIGNMENT} is "
                                                        f"not a folder", "blocked"))
            return check
        check.problems += [self.problem("refused_entry", refusal.note())
                           for refusal in handins.on_record(course_dir, student)]
        handed_in, others = _entries(folder)
        check.problems += [self.problem("unknown_file", f"{name} is not part of the assignment",
                                        "not graded, not copied for grading") for name in others]
        if not handed_in:
            check.problems.append(self.problem("no_notebooks", f"none of {ASSIGNMENT}'s notebooks was handed in",
                                               "every notebook scores 0"))
        for name, path in handed_in.items():
            problems, gradeable = self._notebook_problems(path, releases[name])
            check.problems += problems
            if gradeable:
                check.notebooks[name] = path
        check.submitted_at, problem = self._timestamp(folder, now)
        check.problems += [problem] if problem else []
        return check

    def _notebook_problems(self, path: Path, release) -> tuple[list[Problem], bool]:
        """(what is wrong with a handed-in notebook, whether nbgrader can grade it)."""
        nb, kind, why = read_notebook(path)
        if nb is None:
            return [self.problem(kind, why, _NOT_GRADED)], False
        problems = []
        changed = metadata_changes(nb, release)
        if changed:
            problems.append(self.problem("metadata_changed", f"{path.name}: nbgrader metadata of "
                                                             f"{', '.join(changed)} changed",
                                         "restored from release/ for grading"))
        missing = missing_exercises(nb, release)
        if missing and len(missing) == len(_graded_ids(release)):
            what = f"holds none of the exercises ({len(nb.cells)} cells, none graded)" if nb.cells else "has no cells"
            problems.append(self.problem("empty_notebook", f"{path.name} {what}",
                                         "graded as the release would be (0 points)"))
        elif missing:
            problems.append(self.problem("missing_exercises", f"{path.name}: deleted {', '.join(missing)}",
                                         "restored from release/ for grading"))
        return problems, True

    def _timestamp(self, folder: Path, now: datetime) -> tuple[datetime | None, Problem | None]:
        """(when the hand-in counts as handed in, what is wrong with its timestamp.txt)."""
        text = handins.timestamp_text(folder)
        if not text:
            state = "missing" if text is None else "empty"
            return None, self.problem("timestamp_missing", f"{TIMESTAMP} is {state}", "graded as on time")
        when, kind = parse_timestamp(text)
        shown = _shown(text)
        if kind == "timestamp_unparseable":
            return None, self.problem(kind, f"{TIMESTAMP} holds {shown}, neither ISO 8601 with a UTC offset "
                                            "(2026-11-20T17:00:00+01:00) nor nbgrader's collected form "
                                            "('2026-11-20 17:00:00.000000 UTC')", "graded as on time")
        if kind == "timestamp_no_offset":
            return when, self.problem(kind, f"{TIMESTAMP} holds {shown} without a UTC offset", "read as UTC")
        ahead = when - now
        if ahead > timedelta(seconds=self.future_tolerance_s):
            # No "how far ahead" in the words: the reason must read the same in every run's export.
            return when, self.problem("timestamp_future", f"{TIMESTAMP} holds {shown}, which is in the future "
                                                          f"(more than {self.future_tolerance_s:g} s ahead of the "
                                                          f"grading machine's clock)",
                                      "graded as handed in then")
        return when, None


# ---- the class's settings ----------------------------------------------------------------------------------------

def late_policy(config) -> str | None:
    """The configured late policy in a few words, or None when lateness costs nothing (nbgrader's default plugin
    with penalty_method "none")."""
    from nbgrader.plugins import LateSubmissionPlugin
    from nbgrader.preprocessors import AssignLatePenalties

    plugin = AssignLatePenalties(config=config).plugin_class
    if plugin is not LateSubmissionPlugin:
        return f"{plugin.__module__}.{plugin.__qualname__}"
    method = LateSubmissionPlugin(config=config).penalty_method
    return None if method == "none" else f"LateSubmissionPlugin.penalty_method = {method!r}"


def due_date(course_dir: Path, config) -> datetime | None:
    """The assignment's due date in the gradebook (naive UTC, as nbgrader stores it), or None. Read with plain
    SQLAlchemy: nbgrader's Gradebook creates tables and a course row when it opens, and this reads only."""
    import sqlalchemy as sa
    from nbgrader.api import Assignment

    url = config.CourseDirectory.get("db_url") or gradebook_url(course_dir)
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return None  # connecting would create the file
    engine = sa.create_engine(url)
    try:
        if not sa.inspect(engine).has_table(Assignment.__tablename__):
            return None
        table = Assignment.__table__
        with engine.connect() as db:
            return db.execute(sa.select(table.c.duedate).where(table.c.name == ASSIGNMENT)).scalar()
    finally:
        engine.dispose()


# ---- what a hand-in holds ----------------------------------------------------------------------------------------

def id_problem(student: str) -> str | None:
    """Why nbgrader or the gradebook cannot take this student id, or None."""
    from nbgrader.api import Student

    longest = Student.__table__.c.id.type.length
    shown = _shown(student)
    if not student:
        return "the student id is empty"
    if len(student) > longest:
        return f"student id {shown} is {len(student)} characters long; the gradebook holds at most {longest}"
    if any(ch in _GLOB_CHARS for ch in student):
        return f"student id {shown} holds one of {_GLOB_CHARS}, which nbgrader reads as a glob pattern"
    if not student.isprintable():
        return f"student id {shown} holds control or non-printable characters"
    if student[0] in ".-":  # a hidden folder, or read as an option by nbgrader's command line
        return f"student id {shown} starts with '{student[0]}'"
    if student != student.strip():  # nbgrader strips ids: it would grade (and write rows for) another folder
        return f"student id {shown} starts or ends with white space"
    return None


def _entries(folder: Path) -> tuple[dict[str, Path], list[str]]:
    """({assignment notebook name: path} for each handed in as a plain file, in teaching order; the names of every
    other entry but timestamp.txt, the exchange's submission secret and caches, a folder's with '/')."""
    files = {f"{name}.ipynb": name for name in NOTEBOOKS}
    try:
        names = sorted(os.listdir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return {}, []
    found, others = {}, []
    for name in names:
        path = folder / name
        if name in _CACHES or (name in (TIMESTAMP, SUBMISSION_SECRET) and handins.is_plain_file(path)):
            continue
        if name in files and handins.is_plain_file(path):
            found[files[name]] = path
        else:
            others.append(handins.printable(name) + ("/" if os.path.isdir(path) and not os.path.islink(path) else ""))
    return {name: found[name] for name in NOTEBOOKS if name in found}, others


def read_notebook(path: Path) -> tuple[nbformat.NotebookNode | None, str, str]:
    """(the notebook, '', '') or (None, problem kind, why) for a file nbgrader cannot read as a notebook."""
    try:
        text = path.read_bytes().decode("utf-8")  # as nbformat.read opens it
        data = json.loads(text)
    except UnicodeDecodeError as error:
        return None, "invalid_json", f"{path.name} is not valid JSON (not UTF-8 text at byte {error.start})"
    except json.JSONDecodeError as error:
        return None, "invalid_json", (f"{path.name} is not valid JSON (line {error.lineno}, column {error.colno}: "
                                      f"{error.msg})")
    if not isinstance(data, dict):
        return None, "not_a_notebook", f"{path.name} holds a JSON {type(data).__name__}, not a notebook"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # nbformat's warnings about cell ids it adds itself
            nb = nbformat.reads(text, as_version=4)
            nbformat.validate(nb)
    except Exception as error:  # nbformat raises a handful of types for a malformed notebook
        why = (getattr(error, "message", None) or str(error) or type(error).__name__).splitlines()[0]
        return None, "not_a_notebook", f"{path.name} is not a notebook nbformat can read ({why[:200]})"
    return nb, "", ""


def parse_timestamp(text: str) -> tuple[datetime | None, str | None]:
    """(the time in UTC, None) for ISO 8601 with an offset or nbgrader's collected form; (the time read as UTC,
    "timestamp_no_offset") for an ISO date and time without offset; (None, "timestamp_unparseable") for anything
    else. nbgrader's own parse_utc is not used: it reads '10:00 PST' as UTC, '+0100' as 100 s, '11/12/2026' as
    12 November."""
    text = text.strip()
    try:
        collected = _COLLECTED.fullmatch(text)
        if collected:
            return datetime.fromisoformat(collected[1]).replace(tzinfo=timezone.utc), None
        when = datetime.fromisoformat(text)
        if _is_date(text):
            return None, "timestamp_unparseable"  # a day is not a time of day
        if when.tzinfo is None:
            return when.replace(tzinfo=timezone.utc), "timestamp_no_offset"
        return when.astimezone(timezone.utc), None
    except (ValueError, OverflowError):  # not ISO 8601, month 13, or a year 1 / 9999 moved out of range by its offset
        return None, "timestamp_unparseable"


def _is_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
        return True
    except ValueError:
        return False


def _shown(text: str) -> str:
    """Student-written text quoted on one line, cut short."""
    text = handins.printable(text)
    return repr(text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS - 1] + "…")


# ---- graded cells --------------------------------------------------------------------------------------------------

def _is_graded(cell) -> bool:
    """A cell nbgrader keeps track of by grade id: a solution, a test or a locked cell."""
    meta = notebooks.nbgrader_meta(cell)
    return bool(meta.get("grade_id")) and any(meta.get(flag) for flag in ("solution", "grade", "locked"))


def _graded_ids(nb) -> list[str]:
    return [notebooks.nbgrader_meta(cell)["grade_id"] for cell in nb.cells if _is_graded(cell)]


def missing_exercises(handin, release) -> list[str]:
    """Grade ids of the release's graded cells that the hand-in lacks, in the release's order."""
    kept = set(_graded_ids(handin))
    return [grade_id for grade_id in _graded_ids(release) if grade_id not in kept]


def with_exercises_restored(handin, release) -> nbformat.NotebookNode:
    """A copy of the hand-in with each graded cell of the release it lacks put back as released, right after the
    nearest release cell before it that the hand-in still has (matched by grade id, else by cell id), or at the top
    when there is none. nbgrader re-adds only deleted test cells, and fails on the whole notebook (KeyError in
    OverwriteCells.add_missing_grade_cells) when the cell before one is gone too."""
    nb = copy.deepcopy(handin)
    missing = set(missing_exercises(handin, release))
    for index, cell in enumerate(release.cells):
        if _is_graded(cell) and notebooks.nbgrader_meta(cell)["grade_id"] in missing:
            nb.cells.insert(_position_after(nb, release.cells[:index]), _restored(cell, nb))
    return nb


def _released_meta(release) -> dict:
    return {notebooks.nbgrader_meta(c)["grade_id"]: notebooks.nbgrader_meta(c) for c in release.cells if _is_graded(c)}


def metadata_changes(handin, release) -> list[str]:
    """Grade ids of the release's graded cells whose nbgrader metadata the hand-in changed in a way that changes
    grading (a solution marked as a test, points raised, a test unlocked). nbgrader restores some of these and
    fails on the others (a solution cell marked graded has no grade cell in the gradebook: MissingEntry)."""
    given = _released_meta(release)
    changed = {meta["grade_id"] for meta in map(notebooks.nbgrader_meta, handin.cells)
               if meta.get("grade_id") in given
               and any(meta.get(key) != given[meta["grade_id"]].get(key) for key in _GRADING_KEYS)}
    return sorted(changed)


def with_metadata_restored(handin, release) -> nbformat.NotebookNode:
    """A copy of the hand-in whose graded cells carry the release's nbgrader metadata again."""
    nb = copy.deepcopy(handin)
    given = _released_meta(release)
    for cell in nb.cells:
        grade_id = notebooks.nbgrader_meta(cell).get("grade_id")
        if grade_id in given:
            cell.metadata["nbgrader"] = copy.deepcopy(given[grade_id])
    return nb


def _match_key(cell) -> tuple | None:
    grade_id = notebooks.nbgrader_meta(cell).get("grade_id")
    if grade_id:
        return ("grade_id", grade_id)
    return ("id", cell["id"]) if cell.get("id") else None


def _position_after(nb, earlier_release_cells) -> int:
    where: dict = {}
    for index, cell in enumerate(nb.cells):
        where.setdefault(_match_key(cell), index)
    for cell in reversed(earlier_release_cells):
        key = _match_key(cell)
        if key is not None and key in where:
            return where[key] + 1
    return 0


def _restored(release_cell, nb) -> nbformat.NotebookNode:
    """The release's cell, with a cell id the hand-in's format allows (none before nbformat 4.5) and no other
    cell of the hand-in has."""
    cell = copy.deepcopy(release_cell)
    if nb.get("nbformat_minor", 0) < 5:
        cell.pop("id", None)
    elif cell.get("id") in {other.get("id") for other in nb.cells}:
        cell["id"] = nbformat.v4.nbbase.random_cell_id()
    return cell


# ---- the runner's calls ------------------------------------------------------------------------------------------

def check_class(course_dir: Path, students: list[str], config=None,
                now: datetime | None = None) -> tuple[list[Problem], dict[str, HandinCheck]]:
    """Class-wide problems (no due date while a late policy is configured) and one HandinCheck per student. Reads
    files and the gradebook only; changes nothing. A blocking class-wide problem blocks every student too."""
    course_dir = Path(course_dir)
    preflight = Preflight(config=course_config(course_dir) if config is None else config)
    now = now or datetime.now(timezone.utc)
    releases = {name: notebooks.read(release_notebook(course_dir, name)) for name in NOTEBOOKS}
    class_problems = preflight.class_problems(course_dir)
    blocking = [problem for problem in class_problems if problem.action == "blocked"]
    checks = {}
    for student in students:
        try:
            checks[student] = preflight.check_handin(course_dir, student, releases, now)
        except Exception as error:  # one hand-in the checks did not foresee: its student, never the class
            checks[student] = HandinCheck(student, [Problem(
                "unreadable", f"the hand-in could not be read ({type(error).__name__}: {_shown(str(error))})",
                "blocked")], {}, None)
        checks[student].problems += blocking
    return class_problems, checks


def stage_handin(course_dir: Path, check: HandinCheck, dest: Path) -> None:
    """Write into dest (the staging copy's submitted/<student>/section09/) exactly what nbgrader should grade: each
    gradeable notebook with deleted exercises restored from release/, and timestamp.txt in nbgrader's collected form
    (none when there is no usable timestamp), and the exchange's submission secret when it is one. Nothing else of the
    hand-in is copied."""
    if check.blocked:
        raise ValueError(f"{check.student} is not to be graded: {check.reason()}")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for name, path in check.notebooks.items():
        release = notebooks.read(release_notebook(course_dir, name))
        handin = with_metadata_restored(notebooks.read(path), release)
        notebooks.write(with_exercises_restored(handin, release), dest / f"{name}.ipynb")
    if check.submitted_at is not None:
        (dest / TIMESTAMP).write_text(check.submitted_at.astimezone(timezone.utc).strftime(COLLECTED_FORMAT))
    secret = submitted_dir(course_dir, check.student) / SUBMISSION_SECRET
    if secret.is_file() and not secret.is_symlink() and secret.stat().st_size <= 512:
        text = secret.read_text(errors="replace").strip()
        if SECRET.fullmatch(text):
            (dest / SUBMISSION_SECRET).write_text(text)


def format_table(class_problems: list[Problem], checks: dict[str, HandinCheck]) -> str:
    """One line per problem (student, action, kind, detail) under a line of counts; '' when there is none. A
    class-wide problem shows once, as "(class)", not on every student it blocks."""
    rows = [("(class)", problem) for problem in class_problems]
    rows += [(_short(handins.printable(student)), problem) for student, check in checks.items()
             for problem in check.problems if problem not in class_problems]
    if not rows:
        return ""
    actions = Counter(problem.action for _, problem in rows)
    not_graded = sum(check.blocked for check in checks.values())
    header = (f"preflight: {len(rows)} problem{'s' if len(rows) != 1 else ''} "
              f"({', '.join(f'{n} {action}' for action, n in sorted(actions.items()))}); "
              f"{not_graded} of {len(checks)} students not graded")
    width = max(len(student) for student, _ in rows)
    kind_width = max(len(problem.kind) for _, problem in rows)
    lines = [f"{student:{width}s}  {problem.action:8s}  {problem.kind:{kind_width}s}  {problem.detail}"
             for student, problem in rows]
    return "\n".join([header, *lines])


def _short(text: str, limit: int = 32) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"
