"""The grading sandbox under attack, through the real pipeline: `nbgrader autograde` with the course's own config.

A course grades an honest student ("peer"), fingerprints everything that is not the attackers' (source/, release/,
the config, the peer's folders and gradebook rows, the repository's grading code), then grades every attack in
`adversarial.py` in one autograde run. Each attack must score exactly what it deserves, leave the notes the report
promises, leak nothing, and change nothing else. A second course grades the first attack with stock nbgrader, for the
README's side-by-side.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import socket
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from adversarial import ATTACKS, NB01, NB01_POINTS, NB03, NB03_POINTS
from conftest import make_course

from rnncourse import notebooks, pipeline, report, sandbox, submissions
from rnncourse.course import ASSIGNMENT, autograded_notebook, release_notebook, source_notebook

pytestmark = pytest.mark.autograde

ROOT = Path(__file__).resolve().parents[1]
ATTACKS_BY_NAME = {attack.name: attack for attack in ATTACKS}
# Shorter limits than the course's, so the attacks that wait for one finish sooner.
FASTER_LIMITS = """
# tests/test_sandbox.py: shorter limits, so the attacks that wait for them finish sooner
c.Execute.timeout = 15
c.SandboxedExecute.memory_limit_mb = 2048
"""
class ConnectionCounter:
    """A TCP server on the grader's loopback that counts who connects."""

    def __init__(self):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.5)
        self.port = self.server.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.server.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self):
        self._stop.set()
        self._thread.join()
        self.server.close()


def fingerprint(course: Path) -> dict:
    """Checksums of everything the attackers must not change, and the peer's grades."""
    def tree(path: Path) -> dict:
        return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.rglob("*")) if p.is_file()}

    files = {}
    for path in (course / "source", course / "release", course / "submitted" / "peer", course / "autograded" / "peer",
                 ROOT / "rnncourse"):
        files.update(tree(path))
    files[str(course / "nbgrader_config.py")] = hashlib.sha256((course / "nbgrader_config.py").read_bytes()).hexdigest()
    return {"files": {k: v for k, v in files.items() if "__pycache__" not in k},
            "peer grades": report.scores_by_cell(course)["peer"]}


SECRET = secrets.token_hex(16)  # in a grader-only file and in the grader's environment; must never reach a kernel


def hand_in(course: Path, attack, port: int, secret_file: Path) -> None:
    sources = {nb: notebooks.read(source_notebook(course, nb)) for nb in (NB01, NB03)}
    releases = {nb: notebooks.read(release_notebook(course, nb)) for nb in (NB01, NB03)}
    handed = {}
    if attack.build is not None:
        nb = attack.build(releases[NB01], notebooks.solutions(sources[NB01]))
        for cell in nb.cells:
            cell.source = (cell.source.replace("COURSE", str(course)).replace("REPO", str(ROOT))
                           .replace("PORT", str(port)).replace("SECRET_FILE", str(secret_file)))
        handed[NB01] = nb
    if attack.also_nb03:
        handed[NB03] = notebooks.filled(releases[NB03], notebooks.solutions(sources[NB03]))
    folder = submissions.write_submission(course, attack.student, handed)
    if attack.invalid_nb01:
        (folder / f"{NB01}.ipynb").write_text('{"cells": [ this is not JSON')


@dataclass
class AttackedCourse:
    path: Path
    before: dict
    after: dict
    scores: dict
    notes: dict
    connections: int
    result: pipeline.StepResult


def _attacked_course(course: Path) -> AttackedCourse:
    with open(course / "nbgrader_config.py", "a") as config:
        config.write(FASTER_LIMITS)
    assert pipeline.generate(course).ok
    release, source = (notebooks.read(f(course, NB01)) for f in (release_notebook, source_notebook))
    submissions.write_submission(course, "peer", {NB01: notebooks.filled(release, notebooks.solutions(source))})
    assert pipeline.autograde(course, quiet=True, students="peer").ok
    before = fingerprint(course)
    secret_file = course.parent / "instructor-only.txt"
    secret_file.write_text(SECRET)
    secret_file.chmod(0o600)
    listener = ConnectionCounter()
    os.environ["RNNCOURSE_TEST_SECRET"] = SECRET  # nbgrader, and so a stock kernel, inherits the grader's environment
    try:
        for attack in ATTACKS:
            hand_in(course, attack, listener.port, secret_file)
        result = pipeline.autograde(course, quiet=True, students="x_*")
    finally:
        listener.close()
        del os.environ["RNNCOURSE_TEST_SECRET"]
    results = report.collect(course)
    return AttackedCourse(course, before, fingerprint(course), report.scores_by_cell(course),
                          {(r.student, r.notebook): r.notes for r in results}, listener.connections, result)


def _stock_course(course: Path) -> dict:
    with open(course / "nbgrader_config.py", "a") as config:
        config.write(sandbox.STOCK_AUTOGRADE_CONFIG)
    assert pipeline.generate(course).ok
    hand_in(course, ATTACKS_BY_NAME["steal_solutions"], port=9, secret_file=course / "none")
    pipeline.autograde(course, quiet=True)
    return report.scores_by_cell(course)


@pytest.fixture(scope="session")
def attacked(tmp_path_factory):
    base = tmp_path_factory.mktemp("sandbox")
    with ThreadPoolExecutor(max_workers=2) as pool:
        attacked = pool.submit(_attacked_course, make_course(base / "attacked"))
        stock = pool.submit(_stock_course, make_course(base / "stock"))
        course = attacked.result()
        course.stock_scores = stock.result()
    return course


def _outputs(course: Path, student: str, notebook: str = NB01) -> str:
    nb = notebooks.read(autograded_notebook(course, student, notebook))
    texts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            texts.append(str(output.get("text", "")) + str(output.get("data", "")) + str(output.get("evalue", "")))
    return "\n".join(texts)


@pytest.mark.parametrize("attack", [a for a in ATTACKS if not a.invalid_nb01], ids=lambda a: a.name)
def test_attack_scores_only_what_it_deserves(attacked, attack):
    got = attacked.scores.get(attack.student, {}).get(NB01)
    if attack.at_most:
        assert got is not None and all(got[cell] <= points for cell, points in attack.expected.items()), got
    else:
        assert got == attack.expected, f"{attack.what}: {got}"


@pytest.mark.parametrize("attack", [a for a in ATTACKS if a.notes], ids=lambda a: a.name)
def test_attack_is_reported_with_its_reason(attacked, attack):
    notes = "; ".join(attacked.notes.get((attack.student, NB01), []))
    for expected in attack.notes:
        assert expected in notes, f"{attack.what}: notes are {notes!r}"


@pytest.mark.parametrize("name", ["os_exit", "invalid_notebook"])
def test_a_broken_notebook_costs_only_its_own_points(attacked, name):
    """The same student's notebook 03 keeps every point (stock nbgrader deletes the whole assignment)."""
    assert attacked.scores[f"x_{name}"][NB03] == NB03_POINTS


def test_nothing_outside_the_attackers_results_changed(attacked):
    """The peer handed in notebook 01 only (nbgrader lists the others as 0, not submitted)."""
    assert attacked.before["peer grades"][NB01] == NB01_POINTS
    assert attacked.after["peer grades"][NB01] == NB01_POINTS
    for notebook in (NB03, "02_lstm_gates"):
        assert set(attacked.after["peer grades"].get(notebook, {}).values()) <= {0.0}
    changed = {path for path in attacked.before["files"].keys() | attacked.after["files"].keys()
               if attacked.before["files"].get(path) != attacked.after["files"].get(path)}
    assert not changed


def test_nothing_leaks_and_nothing_gets_out(attacked):
    leaked = _outputs(attacked.path, "x_read_hidden")
    assert "LEAK" not in leaked, leaked[:3000]
    assert "blocked" in leaked and SECRET not in leaked
    for hidden in ("check_rnn_step(globals())", "def check_rnn_step", "BEGIN HIDDEN TESTS"):
        assert hidden not in leaked
    for student in ("x_write_gradebook", "x_write_others"):
        written = _outputs(attacked.path, student)
        assert "WROTE" not in written and "blocked" in written, written[:3000]
    network = _outputs(attacked.path, "x_network")
    assert "CONNECTED" not in network and "blocked" in network
    assert attacked.connections == 0


def test_forked_kernels_see_no_neighbour(attacked):
    """A kernel forked from the zygote cannot reach the zygote, list other kernels' folders or see their
    processes: its PID namespace holds only itself (and what it starts)."""
    seen = _outputs(attacked.path, "x_neighbours")
    assert "LEAK" not in seen, seen[:3000]
    processes = re.search(r"PROCESSES \[([\d, ]*)\]", seen)
    assert processes and len(processes.group(1).split(",")) <= 3, seen[:3000]
    if os.geteuid() == 0:  # grading as root forks kernels from the zygote
        assert "fork servers visible: 1" in seen and seen.count("blocked") == 3, seen[:3000]


def test_fork_is_limited_and_every_process_is_gone(attacked):
    forked = re.search(r"forked (\d+) processes", _outputs(attacked.path, "x_fork_many"))
    assert forked and 0 < int(forked.group(1)) <= sandbox.SandboxedExecute.process_limit.default_value
    left = subprocess.run(["pgrep", "-f", "sleep 3517"], capture_output=True, text=True).stdout.split()
    assert left == []


def test_kernels_run_unprivileged_with_the_configured_limits(attacked):
    """FASTER_LIMITS sets the memory limit to 2048 MiB; the rest are SandboxedExecute's defaults."""
    shown = re.search(r"LIMITS (\{.*?\}) UID (\d+)", _outputs(attacked.path, "x_show_limits"))
    assert shown, _outputs(attacked.path, "x_show_limits")[-2000:]
    limits, uid = eval(shown.group(1)), int(shown.group(2))  # noqa: S307 -- a dict of ints the test itself printed
    defaults = sandbox.SandboxedExecute
    assert limits["RLIMIT_DATA"] == 2048 << 20
    assert limits["RLIMIT_CPU"] == defaults.cpu_time_limit_s.default_value
    assert limits["RLIMIT_FSIZE"] == defaults.file_size_limit_mb.default_value << 20
    if os.geteuid() == 0:  # a uid of its own, whose process budget is the configured one
        assert uid >= defaults.sandbox_uid_base.default_value
        assert limits["RLIMIT_NPROC"] == defaults.process_limit.default_value
    else:
        assert uid == os.geteuid()


def test_flooded_output_is_bounded(attacked):
    size = autograded_notebook(attacked.path, "x_flood_output", NB01).stat().st_size
    assert size < 5_000_000


def test_tampering_never_pays(attacked):
    for attack in ATTACKS:
        if attack.name.startswith("patch_"):
            assert sum(attacked.scores[attack.student][NB01].values()) == 0, attack.name


def test_stock_nbgrader_gives_the_solution_thief_full_marks_and_the_sandbox_none(attacked):
    """The README's side-by-side: the same submission, stock nbgrader vs this course's autograde."""
    assert attacked.stock_scores["x_steal_solutions"][NB01] == NB01_POINTS
    assert attacked.scores["x_steal_solutions"][NB01] == {cell: 0.0 for cell in NB01_POINTS}


def test_autograde_exits_non_zero_only_for_what_it_could_not_grade(attacked):
    """nbgrader's exit code reports the invalid notebook; everything else was graded."""
    assert attacked.result.returncode != 0
    missing = pipeline.dropped_notebooks(attacked.path, "x_*")
    assert missing == [("x_invalid_notebook", NB01)]


@pytest.mark.skipif(not shutil.which("bwrap"), reason="bubblewrap missing")
def test_sandbox_also_works_without_root_in_a_user_namespace():
    """An instructor who is not root gets the same sandbox through an unprivileged user namespace: here an ordinary
    user (nobody) runs the system Python in it, with no network and no view of the host's files."""
    if os.geteuid() != 0 or not os.path.exists("/usr/bin/python3"):
        pytest.skip("needs root to become an ordinary user, and a system Python that user can run")
    command = sandbox.SandboxCommand(uid=None, tmp_bytes=16 << 20)
    command.bind("--ro-bind", "/usr")
    probe = ("import os, socket\n"
             "try:\n    socket.create_connection(('1.1.1.1', 53), timeout=2)\n"
             "except OSError:\n    print('no network')\n"
             "print('uid', os.getuid(), 'sees', sorted(os.listdir('/')))")
    proc = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                           *command.command("/tmp", "/usr/bin/python3", "-c", probe)],
                          capture_output=True, text=True, timeout=120, cwd="/tmp")
    assert "no network" in proc.stdout, proc.stderr[-2000:]
    assert "'root'" not in proc.stdout and "'work'" not in proc.stdout and "uid 65534" in proc.stdout, proc.stdout


def test_kernels_started_one_by_one_grade_the_same(tmp_path):
    """The path without the fork server (an ordinary user, or `fork_kernels = False`): a bwrap and an interpreter
    per kernel. An honest submission gets full marks and a neighbour-hunting one sees nothing."""
    course = make_course(tmp_path / "one_by_one")
    assert pipeline.generate(course).ok
    release, source = (notebooks.read(f(course, NB01)) for f in (release_notebook, source_notebook))
    submissions.write_submission(course, "peer", {NB01: notebooks.filled(release, notebooks.solutions(source))})
    hand_in(course, ATTACKS_BY_NAME["neighbours"], port=9, secret_file=course / "none")
    result = pipeline.nbgrader(course, "autograde", ASSIGNMENT, "--force", "--SandboxedExecute.fork_kernels=False")
    assert result.ok, result.log.read_text()[-3000:]
    scores = report.scores_by_cell(course)
    assert scores["peer"][NB01] == NB01_POINTS and scores["x_neighbours"][NB01] == NB01_POINTS
    seen = _outputs(course, "x_neighbours")
    assert "LEAK" not in seen and "fork servers visible: 0" in seen, seen[:3000]
