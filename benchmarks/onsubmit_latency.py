"""Benchmark: grading on submission (issue 18). A real course hub with its section09-grader service on (tests/
hubfixture.py's course_hub: its own tagged accounts, ports and data, all removed afterwards) and K students who hand
in the whole assignment through the exchange with `nbgrader submit`, as their own accounts:

1. spread out: one student at a time, each waiting until the previous submission's feedback is released (the hub
   otherwise idle): the Submit -> feedback latency of one submission;
2. burst: the same K students submit again, all at once: the drain time, from the first submission to the last
   feedback released.

Then, for comparison, the course's runner grades the same K submissions (what the service collected into submitted/)
in one batch, as an instructor would after the deadline: `python -m rnncourse autograde --force`, the hub stopped.

Submit -> feedback is measured from the submission's arrival (the newest change time of its folder in the exchange's
inbound/, which is also where the service's ledger starts its `seconds`) to the release of its feedback (the newest
mtime of the exchange's feedback/<md5(secret + notebook)>.html files, polled every 0.2 s). Per submission it also
shows where the time went, from the course directory's files: the wait until the service collected it (settle time,
polling), the wait for a free worker, the runner's grading, GenerateFeedback, and release_feedback.

    make bench-hub            # or, as root: python benchmarks/onsubmit_latency.py --students 12

The mix is the demo's (rnncourse/submissions.py), full 3-notebook submissions: mostly full solutions, some partial,
one syntax error, one untouched release. Figures only; nothing is asserted beyond the runs having worked.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from nbgrader.utils import notebook_hash

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from hubfixture import course_hub  # noqa: E402

from rnncourse import notebooks, submissions  # noqa: E402
from rnncourse.course import ASSIGNMENT, NOTEBOOKS, release_notebook, repo_root, source_notebook  # noqa: E402
from rnncourse.hub import accounts, layout  # noqa: E402
from rnncourse.onsubmit import ledger  # noqa: E402

# Every 12 students, in submission order; K beyond 12 repeats the pattern. No endless loop (it costs a 60 s cell
# timeout, which would measure the timeout) and no late hand-in (the due date is a week ahead).
PATTERN = ["full_solution", "full_solution", "partial", "full_solution", "full_solution", "syntax_error",
           "full_solution", "full_solution", "partial", "full_solution", "full_solution", "untouched_release"]
COURSE_CONFIG = "c.OnSubmit.per_minutes = 0"  # no rate limit: every submission is graded at once
POLL_S = 0.2
SERVICE_START_S = 120  # the hub starts its services right after it starts; the first round needs the due date
FEEDBACK_S = 900  # one submission's feedback, the worst case of a burst on a busy 2-core machine
TARGET_P50_S, TARGET_DRAIN_RATIO = 20.0, 1.15
GRADED_LINE = re.compile(r"graded\s+(\S+)\s.*score (\S+)\s+([\d.]+) s from submit \(([\d.]+) s grading\)")


@dataclass
class Sent:
    """One submission through the exchange, and what the files say happened to it."""

    student: str
    kind: str
    phase: str
    started: float  # epoch seconds: `nbgrader submit` started
    returned: float  # ... and returned
    folder: Path  # in inbound/
    arrived: float  # newest change time of the folder and its files
    pages: list[Path]  # its feedback files in the exchange
    released: float = 0.0  # newest mtime of those files, once all exist
    collected: float = 0.0  # submitted/<student>/section09 renamed in place by the service's collect
    autograded: float = 0.0  # autograded/<student>/section09 renamed in place by the runner's commit
    generated: float = 0.0  # newest mtime of feedback/<student>/section09/*.html (GenerateFeedback)
    log_from_submit: float | None = None  # the service's log line: "N s from submit (M s grading)"
    log_grading: float | None = None
    ledger_row: ledger.Row | None = None

    @property
    def latency(self) -> float:
        return self.released - self.arrived


def newest_change(path: Path) -> float:
    newest = os.lstat(path).st_ctime
    for folder, dirs, files in os.walk(path):
        for name in dirs + files:
            newest = max(newest, os.lstat(os.path.join(folder, name)).st_ctime)
    return newest


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between the closest ranks (numpy's default)."""
    ordered = sorted(values)
    at = (len(ordered) - 1) * q
    low = int(at)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (at - low)


def as_user(user: str, command: str, cwd: Path) -> str:
    done = accounts.run_as(user, ["bash", "-c", command], cwd)
    if done.returncode != 0:
        raise SystemExit(f"{user}: {command} exited {done.returncode}\n{done.stdout}{done.stderr}")
    return done.stdout + done.stderr


class Bench:
    def __init__(self, hub, kinds: dict[str, str]):
        self.hub, self.kinds = hub, kinds
        self.inbound = hub.course_exchange / "inbound"
        self.feedback = hub.course_exchange / "feedback"
        self.course = hub.course_dir
        self.log = self.course / "logs" / "on-submit.log"
        self.lock = threading.Lock()

    # ---- the class ------------------------------------------------------------------------------------------------

    def release(self) -> None:
        due = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=7)).strftime("%Y-%m-%d %H:%M:%S UTC")
        as_user(self.hub.instructor, f"nbgrader db assignment add {ASSIGNMENT} --duedate='{due}' && "
                                     f"nbgrader release_assignment {ASSIGNMENT}", self.course)
        self.wait(lambda: self.service_pids(), SERVICE_START_S, "the hub started the grading service")

    def service_pids(self) -> list[int]:
        found = subprocess.run(["pgrep", "-u", self.hub.instructor, "-f", "-x", ".*python -m rnncourse.onsubmit .*"],
                               capture_output=True, text=True).stdout.split()
        return [int(pid) for pid in found]

    def prepare(self) -> None:
        """Each student fetches section09 and saves their answers (not timed)."""
        sources = {nb: notebooks.read(source_notebook(repo_root(), nb)) for nb in NOTEBOOKS}
        releases = {nb: notebooks.read(release_notebook(repo_root(), nb)) for nb in NOTEBOOKS}
        filled = {}
        for kind in set(self.kinds.values()):
            answers = submissions.DEMO_STUDENTS[kind][1]
            filled[kind] = {nb: notebooks.filled(releases[nb], answers.get(nb, submissions._solved)(sources[nb]))
                            for nb in NOTEBOOKS}
        for student, kind in self.kinds.items():
            home = layout.home(student)
            as_user(student, f"nbgrader fetch_assignment {ASSIGNMENT}", home)
            for nb in NOTEBOOKS:
                path = home / ASSIGNMENT / f"{nb}.ipynb"
                notebooks.write(filled[kind][nb], path)
                shutil.chown(path, student)

    # ---- one submission -------------------------------------------------------------------------------------------

    def folders(self, student: str) -> set[str]:
        return {n for n in os.listdir(self.inbound) if n.startswith(f"{student}+{ASSIGNMENT}+")}

    def submit(self, student: str, phase: str) -> Sent:
        before = self.folders(student)
        started = time.time()
        as_user(student, f"nbgrader submit {ASSIGNMENT}", layout.home(student))
        returned = time.time()
        new = sorted(self.folders(student) - before)
        assert len(new) == 1, (student, new)
        folder = self.inbound / new[0]
        secret = (folder / "submission_secret.txt").read_text()
        pages = [self.feedback / f"{notebook_hash(secret=secret, notebook_id=nb)}.html" for nb in NOTEBOOKS]
        return Sent(student, self.kinds[student], phase, started, returned, folder, newest_change(folder), pages)

    def await_feedback(self, sent: Sent, graded_lines: int) -> Sent:
        """Until every notebook's feedback is in the exchange and the service has logged the grade."""
        self.wait(lambda: all(p.exists() for p in sent.pages), FEEDBACK_S, f"{sent.student}'s feedback")
        sent.released = max(p.stat().st_mtime for p in sent.pages)
        handin = self.course / "submitted" / sent.student / ASSIGNMENT
        sent.collected = os.stat(handin).st_ctime
        graded = self.course / "autograded" / sent.student / ASSIGNMENT
        sent.autograded = os.stat(graded).st_ctime if graded.exists() else 0.0
        pages = list((self.course / "feedback" / sent.student / ASSIGNMENT).glob("*.html"))
        sent.generated = max((p.stat().st_mtime for p in pages), default=0.0)
        deadline = time.monotonic() + 30  # the line follows the release by the ledger write; a failure has none
        while len(lines := self.graded_lines(sent.student)) < graded_lines and time.monotonic() < deadline:
            time.sleep(POLL_S)
        if len(lines) >= graded_lines:
            sent.log_from_submit, sent.log_grading = float(lines[-1][2]), float(lines[-1][3])
        return sent

    def graded_lines(self, student: str) -> list[tuple]:
        text = self.log.read_text() if self.log.exists() else ""
        return [m.groups() for m in GRADED_LINE.finditer(text) if m.group(1) == student]

    def wait(self, condition, timeout_s: float, what: str):
        deadline = time.monotonic() + timeout_s
        while not (result := condition()):
            if time.monotonic() > deadline:
                tail = self.log.read_text()[-3000:] if self.log.exists() else "(no on-submit.log)"
                raise SystemExit(f"{what}: not within {timeout_s} s\n{tail}")
            time.sleep(POLL_S)
        return result

    # ---- the phases -----------------------------------------------------------------------------------------------

    def spread(self) -> list[Sent]:
        return [self.await_feedback(self.submit(student, "spread"), 1) for student in self.kinds]

    def burst(self) -> tuple[list[Sent], float]:
        go = threading.Barrier(len(self.kinds))

        def one(student: str) -> Sent:
            go.wait()
            return self.await_feedback(self.submit(student, "burst"), 2)

        launched = time.time()
        with ThreadPoolExecutor(max_workers=len(self.kinds)) as pool:
            sent = list(pool.map(one, self.kinds))
        return sent, launched

    def dropped_notebooks(self) -> dict[str, int]:
        """student -> how often nbgrader gave up on one of their notebooks in the service's grading (it is then
        graded again on its own: time the latency pays twice), from the runner's per-student logs."""
        counts = {}
        for path in (self.course / "logs" / "autograde").glob("on-submit-*/*.log"):
            text = path.read_text(errors="replace")
            if n := text.count("Removing failed notebook"):
                counts[path.stem] = counts.get(path.stem, 0) + n
        return counts

    def keep_logs(self, dest: Path) -> None:
        shutil.copytree(self.course / "logs", dest, dirs_exist_ok=True)

    def attach_ledger(self, sent: list[Sent]) -> None:
        engine = sa.create_engine(f"sqlite:///{self.course / 'gradebook.db'}")
        try:
            rows = ledger.read(engine, layout.COURSE_ID, ASSIGNMENT)
        finally:
            engine.dispose()
        for s in sent:
            s.ledger_row = next((r for (name, _), r in rows.items() if name == s.folder.name), None)

    # ---- the batch ------------------------------------------------------------------------------------------------

    def batch(self) -> tuple[float, str]:
        """The hub (and its service) stopped, the runner grades what submitted/ holds in one run, as the instructor,
        with the service's thread settings."""
        self.hub.stop()
        deadline = time.monotonic() + 60
        while (left := self.service_pids()) and time.monotonic() < deadline:
            time.sleep(0.5)
        for pid in left:  # a service the stopped hub left behind (it was started by this run's hub)
            os.kill(pid, signal.SIGTERM)
        start = time.monotonic()
        done = accounts.run_as(self.hub.instructor, ["bash", "-c", "OMP_NUM_THREADS=1 PYTHONNOUSERSITE=1 "
                                                     "python -m rnncourse autograde --force"], self.course)
        wall = time.monotonic() - start
        if done.returncode != 0:
            raise SystemExit(f"the batch autograde exited {done.returncode}\n{done.stdout}{done.stderr}")
        summary = next((line.strip() for line in done.stdout.splitlines() if "autograde:" in line), "")
        return wall, summary


def class_kinds(k: int) -> list[str]:
    return [PATTERN[i % len(PATTERN)] for i in range(k)]


def row(s: Sent) -> str:
    r = s.ledger_row
    score = f"{r.score:g}/{r.max_score:g}" if r and r.score is not None else (r.state if r else "no ledger row")
    ledger_s = f"{r.seconds:6.1f}" if r and r.seconds is not None else "     -"
    grading = s.log_grading or 0.0
    to_collect = s.collected - s.arrived
    graded_start = s.autograded - grading if s.autograded else s.collected
    queue = max(0.0, graded_start - s.collected)
    feedback = s.generated - s.autograded if s.autograded and s.generated else 0.0
    release = s.released - s.generated if s.generated else 0.0
    return (f"  {s.student.split('-', 1)[-1]:5s} {s.kind:17s} {s.phase:6s} {s.returned - s.started:5.1f}  "
            f"{s.latency:6.1f} {s.released - s.returned:6.1f} {ledger_s}  {score:9s} "
            f"{to_collect:5.1f} {queue:6.1f} {grading:6.1f} {feedback:5.1f} {release:5.1f}")


HEADER = ("  who   submission        phase  submit  ->feedback  ledger  score     collect queue grading "
          "fback release\n"
          "                                 cmd s   arrival  return  seconds         wait    wait  (runner) gen")


def figures(label: str, values: list[float]) -> str:
    return (f"{label}: p50 {statistics.median(values):.1f} s, p95 {percentile(values, 0.95):.1f} s, "
            f"max {max(values):.1f} s, mean {statistics.mean(values):.1f} s (n={len(values)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", "-k", type=int, default=12)
    parser.add_argument("--keep-logs", type=Path, help="copy the course's logs/ here before the hub is removed")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("this benchmark makes Unix accounts and runs JupyterHub: run it as root")
    if args.students < 12:
        parser.error("--students: at least 12")
    kinds_list = class_kinds(args.students)
    names = [f"s{i:02d}" for i in range(args.students)]
    cores = os.cpu_count() or 1
    print(f"machine: {cores} CPU cores, load average {os.getloadavg()[0]:.2f}; {args.students} students, each "
          f"submitting the 3 notebooks twice: " + ", ".join(f"{kind} x{kinds_list.count(kind)}"
                                                           for kind in dict.fromkeys(kinds_list)))
    with tempfile.TemporaryDirectory() as tmp, course_hub(names, Path(tmp), COURSE_CONFIG) as hub:
        saved = dict(os.environ)
        os.environ.update(hub.env)  # this hub's exchange and instructor, for accounts.run_as
        try:
            bench = Bench(hub, dict(zip(hub.students, kinds_list)))
            t0 = time.monotonic()
            bench.release()
            bench.prepare()
            print(f"hub up, service on, assignment released and fetched in {time.monotonic() - t0:.0f} s")
            spread = bench.spread()
            burst, launched = bench.burst()
            bench.attach_ledger(spread + burst)
            log_lines = [line for line in bench.log.read_text().splitlines()
                         if " graded " in f" {line} " or "failed" in line or "on-submit grading" in line]
            dropped = bench.dropped_notebooks()
            batch_wall, batch_summary = bench.batch()
            if args.keep_logs:
                bench.keep_logs(args.keep_logs)
        finally:
            os.environ.clear()
            os.environ.update(saved)

    print("\nSubmit -> feedback released, per submission (seconds; 'arrival' = from the submission's folder time, "
          "as the ledger counts; 'return' = from `nbgrader submit` returning):")
    print(HEADER)
    for s in spread + burst:
        print(row(s))
    bad = [s for s in spread + burst if not (s.ledger_row and s.ledger_row.state == ledger.GRADED)]
    if bad:
        print(f"NOT graded: {', '.join(f'{s.student} ({s.phase})' for s in bad)}")
    diffs = [abs(s.latency - s.ledger_row.seconds) for s in spread + burst if s.ledger_row and s.ledger_row.seconds]
    if diffs:
        print(f"cross-check: measured vs the ledger's seconds differ by at most {max(diffs):.2f} s")

    if dropped:
        print(f"nbgrader gave up on a notebook (graded again on its own) {sum(dropped.values())} times in the "
              f"service's grading: " + ", ".join(f"{who} x{n}" for who, n in sorted(dropped.items())))

    print("\nThe service's log (on-submit.log):")
    print("\n".join(f"  {line}" for line in log_lines))

    spread_s = [s.latency for s in spread]
    burst_s = [s.latency for s in burst]
    first, last = min(s.arrived for s in burst), max(s.released for s in burst)
    drain = last - first
    print()
    print(figures("spread out, Submit -> feedback", spread_s) + f"  [target p50 <= {TARGET_P50_S:g} s: "
          f"{'met' if statistics.median(spread_s) <= TARGET_P50_S else 'MISSED'}]")
    print("  where it goes (spread, mean): " + ", ".join(
        f"{name} {statistics.mean(values):.1f} s" for name, values in [
            ("until collected", [s.collected - s.arrived for s in spread]),
            ("grading (runner)", [s.log_grading or 0.0 for s in spread]),
            ("feedback generation", [s.generated - s.autograded for s in spread if s.autograded and s.generated]),
            ("release", [s.released - s.generated for s in spread if s.generated])]))
    print(figures("burst, Submit -> feedback", burst_s))
    print(f"burst drain: {drain:.1f} s from the first submission's arrival to the last feedback released "
          f"({last - launched:.1f} s from launching the {len(burst)} `nbgrader submit`s; the last arrived "
          f"{max(s.arrived for s in burst) - first:.1f} s after the first)")
    print(f"batch: `python -m rnncourse autograde --force` on the same {len(burst)} submissions, the hub stopped: "
          f"{batch_wall:.1f} s wall ({batch_summary})")
    ratio = drain / batch_wall
    print(f"ratio: drain / batch = {ratio:.2f}x  [target <= {TARGET_DRAIN_RATIO:g}x: "
          f"{'met' if ratio <= TARGET_DRAIN_RATIO else 'MISSED'}]")


if __name__ == "__main__":
    main()
