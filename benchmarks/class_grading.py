"""Benchmark: grading a class. The same K generated submissions (a realistic mix: mostly complete, some partial,
one untouched, one syntax error, one endless loop, one late) graded by stock serial `nbgrader autograde` (nbgrader's
own Execute: a fresh kernel and imports per notebook, no sandbox) and by the course's parallel runner
(rnncourse.classgrade: sandboxed kernels forked from a pre-imported parent), in one run. Prints:

    wall time of each, `ratio:` (stock / ours), mean per-notebook overhead beyond the notebook's own cell compute,
    peak memory of the grading process tree, and the ratio for each worker count up to the machine's cores.

    make bench                       # or: python benchmarks/class_grading.py --submissions 12

Cell compute is read from the kernels' own execution timestamps (nbclient's record_timing); overhead is what a
notebook's grading took beyond that: kernel start, imports, nbgrader's steps, gradebook writes. Figures only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import psutil
from autograde_timing import new_course

from rnncourse import classgrade, notebooks, pipeline, submissions
from rnncourse.course import DEMO_DUE_DATE, NOTEBOOKS, autograded_notebook, release_notebook, source_notebook
from rnncourse.kernels.executor import STOCK_AUTOGRADE_CONFIG

# The class: (demo kind, how many). K beyond the sum repeats full solutions.
MIX = [("full_solution", 6), ("partial", 2), ("untouched_release", 1), ("syntax_error", 1), ("endless_loop", 1),
       ("late_full_solution", 1)]
# Keep the kernels' execution timestamps in the autograded notebooks (nbgrader clears cell metadata otherwise).
KEEP_TIMING = '\nc.ClearMetadataPreprocessor.preserve_cell_metadata_mask = {"execution"}\n'


def class_mix(k: int) -> list[tuple[str, str]]:
    kinds = [kind for kind, n in MIX for _ in range(n)]
    kinds += ["full_solution"] * max(0, k - len(kinds))
    return [(f"s{i:03d}_{kind}", kind) for i, kind in enumerate(kinds[:k])]


def make_course(workdir: Path, name: str, k: int, extra_config: str = "") -> tuple[Path, list[str]]:
    course = new_course(workdir, name, KEEP_TIMING + extra_config)
    assert pipeline.set_due_date(course, DEMO_DUE_DATE).ok
    sources = {nb: notebooks.read(source_notebook(course, nb)) for nb in NOTEBOOKS}
    releases = {nb: notebooks.read(release_notebook(course, nb)) for nb in NOTEBOOKS}
    students = []
    for student, kind in class_mix(k):
        answers_by_notebook = submissions.DEMO_STUDENTS[kind][1]
        handed_in = {nb: notebooks.filled(releases[nb], answers_by_notebook.get(nb, submissions._solved)(sources[nb]))
                     for nb in NOTEBOOKS}
        submissions.write_submission(course, student, handed_in, submissions.DEMO_SUBMITTED_AT.get(kind))
        students.append(student)
    return course, students


class PeakMemory:
    """Peak summed RSS of this process and all its descendants (kernels, workers), sampled every 0.2 s."""

    def __init__(self):
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self):
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for proc in [me, *me.children(recursive=True)]:
                try:
                    total += proc.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            self._stop.wait(0.2)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def cell_compute_seconds(course: Path, student: str, notebook: str) -> float:
    path = autograded_notebook(course, student, notebook)
    if not path.exists():
        return 0.0
    total = 0.0
    for cell in notebooks.read(path).cells:
        timing = cell.get("metadata", {}).get("execution", {})
        start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
        if start and end:
            total += (dt.datetime.fromisoformat(end.replace("Z", "+00:00"))
                      - dt.datetime.fromisoformat(start.replace("Z", "+00:00"))).total_seconds()
    return total


def compute(course: Path, students: list[str]) -> float:
    return sum(cell_compute_seconds(course, s, nb) for s in students for nb in NOTEBOOKS)


def run_stock(course: Path, students: list[str]) -> dict:
    with PeakMemory() as memory:
        result = pipeline.autograde(course, quiet=True)
    work = compute(course, students)
    return dict(wall=result.seconds, busy=result.seconds, compute=work, peak=memory.peak)


def run_ours(course: Path, students: list[str], workers: int) -> dict:
    with PeakMemory() as memory:
        start = time.monotonic()
        outcomes = classgrade.grade(course, workers=workers, quiet=True, force=True)  # each worker count grades anew
        wall = time.monotonic() - start
    assert all(o.graded for o in outcomes), [o.line() for o in outcomes if not o.graded]
    starts = {o.worker: o.worker_start_seconds for o in outcomes}  # one per worker process
    return dict(wall=wall, busy=sum(o.seconds for o in outcomes), compute=compute(course, students),
                peak=memory.peak, worker_start=statistics.mean(starts.values()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--submissions", "-k", type=int, default=12)
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="workers of the headline run")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    sweep = sorted({1, *[w for w in (2, 4, 8, 16, 32) if w <= cores], args.workers})
    k, n = args.submissions, args.submissions * len(NOTEBOOKS)
    print(f"machine: {cores} CPU cores, {psutil.virtual_memory().total / 2**30:.0f} GiB; class of {k} submissions "
          f"({n} notebooks): " + ", ".join(f"{kind} x{sum(1 for _, c in class_mix(k) if c == kind)}"
                                            for kind, _ in MIX))
    with tempfile.TemporaryDirectory() as tmp:
        stock = run_stock(*make_course(Path(tmp), "stock", k, STOCK_AUTOGRADE_CONFIG))
        course, students = make_course(Path(tmp), "ours", k)
        runs = {w: run_ours(course, students, w) for w in [args.workers, *[w for w in sweep if w != args.workers]]}
    ours = runs[args.workers]

    def overhead(run):
        return (run["busy"] - run["compute"]) / n

    print(f"stock serial nbgrader autograde (its Execute, no sandbox): {stock['wall']:.1f} s wall, {stock['compute']:.1f} s of cell compute, "
          f"overhead {overhead(stock):.2f} s per notebook, peak memory {stock['peak'] / 2**20:.0f} MiB")
    print(f"parallel runner, {args.workers} workers, sandboxed, forked kernels: {ours['wall']:.1f} s wall, {ours['compute']:.1f} s of cell "
          f"compute, overhead {overhead(ours):.2f} s per notebook, peak memory {ours['peak'] / 2**20:.0f} MiB")
    print(f"  worker start-up, once per worker while the others grade (spawn, course config, zygote importing torch "
          f"& co.): {ours['worker_start']:.1f} s; overhead with it spread over the notebooks: "
          f"{(ours['busy'] - ours['compute'] + ours['worker_start'] * args.workers) / n:.2f} s per notebook")
    print(f"ratio: {stock['wall'] / ours['wall']:.2f}x (stock serial wall / parallel runner wall, {args.workers} "
          f"workers on {cores} cores; target >= 2.2x on 2 cores)")
    print("ratio by workers: " + ", ".join(f"{w}: {stock['wall'] / runs[w]['wall']:.2f}x ({runs[w]['wall']:.0f} s, "
                                           f"overhead {overhead(runs[w]):.2f} s/notebook)" for w in sorted(runs)))
    print(f"per-notebook compute (mean): {statistics.mean([stock['compute'] / n, ours['compute'] / n]):.2f} s")


if __name__ == "__main__":
    main()
