"""Real nbgrader, real kernels: the release is what generate_assignment makes, the demo grades as it should, every
catalog entry loses points exactly in its own test cell (or none, if valid), and scores repeat across runs."""

from __future__ import annotations

import filecmp
import re
from pathlib import Path

import pytest
from catalog import CATALOG, WRONG
from conftest import make_course, write_catalog_submissions

from rnncourse import notebooks, pipeline
from rnncourse.course import ASSIGNMENT, NOTEBOOKS, autograded_notebook, source_notebook
from rnncourse.report import scores_by_cell
from rnncourse.submissions import PARTIAL_SOLVED

pytestmark = pytest.mark.autograde

ROOT = Path(__file__).resolve().parents[1]
NB01 = NOTEBOOKS[0]
# Full points of every test cell, by notebook, as the source notebooks state them.
FULL = {nb: notebooks.points(notebooks.read(source_notebook(ROOT, nb))) for nb in NOTEBOOKS}


def _losing(notebook: str, *cells: str) -> dict:
    return dict(FULL[notebook], **{"test_" + cell: 0 for cell in cells})


# Demo students' expected points per test cell (see rnncourse.submissions.DEMO_STUDENTS).
EXPECTED_DEMO = {
    "full_solution": {nb: FULL[nb] for nb in NOTEBOOKS},
    "untouched_release": {nb: {cell: 0 for cell in FULL[nb]} for nb in NOTEBOOKS},
    "partial": {nb: {cell: (points if cell.removeprefix("test_") in PARTIAL_SOLVED[nb] else 0)
                     for cell, points in FULL[nb].items()} for nb in NOTEBOOKS},
    "syntax_error": dict({nb: FULL[nb] for nb in NOTEBOOKS}, **{NB01: _losing(NB01, "rnn_params_from_torch")}),
    "endless_loop": dict({nb: FULL[nb] for nb in NOTEBOOKS}, **{NB01: _losing(NB01, "rnn_unroll_masked")}),
    "late_full_solution": {nb: FULL[nb] for nb in NOTEBOOKS},  # every test passes; the penalty comes after
}


def test_points_in_the_notebooks_are_the_announced_ones():
    assert {nb: sum(FULL[nb].values()) for nb in NOTEBOOKS} == {
        "01_rnn_unrolling": 15, "02_lstm_gates": 16, "03_pytorch_walkthrough": 17}


def test_committed_release_is_exactly_what_generate_assignment_makes(graded):
    """Course 'a' started with source/ only; its release/ was made by nbgrader generate_assignment."""
    fresh, committed = graded["a"].path / "release" / ASSIGNMENT, ROOT / "release" / ASSIGNMENT
    fresh_files = sorted(p.relative_to(fresh) for p in fresh.rglob("*") if p.is_file())
    committed_files = sorted(p.relative_to(committed) for p in committed.rglob("*") if p.is_file())
    assert fresh_files == committed_files
    for rel in fresh_files:
        assert filecmp.cmp(fresh / rel, committed / rel, shallow=False), f"release/{ASSIGNMENT}/{rel} is stale: " \
            f"run `make generate` and commit"


@pytest.mark.parametrize("student", EXPECTED_DEMO)
def test_demo_student_scores(graded, student):
    """Full solution: full marks. Untouched release: 0 everywhere. Broken ones lose only their own functions."""
    assert graded["demo"].returncode == 0, graded["demo"].output[-3000:]
    assert graded["demo"].scores[student] == EXPECTED_DEMO[student]


def test_demo_prints_the_score_table_and_exports_grades(graded):
    out = graded["demo"].output
    for student in EXPECTED_DEMO:
        assert student in out
    assert "timed out in rnn_unroll_masked" in out and "syntax error in rnn_params_from_torch" in out
    csv = (graded["demo"].path / "grades.csv").read_text().splitlines()
    assert csv[0].startswith("assignment,") and len(csv) == 1 + len(EXPECTED_DEMO)
    assert f"{NB01}:test_rnn_step" in csv[0].split(","), "one column per test cell"


def test_demo_applies_the_late_policy_and_writes_reports(graded):
    """26 hours late = 2 started days = 20% of 48 points."""
    out, course = graded["demo"].output, graded["demo"].path
    assert re.search(r"late_full_solution\s+15 / 15\s+16 / 16\s+17 / 17\s+38.4 / 48\s+late 26.0 h: -9.6 points", out)
    assert "10% of the score per started day late; more than 3 days late scores 0" in out
    assert "6 submissions, 6 fully graded, 0 not (fully) graded" in out
    for name in ("score_histogram.png", "test_pass_rates.png", "summary.txt"):
        assert (course / "reports" / name).stat().st_size > 0


def test_scores_are_identical_across_two_runs(graded):
    """The demo students were graded twice, in two course directories by two nbgrader processes."""
    first = {s: graded["demo"].scores[s] for s in EXPECTED_DEMO}
    second = {s: graded["a"].scores[s] for s in EXPECTED_DEMO}
    assert first == second


@pytest.mark.parametrize("entry", CATALOG, ids=lambda e: e.id)
def test_catalog_entry_through_nbgrader_autograde(graded, entry):
    scores = course_of(graded, entry).scores[entry.id][entry.notebook]
    expected = _losing(entry.notebook, entry.cell, *entry.also_costs) if entry.kind == WRONG else FULL[entry.notebook]
    assert scores == expected, f"{entry.kind} entry {entry.id}: got {scores}"


def course_of(graded, entry):
    return graded["a"] if entry in CATALOG[0::2] else graded["b"]


# Passes the visible tests (their batch uses the whole vocabulary) and fails only the hidden ones.
HIDDEN_ONLY = next(e for e in CATALOG if e.id == "nb01_embed_one_hot_inferred_classes")


def test_hidden_failure_in_the_graded_notebook_shows_only_the_message(graded):
    nb = notebooks.read(autograded_notebook(course_of(graded, HIDDEN_ONLY).path, HIDDEN_ONLY.id, NB01))
    cell = notebooks.test_cells(nb)[HIDDEN_ONLY.test_cell]
    errors = [o for o in cell.outputs if o.output_type == "error"]
    assert [e.ename for e in errors] == ["HiddenTestFailure"]
    traceback = "\n".join(errors[0].traceback)
    assert "embed passes the visible tests" in "".join(o.get("text", "") for o in cell.outputs)
    assert HIDDEN_ONLY.says in traceback
    assert "rnncourse" not in traceback and "reference_" not in traceback and "File " not in traceback


def test_warning_on_stderr_costs_points_only_without_ignore_pattern(graded, tmp_path):
    """nbgrader's trap, shown for real: the valid entry that makes torch warn on stderr scores 0 in test_embed when
    IgnorePattern is off, and full marks with the course's configuration."""
    entry = next(e for e in CATALOG if e.id == "nb01_embed_valid_warns_on_stderr")
    course = course_of(graded, entry)
    assert course.scores[entry.id][NB01]["test_embed"] == FULL[NB01]["test_embed"]
    plain = make_course(tmp_path / "no_ignore_pattern")
    assert pipeline.generate(plain).ok
    write_catalog_submissions(plain, [entry])
    assert pipeline.nbgrader(plain, "autograde", ASSIGNMENT, "--IgnorePattern.enabled=False").ok
    assert scores_by_cell(plain)[entry.id][NB01]["test_embed"] == 0


def test_feedback_shows_messages_but_not_hidden_test_code(graded):
    course = course_of(graded, HIDDEN_ONLY).path
    result = pipeline.nbgrader(course, "generate_feedback", ASSIGNMENT, "--student", HIDDEN_ONLY.id, "--force")
    assert result.ok, result.log.read_text()[-2000:]
    html = (course / "feedback" / HIDDEN_ONLY.id / ASSIGNMENT / f"{NB01}.html").read_text()
    assert "did not pass the hidden tests" in html and "num_classes" in html
    assert "check_rnn_step" not in html and "rnncourse" not in html
    # The results table on top: each test by name, passed or failed, points, the check's message.
    table = html[html.index("Your results"):html.index("Each test appears again below")]
    rows = {m[0]: m[1:] for m in re.findall(r"<td><code>(test_\w+)</code></td>\s*<td>(\w+)</td>\s*<td>([^<]+)</td>"
                                            r"\s*<td>([^<]*)</td>", table)}
    assert len(rows) == len(FULL[NB01]), table[:3000]
    failed = [name for name, (result, _, _) in rows.items() if result == "failed"]
    assert failed, rows
    assert all("did not pass the hidden tests" in rows[name][2] for name in failed), rows
    assert rows["test_rnn_step"][:2] == ("passed", "2 / 2")
