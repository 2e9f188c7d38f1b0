"""Run a source notebook's code in this process and hand its namespace to a test, for tests of what its demos show;
and find which of a notebook's cells its graded cells need.

Test cells (visible and hidden parts) are skipped: a demo test asserts what a figure or table is built from, not the
grading. Figures go to matplotlib's Agg backend and are closed.
"""

from __future__ import annotations

import os
import symtable
import sys
import types
import warnings
from contextlib import contextmanager

import matplotlib

from rnncourse import notebooks
from rnncourse.course import repo_root, source_notebook

matplotlib.use("Agg")


@contextmanager
def _environment(autograde: bool):
    saved = os.environ.get("NBGRADER_EXECUTION")
    if autograde:
        os.environ["NBGRADER_EXECUTION"] = "autograde"
    else:
        os.environ.pop("NBGRADER_EXECUTION", None)
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("NBGRADER_EXECUTION", None)
        else:
            os.environ["NBGRADER_EXECUTION"] = saved


def run_source_notebook(notebook: str, until: str | None = None, autograde: bool = True) -> dict:
    """The namespace after running `notebook`'s code cells (solutions in, test cells out) in order, stopping after
    the first cell whose source contains `until` (all cells when None). With `autograde`, the notebook's training
    demos run shortened, as under nbgrader autograde."""
    import matplotlib.pyplot as plt

    source = notebooks.read(source_notebook(repo_root(), notebook))
    # A module of its own, as a kernel's __main__ is one: what the notebook defines can be pickled by reference
    # (notebook 03 shows torch.save of a whole model).
    module = types.ModuleType(f"notebook_{notebook}")
    sys.modules[module.__name__] = module
    namespace: dict = module.__dict__
    with _environment(autograde), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for cell in source.cells:
            if cell.cell_type != "code" or notebooks.nbgrader_meta(cell).get("grade"):
                continue
            exec(compile(cell.source, f"<{notebook}>", "exec"), namespace)
            plt.close("all")
            if until is not None and until in cell.source:
                return namespace
    if until is not None:
        raise LookupError(f"no code cell of {notebook} contains {until!r}")
    return namespace


def _names(code: str) -> tuple[set, set]:
    """(global names the code reads, names it binds at top level); code that does not compile reads and binds
    nothing. A function's parameters and locals are not reads: only what it looks up in the notebook's globals."""
    try:
        top = symtable.symtable(code, "<cell>", "exec")
    except SyntaxError:
        return set(), set()
    reads = {s.get_name() for s in top.get_symbols() if s.is_referenced()}
    binds = {s.get_name() for s in top.get_symbols() if s.is_assigned() or s.is_imported()}
    scopes = list(top.get_children())
    while scopes:
        scope = scopes.pop()
        reads |= {s.get_name() for s in scope.get_symbols() if s.is_global() and s.is_referenced()}
        scopes += scope.get_children()
    return reads, binds


def needed_cells(cells: list[tuple]) -> list[int]:
    """Of (grade id or None, code) pairs in notebook order, the positions of the ones the graded cells need: every
    graded cell, and each other cell that binds a name a graded cell (or a cell kept for one) reads. Demos that only
    draw or measure are left out: no grade depends on what they make."""
    kept, wanted = [], set()
    for position in reversed(range(len(cells))):
        grade_id, code = cells[position]
        reads, binds = _names(code)
        if grade_id or binds & wanted:
            kept.append(position)
            wanted |= reads
    return kept[::-1]
