"""The student's and the instructor's path in a real browser: JupyterLab with nbgrader's extensions, started from the
project's environment on loopback, driven by Playwright in Debian's Chromium (no browser download).

Student (the README's "The student's path", step by step): open each released notebook (its math renders), press
Validate on the untouched release (every test cell listed as failed), open a completed copy, run all cells (each
visible test prints that it passes, figures render), press Validate (success). Instructor: JupyterLab in the course
directory, Nbgrader > Formgrader shows the assignment and its three notebooks.

Each step leaves a screenshot in artifacts/browser/ (kept after the run, for a person to look at). Every wait is on a
condition (kernel idle, a dialog, a saved file), never a fixed sleep, so a busy machine is slower, not different.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import playwright.sync_api as playwright  # in requirements.txt: a missing one fails the run, never skips it
import pytest

from rnncourse import notebooks, pipeline
from rnncourse.course import (
    ASSIGNMENT,
    NOTEBOOKS,
    bin_path,
    new_course_dir,
    release_notebook,
    source_notebook,
    tool_env,
)

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"  # Debian's package (`make browser-tools`); Playwright's own browsers are not used
# Headless, and no calls home: on a closed network Chromium's background connections fail and slow it down.
CHROMIUM_ARGS = ["--headless=new", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update", "--disable-dev-shm-usage"]
ARTIFACTS = ROOT / "artifacts" / "browser"
SERVER_START_S = 120
CELL_RUN_S = 600  # a whole notebook, run in the browser's kernel on a busy 2-core machine
VALIDATE_S = 600  # Validate runs the notebook again in a fresh kernel
# JupyterLab's news prompt would cover part of the page in screenshots and asks the network.
PAGE_CONFIG = {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def jupyter_lab(folder: Path, home: Path):
    """`jupyter lab` in `folder` (as `make lab` starts it), on loopback with a token, with an empty home, Jupyter
    config and runtime folders under `home` so nothing from this machine's user settings leaks in. Yields the base
    URL and the token."""
    port, token = _free_port(), os.urandom(16).hex()
    config_dir = home / ".jupyter"
    (config_dir / "labconfig").mkdir(parents=True, exist_ok=True)
    (config_dir / "labconfig" / "page_config.json").write_text(json.dumps(PAGE_CONFIG))
    env = dict(tool_env(), HOME=str(home), JUPYTER_CONFIG_DIR=str(config_dir),
               JUPYTER_RUNTIME_DIR=str(home / "runtime"), IPYTHONDIR=str(home / ".ipython"),
               MPLCONFIGDIR=str(home / ".matplotlib"))
    log = open(home / "jupyter-lab.log", "w")
    proc = subprocess.Popen([bin_path("jupyter"), "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
                             f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
                             f"--IdentityProvider.token={token}", "--allow-root",
                             "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
                            cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            assert proc.poll() is None, f"jupyter lab exited: {Path(log.name).read_text()[-3000:]}"
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "jupyter lab did not answer within 2 minutes"
            time.sleep(0.5)
        yield base, token
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
        log.close()


def shut_down_kernels(base: str, token: str) -> None:
    """Every kernel the page started (one per opened notebook), through the server's REST API: idle kernels holding
    torch would otherwise pile up over the tests."""
    def call(method: str, path: str):
        request = urllib.request.Request(f"{base}{path}", method=method, headers={"Authorization": f"token {token}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")

    for kernel in call("GET", "/api/kernels"):
        call("DELETE", f"/api/kernels/{kernel['id']}")


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make browser-tools` installs Debian's chromium package")
    with playwright.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def artifacts() -> Path:
    """artifacts/browser/ without this module's screenshots of an earlier run (its subfolders are other modules':
    hub/ is test_hub_browser.py's)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("*.png"):
        old.unlink()
    return ARTIFACTS


def new_page(browser, base: str, token: str):
    context = browser.new_context(viewport={"width": 1440, "height": 1000}, device_scale_factor=1)
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(f"{base}/lab?token={token}")  # logs in (cookie); later URLs need no token
    page.locator("#jp-main-dock-panel").wait_for()
    return page


def open_notebook(page, base: str, path: str):
    """Open a notebook by its URL, as the only open document (`?reset` drops the tabs of the last visit, so the status
    bar shows this notebook's kernel), and wait until its kernel is idle."""
    page.goto(f"{base}/lab/tree/{path}?reset")
    panel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
    panel.locator(".jp-Notebook .jp-Cell").first.wait_for()
    wait_kernel_idle(page)
    return panel


def wait_kernel_idle(page, timeout_s: float = 120) -> None:
    """The status bar's kernel status reads Idle: the kernel is connected and runs nothing (cells run before that
    would be dropped)."""
    page.locator(".jp-StatusBar-TextItem", has_text="| Idle").first.wait_for(timeout=timeout_s * 1000)


ALL_CELLS_RAN = """() => {
    const notebook = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputPrompt";
    const prompts = [...document.querySelectorAll(notebook)];
    return prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
}"""


def menu(page, top: str, item: str) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text=top).first.click()
    page.locator(".lm-Menu-itemLabel", has_text=item).first.click()


def validate(page, screenshot: Path) -> tuple[str, str]:
    """Press nbgrader's Validate in the notebook toolbar; returns (verdict class, dialog text) and closes it."""
    page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .validate-button").first.click()
    dialog = page.locator(".jp-Dialog", has_text="Validation Results")
    dialog.wait_for(timeout=VALIDATE_S * 1000)
    verdict = dialog.locator("[class*='validation-']").first.get_attribute("class") or ""
    text = dialog.inner_text()
    page.screenshot(path=screenshot)
    dialog.locator("button", has_text="Ok").click()
    dialog.wait_for(state="detached")
    return verdict, text


@contextmanager
def screenshot_on_failure(page, path: Path):
    """A failing step leaves a picture of the page as it was, beside the others."""
    try:
        yield
    except BaseException:
        page.screenshot(path=path)
        raise


def saved_outputs(path: Path) -> list[tuple[dict, str]]:
    """(cell, all its text output) for every code cell of the notebook as saved on disk."""
    cells = []
    for cell in notebooks.read(path).cells:
        if cell.cell_type == "code":
            text = "".join(o.get("text", "") + "".join(o.get("data", {}).get("text/plain", ""))
                           + "\n".join(o.get("traceback", [])) for o in cell.get("outputs", []))
            cells.append((cell, text))
    return cells


@pytest.fixture(scope="module")
def student_home(tmp_path_factory) -> Path:
    """A student's folder: the release as handed out (section09/), and beside it a completed copy of every
    notebook (section09-completed/), answers filled in as a student would write them."""
    home = tmp_path_factory.mktemp("student")
    shutil.copytree(ROOT / "release" / ASSIGNMENT, home / ASSIGNMENT)
    shutil.copytree(ROOT / "release" / ASSIGNMENT, home / f"{ASSIGNMENT}-completed")
    for nb in NOTEBOOKS:
        completed = notebooks.filled(notebooks.read(release_notebook(ROOT, nb)),
                                     notebooks.solutions(notebooks.read(source_notebook(ROOT, nb))))
        notebooks.write(completed, home / f"{ASSIGNMENT}-completed" / f"{nb}.ipynb")
    return home


@pytest.fixture(scope="module")
def student_lab(student_home, tmp_path_factory):
    with jupyter_lab(student_home, tmp_path_factory.mktemp("student-jupyter")) as server:
        yield server


@pytest.mark.parametrize("step", range(len(NOTEBOOKS)), ids=NOTEBOOKS)
def test_student_opens_runs_and_validates(browser, student_lab, student_home, artifacts, step):
    base, token = student_lab
    nb, n = NOTEBOOKS[step], step + 1
    n_tests = len(notebooks.test_cells(notebooks.read(release_notebook(ROOT, nb))))
    page = new_page(browser, base, token)
    with screenshot_on_failure(page, artifacts / f"student-{n}-{nb}-FAILED.png"):
        # 1. The untouched release opens; its math is typeset by MathJax.
        panel = open_notebook(page, base, f"{ASSIGNMENT}/{nb}.ipynb")
        panel.locator(".jp-MarkdownCell mjx-container").first.wait_for(state="attached")
        page.screenshot(path=artifacts / f"student-{n}a-{nb}-opened.png")

        # 2. Validate on the untouched release lists every test cell as failed.
        verdict, text = validate(page, artifacts / f"student-{n}b-{nb}-validate-untouched.png")
        assert "validation-failed" in verdict, text[:2000]
        assert text.count("The following cell failed:") == n_tests, text[:2000]
        assert "NotImplementedError" in text

        # 3. A completed copy: Run > Run All Cells; no cell fails, and a figure renders.
        panel = open_notebook(page, base, f"{ASSIGNMENT}-completed/{nb}.ipynb")
        menu(page, "Run", "Run All Cells")
        page.wait_for_function(ALL_CELLS_RAN, timeout=CELL_RUN_S * 1000)  # every prompt numbered, none [*]
        wait_kernel_idle(page, CELL_RUN_S)
        assert panel.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']").count() == 0
        figure = panel.locator(".jp-RenderedImage img").first
        figure.scroll_into_view_if_needed()
        assert figure.evaluate("img => img.complete && img.naturalWidth > 0"), "a figure did not render"
        page.screenshot(path=artifacts / f"student-{n}c-{nb}-completed-run-all.png")

        # 4. Validate on the completed copy (it saves the notebook first): success.
        verdict, text = validate(page, artifacts / f"student-{n}d-{nb}-validate-completed.png")
        assert "validation-success" in verdict, text[:3000]
        assert "Success! Your notebook passes all the tests." in text

    # The notebook as Validate saved it: every cell ran in the browser's kernel, and every visible test cell
    # printed the line it prints when its asserts pass.
    saved = saved_outputs(student_home / f"{ASSIGNMENT}-completed" / f"{nb}.ipynb")
    assert all(cell.get("execution_count") for cell, _ in saved), "Run All Cells left a cell unexecuted"
    tests = [(cell, out) for cell, out in saved if notebooks.nbgrader_meta(cell).get("grade")]
    assert len(tests) == n_tests
    for cell, out in tests:
        passed_line = re.findall(r'print\((f?"[^"]*")\)', cell.source)[-1]
        assert ast.literal_eval(passed_line.lstrip("f")) in out, (notebooks.nbgrader_meta(cell)["grade_id"], out)
        assert "Traceback" not in out
    page.context.close()
    shut_down_kernels(base, token)


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    """An instructor's course directory: config and source/, with the assignment generated into the gradebook."""
    course = new_course_dir(tmp_path_factory.mktemp("course"))
    assert pipeline.generate(course).ok
    return course


def test_instructor_sees_the_assignment_in_formgrader(browser, course, tmp_path, artifacts):
    with jupyter_lab(course, tmp_path) as (base, token):
        page = new_page(browser, base, token)
        page.locator(".jp-DirListing-item", has_text="nbgrader_config.py").wait_for()
        menu(page, "Nbgrader", "Formgrader")
        formgrader = page.frame_locator("iframe").first
        formgrader.locator("text=Manage Assignments").first.wait_for()
        row = formgrader.locator("tr", has_text=ASSIGNMENT).first
        row.wait_for()
        page.screenshot(path=artifacts / "instructor-1-formgrader-assignments.png")

        formgrader.locator("a", has_text="Manual Grading").first.click()
        formgrader.locator("a", has_text=ASSIGNMENT).first.click()
        for nb in NOTEBOOKS:
            formgrader.locator("a", has_text=nb).first.wait_for()
        page.screenshot(path=artifacts / "instructor-2-formgrader-notebooks.png")
        page.context.close()
        shut_down_kernels(base, token)
