"""The course on the hub, in the browser, as its people use it: each logs in on the hub's login page (PAM) in a
browser context of their own and works in their own JupyterLab, driven by Playwright in Debian's Chromium.

1. The instructor opens Formgrader (in a browser tab of its own: see open_formgrader), sets the due date (the
   course's late policy needs one to grade) and presses Release for section09.
2. Two students open Nbgrader > Assignment List, see section09 released, press Fetch and open notebook 01; ann types
   every answer into its solution cells, ben only the first two; each saves, presses Validate (ann: success, ben: the
   failures listed) and then Submit in the Assignment List.
3. The instructor presses Collect in Formgrader, grades with the course's runner in a JupyterLab Terminal, then
   presses Generate Feedback and Release Feedback.
4. Each student presses Fetch Feedback and opens the feedback of notebook 01: their own score and test messages,
   nothing of the other student.

Screenshots of every step go to artifacts/browser/hub/ (kept after the run; a failing step leaves *-FAILED.png for
each person). Every wait is on a condition (an element, a dialog, a file on disk), never a fixed sleep.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from hubclient import SERVER_START_S
from hubfixture import course_hub
from rnncourse import notebooks
from rnncourse.course import ASSIGNMENT, NOTEBOOKS, repo_root, source_notebook
from test_browser import (  # noqa: F401 -- `browser` is a fixture used by name
    ARTIFACTS,
    browser,
    menu,
    open_notebook,
    screenshot_on_failure,
    validate,
)

pytestmark = [pytest.mark.browser, pytest.mark.hub]

NB01 = NOTEBOOKS[0]
SHOTS = ARTIFACTS / "hub"
STUDENTS = ["ann", "ben"]  # ann completes notebook 01, ben only its first two answers
BEN_ANSWERS = 2
SAVE_S = 60  # a save reaching the student's disk
GRADE_S = 600  # the course's runner grading both students' three notebooks on a busy 2-core machine
FEEDBACK_S = 300  # Formgrader's Generate Feedback (nbconvert of every graded notebook)
DONE: set[str] = set()  # the steps that passed; a later step needs the earlier ones


@dataclass
class Person:
    role: str  # "instructor", "ann", "ben": the screenshots' names
    account: str
    page: object  # playwright Page (their JupyterLab), in a browser context of this person's own
    formgrader: object = None  # the instructor's second browser tab: Formgrader

    @property
    def home(self) -> Path:
        return Path("/home") / self.account

    def shot(self, label: str, page=None) -> Path:
        path = SHOTS / f"{self.role}-{label}.png"
        (page or self.page).screenshot(path=path)
        return path


@pytest.fixture(scope="module")
def shots() -> Path:
    shutil.rmtree(SHOTS, ignore_errors=True)
    SHOTS.mkdir(parents=True)
    return SHOTS


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    with course_hub(STUDENTS, tmp_path_factory.mktemp("hub-browser")) as running:
        yield running


def log_in(browser, hub, role: str, account: str) -> Person:
    """Open the hub's login page in a fresh browser context and log in with the account's password. The hub then
    starts the person's server; wait_for_lab waits for it (all three start at once)."""
    context = browser.new_context(viewport={"width": 1440, "height": 1000}, device_scale_factor=1)
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(f"{hub.base}/hub/login")
    page.locator("#username_input").fill(account)
    page.locator("#password_input").fill(hub.passwords[account])
    page.locator("#login_submit").click()
    return Person(role, account, page)


def wait_for_lab(person: Person) -> None:
    """The hub's spawn page hands over to the person's JupyterLab once their server is up."""
    person.page.wait_for_url(re.compile(rf"/user/{re.escape(person.account)}/lab"), timeout=SERVER_START_S * 1000)
    person.page.locator("#jp-main-dock-panel").wait_for(timeout=SERVER_START_S * 1000)


@pytest.fixture(scope="module")
def people(browser, hub, shots) -> dict[str, Person]:
    everyone = {"instructor": log_in(browser, hub, "instructor", hub.instructor)}
    for role, account in zip(STUDENTS, hub.students):
        everyone[role] = log_in(browser, hub, role, account)
    yield everyone
    for person in everyone.values():
        person.page.context.close()


@contextmanager
def step(hub, people: dict[str, Person], name: str, needs: tuple[str, ...] = ()):
    """A step of the loop: it needs the earlier ones; if it fails, every person's page is saved as it was
    (<role>-<step>-FAILED.png) and the end of the hub's log (the users' servers log there too) is printed."""
    missing = [n for n in needs if n not in DONE]
    if missing:
        pytest.fail(f"an earlier step failed: {', '.join(missing)}")
    try:
        with ExitStack() as stack:
            for person in people.values():
                stack.enter_context(screenshot_on_failure(person.page, SHOTS / f"{person.role}-{name}-FAILED.png"))
                if person.formgrader is not None:
                    stack.enter_context(screenshot_on_failure(
                        person.formgrader, SHOTS / f"{person.role}-{name}-formgrader-FAILED.png"))
            yield
    except BaseException:
        print(f"--- end of the hub's log ({hub.log_path}) ---\n{hub.log_path.read_text()[-6000:]}")
        raise
    DONE.add(name)


def wait_until(condition, timeout_s: float, what: str) -> None:
    """Poll a condition on this machine (a file a person's server writes) until it holds."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s:.0f} s"
        time.sleep(0.2)


# --- Formgrader -------------------------------------------------------------------------------------------------------
# Formgrader in its own browser tab, as nbgrader's documentation says for JupyterHub >= 4.1: the hub's servers send
# `Content-Security-Policy: frame-ancestors 'none'`, so JupyterLab's Nbgrader > Formgrader panel (an iframe) stays
# blank ("127.0.0.1 refused to connect").

def open_formgrader(hub, person: Person) -> None:
    person.formgrader = person.page.context.new_page()
    person.formgrader.set_default_timeout(60_000)
    person.formgrader.goto(f"{hub.base}/user/{person.account}/formgrader")
    person.formgrader.locator("#main-table").wait_for()


def formgrader(person: Person):
    return person.formgrader


def assignment_row(person: Person):
    return formgrader(person).locator("#main-table tr", has_text=ASSIGNMENT).first


def press_in_formgrader(person: Person, column: str, success: str, label: str, timeout_s: float = 120) -> str:
    """Press the button in `column` of section09's row on Manage Assignments; the dialog that follows must say
    `success`. Screenshot, close the dialog; returns its text (with the command's log)."""
    assignment_row(person).locator(f"td.{column} a").click()
    dialog = formgrader(person).locator("#success-modal, #error-modal").first
    dialog.wait_for(timeout=timeout_s * 1000)
    formgrader(person).wait_for_function(  # Bootstrap's fade-in has finished: the screenshot shows it as read
        "() => getComputedStyle(document.querySelector('#success-modal, #error-modal')).opacity === '1'")
    text = dialog.inner_text()
    person.shot(label, person.formgrader)
    assert success in text, text[-3000:]
    dialog.locator(".modal-footer button").first.click()
    dialog.wait_for(state="detached")
    return text


# --- The Assignment List ----------------------------------------------------------------------------------------------

def assignment_list(person: Person):
    """Nbgrader > Assignment List (opened, or brought to the front)."""
    menu(person.page, "Nbgrader", "Assignment List")
    panel = person.page.locator("#nbgrader-assignment-list")
    panel.wait_for()
    return panel


def listed(panel, which: str):
    """section09's entry in the released, fetched or submitted list."""
    return panel.locator(f"#{which}_assignments_list > .list_item", has_text=ASSIGNMENT).first


# --- Notebook 01 ------------------------------------------------------------------------------------------------------

def answers_to_type(person: Person, how_many: int | None) -> dict[int, tuple[str, str]]:
    """{cell index: (grade id, answer)} for the fetched notebook's solution cells that still raise
    NotImplementedError, in order (the first `how_many` of them), answers from the instructor's source notebook."""
    fetched = notebooks.read(person.home / ASSIGNMENT / f"{NB01}.ipynb")
    answers = notebooks.solutions(notebooks.read(source_notebook(repo_root(), NB01)))
    todo = {i: (notebooks.nbgrader_meta(cell)["grade_id"],) for i, cell in enumerate(fetched.cells)
            if cell.cell_type == "code" and notebooks.nbgrader_meta(cell).get("solution")
            and "raise NotImplementedError()" in cell.source}
    assert len(todo) == len(answers), (sorted(todo.values()), sorted(answers))
    chosen = list(todo.items())[:how_many]
    return {i: (gid, answers[gid]) for i, (gid,) in chosen}


def type_answers(person: Person, panel, answers: dict[int, tuple[str, str]]) -> None:
    """Click into each solution cell's editor, select all, type the answer; then save (Ctrl+S) and wait until the
    notebook on the student's disk holds every answer."""
    page = person.page
    path = person.home / ASSIGNMENT / f"{NB01}.ipynb"
    cells = panel.locator(".jp-Notebook .jp-Cell")
    page.wait_for_function(  # JupyterLab attaches a long notebook's cells in batches: all of them, so nth(i) is cell i
        "n => document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell').length === n",
        arg=len(notebooks.read(path).cells))
    for index, (_, code) in answers.items():
        editor = cells.nth(index).locator(".cm-content")
        editor.scroll_into_view_if_needed()
        editor.click()
        page.keyboard.press("ControlOrMeta+a")
        page.keyboard.insert_text(code)
        page.keyboard.press("Escape")  # command mode
    page.keyboard.press("ControlOrMeta+s")

    def saved() -> bool:
        try:
            on_disk = notebooks.solution_cells(notebooks.read(path))
        except Exception:  # the save is being written
            return False
        return all(on_disk[gid].source == code for gid, code in answers.values())

    wait_until(saved, SAVE_S, f"{person.role}'s answers saved to {path}")


# --- Feedback ---------------------------------------------------------------------------------------------------------

def score_pattern(score: float, points: float) -> str:
    """The feedback's heading for notebook 01, e.g. '01_rnn_unrolling (Score: 4.0 / 15.0)'."""
    number = lambda x: rf"{x:g}(?:\.0+)?"  # noqa: E731
    return rf"{re.escape(NB01)} \(Score: {number(score)} / {number(points)}\)"



# --- The steps --------------------------------------------------------------------------------------------------------

def test_1_instructor_releases(hub, people):
    teacher = people["instructor"]
    with step(hub, people, "1"):
        wait_for_lab(teacher)
        teacher.shot("1a-jupyterlab")
        open_formgrader(hub, teacher)
        row = assignment_row(teacher)
        row.locator("td.status", has_text="draft").wait_for()

        # The due date, a week ahead, in the row's Edit dialog (the late policy grades nothing without one).
        due = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=7)).replace(second=0, microsecond=0)
        row.locator("td.edit a").click()
        edit = formgrader(teacher).locator("#edit-assignment-modal")
        edit.locator("input.modal-duedate").fill(due.strftime("%Y-%m-%dT%H:%M"))
        edit.locator("input.modal-timezone").fill("UTC")
        teacher.shot("1b-formgrader-due-date", teacher.formgrader)
        edit.locator("button.save").click()
        edit.wait_for(state="detached")
        row.locator("td.duedate", has_text=due.strftime("%Y-%m-%d")).wait_for()

        press_in_formgrader(teacher, "release", f"Successfully released '{ASSIGNMENT}'", "1c-formgrader-released")
        row.locator("td.status", has_text="released").wait_for()
        teacher.shot("1d-formgrader-assignment-released", teacher.formgrader)
    assert (hub.course_exchange / "outbound" / ASSIGNMENT / f"{NB01}.ipynb").exists()


@pytest.mark.parametrize("role", STUDENTS)
def test_2_student_fetches_works_validates_submits(hub, people, role):
    student = people[role]
    page = student.page
    with step(hub, people, f"2-{role}", needs=("1",)):
        wait_for_lab(student)
        panel = assignment_list(student)
        listed(panel, "released").locator("button", has_text="Fetch").wait_for()
        student.shot("2a-assignment-list-released")
        listed(panel, "released").locator("button", has_text="Fetch").click()
        listed(panel, "fetched").locator("button", has_text="Submit").wait_for()
        student.shot("2b-assignment-list-fetched")

        notebook = open_notebook(page, f"{hub.base}/user/{student.account}", f"{ASSIGNMENT}/{NB01}.ipynb")
        answers = answers_to_type(student, None if role == "ann" else BEN_ANSWERS)
        type_answers(student, notebook, answers)
        student.shot("2c-answers-typed-and-saved")

        verdict, text = validate(page, SHOTS / f"{role}-2d-validate.png")
        if role == "ann":
            assert "validation-success" in verdict, text[:3000]
            assert "Success! Your notebook passes all the tests." in text
        else:
            assert "validation-failed" in verdict, text[:3000]
            assert "The following cell failed:" in text and "NotImplementedError" in text, text[:3000]

        panel = assignment_list(student)
        listed(panel, "fetched").locator("button", has_text="Submit").click()
        listed(panel, "submitted").wait_for()
        assert page.locator(".jp-Dialog", has_text="Invalid Submission").count() == 0
        student.shot("2e-assignment-list-submitted")


def test_3_instructor_collects_grades_and_releases_feedback(hub, people):
    teacher = people["instructor"]
    page = teacher.page
    with step(hub, people, "3", needs=("1", "2-ann", "2-ben")):
        teacher.formgrader.bring_to_front()
        log = press_in_formgrader(teacher, "collect", f"Successfully collected submissions of '{ASSIGNMENT}'",
                                  "3a-formgrader-collected")
        for account in hub.students:
            assert f"Collecting submission: {account} {ASSIGNMENT}" in log, log[-3000:]
        assignment_row(teacher).locator("td.num-submissions", has_text=str(len(hub.students))).wait_for()

        # Grading: the course's runner, typed into a JupyterLab terminal.
        page.bring_to_front()
        done = hub.course_dir.parent / "autograde.done"
        menu(page, "File", "New")
        page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Terminal$")).first.click()
        terminal = page.locator(".jp-Terminal:not(.lm-mod-hidden)")
        terminal.locator(".xterm-screen").wait_for()
        terminal.click()
        page.keyboard.type("cd ~/section09-course && python -m rnncourse autograde; touch ~/autograde.done\n")
        started = time.monotonic()
        wait_until(done.exists, GRADE_S, "the runner in the instructor's terminal")
        graded_s = time.monotonic() - started
        teacher.shot("3b-terminal-autograde")
        print(f"autograde in the instructor's terminal: {graded_s:.0f} s")

        scores = hub.results()
        ann, ben = hub.students
        points = scores[(ann, NB01)].max_score
        assert scores[(ann, NB01)].final_score == points, scores[(ann, NB01)]
        assert scores[(ben, NB01)].final_score is not None and scores[(ben, NB01)].final_score < points

        teacher.formgrader.bring_to_front()
        press_in_formgrader(teacher, "generate-feedback", f"Successfully generated feedback of '{ASSIGNMENT}'",
                            "3c-formgrader-feedback-generated", timeout_s=FEEDBACK_S)
        press_in_formgrader(teacher, "release-feedback", f"Successfully released feedback of '{ASSIGNMENT}'",
                            "3d-formgrader-feedback-released")
    assert len(list((hub.course_exchange / "feedback").iterdir())) >= len(hub.students) * len(NOTEBOOKS)


@pytest.mark.parametrize("role", STUDENTS)
def test_4_student_sees_only_their_own_feedback(hub, people, role):
    student = people[role]
    page = student.page
    other = hub.students[1 - STUDENTS.index(role)]
    with step(hub, people, f"4-{role}", needs=("3",)):
        scores = hub.results()
        own, theirs = scores[(student.account, NB01)], scores[(other, NB01)]

        panel = assignment_list(student)
        listed(panel, "submitted").locator("button", has_text="Fetch Feedback").click()
        view = listed(panel, "submitted").locator("a", has_text="view feedback").first
        view.wait_for()
        student.shot("4a-assignment-list-feedback-fetched")

        view.click()  # the file browser goes to the feedback folder
        page.locator(".jp-DirListing-item", has_text=f"{NB01}.html").first.dblclick()
        viewer = page.frame_locator(".jp-HTMLViewer:not(.lm-mod-hidden) iframe").first
        viewer.locator("text=Your results").first.wait_for()
        viewer.locator("text=Your results").first.scroll_into_view_if_needed()
        student.shot("4b-feedback-notebook-01")
        feedback = viewer.locator("body").inner_text()

        assert re.search(score_pattern(own.final_score, own.max_score), feedback), feedback[:2000]
        if role == "ann":
            assert own.final_score == own.max_score
        else:
            assert own.final_score < theirs.final_score
        # Their own test messages: each test passed or failed as the gradebook says.
        for grade_id, score in own.cells.items():
            verdict = "passed" if score == own.cell_max[grade_id] else "failed"
            assert re.search(rf"{grade_id}\s+{verdict}\b", feedback), (grade_id, verdict, feedback[:3000])
        if role == "ben":
            assert "NotImplementedError" in feedback
        # Nothing of the other student: not their account, not their score.
        assert other not in feedback and other not in page.locator("body").inner_text()
        assert not re.search(score_pattern(theirs.final_score, theirs.max_score), feedback)
