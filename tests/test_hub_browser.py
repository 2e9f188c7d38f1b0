"""The course on the hub, in the browser, as its people use it, with the grading service on (section09-grader grades
each submission as it arrives and releases its feedback; c.OnSubmit here: at most 2 graded per student per 60 minutes,
per-test feedback). Each person logs in on the hub's login page (PAM) in a browser context of their own and works in
their own JupyterLab, driven by Playwright in Debian's Chromium.

1. The instructor opens Formgrader (in a browser tab of its own: see open_formgrader), sets the due date (the
   course's late policy needs one to grade) and presses Release for section09. That is all the instructor does.
2. Two students open Nbgrader > Assignment List, see section09 released, press Fetch and open notebook 01; ann types
   every answer into its solution cells, ben only the first two; each saves, presses Validate (ann: success, ben: the
   failures listed) and then Submit in the Assignment List.
3. Nobody acts as the instructor: once the service has graded a student's submission (its ledger row in the
   gradebook says so), the student presses Fetch Feedback, clicks their submission's "view feedback" and opens the
   feedback of notebook 01: their own score and each test's result as the gradebook has them, nothing of the other
   student.
4. ann submits again, one answer put back to the release's stub: the service grades it too (2 in the hour, within the
   limit); Fetch Feedback lists both submissions, and the newest one's feedback shows the new, lower score.
5. ann submits a third time (the answer restored): over the limit, so it is not graded; the feedback she fetches for it
   says so and when it will be graded. The ledger: her first two graded, the third waiting; the gradebook keeps the
   second's score. The instructor's Formgrader, reloaded, counts both students' submissions.

Screenshots of every step go to artifacts/browser/hub/ (kept after the run; a failing step leaves *-FAILED.png for
each person, and the course's logs, the runner's included, in course-logs-<step>/). Every wait is on a condition (an
element, a dialog, a file on disk, a row in the gradebook), never a fixed sleep.
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
import sqlalchemy as sa

from hubclient import SERVER_START_S
from hubfixture import course_hub
from rnncourse import notebooks
from rnncourse.course import ASSIGNMENT, NOTEBOOKS, release_notebook, repo_root, source_notebook
from rnncourse.hub import layout
from rnncourse.onsubmit import ledger, notices
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
SUBMIT_S = 60  # a Submit reaching the exchange
GRADE_S = 600  # the service grading a submission (about a minute each on a busy 2-core machine; two at once)
MAX_GRADED, PER_MINUTES = 2, 60  # the rate limit: ann's third submission within the hour waits
COURSE_CONFIG = f"c.OnSubmit.max_graded = {MAX_GRADED}\nc.OnSubmit.per_minutes = {PER_MINUTES}"
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
    with course_hub(STUDENTS, tmp_path_factory.mktemp("hub-browser"), COURSE_CONFIG) as running:
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
    (<role>-<step>-FAILED.png), the end of the hub's log (the users' servers log there too) and of the grading
    service's log are printed, and the course's logs (the runner's, per student) are copied beside the screenshots."""
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
        print(f"--- the grading service's log ---\n{on_submit_log(hub)[-3000:]}")
        # The course's logs (the service's, the runner's per student) outlive the hub's course directory here.
        if (hub.course_dir / "logs").is_dir():
            shutil.copytree(hub.course_dir / "logs", SHOTS / f"course-logs-{name}", dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns(".*"))
            print(f"--- the course's logs: {SHOTS / f'course-logs-{name}'}")
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


def cell_index(grade_id: str) -> int:
    """The index of notebook 01's cell `grade_id` (the same in the release and in a student's fetched copy)."""
    cells = notebooks.read(release_notebook(repo_root(), NB01)).cells
    return next(i for i, cell in enumerate(cells) if notebooks.nbgrader_meta(cell).get("grade_id") == grade_id)


def release_stub(grade_id: str) -> str:
    """A solution cell as released: `# YOUR CODE HERE` and `raise NotImplementedError()`."""
    return notebooks.solution_cells(notebooks.read(release_notebook(repo_root(), NB01)))[grade_id].source


def model_answer(grade_id: str) -> str:
    return notebooks.solutions(notebooks.read(source_notebook(repo_root(), NB01)))[grade_id]


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


# --- The service: submissions and its ledger --------------------------------------------------------------------------

def submissions(hub, person: Person) -> list[str]:
    """The person's submission folders in the exchange's inbound/ (names <account>+section09+<timestamp>+<random>),
    oldest first (nbgrader's timestamps sort as text)."""
    prefix = f"{person.account}+{ASSIGNMENT}+"
    return sorted(p.name for p in (hub.course_exchange / "inbound").iterdir() if p.name.startswith(prefix))


def timestamp(submission: str) -> str:
    """The submission's time as nbgrader names it, e.g. '2025-05-01 12:00:00.123456 UTC': the Assignment List shows
    it, and the student's fetched feedback lands in ~/section09/feedback/<it>/."""
    return submission.split("+")[2]


def ledger_rows(hub) -> dict[str, list[ledger.Row]]:
    """Submission folder -> the service's rows for it, read from the instructor's gradebook (as root, read only)."""
    engine = sa.create_engine(f"sqlite:///file:{hub.course_dir / 'gradebook.db'}?mode=ro&uri=true")
    try:
        rows = ledger.read(engine, layout.COURSE_ID, ASSIGNMENT)
    except sa.exc.OperationalError:  # the service has not made its table yet
        rows = {}
    finally:
        engine.dispose()
    found: dict[str, list[ledger.Row]] = {}
    for row in rows.values():
        found.setdefault(row.submission, []).append(row)
    return found


def on_submit_log(hub) -> str:
    path = hub.course_dir / "logs" / "on-submit.log"
    return path.read_text() if path.exists() else "(no on-submit.log)"


def handled(hub, submission: str, state: str) -> ledger.Row:
    """Wait until the service's ledger has `state` for the submission (graded: its feedback is released; waiting: its
    notice is posted); return that row. A submission that ends in another state fails at once."""
    deadline = time.monotonic() + GRADE_S
    while True:
        rows = ledger_rows(hub).get(submission, [])
        if any(r.state == state for r in rows):
            return next(r for r in rows if r.state == state)
        other = [r for r in rows if r.state != state and r.state in ledger.FINAL | {ledger.WAITING}]
        assert not other, f"{submission}: {other}\n{on_submit_log(hub)[-3000:]}"
        assert time.monotonic() < deadline, \
            f"{submission} not {state} within {GRADE_S} s\n{on_submit_log(hub)[-3000:]}"
        time.sleep(0.5)


def submit(hub, person: Person) -> str:
    """Press Submit on section09 in the Assignment List; wait for the new folder in the exchange and for the list to
    show it among the submissions. Returns its folder name."""
    before = set(submissions(hub, person))
    panel = assignment_list(person)
    listed(panel, "fetched").locator("button", has_text="Submit").click()
    wait_until(lambda: set(submissions(hub, person)) - before, SUBMIT_S, f"{person.role}'s submission in the exchange")
    [new] = set(submissions(hub, person)) - before
    submission_row(panel, new).wait_for()
    assert person.page.locator(".jp-Dialog", has_text="Invalid Submission").count() == 0
    return new


# --- Feedback ---------------------------------------------------------------------------------------------------------

def score_pattern(score: float, points: float) -> str:
    """The feedback's heading for notebook 01, e.g. '01_rnn_unrolling (Score: 4.0 / 15.0)'."""
    number = lambda x: rf"{x:g}(?:\.0+)?"  # noqa: E731
    return rf"{re.escape(NB01)} \(Score: {number(score)} / {number(points)}\)"


def submission_row(panel, submission: str):
    """One submission's line under section09 in the submitted list: '<timestamp> (view feedback)' once fetched. The
    list has one such line per submission, oldest first."""
    return listed(panel, "submitted").locator(".nested_list_item", has_text=timestamp(submission))


def fetch_and_open_feedback(hub, person: Person, submission: str, labels: tuple[str, str], shown: str) -> str:
    """Press Fetch Feedback, click the submission's "(view feedback)" (the file browser goes to
    ~/section09/feedback/<timestamp>/), open notebook 01's page; wait until it shows `shown`; its text."""
    page = person.page
    panel = assignment_list(person)
    listed(panel, "submitted").locator("button", has_text="Fetch Feedback").click()
    view = submission_row(panel, submission).locator("a", has_text="view feedback")
    view.wait_for()
    assert listed(panel, "submitted").locator(".nested_list_item").count() == len(submissions(hub, person))
    person.shot(f"{labels[0]}-assignment-list-feedback-fetched")
    fetched = person.home / ASSIGNMENT / "feedback" / timestamp(submission) / f"{NB01}.html"
    assert fetched.is_file(), fetched

    view.click()
    page.locator(".jp-BreadCrumbs", has_text=timestamp(submission)).wait_for()  # not the last folder still listed
    page.locator(".jp-DirListing-item", has_text=f"{NB01}.html").first.dblclick()
    tab = page.locator(f".lm-TabBar-tab.jp-mod-current[title*='{timestamp(submission)}']")
    tab.wait_for()  # the page of this submission, not of another one opened before
    viewer = page.frame_locator(".jp-HTMLViewer:not(.lm-mod-hidden) iframe").first
    viewer.locator(f"text={shown}").first.wait_for()
    viewer.locator(f"text={shown}").first.scroll_into_view_if_needed()
    person.shot(f"{labels[1]}-feedback-notebook-01")
    return viewer.locator("body").inner_text()


def check_feedback(hub, person: Person, feedback: str) -> None:
    """Feedback as the gradebook has it now: the person's score in the heading, each test passed or failed as graded
    (a failed one's message shown), nothing of the other student."""
    other = hub.students[1 - STUDENTS.index(person.role)]
    scores = hub.results()
    own, theirs = scores[(person.account, NB01)], scores.get((other, NB01))  # theirs: perhaps not graded yet
    assert re.search(score_pattern(own.final_score, own.max_score), feedback), feedback[:2000]
    for grade_id, score in own.cells.items():
        verdict = "passed" if score == own.cell_max[grade_id] else "failed"
        assert re.search(rf"{grade_id}\s+{verdict}\b", feedback), (grade_id, verdict, feedback[:3000])
    if own.final_score < own.max_score:
        assert "NotImplementedError" in feedback
    assert other not in feedback and other not in person.page.locator("body").inner_text()
    if theirs is not None and theirs.final_score is not None and theirs.final_score != own.final_score:
        assert not re.search(score_pattern(theirs.final_score, theirs.max_score), feedback)


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


@pytest.mark.parametrize("role", STUDENTS)
def test_3_student_fetches_feedback_graded_on_submit(hub, people, role):
    student = people[role]
    with step(hub, people, f"3-{role}", needs=("1", f"2-{role}")):
        [submission] = submissions(hub, student)
        row = handled(hub, submission, ledger.GRADED)  # nobody pressed anything: the service graded and released
        print(f"{role}: graded and feedback released {row.seconds:.0f} s after Submit")
        feedback = fetch_and_open_feedback(hub, student, submission, ("3a", "3b"), "Your results")
        check_feedback(hub, student, feedback)
        own = hub.results()[(student.account, NB01)]
        # The service's ledger has the score the gradebook has: the whole assignment's (02 and 03 were not answered).
        assert row.score == pytest.approx(sum(r.final_score for (who, _), r in hub.results().items()
                                              if who == student.account))
        if role == "ann":
            assert own.final_score == own.max_score
        else:
            assert own.final_score < own.max_score
            assert "NotImplementedError" in feedback


def test_4_ann_submits_again_and_is_graded_again(hub, people):
    ann = people["ann"]
    with step(hub, people, "4", needs=("3-ann",)):
        [first] = submissions(hub, ann)
        full = hub.results()[(ann.account, NB01)]
        notebook = open_notebook(ann.page, f"{hub.base}/user/{ann.account}", f"{ASSIGNMENT}/{NB01}.ipynb")
        type_answers(ann, notebook, {cell_index("embed"): ("embed", release_stub("embed"))})
        ann.shot("4a-answer-put-back-to-the-stub")
        second = submit(hub, ann)
        ann.shot("4b-assignment-list-submitted-again")
        row = handled(hub, second, ledger.GRADED)  # the second graded within the hour: within the limit of 2
        print(f"ann's second submission: graded and feedback released {row.seconds:.0f} s after Submit")

        feedback = fetch_and_open_feedback(hub, ann, second, ("4c", "4d"), "Your results")
        check_feedback(hub, ann, feedback)
        own = hub.results()[(ann.account, NB01)]
        assert own.final_score == full.max_score - own.cell_max["test_embed"], own
        assert re.search(r"test_embed\s+failed\b", feedback) and "NotImplementedError" in feedback
        # The first submission's feedback, fetched before, is still there beside the second's, unchanged.
        kept = (ann.home / ASSIGNMENT / "feedback" / timestamp(first) / f"{NB01}.html").read_text()
        assert re.search(score_pattern(full.max_score, full.max_score), kept)


def test_5_ann_over_the_limit_is_told_when(hub, people):
    ann, teacher = people["ann"], people["instructor"]
    with step(hub, people, "5", needs=("4",)):
        graded = hub.results()[(ann.account, NB01)]
        notebook = open_notebook(ann.page, f"{hub.base}/user/{ann.account}", f"{ASSIGNMENT}/{NB01}.ipynb")
        type_answers(ann, notebook, {cell_index("embed"): ("embed", model_answer("embed"))})
        third = submit(hub, ann)
        ann.shot("5a-assignment-list-submitted-a-third-time")
        row = handled(hub, third, ledger.WAITING)  # 2 graded in the last 60 minutes: not graded now

        words = fetch_and_open_feedback(hub, ann, third, ("5b", "5c"), "It is not graded yet")
        assert "It is not graded yet" in words, words
        assert (f"you have had {MAX_GRADED} submissions graded in the last {PER_MINUTES} minutes, the course's limit"
                in words), words
        assert f"It will be graded at {notices.when(row.eligible_at, rounded_up=True)}" in words, (row, words)

        # The ledger: the first two graded, the third waiting until the first leaves the hour's window.
        first, second, _ = submissions(hub, ann)
        rows = ledger_rows(hub)
        assert {name: [r.state for r in rows[name]] for name in (first, second, third)} == \
            {first: [ledger.GRADED], second: [ledger.GRADED], third: [ledger.WAITING]}, rows
        assert row.eligible_at == rows[first][0].graded_at + dt.timedelta(minutes=PER_MINUTES), row
        assert hub.results()[(ann.account, NB01)].final_score == graded.final_score  # her grade stays the second's

        # The instructor, who did nothing after the release, sees both students' grades in Formgrader.
        teacher.formgrader.bring_to_front()
        teacher.formgrader.reload()
        assignment_row(teacher).locator("td.num-submissions", has_text=str(len(hub.students))).wait_for()
        teacher.shot("5d-formgrader-graded-by-the-service", teacher.formgrader)
        print(f"--- on-submit.log ---\n{on_submit_log(hub)}")
