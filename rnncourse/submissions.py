"""Demo submissions: what a class hands in, from perfect to broken, written where nbgrader collects them."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Callable

from . import notebooks
from .course import NOTEBOOKS, release_notebook, source_notebook, submitted_dir

# Deliberately broken answers for notebook 01, each costing only its own function's points.
SYNTAX_ERROR_PARAMS = '''
def rnn_params_from_torch(module):
    W = torch.cat([module.weight_hh, module.weight_ih], dim=1
    b = module.bias_ih + module.bias_hh
    return W, b
'''
ENDLESS_LOOP_MASKED = '''
steps = 0
while steps < 10:   # trying things out, but `steps += 1` was forgotten: this cell never finishes
    pass
'''
PARTIAL_SOLVED = {
    "01_rnn_unrolling": ("rnn_step", "rnn_unroll", "embed", "task_alignment"),
    "02_lstm_gates": ("forget_gate", "input_gate", "candidate_cell", "cell_update", "output_gate", "hidden_state",
                      "lstm_step"),
    "03_pytorch_walkthrough": ("sequence_predictor", "detach_state"),
}


def _solved(source_nb, grade_ids=None) -> dict:
    answers = notebooks.solutions(source_nb)
    return answers if grade_ids is None else {k: v for k, v in answers.items() if k in grade_ids}


def _untouched(source_nb):
    return {}


def _syntax_error(source_nb):
    return dict(_solved(source_nb), rnn_params_from_torch=SYNTAX_ERROR_PARAMS.strip())


def _endless_loop(source_nb):
    answers = _solved(source_nb)
    answers["rnn_unroll_masked"] = ENDLESS_LOOP_MASKED.strip() + "\n\n" + answers["rnn_unroll_masked"]
    return answers


def _partial(notebook):
    return lambda source_nb: _solved(source_nb, PARTIAL_SOLVED[notebook])


# student id -> (what the demo shows, {notebook: answers given its source notebook}); a notebook not listed is
# handed in fully solved.
DEMO_STUDENTS: dict[str, tuple[str, dict[str, Callable]]] = {
    "full_solution": ("every function solved", {}),
    "untouched_release": ("handed in the release as it was", {nb: _untouched for nb in NOTEBOOKS}),
    "partial": ("solved the first functions of each notebook only", {nb: _partial(nb) for nb in NOTEBOOKS}),
    "syntax_error": ("a syntax error in rnn_params_from_torch (notebook 01)", {"01_rnn_unrolling": _syntax_error}),
    "endless_loop": ("a cell that never finishes before rnn_unroll_masked (notebook 01)",
                     {"01_rnn_unrolling": _endless_loop}),
    "late_full_solution": ("every function solved, handed in 26 hours after the due date", {}),
}
ON_TIME = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.timezone.utc)  # five hours before course.DEMO_DUE_DATE
DEMO_SUBMITTED_AT = {"late_full_solution": dt.datetime(2026, 11, 21, 19, 0, tzinfo=dt.timezone.utc)}


def write_submission(course_dir: Path, student: str, nbs: dict, when: dt.datetime | None = None) -> Path:
    """Write {notebook name: notebook} as `student`'s submission, with the timestamp nbgrader reads."""
    folder = submitted_dir(course_dir, student)
    folder.mkdir(parents=True, exist_ok=True)
    for name, nb in nbs.items():
        notebooks.write(nb, folder / f"{name}.ipynb")
    when = when or ON_TIME
    (folder / "timestamp.txt").write_text(when.strftime("%Y-%m-%d %H:%M:%S.%f %Z"))
    return folder


def write_demo_submissions(course_dir: Path) -> list[str]:
    """One submission per DEMO_STUDENTS entry, built from the release (what students got) and the source."""
    course_dir = Path(course_dir)
    sources = {nb: notebooks.read(source_notebook(course_dir, nb)) for nb in NOTEBOOKS}
    releases = {nb: notebooks.read(release_notebook(course_dir, nb)) for nb in NOTEBOOKS}
    for student, (_, answers_by_notebook) in DEMO_STUDENTS.items():
        handed_in = {nb: notebooks.filled(releases[nb], answers_by_notebook.get(nb, _solved)(sources[nb]))
                     for nb in NOTEBOOKS}
        write_submission(course_dir, student, handed_in, DEMO_SUBMITTED_AT.get(student))
    return list(DEMO_STUDENTS)
