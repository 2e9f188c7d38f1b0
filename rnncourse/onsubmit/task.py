"""One student's on-submit grade, run on a warm worker: the course's runner grades the hand-in collected into
submitted/ (sandboxed kernels, committed whole or not at all), then nbgrader's GenerateFeedback writes its feedback
with hidden tests stripped (and cut to the score when the policy says so)."""

from __future__ import annotations

import copy
import logging
from pathlib import Path

from .. import classgrade
from ..course import ASSIGNMENT

HIDDEN_TESTS_STRIPPED = "nbgrader.preprocessors.ClearHiddenTests"
SCORE_ONLY = "rnncourse.onsubmit.scoreonly.ScoreOnly"


def feedback_preprocessors(configured: list, detail: str) -> list:
    """The course's feedback preprocessors; hidden tests are stripped even if nbgrader_config.py forgot to."""
    chosen = list(configured)
    if HIDDEN_TESTS_STRIPPED not in chosen:
        chosen.insert(1 if chosen and chosen[0].endswith("GetGrades") else 0, HIDDEN_TESTS_STRIPPED)
    return chosen + [SCORE_ONLY] if detail == "score" else chosen


def generate_feedback(course_dir: str, student: str, detail: str, log_file) -> None:
    """nbgrader's GenerateFeedback for one student, in this process."""
    from nbgrader.converters import GenerateFeedback
    from nbgrader.coursedir import CourseDirectory

    course = classgrade._course(course_dir, None)
    config = copy.deepcopy(course.config)
    configured = config.GenerateFeedback.get("preprocessors") or GenerateFeedback().preprocessors
    config.GenerateFeedback.preprocessors = feedback_preprocessors(
        [p if isinstance(p, str) else f"{p.__module__}.{p.__name__}" for p in configured], detail)
    config.ClearHiddenTests.enabled = True  # whatever nbgrader_config.py says: students fetch this at once
    coursedir = CourseDirectory(config=config)
    coursedir.assignment_id, coursedir.student_id = ASSIGNMENT, student
    app = GenerateFeedback(coursedir=coursedir, config=config)
    app.force = True
    handler = logging.StreamHandler(log_file)
    app.log.handlers, app.log.propagate = [handler], False
    app.start()


def grade_with_feedback(course_dir: str, student: str, run_id: str, detail: str,
                        side_by_side: bool = False) -> classgrade.StudentOutcome:
    """Grade the student's hand-in now in submitted/ (side_by_side: its notebooks at once) and, if it was graded,
    write its feedback."""
    outcome = classgrade.grade_student(course_dir, student, run_id, side_by_side=side_by_side)
    if outcome.graded:
        with open(outcome.log or Path(course_dir) / "logs" / "on-submit-feedback.log", "a") as log_file:
            generate_feedback(course_dir, student, detail, log_file)
    return outcome
