"""The instructor's steps, each one real nbgrader app run in the course directory.

nbgrader prints no progress while it autogrades (its issue #1456); `autograde` follows nbgrader's log and advances
a tqdm bar per finished submission, and keeps the full log in `<course>/logs/`.
"""

from __future__ import annotations

import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from .course import ASSIGNMENT, bin_path, tool_env

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


def generate(course_dir: Path) -> StepResult:
    return nbgrader(course_dir, "generate_assignment", ASSIGNMENT, "--force")


def autograde(course_dir: Path, n_submissions: int | None = None, quiet: bool = False) -> StepResult:
    """Autograde every submission. A non-zero exit means some submission could not be graded at all (nbgrader
    removes it and carries on); the report shows which."""
    return nbgrader(course_dir, "autograde", ASSIGNMENT, "--force", progress_total=n_submissions, quiet=quiet)


def feedback(course_dir: Path) -> StepResult:
    return nbgrader(course_dir, "generate_feedback", ASSIGNMENT, "--force")


def export(course_dir: Path, csv_name: str = "grades.csv") -> StepResult:
    return nbgrader(course_dir, "export", "--to", csv_name)
