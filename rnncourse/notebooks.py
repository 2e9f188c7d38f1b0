"""Small, pure operations on nbgrader notebooks: find cells by grade id, extract solutions, fill in answers."""

from __future__ import annotations

import copy
from pathlib import Path

import nbformat

SOLUTION_MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION")
HIDDEN_TEST_MARKERS = ("### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")


def read(path: Path | str) -> nbformat.NotebookNode:
    return nbformat.read(str(path), as_version=4)


def write(nb: nbformat.NotebookNode, path: Path | str) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))


def nbgrader_meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def solution_cells(nb) -> dict:
    return {nbgrader_meta(c)["grade_id"]: c for c in nb.cells if nbgrader_meta(c).get("solution")}


def is_test_cell(cell) -> bool:
    """An autograded test cell: a graded code cell that is not an answer. The one definition the grader, reports
    and feedback use."""
    meta = nbgrader_meta(cell)
    return cell.get("cell_type") == "code" and bool(meta.get("grade")) and not meta.get("solution")


def test_cells(nb) -> dict:
    """Autograded test cells by grade id, e.g. {'test_rnn_step': cell}."""
    return {nbgrader_meta(c)["grade_id"]: c for c in nb.cells if is_test_cell(c)}


def points(nb) -> dict:
    return {grade_id: float(nbgrader_meta(c)["points"]) for grade_id, c in test_cells(nb).items()}


def without_markers(source: str, markers=SOLUTION_MARKERS) -> str:
    """The cell source with the marker lines removed (what a student who solved it would have written)."""
    return "\n".join(line for line in source.splitlines() if line.strip() not in markers)


def solutions(source_nb) -> dict:
    """{grade_id: solution code} from an instructor's source notebook."""
    return {grade_id: without_markers(cell.source) for grade_id, cell in solution_cells(source_nb).items()}


def region(source: str, markers) -> str:
    """The text between a pair of markers (exclusive), or '' if there is none."""
    lines = source.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == markers[0])
        end = next(i for i, line in enumerate(lines) if line.strip() == markers[1])
    except StopIteration:
        return ""
    return "\n".join(lines[start + 1:end])


def filled(release_nb, answers: dict) -> nbformat.NotebookNode:
    """A copy of the released notebook with the given solution cells' code replaced, as a student would save it."""
    nb = copy.deepcopy(release_nb)
    cells = solution_cells(nb)
    unknown = set(answers) - set(cells)
    if unknown:
        raise KeyError(f"no solution cell with grade id {sorted(unknown)}")
    for grade_id, code in answers.items():
        cells[grade_id].source = code
    return nb
