"""The instructor's steps, each one real nbgrader app run in the course directory.

nbgrader prints no progress while it autogrades (its issue #1456); `autograde` follows nbgrader's log and advances
a tqdm bar per finished submission, and keeps the full log in `<course>/logs/`.
"""

from __future__ import annotations

import re
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from nbgrader.api import Gradebook, MissingEntry
from tqdm import tqdm

from . import handins
from .course import ASSIGNMENT, bin_path, gradebook_url, tool_env

# nbgrader logs this once per submission, when it has written the graded copy.
_SUBMISSION_DONE = re.compile(r"Setting destination file permissions")


@dataclass
class StepResult:
    step: str
    returncode: int
    seconds: float
    log: Path

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def nbgrader(course_dir: Path, step: str, *args: str, log_name: str | None = None,
             progress_total: int | None = None, quiet: bool = False) -> StepResult:
    """Run `nbgrader <step> <args>` in course_dir; its output goes to logs/<log_name>.log."""
    course_dir = Path(course_dir)
    logs = course_dir / "logs"
    logs.mkdir(exist_ok=True)
    log_path = logs / f"{log_name or step}.log"
    start = time.monotonic()
    bar = None if (progress_total is None or quiet) else tqdm(total=progress_total, desc=step, unit="submission")
    with open(log_path, "w") as log, subprocess.Popen(
            [bin_path("nbgrader"), step, *args], cwd=course_dir, env=tool_env(),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace") as proc:
        for line in proc.stdout:
            log.write(line)
            if bar is not None and _SUBMISSION_DONE.search(line):
                bar.update(1)
        returncode = proc.wait()
    if bar is not None:
        bar.close()
    return StepResult(step, returncode, time.monotonic() - start, log_path)


class GradebookHasSubmissions(Exception):
    """generate_assignment would fail *after* deleting release/: the notebook set changed under submissions."""


def check_generate_allowed(course_dir: Path) -> None:
    """nbgrader refuses to add or remove an assignment's notebooks once it has submissions, but only after it has
    deleted the old release/. Refuse first, with the way out, so nothing is lost."""
    url = gradebook_url(course_dir)
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return
    source = {p.stem for p in (Path(course_dir) / "source" / ASSIGNMENT).glob("*.ipynb")}
    with warnings.catch_warnings(), Gradebook(url) as gb:
        warnings.simplefilter("ignore")  # SQLAlchemy warnings about nbgrader's session use
        try:
            assignment = gb.find_assignment(ASSIGNMENT)
        except MissingEntry:
            return
        known = {nb.name for nb in assignment.notebooks}
        if known != source and len(assignment.submissions) > 0:
            raise GradebookHasSubmissions(
                f"The gradebook has {len(assignment.submissions)} submissions for {ASSIGNMENT} graded with the "
                f"notebooks {sorted(known)}, and source/ now holds {sorted(source)}. nbgrader cannot change an "
                f"assignment's notebooks once it has submissions. If those submissions are only the demo's, run "
                f"`make clean-demo` first; otherwise create a new assignment for the new notebooks.")


def set_due_date(course_dir: Path, due: str) -> StepResult:
    """Record the assignment's due date in the gradebook (nbgrader's own `db assignment add`); late penalties count
    from it."""
    return nbgrader(course_dir, "db", "assignment", "add", ASSIGNMENT, f"--duedate={due}", log_name="due-date")


def generate(course_dir: Path) -> StepResult:
    check_generate_allowed(course_dir)
    return nbgrader(course_dir, "generate_assignment", ASSIGNMENT, "--force")


def autograde(course_dir: Path, n_submissions: int | None = None, quiet: bool = False,
              students: str | None = None) -> StepResult:
    """Stock serial `nbgrader autograde` of every submission (or the students matching the glob `students`), kernels
    sandboxed as nbgrader_config.py says; the parallel class-scale runner is rnncourse.classgrade. A notebook nbgrader cannot grade at all (an invalid file) makes it drop the student's
    whole assignment; those students' other notebooks are then graded one by one, so the bad notebook costs only
    its own points. A non-zero exit means something could not be graded; the report says what."""
    selection = [f"--student={students}"] if students else []
    # Links and special files out of the hand-ins first (nbgrader_config.py's hook would do it too, per run), so a
    # hand-in left without notebooks is known here and still gets its zero rows below.
    handed_in = handins.handin_students(course_dir, students or "*")
    handins.set_aside(course_dir, handed_in)
    result = nbgrader(course_dir, "autograde", ASSIGNMENT, "--force", *selection, progress_total=n_submissions,
                      quiet=quiet)
    for student in handed_in:
        if handins.on_record(course_dir, student) and not handins.has_notebooks(course_dir, student):
            handins.record_not_handed_in(course_dir, student)  # nbgrader skipped the folder: no row otherwise
    for student, notebook in dropped_notebooks(course_dir, students):
        nbgrader(course_dir, "autograde", ASSIGNMENT, "--force", f"--student={student}", f"--notebook={notebook}",
                 log_name=f"autograde-{student}-{notebook}")
    return result


def dropped_notebooks(course_dir: Path, students: str | None = None) -> list[tuple[str, str]]:
    """(student, notebook) handed in but missing from autograded/: nbgrader removed it."""
    course_dir = Path(course_dir)
    missing = []
    for folder in sorted((course_dir / "submitted").glob(f"{students or '*'}/{ASSIGNMENT}")):
        student = folder.parent.name
        for path in sorted(folder.glob("*.ipynb")):
            if not (course_dir / "autograded" / student / ASSIGNMENT / path.name).exists():
                missing.append((student, path.stem))
    return missing


def feedback(course_dir: Path) -> StepResult:
    return nbgrader(course_dir, "generate_feedback", ASSIGNMENT, "--force")


def export(course_dir: Path, csv_name: str = "grades.csv") -> StepResult:
    """`nbgrader export` to csv_name, then canvas.csv for Canvas's gradebook import (rnncourse.canvas). What canvas.csv
    asks the instructor to look at (no roster, students not on it, no grade) is printed and kept in the step's log; a
    roster.csv that cannot be read fails the step."""
    from . import canvas

    result = nbgrader(course_dir, "export", "--to", csv_name)
    if not result.ok:
        return result
    start = time.monotonic()
    try:
        lines, returncode = canvas.write_canvas_csv(course_dir).notes(), 0
    except canvas.RosterError as problem:
        lines, returncode = [f"canvas: {canvas.CANVAS_CSV} not written: {problem}"], 1
    with open(result.log, "a") as log:
        log.writelines(f"{line}\n" for line in lines)
    print("".join(f"  {line}\n" for line in lines), end="")
    return StepResult(result.step, returncode, result.seconds + time.monotonic() - start, result.log)
