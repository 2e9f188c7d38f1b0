"""The course on a real JupyterHub, driven as its users drive it: every command runs in the user's own server, reached
through the hub's proxy after a PAM login (what their terminal or a notebook would run), never as root behind their
back. Root only writes the files a student would have typed (their answers) and reads the gradebook at the end.

One class, one loop: the instructor releases; students fetch, work, validate and submit (one twice, one after the
due date, one with a notebook that is not JSON, one who tries to hand in as a classmate and to slip in the
instructor's files); the hub restarts in the middle; the instructor collects, grades with the course's runner
(sandboxed, parallel), generates and releases feedback; each student fetches their own feedback. Then what each
student can and cannot reach (test_what_a_student_can_reach)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from hubfixture import course_hub
from rnncourse import notebooks
from rnncourse.course import ASSIGNMENT, NOTEBOOKS, release_notebook, source_notebook, repo_root
from rnncourse.hub import layout

pytestmark = pytest.mark.hub

NB01 = NOTEBOOKS[0]
STUDENTS = ["ada", "bob", "cyd", "dan", "eve"]  # roles: see the module docstring and test_the_whole_loop
GRADE_S = 900  # the runner grading the class in the instructor's server, on a busy 2-core machine


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    # The instructor collects and grades by hand here: the on-submit service stays off (tests/test_onsubmit.py).
    with course_hub(STUDENTS, tmp_path_factory.mktemp("hub"), "c.OnSubmit.enabled = False") as running:
        yield running


def shell(user, command: str, ok: bool = True) -> str:
    status, out = user.run_shell(command)
    if ok:
        assert status == 0, f"{user.name}: `{command}` failed ({status}):\n{out[-3000:]}"
    return out


def completed_notebook_01() -> str:
    """Notebook 01 as a student who solved it would save it (the release with the source's answers)."""
    nb = notebooks.filled(notebooks.read(release_notebook(repo_root(), NB01)),
                          notebooks.solutions(notebooks.read(source_notebook(repo_root(), NB01))))
    return json.dumps(nb)


def save_as(user, relative: str, text: str) -> None:
    """The student saves a file in their home (from their own kernel, as JupyterLab's editor would)."""
    user.run_python(f"import pathlib\npathlib.Path.home().joinpath({relative!r}).write_text({text!r})")


def fetch_notebook_01(user) -> None:
    """The student sees section09 in the list and fetches it; the students of this test hand in notebook 01 only
    (grading all three for five students would take minutes), the others count as not handed in."""
    out = shell(user, f"nbgrader list && nbgrader fetch_assignment {ASSIGNMENT} && "
                      f"rm ~/{ASSIGNMENT}/{NOTEBOOKS[1]}.ipynb ~/{ASSIGNMENT}/{NOTEBOOKS[2]}.ipynb")
    assert f"{layout.COURSE_ID} {ASSIGNMENT}" in out, out


def side_by_side(action, items) -> list:
    """What several students do at the same time (each in their own server)."""
    with ThreadPoolExecutor(len(items)) as pool:
        return list(pool.map(action, items))



def test_the_whole_loop(hub):
    teacher, ada, bob, cyd, dan, eve = side_by_side(hub.user, [hub.instructor, *hub.students])  # log in
    course = f"cd ~/{layout.COURSE_DIR_NAME} && "

    # The instructor releases (as Formgrader's Release button does); students see section09 and fetch it.
    shell(teacher, course + f"nbgrader release_assignment {ASSIGNMENT}")
    side_by_side(fetch_notebook_01, [ada, bob, cyd, dan, eve])

    # ada solves notebook 01, validates it (as the Validate button does) and submits.
    save_as(ada, f"{ASSIGNMENT}/{NB01}.ipynb", completed_notebook_01())
    assert "Success! Your notebook passes all the tests." in shell(ada, f"nbgrader validate {ASSIGNMENT}/{NB01}.ipynb")
    shell(ada, f"nbgrader submit {ASSIGNMENT}")

    # bob submits the release untouched, then his solved notebook: the second submission is the one graded.
    shell(bob, f"nbgrader submit {ASSIGNMENT}")
    save_as(bob, f"{ASSIGNMENT}/{NB01}.ipynb", completed_notebook_01())
    shell(bob, f"nbgrader submit {ASSIGNMENT}")

    # dan's notebook is not JSON any more (an editor accident); he submits it.
    save_as(dan, f"{ASSIGNMENT}/{NB01}.ipynb", '{"cells": [ this is not json')
    shell(dan, f"nbgrader submit {ASSIGNMENT}")

    # eve hands in the release untouched, then tries to hand in "as bob" (her untouched notebook, later than his) and
    # to pass the instructor's solution off as her own through a link; and leaves a FIFO in her submission.
    shell(eve, f"nbgrader submit {ASSIGNMENT}")
    shell(eve, f"nbgrader submit {ASSIGNMENT} --student={bob.name}")
    solution = hub.course_dir / "source" / ASSIGNMENT / f"{NB01}.ipynb"
    inbound = hub.course_exchange / "inbound"
    eve_folder = sorted(p for p in inbound.iterdir() if p.name.startswith(eve.name + "+"))[-1]
    shell(eve, f"ln -sf {solution} {shlex.quote(str(eve_folder / (NB01 + '.ipynb')))} && "
               f"mkfifo {shlex.quote(str(eve_folder / 'pipe'))}")
    # A folder with a name collect cannot parse does not stop the collect for anyone.
    shell(eve, f"mkdir {inbound}/{eve.name}+{ASSIGNMENT}+not-a-time")

    # The due date passes now; cyd submits her solved notebook after it.
    shell(teacher, course + f"nbgrader db assignment add {ASSIGNMENT} --duedate=\"$(date -u '+%Y-%m-%d %H:%M:%S') UTC\"")
    save_as(cyd, f"{ASSIGNMENT}/{NB01}.ipynb", completed_notebook_01())
    shell(cyd, f"sleep 1 && nbgrader submit {ASSIGNMENT}")

    # The hub restarts (an upgrade, a crash): no submission is lost, and everyone goes on without logging in again.
    hub.stop()
    hub.start()

    # The instructor collects, grades with the course's runner, generates and releases feedback.
    collected = shell(teacher, course + f"nbgrader collect {ASSIGNMENT}")
    assert f"names {bob.name} but belongs to {eve.name}" in collected
    assert "not a submission folder name" in collected
    graded = shell(teacher, course + "python -m rnncourse autograde", ok=False)
    assert "graded" in graded, graded
    shell(teacher, course + "python -m rnncourse feedback")
    shell(teacher, course + f"nbgrader release_feedback {ASSIGNMENT}")

    scores = hub.results()
    points = scores[(ada.name, NB01)].max_score
    assert scores[(ada.name, NB01)].final_score == points  # solved, on time
    assert scores[(bob.name, NB01)].final_score == points  # his last own submission, not eve's forgery
    assert scores[(cyd.name, NB01)].late_penalty == pytest.approx(0.1 * points)  # late by minutes: one started day
    assert scores[(eve.name, NB01)].final_score in (0, None), scores[(eve.name, NB01)]  # the link was refused
    assert scores[(dan.name, NB01)].final_score is None  # not graded, and said why, for him alone
    assert "is not valid JSON" in scores[(dan.name, NB01)].standing.note
    assert dan.name in graded and "not valid JSON" in graded

    # Each student fetches their own feedback, and sees their own score in it.
    def fetch_feedback(student) -> str:
        return shell(student, f"nbgrader fetch_feedback {ASSIGNMENT} && cat ~/{ASSIGNMENT}/feedback/*/{NB01}.html")

    for (student, expected), html in zip(((ada, points), (bob, points), (cyd, 0.9 * points)),
                                         side_by_side(fetch_feedback, [ada, bob, cyd])):
        assert re.search(rf"Score: {expected:g}\b|{expected:g} / {points:g}", html), html[:3000]
        assert not any(other in html for other in hub.students if other != student.name)  # theirs alone


def reach_checks(hub, other: str, other_submission: str, other_server_pid: int) -> list[tuple[str, str, bool]]:
    """(what, the shell command a student would try, whether it must succeed). The successes show the denials are
    not an artefact of a broken account."""
    repo, course, exchange = repo_root(), hub.course_dir, hub.course_exchange
    release = exchange / "outbound" / ASSIGNMENT
    q = shlex.quote
    return [
        ("read their own fetched notebook", f"cat ~/{ASSIGNMENT}/{NB01}.ipynb", True),
        ("read the released assignment", f"cat {release}/{NB01}.ipynb", True),
        ("list another student's home", f"ls /home/{other}", False),
        ("read another student's notebook", f"cat /home/{other}/{ASSIGNMENT}/{NB01}.ipynb", False),
        ("list the submissions in the exchange (inbound)", f"ls {exchange}/inbound", False),
        ("find another student's submission by name", f"ls -d {exchange}/inbound/{other}+*", False),
        ("read another student's submission (name known)", f"cat {q(other_submission)}/{NB01}.ipynb", False),
        ("write into another student's submission (name known)", f"touch {q(other_submission)}/extra.py", False),
        ("remove another student's submission (name known)", f"rm -rf {q(other_submission)}", False),
        ("rename another student's submission (name known)", f"mv {q(other_submission)} {q(other_submission)}x",
         False),
        ("list the released feedback", f"ls {exchange}/feedback", False),
        ("write into the release", f"touch {release}/answers.py", False),
        ("change a released notebook", f"echo x >> {release}/{NB01}.ipynb", False),
        ("add an assignment to the course's release", f"mkdir {exchange}/outbound/section10", False),
        ("list the instructor's home", f"ls /home/{hub.instructor}", False),
        ("read the course's source/ (solutions)", f"cat {course}/source/{ASSIGNMENT}/{NB01}.ipynb", False),
        ("list autograded/", f"ls {course}/autograded", False),
        ("read the gradebook", f"cat {course}/gradebook.db", False),
        ("read the repository's source/ (solutions)", f"cat {repo}/source/{ASSIGNMENT}/{NB01}.ipynb", False),
        ("read the repository's grading code", f"cat {repo}/rnncourse/grading/nb01.py", False),
        ("read the hub's database and cookie secret", f"ls {hub.root}/state", False),
        ("signal another student's server", f"kill -0 {other_server_pid}", False),
    ]


def test_what_a_student_can_reach(hub, tmp_path):
    """Each check runs in the student's own kernel, behind their hub login; the table lands in
    artifacts/hub-permissions.txt."""
    student, other = hub.user(hub.students[0]), hub.user(hub.students[1])
    other.run_shell("true")  # the other student's server is running (a process to signal)
    inbound = hub.course_exchange / "inbound"
    mine = [p for p in inbound.iterdir() if p.name.startswith(other.name + "+")]
    if not mine:  # this test alone (-k): the instructor releases, the other student submits
        if not (hub.course_exchange / "outbound" / ASSIGNMENT).exists():
            shell(hub.user(hub.instructor), f"cd ~/{layout.COURSE_DIR_NAME} && nbgrader release_assignment {ASSIGNMENT}")
        shell(other, f"nbgrader fetch_assignment {ASSIGNMENT}; nbgrader submit {ASSIGNMENT}")
        mine = [p for p in inbound.iterdir() if p.name.startswith(other.name + "+")]
    other_submission = str(sorted(mine)[-1])
    pid = int(subprocess.run(["pgrep", "-u", other.name, "-f", "jupyterhub-singleuser"], capture_output=True,
                             text=True).stdout.split()[0])
    checks = reach_checks(hub, other.name, other_submission, pid)
    shell(student, f"test -d ~/{ASSIGNMENT} || nbgrader fetch_assignment {ASSIGNMENT}")
    outcomes = json.loads(student.run_python(
        "import json, subprocess\n"
        f"checks = {[command for _, command, _ in checks]!r}\n"
        "print(json.dumps([subprocess.run(c, shell=True, capture_output=True, text=True).returncode == 0 "
        "for c in checks]))").strip().splitlines()[-1])
    # Another student's server, through the hub, with this student's login: refused.
    other_server = student.api("GET", f"/user/{other.name}/api/contents")
    table = [f"{'allowed' if ok else 'denied ':7s}  {'(expected)' if ok == want else '(WRONG)   '}  {what}"
             for (what, _, want), ok in zip(checks, outcomes)]
    table.append(f"{'allowed' if other_server.status_code == 200 else 'denied '}  "
                 f"{'(expected)' if other_server.status_code != 200 else '(WRONG)   '}  open another student's server "
                 f"through the hub (HTTP {other_server.status_code})")
    artifacts = repo_root() / "artifacts"
    artifacts.mkdir(exist_ok=True)
    (artifacts / "hub-permissions.txt").write_text(f"as {student.name}, against {other.name}:\n" + "\n".join(table)
                                                   + "\n")
    print("\n".join(table))
    assert all(ok == want for (_, _, want), ok in zip(checks, outcomes)), "\n".join(table)
    assert other_server.status_code in (403, 404), other_server.status_code
    assert os.path.isdir(other_submission), "the other student's submission is gone"
