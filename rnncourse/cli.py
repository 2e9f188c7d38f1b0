"""`python -m rnncourse <command>`: the instructor's steps, run in the course directory (default: current one).

    demo         all of it: reset the demo state, generate (+ due date), submissions, autograde, feedback, export,
                 reports, scores
    generate     nbgrader generate_assignment (source/ -> release/ and the gradebook)
    submissions  write the demo students' submissions into submitted/
    autograde    preflight every hand-in, then grade the class in parallel (--workers N, or a Dask cluster with
                 --scheduler ADDRESS), each student committed whole or not at all; skips students already graded
                 from the hand-in they have now (--force regrades); exit 1 if someone was not graded, 130 when
                 interrupted; --serial runs stock `nbgrader autograde` instead
    feedback     nbgrader generate_feedback (hidden-test code stripped, messages kept)
    export       nbgrader export to grades.csv (with a column per test), and canvas.csv for Canvas's import
    reports      reports/: score histogram, per-test pass rates, a one-screen summary
    scores       print the per-student, per-notebook score table from the gradebook
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

from . import classgrade, classreport, pipeline, report, submissions
from .kernels.bwrap import SandboxUnavailable, check_sandbox_works
from .course import ASSIGNMENT, DEMO_DUE_DATE

DEMO_OUTPUTS = ("submitted", "refused", "feedback", "logs", "reports", "gradebook.db", "grades.csv", "canvas.csv",
                ".grading")


def reset_demo(course_dir: Path) -> None:
    """Remove what an earlier demo produced, so the demo always starts from the committed course."""
    for name in DEMO_OUTPUTS:
        path = course_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    autograded = course_dir / "autograded"
    for child in autograded.iterdir() if autograded.exists() else ():
        if child.is_dir():
            shutil.rmtree(child)


def _check(result: pipeline.StepResult, must_succeed: bool = True) -> None:
    status = "ok" if result.ok else f"exit code {result.returncode}"
    print(f"  {result.step}: {status} in {result.seconds:.1f} s (log: {result.log})")
    if must_succeed and not result.ok:
        print(Path(result.log).read_text()[-3000:], file=sys.stderr)
        raise SystemExit(f"{result.step} failed; see {result.log}")


def check_sandbox(course_dir: Path) -> None:
    """Autograde refuses to start without a working sandbox, rather than fail on every kernel, unless the course's
    nbgrader_config.py turned the sandbox off (said loudly: student code then runs with the grader's access)."""
    from .kernels.executor import SandboxedExecute  # imports torch: only for the steps that grade

    from .course import course_config

    if not SandboxedExecute(config=course_config(course_dir)).sandbox:
        print("  WARNING: the grading sandbox is off (c.SandboxedExecute.sandbox = False in nbgrader_config.py): "
              "student code runs with your file and network access.")
        return
    try:
        check_sandbox_works()
    except SandboxUnavailable as problem:
        raise SystemExit(f"autograde refused: {problem}") from None


def grade_class(course_dir: Path, workers: int | None = None, scheduler: str | None = None,
                students: str = "*", force: bool = False) -> classgrade.ClassRun:
    """The parallel runner with its summary: how many graded, retried, skipped, and who was not graded and why."""
    where = f"the Dask cluster at {scheduler}" if scheduler else f"{workers or os.cpu_count()} local workers"
    start = time.monotonic()
    classgrade.stop_on_signals()
    try:
        run = classgrade.grade_class(course_dir, classgrade.pool_for(course_dir, workers, scheduler),
                                     classgrade.submitted_students(course_dir, students), force=force)
    except KeyboardInterrupt:  # before any task started (during the preflight, say): no grade was touched
        print("  autograde INTERRUPTED before grading started; students it had marked stay pending until a rerun")
        return classgrade.ClassRun("", [], interrupted=True)
    outcomes = run.outcomes
    counts = {state: sum(o.state == state for o in outcomes)
              for state in ("graded", "up to date", "failed", "blocked", "pending")}
    not_graded = [o.student for o in outcomes if not o.graded]
    print(f"  autograde{' INTERRUPTED' if run.interrupted else ''}: {counts['graded']} of {len(outcomes)} students "
          f"graded on {where} in {time.monotonic() - start:.1f} s, {counts['up to date']} already up to date, "
          f"{len(run.retries)} retries (logs: {course_dir / 'logs' / 'autograde' / run.run_id})"
          + (f"; NOT graded: {', '.join(not_graded)}" if not_graded else ""))
    for outcome in outcomes:
        if not outcome.graded:
            print(f"  {outcome.state.upper():8s} {outcome.student}: {'; '.join(outcome.problems)}")
    return run


def demo(course_dir: Path, workers: int | None = None) -> int:
    start = time.monotonic()
    print(f"Instructor demo in {course_dir}\n")
    check_sandbox(course_dir)
    reset_demo(course_dir)
    print("1. generate the release from source/, and set the due date")
    _check(pipeline.generate(course_dir))
    _check(pipeline.set_due_date(course_dir, DEMO_DUE_DATE))
    print(f"  due {DEMO_DUE_DATE}; late work: {late_policy(course_dir)}")
    print("2. write demo submissions into submitted/")
    students = submissions.write_demo_submissions(course_dir)
    for student in students:
        print(f"  {student:18s} {submissions.DEMO_STUDENTS[student][0]}")
    print("3. autograde the class in parallel (real kernels, each in its own sandbox; the endless loop costs its "
          "cell's time limit)")
    grade_class(course_dir, workers)
    print("4. generate feedback")
    _check(pipeline.feedback(course_dir))
    print("5. export grades")
    _check(pipeline.export(course_dir))
    print(f"  grades: {course_dir / 'grades.csv'}   for Canvas: {course_dir / 'canvas.csv'}   "
          f"feedback: {course_dir / 'feedback'}")
    print("6. reports\n")
    print(classreport.write_reports(course_dir)[0] + "\n")
    print(report.format_tables(report.collect(course_dir)))
    print(f"\nDemo finished in {time.monotonic() - start:.0f} s.")
    return 0


def late_policy(course_dir: Path) -> str:
    from .course import course_config
    from .latepenalty import LatePenalty
    return LatePenalty(config=course_config(course_dir)).describe(ASSIGNMENT)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rnncourse", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["demo", "generate", "submissions", "autograde", "feedback", "export",
                                            "reports", "scores"])
    parser.add_argument("--course-dir", type=Path, default=Path.cwd(),
                        help="the nbgrader course directory (default: the current directory)")
    parser.add_argument("--workers", type=int, default=None,
                        help="autograde: local worker processes (default: one per core)")
    parser.add_argument("--scheduler", metavar="ADDRESS", default=None,
                        help="autograde: grade on a running Dask cluster, e.g. tcp://10.0.0.5:8786 (workers need the "
                             "course directory at the same path and the gradebook's db_url)")
    parser.add_argument("--student", default="*", help="autograde: only the students matching this glob")
    parser.add_argument("--force", action="store_true",
                        help="autograde: regrade students already graded from the hand-in they have now")
    parser.add_argument("--serial", action="store_true",
                        help="autograde: stock `nbgrader autograde`, one notebook at a time (for comparison)")
    args = parser.parse_args(argv)
    course_dir = args.course_dir.resolve()
    if not (course_dir / "nbgrader_config.py").exists():
        parser.error(f"{course_dir} is not a course directory (no nbgrader_config.py)")
    if args.workers is not None and args.workers < 1:
        parser.error("--workers must be at least 1")
    if args.command == "demo":
        return demo(course_dir, args.workers)
    if args.command == "generate":
        try:
            _check(pipeline.generate(course_dir))
        except pipeline.GradebookHasSubmissions as refusal:
            raise SystemExit(f"generate refused: {refusal}") from None
    elif args.command == "submissions":
        print("\n".join(submissions.write_demo_submissions(course_dir)))
    elif args.command == "autograde":
        check_sandbox(course_dir)
        if args.serial:
            n = len(classgrade.submitted_students(course_dir, args.student))
            _check(pipeline.autograde(course_dir, n_submissions=n, students=args.student), must_succeed=False)
        else:
            run = grade_class(course_dir, args.workers, args.scheduler, args.student, args.force)
            if run.interrupted:
                return 130
            return 0 if all(o.graded for o in run.outcomes) else 1
    elif args.command == "feedback":
        _check(pipeline.feedback(course_dir))
    elif args.command == "export":
        _check(pipeline.export(course_dir))
    elif args.command == "reports":
        print(classreport.write_reports(course_dir)[0])
    elif args.command == "scores":
        print(report.format_tables(report.collect(course_dir)))
    return 0
