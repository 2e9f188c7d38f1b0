"""The course repository's own invariants: clean sources, a release that leaks nothing, agreeing environments,
a configuration that avoids nbgrader's known traps."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from traitlets.config.loader import PyFileConfigLoader

from rnncourse import notebooks
from rnncourse.course import ASSIGNMENT, NOTEBOOKS

ROOT = Path(__file__).resolve().parents[1]


def test_assignment_holds_exactly_the_written_notebooks():
    """No placeholder notebooks: source/ and release/ hold the notebooks listed in rnncourse.course."""
    for folder in ("source", "release"):
        found = sorted(p.stem for p in (ROOT / folder / ASSIGNMENT).glob("*.ipynb"))
        assert found == sorted(NOTEBOOKS), folder


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_source_notebooks_are_stored_without_outputs(name):
    nb = notebooks.read(ROOT / "source" / ASSIGNMENT / f"{name}.ipynb")
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"cell {cell.id} has outputs"


# Statements that solutions share with any PyTorch code, so the release may contain them elsewhere (notebook 03's
# ungraded demos run ordinary training steps).
GENERIC_LINES = {"with torch.no_grad():", "torch.manual_seed(0)", "optimizer.zero_grad()", "loss.backward()",
                 "optimizer.step()", "losses.append(loss.item())"}


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_release_contains_no_solution_or_hidden_test_text(name):
    source = notebooks.read(ROOT / "source" / ASSIGNMENT / f"{name}.ipynb")
    release_text = (ROOT / "release" / ASSIGNMENT / f"{name}.ipynb").read_text()
    for marker in notebooks.SOLUTION_MARKERS + notebooks.HIDDEN_TEST_MARKERS:
        assert marker not in release_text
    secret_lines = set()
    for cell in source.cells:
        for markers in (notebooks.SOLUTION_MARKERS, notebooks.HIDDEN_TEST_MARKERS):
            for line in notebooks.region(cell.source, markers).splitlines():
                line = line.strip()
                if len(line) > 12 and not line.startswith("#") and line not in GENERIC_LINES:
                    secret_lines.add(line)
    assert secret_lines, "expected solution and hidden-test lines in the source"
    release = notebooks.read(ROOT / "release" / ASSIGNMENT / f"{name}.ipynb")
    released_lines = {line.strip() for cell in release.cells for line in cell.source.splitlines()}
    leaked = secret_lines & released_lines
    assert not leaked, f"solution or hidden-test lines in the release: {sorted(leaked)}"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_every_graded_function_has_a_test_cell_with_hidden_tests_and_points(name):
    nb = notebooks.read(ROOT / "source" / ASSIGNMENT / f"{name}.ipynb")
    solutions, tests = notebooks.solution_cells(nb), notebooks.test_cells(nb)
    assert {"test_" + grade_id for grade_id in solutions} == set(tests)
    for grade_id, cell in tests.items():
        assert notebooks.region(cell.source, notebooks.HIDDEN_TEST_MARKERS).strip(), grade_id
        assert f"({notebooks.points(nb)[grade_id]:g} point" in cell.source, f"{grade_id} must state its points"


def _config():
    return PyFileConfigLoader("nbgrader_config.py", path=str(ROOT)).load_config()


def test_config_avoids_nbgraders_traps():
    c = _config()
    assert c.CourseDirectory.course_id
    assert c.OverwriteCells.add_missing_cells is True, "deleted test cells must be restored"
    assert 30 <= c.Execute.timeout <= 120
    assert c.LimitOutput.max_lines > 0 and c.LimitOutput.max_traceback > 0
    assert c.IgnorePattern.enabled is True
    assert "nbgrader.preprocessors.ClearHiddenTests" in c.GenerateFeedback.preprocessors


@pytest.mark.parametrize("stderr, ignored", [
    ("[W1126 12:00:00.000000000 NNPACK.cpp:57] Could not initialize NNPACK! Reason: Unsupported hardware.\n", True),
    ("/usr/lib/python3/site-packages/torch/nn/modules/rnn.py:123: UserWarning: dropout option adds dropout\n", True),
    ("/tmp/ipykernel_41/2871.py:2: UserWarning: To copy construct from a tensor, use clone().detach()\n", True),
    ("<stdin>:1: DeprecationWarning: old\n", True),
    ("Traceback (most recent call last):\n", False),
    ("my own debugging output: W=3\n", False),
])
def test_ignore_pattern_drops_warnings_and_nothing_else(stderr, ignored):
    assert bool(re.search(_config().IgnorePattern.pattern, stderr)) is ignored


def test_environment_yml_installs_the_pinned_requirements():
    env = (ROOT / "environment.yml").read_text()
    assert re.search(r"^\s*- python=3\.11\s*$", env, re.M)
    assert re.search(r"^\s*- -r requirements\.txt\s*$", env, re.M), "conda must install the same pins as pip"
    pins = (ROOT / "requirements.txt").read_text()
    assert re.search(r"^torch==2\.13\.\*", pins, re.M)
    assert re.search(r"^nbgrader==0\.9\.6", pins, re.M)
    for line in pins.splitlines():
        line = line.split("#")[0].strip()
        if line:
            assert "==" in line, f"unpinned requirement: {line}"


def test_ci_runs_exactly_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "make test" in ci
    assert "make test" in readme and "make demo" in readme


def test_generate_refuses_before_nbgrader_deletes_the_release(tmp_path):
    """nbgrader deletes release/ and then fails when the notebook set changed under submissions; we refuse first."""
    import shutil

    from nbgrader.api import Gradebook

    from rnncourse import pipeline

    course = tmp_path / "course"
    course.mkdir()
    shutil.copy(ROOT / "nbgrader_config.py", course)
    shutil.copytree(ROOT / "source", course / "source")
    extra = course / "source" / ASSIGNMENT / "02_lstm_gates.ipynb"
    held_back = extra.read_bytes()
    extra.unlink()  # grade an assignment of one notebook first
    assert pipeline.generate(course).ok
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        gb.add_student("someone")
        gb.add_submission(ASSIGNMENT, "someone")
    extra.write_bytes(held_back)  # then the instructor adds a notebook
    with pytest.raises(pipeline.GradebookHasSubmissions, match="clean-demo"):
        pipeline.generate(course)
    assert (course / "release" / ASSIGNMENT / f"{NOTEBOOKS[0]}.ipynb").exists(), "the release must survive"


def test_notebook_03_data_and_metric_are_the_hidden_tests_own():
    """The hidden quality test draws held-out series from rnncourse.grading.nb03.make_series and scores with its
    one_step_l1: the notebook must teach exactly those functions (its builder copies their source)."""
    import inspect

    from rnncourse.grading import nb03

    source = notebooks.read(ROOT / "source" / ASSIGNMENT / "03_pytorch_walkthrough.ipynb")
    code = "\n".join(cell.source for cell in source.cells if cell.cell_type == "code")
    for function in (nb03.make_series, nb03.one_step_l1, nb03.persistence_l1):
        assert inspect.getsource(function) in code, f"notebook 03's {function.__name__} differs from the grader's"
