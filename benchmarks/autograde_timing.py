"""Benchmark: how long each notebook runs, what `nbgrader autograde` costs per submission, and what the grading
sandbox adds: the same submissions graded with stock nbgrader's Execute and with the course's SandboxedExecute, in
one run, one after the other. Prints figures only.

    make bench                     # or: python benchmarks/autograde_timing.py --submissions 4

Timings are wall-clock on the current machine; compare them only with runs on the same machine.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from nbclient import NotebookClient

from rnncourse import notebooks, pipeline, report, submissions
from rnncourse.course import (
    NOTEBOOKS,
    new_course_dir,
    release_notebook,
    repo_root,
    source_notebook,
)
from rnncourse.kernels.executor import STOCK_AUTOGRADE_CONFIG


def time_notebook(path: Path, workdir: Path) -> tuple[float, float, str]:
    """Execute a notebook top to bottom in a fresh kernel (hidden tests included if it is a source notebook).
    Returns the total seconds and the slowest cell's seconds and id."""
    nb = notebooks.read(path)
    started, took = {}, {}
    client = NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(workdir)}},
        on_cell_execute=lambda cell, cell_index: started.__setitem__(cell_index, time.monotonic()),
        on_cell_executed=lambda cell, cell_index, execute_reply: took.__setitem__(
            cell_index, time.monotonic() - started[cell_index]))
    start = time.monotonic()
    client.execute()
    slowest = max(took, key=took.get)
    return time.monotonic() - start, took[slowest], nb.cells[slowest].get("id", str(slowest))


def new_course(workdir: Path, name: str, extra_config: str = "") -> Path:
    """The repository's config (plus extra_config lines) and source/, generated: an empty class."""
    course = new_course_dir(workdir / name, extra_config)
    assert pipeline.generate(course).ok
    return course


def make_course(k: int, workdir: Path, name: str, extra_config: str = "") -> Path:
    """A course with k full-solution submissions of every notebook, generated and ready to autograde."""
    course = new_course(workdir, name, extra_config)
    sources = {nb: notebooks.read(source_notebook(course, nb)) for nb in NOTEBOOKS}
    handed_in = {nb: notebooks.filled(notebooks.read(release_notebook(course, nb)), notebooks.solutions(sources[nb]))
                 for nb in NOTEBOOKS}
    for i in range(k):
        submissions.write_submission(course, f"student{i:03d}", handed_in)
    return course


def time_autograde(course: Path, k: int) -> tuple[float, bool]:
    """Autograde the course's submissions (again: --force); also say whether all got full marks."""
    result = pipeline.autograde(course, n_submissions=k)
    assert result.ok, result.log.read_text()[-2000:]
    full = {nb: notebooks.points(notebooks.read(source_notebook(course, nb))) for nb in NOTEBOOKS}
    return result.seconds, all(by_nb == full for by_nb in report.scores_by_cell(course).values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--submissions", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2, help="autograde runs per variant, alternating the order")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # as the graders' kernels run (rnncourse.course.tool_env)
    print(f"machine: {os.cpu_count()} CPU cores")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name in NOTEBOOKS:
            seconds, slowest, cell_id = time_notebook(source_notebook(repo_root(), name), tmp)
            print(f"{name}: runs in {seconds:.1f} s, slowest cell {slowest:.1f} s ({cell_id}) "
                  f"(source notebook, all cells and hidden tests, fresh kernel)")
        k, n = args.submissions, args.submissions * len(NOTEBOOKS)
        courses = {"stock nbgrader (no sandbox)": make_course(k, tmp, "stock", STOCK_AUTOGRADE_CONFIG),
                   "sandboxed (course config)": make_course(k, tmp, "sandboxed")}
        seconds, all_full = {label: [] for label in courses}, {label: True for label in courses}
        for round_ in range(args.rounds):  # alternate which goes first, so warm caches favour neither
            for label in (list(courses) if round_ % 2 == 0 else list(courses)[::-1]):
                took, full = time_autograde(courses[label], k)
                seconds[label].append(took)
                all_full[label] &= full
        mean = {label: sum(times) / len(times) for label, times in seconds.items()}
        for label in courses:
            print(f"nbgrader autograde, {label}: {k} full-solution submissions of {len(NOTEBOOKS)} notebooks in "
                  f"{mean[label]:.1f} s (mean of {args.rounds} runs: {', '.join(f'{t:.1f}' for t in seconds[label])}"
                  f"), {mean[label] / k:.1f} s per submission (serial, one nbgrader process)"
                  f"{'' if all_full[label] else '  [WARNING: not all full marks]'}")
        stock, sandboxed = mean.values()
        print(f"sandbox overhead: {(sandboxed - stock) / n:+.2f} s per notebook ({sandboxed / stock - 1:+.1%} of "
              f"stock's wall time), same {n} notebooks, same run")

if __name__ == "__main__":
    main()
