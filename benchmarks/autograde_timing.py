"""Benchmark: how long notebook 01 runs, and what `nbgrader autograde` costs per submission. Prints figures only.

    make bench                     # or: python benchmarks/autograde_timing.py --submissions 6

Timings are wall-clock on the current machine; compare them only with runs on the same machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from nbclient import NotebookClient

from rnncourse import notebooks, pipeline, report, submissions
from rnncourse.course import NOTEBOOKS, release_notebook, repo_root, source_notebook


def time_notebook(path: Path, workdir: Path) -> float:
    """Execute a notebook top to bottom in a fresh kernel (hidden tests included if it is a source notebook)."""
    nb = notebooks.read(path)
    start = time.monotonic()
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}).execute()
    return time.monotonic() - start


def time_autograde(k: int, workdir: Path) -> tuple[float, dict]:
    course = workdir / "course"
    course.mkdir()
    shutil.copy(repo_root() / "nbgrader_config.py", course)
    shutil.copytree(repo_root() / "source", course / "source")
    assert pipeline.generate(course).ok
    name = NOTEBOOKS[0]
    answers = notebooks.solutions(notebooks.read(source_notebook(course, name)))
    release_nb = notebooks.read(release_notebook(course, name))
    for i in range(k):
        submissions.write_submission(course, f"student{i:03d}", {name: notebooks.filled(release_nb, answers)})
    result = pipeline.autograde(course, n_submissions=k)
    assert result.ok, result.log.read_text()[-2000:]
    return result.seconds, report.scores_by_cell(course)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--submissions", type=int, default=6)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # as the graders' kernels run (rnncourse.course.tool_env)
    print(f"machine: {os.cpu_count()} CPU cores")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name in NOTEBOOKS:
            seconds = time_notebook(source_notebook(repo_root(), name), tmp)
            print(f"{name}: runs in {seconds:.1f} s (source notebook, all cells and hidden tests, fresh kernel)")
        seconds, scores = time_autograde(args.submissions, tmp)
        max_points = notebooks.points(notebooks.read(source_notebook(repo_root(), NOTEBOOKS[0])))
        full = all(by_nb[NOTEBOOKS[0]] == max_points for by_nb in scores.values())
        print(f"nbgrader autograde: {args.submissions} full-solution submissions in {seconds:.1f} s, "
              f"{seconds / args.submissions:.1f} s per submission (serial, one nbgrader process)"
              f"{'' if full else '  [WARNING: not all full marks]'}")


if __name__ == "__main__":
    main()
