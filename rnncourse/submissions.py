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
PARTIAL_SOLVED = ("rnn_step", "rnn_unroll", "embed", "task_alignment")


def _solved(source_nb, grade_ids=None) -> dict:
    answers = notebooks.solutions(source_nb)
    return answers if grade_ids is None else {k: v for k, v in answers.items() if k in grade_ids}


def _full(source_nb):
    return _solved(source_nb)


def _untouched(source_nb):
    return {}


def _partial(source_nb):
    return _solved(source_nb, PARTIAL_SOLVED)


def _syntax_error(source_nb):
    return dict(_solved(source_nb), rnn_params_from_torch=SYNTAX_ERROR_PARAMS.strip())


def _endless_loop(source_nb):
    answers = _solved(source_nb)
    answers["rnn_unroll_masked"] = ENDLESS_LOOP_MASKED.strip() + "\n\n" + answers["rnn_unroll_masked"]
    return answers


# student id -> (what the demo shows, answers for notebook 01 given its source notebook)
DEMO_STUDENTS: dict[str, tuple[str, Callable]] = {
    "full_solution": ("every function solved", _full),
    "untouched_release": ("handed in the release as it was", _untouched),
    "partial": ("solved rnn_step, rnn_unroll, embed and TASK_ALIGNMENT only", _partial),
    "syntax_error": ("a syntax error in rnn_params_from_torch, the rest solved", _syntax_error),
    "endless_loop": ("a cell that never finishes before rnn_unroll_masked, the rest solved", _endless_loop),
}


def write_submission(course_dir: Path, student: str, nbs: dict, when: dt.datetime | None = None) -> Path:
    """Write {notebook name: notebook} as `student`'s submission, with the timestamp nbgrader reads."""
    folder = submitted_dir(course_dir, student)
    folder.mkdir(parents=True, exist_ok=True)
    for name, nb in nbs.items():
        notebooks.write(nb, folder / f"{name}.ipynb")
    when = when or dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.timezone.utc)
    (folder / "timestamp.txt").write_text(when.strftime("%Y-%m-%d %H:%M:%S.%f %Z"))
    return folder


def write_demo_submissions(course_dir: Path) -> list[str]:
    """One submission per DEMO_STUDENTS entry, built from the release (what students got) and the source."""
    course_dir = Path(course_dir)
    notebook = NOTEBOOKS[0]
    source_nb = notebooks.read(source_notebook(course_dir, notebook))
    release_nb = notebooks.read(release_notebook(course_dir, notebook))
    for student, (_, answers_for) in DEMO_STUDENTS.items():
        write_submission(course_dir, student, {notebook: notebooks.filled(release_nb, answers_for(source_nb))})
    return list(DEMO_STUDENTS)

