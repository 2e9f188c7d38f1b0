"""The student's side with real tools: nbgrader's Validate (the app behind JupyterLab's Validate button), run in a
copy of release/section09 as a student would, and the JupyterLab extensions that provide the button.
(The full browser path is tested separately.)"""

from __future__ import annotations

import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from rnncourse import notebooks
from rnncourse.course import ASSIGNMENT, NOTEBOOKS, bin_path, release_notebook, source_notebook, tool_env

pytestmark = pytest.mark.autograde

ROOT = Path(__file__).resolve().parents[1]


def validate(folder: Path, notebook: str) -> str:
    proc = subprocess.run([bin_path("nbgrader"), "validate", f"{notebook}.ipynb"], cwd=folder, env=tool_env(),
                          capture_output=True, text=True, timeout=600)
    return proc.stdout + proc.stderr


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_validate_fails_the_untouched_release_and_passes_a_completed_copy(tmp_path, notebook):
    """Validate runs every cell under nbgrader's default 30 s limit per cell, as on a student's machine."""
    source_nb = notebooks.read(source_notebook(ROOT, notebook))
    release_nb = notebooks.read(release_notebook(ROOT, notebook))
    untouched, completed = tmp_path / "untouched", tmp_path / "completed"
    shutil.copytree(ROOT / "release" / ASSIGNMENT, untouched)
    shutil.copytree(ROOT / "release" / ASSIGNMENT, completed)
    notebooks.write(notebooks.filled(release_nb, notebooks.solutions(source_nb)), completed / f"{notebook}.ipynb")
    with ThreadPoolExecutor(max_workers=2) as pool:
        out_untouched, out_completed = pool.map(validate, [untouched, completed], [notebook, notebook])
    n_tests = len(notebooks.test_cells(release_nb))
    assert f"VALIDATION FAILED ON {n_tests} CELL(S)" in out_untouched, out_untouched[-2000:]
    assert "NotImplementedError" in out_untouched
    assert "Success! Your notebook passes all the tests." in out_completed, out_completed[-2000:]


def test_jupyterlab_has_nbgraders_validate_extension():
    env = tool_env()
    lab = subprocess.run([bin_path("jupyter"), "labextension", "list"], env=env, capture_output=True, text=True)
    server = subprocess.run([bin_path("jupyter"), "server", "extension", "list"], env=env, capture_output=True,
                            text=True)
    assert "@jupyter/nbgrader" in lab.stdout + lab.stderr
    listing = server.stdout + server.stderr
    assert "nbgrader.server_extensions.validate_assignment" in listing
    assert "validate_assignment  \x1b[32mOK" in listing or "validate_assignment  OK" in listing
