"""The hidden checks of every notebook, called in-process on the source solutions and on every catalog entry.

Fast (no kernels); the same catalog goes through real nbgrader in test_autograde.py.
"""

from __future__ import annotations

import importlib
import re
import time
import warnings

import matplotlib
import matplotlib.pyplot as plt
import pytest
import torch
from catalog import CATALOG, VALID, WRONG
from notebook_run import needed_cells

from rnncourse import notebooks
from rnncourse.course import NOTEBOOKS, repo_root, source_notebook
from rnncourse.grading import compare, nb01, student
from rnncourse.kernels.callee import _CallTimedOut, time_limit

matplotlib.use("Agg")

NB01 = NOTEBOOKS[0]


def grading_module(notebook: str):
    """rnncourse.grading.nb01 for 01_rnn_unrolling, and so on."""
    return importlib.import_module(f"rnncourse.grading.nb{notebook[:2]}")


def checks_of(notebook: str) -> dict:
    """{solution grade id: its hidden check}; the check of grade id X is check_X."""
    module = grading_module(notebook)
    source = notebooks.read(source_notebook(repo_root(), notebook))
    return {grade_id: getattr(module, "check_" + grade_id) for grade_id in notebooks.solution_cells(source)}


CHECKS = {notebook: checks_of(notebook) for notebook in NOTEBOOKS}


def _make_solved(notebook: str):
    """The code a graded notebook runs before its last graded function is checked: every code cell up to the last
    solution cell that an answer depends on, except test cells (notebook 03's predictor trains a model on data its
    earlier cells build)."""
    source = notebooks.read(source_notebook(repo_root(), notebook))
    answers = notebooks.solutions(source)
    last = max(i for i, c in enumerate(source.cells) if notebooks.nbgrader_meta(c).get("grade_id") in answers)
    cells = [(notebooks.nbgrader_meta(c).get("grade_id"), c.source) for c in source.cells[:last + 1]
             if c.cell_type == "code" and not notebooks.nbgrader_meta(c).get("grade")]

    def make(**replacements):
        """A notebook namespace with every solution, some replaced, run as autograde runs it (short demos)."""
        namespace = {}
        code = dict(answers, **replacements)
        with pytest.MonkeyPatch.context() as patch, warnings.catch_warnings():
            patch.setenv("NBGRADER_EXECUTION", "autograde")
            warnings.simplefilter("ignore")  # plt.show() under Agg, tqdm
            answered = [(g, code.get(g, c) if g else c) for g, c in cells]
            for grade_id, cell_source in (answered[i] for i in needed_cells(answered)):
                # A broken answer breaks its cell only, and a looping one is cut off (as nbgrader's cell timeout
                # does): the next cells run all the same.
                try:
                    with time_limit(student.CALL_TIME_LIMIT_S):
                        exec(cell_source, namespace)
                except (Exception, _CallTimedOut):
                    pass
        plt.close("all")
        return namespace
    return make


@pytest.fixture(scope="module")
def solved_by_notebook():
    return {notebook: _make_solved(notebook) for notebook in NOTEBOOKS}


@pytest.fixture(scope="module")
def solved(solved_by_notebook):
    return solved_by_notebook[NB01]


def failure(check, namespace) -> str | None:
    try:
        check(namespace)
    except compare.HiddenTestFailure as exc:
        return str(exc)
    return None


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_every_graded_cell_has_a_check(notebook):
    source = notebooks.read(source_notebook(repo_root(), notebook))
    assert set(notebooks.test_cells(source)) == {"test_" + name for name in CHECKS[notebook]}


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_source_solutions_pass_every_check(notebook, solved_by_notebook):
    namespace = solved_by_notebook[notebook]()
    for name, check in CHECKS[notebook].items():
        assert failure(check, namespace) is None, name


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_catalog_covers_every_function_both_ways(notebook):
    for name in CHECKS[notebook]:
        kinds = {e.kind for e in CATALOG if e.notebook == notebook and e.cell == name}
        assert kinds == {WRONG, VALID}, f"{name} needs wrong and valid catalog entries"


def test_catalog_ids_are_unique():
    assert len({e.id for e in CATALOG}) == len(CATALOG), "catalog ids must be unique (they are student ids)"


@pytest.mark.parametrize("entry", CATALOG, ids=lambda e: e.id)
def test_catalog_entry_in_process(entry, solved_by_notebook):
    """Wrong: its own check fails, with words that point at the mistake; every other check passes. Valid: all pass."""
    namespace = solved_by_notebook[entry.notebook](**{entry.cell: entry.code})
    for name, check in CHECKS[entry.notebook].items():
        message = failure(check, namespace)
        if entry.kind == WRONG and name == entry.cell:
            assert message is not None, f"{entry.id} was not caught by the hidden test of {name}"
            assert entry.says in message, f"message should mention {entry.says!r}:\n{message}"
        elif name in entry.also_costs:
            continue  # declared (e.g. the predictor trained with a broken function); autograde checks it exactly
        else:
            assert message is None, f"{entry.id} lost points in {name}:\n{message}"


@pytest.mark.parametrize("entry", [e for e in CATALOG if e.kind == WRONG], ids=lambda e: e.id)
def test_messages_reveal_no_hidden_inputs(entry, solved_by_notebook):
    namespace = solved_by_notebook[entry.notebook](**{entry.cell: entry.code})
    message = failure(CHECKS[entry.notebook][entry.cell], namespace)
    assert "tensor(" not in message and "array(" not in message
    assert not re.search(r"\d\.\d{3,}", message), "no full-precision numbers: they would leak hidden values"
    assert "reference_" not in message and "check_" not in message and "File " not in message


def test_failure_renders_as_its_message_only():
    lines = compare.HiddenTestFailure("rnn_step did not pass")._render_traceback_()
    assert len(lines) == 1 and "rnn_step did not pass" in lines[0]


def test_checks_are_deterministic_and_leave_the_global_rng_alone(solved):
    wrong = next(e for e in CATALOG if e.id == "nb01_step_no_bias")
    namespace = solved(rnn_step=wrong.code)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first = failure(nb01.check_rnn_step, namespace)
    assert torch.equal(torch.get_rng_state(), state), "hidden tests must not consume the student's random stream"
    assert failure(nb01.check_rnn_step, namespace) == first


def test_wrong_dependency_does_not_cost_the_dependent_function(solved):
    """A wrong rnn_step must not fail rnn_unroll or rnn_unroll_masked, which call it."""
    wrong_step = next(e for e in CATALOG if e.id == "nb01_step_x_h_order")
    namespace = solved(rnn_step=wrong_step.code)
    assert failure(nb01.check_rnn_unroll, namespace) is None
    assert failure(nb01.check_rnn_unroll_masked, namespace) is None
    assert namespace["rnn_step"].__code__ is not nb01.reference_rnn_step.__code__, "the student's function is restored"


def test_endless_loop_is_cut_off_with_a_clear_message(solved, monkeypatch):
    monkeypatch.setattr(student, "CALL_TIME_LIMIT_S", 0.3)
    namespace = solved(rnn_step="def rnn_step(x_t, h_prev, W, b):\n    while True:\n        pass\n")
    start = time.monotonic()
    message = failure(nb01.check_rnn_step, namespace)
    assert "did not return within" in message and "loop" in message
    assert time.monotonic() - start < 10


def test_loop_that_swallows_exceptions_is_still_cut_off(solved, monkeypatch):
    monkeypatch.setattr(student, "CALL_TIME_LIMIT_S", 0.3)
    code = ("def rnn_step(x_t, h_prev, W, b):\n    while True:\n        try:\n            pass\n"
            "        except Exception:\n            pass\n")
    assert "did not return within" in failure(nb01.check_rnn_step, solved(rnn_step=code))


def test_student_prints_and_warnings_stay_out_of_the_cell(solved, capsys):
    code = ("def embed(token_ids, E):\n    print('debugging', token_ids)\n    import sys, warnings\n"
            "    print('to stderr', file=sys.stderr)\n    warnings.warn('careful')\n    return E[token_ids]\n")
    namespace = solved(embed=code)
    capsys.readouterr()  # what the notebook's own cells printed while the namespace was built
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning that escaped the check would raise here
        assert failure(nb01.check_embed, namespace) is None
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_not_implemented_and_undefined_are_explained(solved):
    stub = "def rnn_step(x_t, h_prev, W, b):\n    # YOUR CODE HERE\n    raise NotImplementedError()\n"
    assert "not implemented yet" in failure(nb01.check_rnn_step, solved(rnn_step=stub))
    namespace = solved()
    del namespace["embed"]
    assert "embed is not defined" in failure(nb01.check_embed, namespace)


def test_references_agree_with_the_textbook_formulas():
    """The PyTorch-module references equal the slides' formulas (guards the references themselves)."""
    gen = compare.seeded(0)
    x, h, W, b = (compare.randn(gen, 3, 4), compare.randn(gen, 3, 5), compare.randn(gen, 5, 9),
                  compare.randn(gen, 5))
    torch.testing.assert_close(nb01.reference_rnn_step(x, h, W, b), torch.tanh(torch.cat([h, x], 1) @ W.T + b))
    ids, E = torch.randint(0, 7, (4, 2), generator=gen), compare.randn(gen, 7, 3)
    one_hot = torch.nn.functional.one_hot(ids, 7).to(E.dtype) @ E
    torch.testing.assert_close(nb01.reference_embed(ids, E), one_hot)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_checks_include_a_cuda_case():
    assert "cuda" in compare.extra_devices()
