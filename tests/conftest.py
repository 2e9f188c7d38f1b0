"""Shared fixtures. The expensive one, `graded`, autogrades every catalog entry and the demo students with real
nbgrader, in independent course copies that run in parallel (two workers, for a 2-core machine)."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from rnncourse import notebooks, pipeline, report, submissions
from rnncourse.course import (
    NOTEBOOKS,
    new_course_dir,
    release_notebook,
    source_notebook,
    tool_env,
)

sys.path.insert(0, str(Path(__file__).parent))
from catalog import CATALOG  # noqa: E402
from notebook_run import needed_cells  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NB01 = NOTEBOOKS[0]
# Full points of each notebook and of the assignment, as the source notebooks state them.
POINTS = {nb: sum(notebooks.points(notebooks.read(source_notebook(ROOT, nb))).values()) for nb in NOTEBOOKS}
TOTAL_POINTS = sum(POINTS.values())
# nbgrader's Gradebook shells out to `alembic` (e.g. for a PostgreSQL gradebook): the environment's bin/ on PATH
# even when pytest was started without activating it.
os.environ["PATH"] = tool_env()["PATH"]
WORKERS = 2


def make_course(dest: Path) -> Path:
    """A fresh course directory holding only what an instructor commits: config and source/ (no release yet)."""
    return new_course_dir(dest)


DUE_DATE = "2026-11-20 17:00:00 UTC"  # the due date the tests' courses set


def generated_course(dest: Path, db_url: str | None = None) -> Path:
    """A fresh course as an instructor readies it for grading: the gradebook's URL in nbgrader_config.py (when
    given), the release generated, and the due date set."""
    course = make_course(dest)
    if db_url:
        with open(course / "nbgrader_config.py", "a") as f:
            f.write(f"\nc.CourseDirectory.db_url = {db_url!r}\n")
    assert pipeline.generate(course).ok, (course / "logs" / "generate_assignment.log").read_text()[-2000:]
    assert pipeline.set_due_date(course, DUE_DATE).ok
    return course


def write_catalog_submissions(course: Path, entries) -> None:
    """Each entry is a student who hands in only the notebook the entry targets, solved but for that one cell, and
    without the demo cells no graded cell needs (they cost every entry their seconds and decide no grade; the demo
    students hand in whole notebooks)."""
    for entry in entries:
        answers = notebooks.solutions(notebooks.read(source_notebook(course, entry.notebook)))
        release_nb = notebooks.read(release_notebook(course, entry.notebook))
        nb = notebooks.filled(release_nb, dict(answers, **{entry.cell: entry.code.strip("\n")}))
        submissions.write_submission(course, entry.id, {entry.notebook: without_unneeded_demos(nb)})


def without_unneeded_demos(nb):
    """The notebook without the ungraded code cells that no graded cell depends on (see notebook_run.needed_cells)."""
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    kept = {code[i] for i in needed_cells([(notebooks.nbgrader_meta(nb.cells[j]).get("grade_id"), nb.cells[j].source)
                                           for j in code])}
    nb = copy.deepcopy(nb)
    nb.cells = [c for i, c in enumerate(nb.cells) if c.cell_type != "code" or i in kept]
    return nb


@dataclass
class GradedCourse:
    path: Path
    scores: dict = field(default_factory=dict)  # student -> notebook -> test cell -> score
    returncode: int = 0
    output: str = ""


def _catalog_course(course: Path, entries, with_demo: bool) -> GradedCourse:
    assert pipeline.generate(course).ok, (course / "logs" / "generate_assignment.log").read_text()
    if with_demo:
        submissions.write_demo_submissions(course)
    write_catalog_submissions(course, entries)
    result = pipeline.autograde(course, quiet=True)
    return GradedCourse(course, report.scores_by_cell(course), result.returncode,
                        result.log.read_text())


def _demo_course(course: Path) -> GradedCourse:
    """The README's main job, exactly as an instructor runs it, in a copy of the repository's course."""
    proc = subprocess.run([sys.executable, "-m", "rnncourse", "demo", "--course-dir", str(course)],
                          env=tool_env(), capture_output=True, text=True, timeout=900)
    return GradedCourse(course, report.scores_by_cell(course) if (course / "gradebook.db").exists() else {},
                        proc.returncode, proc.stdout + proc.stderr)


@pytest.fixture(scope="session")
def graded(tmp_path_factory) -> dict:
    """{'demo': the CLI demo run, 'a': demo students + half the catalog, 'b': the other half}."""
    base = tmp_path_factory.mktemp("courses")
    demo = base / "demo"
    demo.mkdir()
    for name in ("nbgrader_config.py", "source", "release", "autograded"):
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy)(ROOT / name, demo / name)
    jobs = {
        "a": lambda: _catalog_course(make_course(base / "a"), CATALOG[0::2], with_demo=True),
        "demo": lambda: _demo_course(demo),
        "b": lambda: _catalog_course(make_course(base / "b"), CATALOG[1::2], with_demo=False),
    }
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        futures = {name: pool.submit(job) for name, job in jobs.items()}
        return {name: future.result() for name, future in futures.items()}


@pytest.fixture(scope="session")
def source_nb01():
    return notebooks.read(source_notebook(ROOT, NB01))


@pytest.fixture(scope="session")
def release_nb01():
    return notebooks.read(release_notebook(ROOT, NB01))
