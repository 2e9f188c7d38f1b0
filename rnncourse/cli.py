"""`python -m rnncourse <command>`: the instructor's steps, run in the course directory (default: current one).

    demo         all of it: reset the demo state, generate, submissions, autograde, feedback, export, scores
    generate     nbgrader generate_assignment (source/ -> release/ and the gradebook)
    submissions  write the demo students' submissions into submitted/
    autograde    nbgrader autograde, with a progress bar
    feedback     nbgrader generate_feedback (hidden-test code stripped, messages kept)
    export       nbgrader export to grades.csv
    scores       print the per-student, per-notebook score table from the gradebook
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from . import pipeline, report, sandbox, submissions
from .course import ASSIGNMENT

DEMO_OUTPUTS = ("submitted", "feedback", "logs", "gradebook.db", "grades.csv")


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


def check_sandbox() -> None:
    """Autograde refuses to start without a working sandbox, rather than fail on every kernel."""
    try:
        sandbox.check_sandbox_works()
    except sandbox.SandboxUnavailable as problem:
        raise SystemExit(f"autograde refused: {problem}") from None


def demo(course_dir: Path) -> int:
    start = time.monotonic()
    print(f"Instructor demo in {course_dir}\n")
    check_sandbox()
    reset_demo(course_dir)
    print("1. generate the release from source/")
    _check(pipeline.generate(course_dir))
    print("2. write demo submissions into submitted/")
    students = submissions.write_demo_submissions(course_dir)
    for student in students:
        print(f"  {student:18s} {submissions.DEMO_STUDENTS[student][0]}")
    print("3. autograde every submission (real kernels, each in its own sandbox; the endless loop costs its cell's "
          "time limit)")
    # A submission nbgrader could not grade makes it exit non-zero after grading the rest; the table says which.
    _check(pipeline.autograde(course_dir, n_submissions=len(students)), must_succeed=False)
    print("4. generate feedback")
    _check(pipeline.feedback(course_dir))
    print("5. export grades")
    _check(pipeline.export(course_dir))
    print(f"  grades: {course_dir / 'grades.csv'}   feedback: {course_dir / 'feedback'}\n")
    print(report.format_tables(report.collect(course_dir)))
    print(f"\nDemo finished in {time.monotonic() - start:.0f} s.")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rnncourse", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["demo", "generate", "submissions", "autograde", "feedback", "export",
                                            "scores"])
    parser.add_argument("--course-dir", type=Path, default=Path.cwd(),
                        help="the nbgrader course directory (default: the current directory)")
    args = parser.parse_args(argv)
    course_dir = args.course_dir.resolve()
    if not (course_dir / "nbgrader_config.py").exists():
        parser.error(f"{course_dir} is not a course directory (no nbgrader_config.py)")
    if args.command == "demo":
        return demo(course_dir)
    if args.command == "generate":
        try:
            _check(pipeline.generate(course_dir))
        except pipeline.GradebookHasSubmissions as refusal:
            raise SystemExit(f"generate refused: {refusal}") from None
    elif args.command == "submissions":
        print("\n".join(submissions.write_demo_submissions(course_dir)))
    elif args.command == "autograde":
        check_sandbox()
        n = len(list((course_dir / "submitted").glob(f"*/{ASSIGNMENT}")))
        _check(pipeline.autograde(course_dir, n_submissions=n), must_succeed=False)
    elif args.command == "feedback":
        _check(pipeline.feedback(course_dir))
    elif args.command == "export":
        _check(pipeline.export(course_dir))
    elif args.command == "scores":
        print(report.format_tables(report.collect(course_dir)))
    return 0
