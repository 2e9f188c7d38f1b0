"""The grading sandbox under attack, through the real pipeline: `nbgrader autograde` with the course's own config.

A course grades an honest student ("peer") and is copied once per group of attacks (GROUPS, one per CPU core); each
copy fingerprints everything that is not the attackers' (source/, release/, the config, the peer's folders and
gradebook rows, the repository's grading code), then grades its group of the attacks in `adversarial.py` in one
autograde run, the groups' runs at the same time. Each attack must score exactly what it deserves, leave the notes
the report promises, leak nothing, and change nothing else. The attacks on the grading design (hidden checks run in
the grader, not the kernel) are checked for what they did as well as for their score: a forged execute_result is
shown as plain output, a rewritten cell is judged by the grader, the kernel holds no hidden-test code, text or
secret, and garbage on the call protocol costs only that notebook's points. A second course grades two attacks with
stock nbgrader (the solution thief and a forged execute_result), for the README's side-by-side.
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
from conftest import make_course, without_unneeded_demos

from rnncourse import notebooks, pipeline, report, submissions
from rnncourse.kernels import bwrap, executor, manager
from rnncourse.course import ASSIGNMENT, autograded_notebook, release_notebook, source_notebook

pytestmark = pytest.mark.autograde

ROOT = Path(__file__).resolve().parents[1]
ATTACKS_BY_NAME = {attack.name: attack for attack in ATTACKS}
# Shorter limits than the course's, so the attacks that wait for one finish sooner. Not shorter still: a cell's limit
# is every attacker's in the copy, and heap_scan's last cell scans for up to 12 s (flood_output's prints for several).
FASTER_LIMITS = """
# tests/test_sandbox.py: shorter limits, so the attacks that wait for them finish sooner
c.Execute.timeout = 15
c.SandboxedExecute.memory_limit_mb = 2048
"""
# The attacks are graded in copies of the course at once, each copy one `nbgrader autograde` run of its group: one
# copy per CPU core (at most 4), so that most of an attack's time, spent waiting (for a cell's time limit, a call's
# deadline, a kernel that stopped answering), overlaps with the others'. Not more runs than cores: several attacks
# work against time limits of their own (heap_scan's memory scan, stack_walk's heap walk inside a 10 s call), and a
# kernel that has to share its core with more runs than there are cores may not finish in time (three runs on two
# cores, the machine busy, left heap_scan's memory scan unfinished at its 12 s).
GROUPS = max(1, min(4, len(os.sched_getaffinity(0))))
ORDINARY_SECONDS = 2.5  # what grading an ordinary attack's notebook takes (kernel, cells, hidden checks)
# Seconds an attack takes beyond that, where it waits out a limit or works hard on purpose (as measured with
# FASTER_LIMITS on a 2-core machine): what the groups are balanced by.
EXTRA_SECONDS = {
    "hold_the_grader": 60,  # each of rnn_step's 5 hidden cases may hold the grader's call past its 10 s limit and
                            # the grace after it (35 to 85 s, by timing)
    "patch_builtin_bool": 28,  # one or two cells in a row wait out their 15 s limit, then the kernel is stopped
    "protocol_hang": 20,  # the grader's deadline, then the kernel is stopped
    "loop_ignoring_interrupt": 19,  # a cell's 15 s limit, an interrupt ignored, then the kernel is stopped
    "invalid_notebook": 18,  # two more nbgrader runs: the dropped notebook 01, then its notebook 03 alone
    "endless_loop": 17,  # a cell's 15 s limit
    "heap_scan": 11,  # scans the heap for 4 s in a call and for up to 12 s in its last cell
    "fork_many": 8,
    "os_exit": 7,  # notebook 03 too
    "patch_builtins": 7,
    "flood_output": 6,
    "trace_hooks": 4,
    "eat_memory": 3,
    "import_other_ways": 2,
}


def attack_groups() -> list[list]:
    """ATTACKS in GROUPS groups of about the same grading time (the longest first, each to the group with the least
    so far), each group in catalog order."""
    groups: list[list] = [[] for _ in range(GROUPS)]
    for attack in sorted(ATTACKS, key=lambda a: -EXTRA_SECONDS.get(a.name, 0)):
        min(groups, key=lambda g: sum(ORDINARY_SECONDS + EXTRA_SECONDS.get(a.name, 0) for a in g)).append(attack)
    return [sorted(group, key=ATTACKS.index) for group in groups]


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
    """The attack's notebooks, as a student hands them in, without the demo cells no graded cell needs (as the
    mutation catalog's entries; conftest.without_unneeded_demos): no attack is in those cells or depends on them,
    and each would cost every attacker's kernel its seconds of plotting and training."""
    sources = {nb: notebooks.read(source_notebook(course, nb)) for nb in (NB01, NB03)}
    releases = {nb: notebooks.read(release_notebook(course, nb)) for nb in (NB01, NB03)}
    handed = {}
    if attack.build is not None:
        nb = attack.build(releases[NB01], notebooks.solutions(sources[NB01]))
        for cell in nb.cells:
            cell.source = (cell.source.replace("COURSE", str(course)).replace("REPO", str(ROOT))
                           .replace("PORT", str(port)).replace("SECRET_FILE", str(secret_file))
                           .replace("SECRET_BACKWARDS", SECRET[::-1]))
        handed[NB01] = without_unneeded_demos(nb)
    if attack.also_nb03:
        handed[NB03] = without_unneeded_demos(notebooks.filled(releases[NB03], notebooks.solutions(sources[NB03])))
    folder = submissions.write_submission(course, attack.student, handed)
    if attack.invalid_nb01:
        (folder / f"{NB01}.ipynb").write_text('{"cells": [ this is not JSON')


@dataclass
class AttackedCourse:
    courses: list  # the course copies, one per group of attacks
    students: dict  # attacker's student id -> the course copy that graded it
    before: list  # each copy's fingerprint before its attacks were graded, and after
    after: list
    scores: dict
    notes: dict
    connections: int
    results: dict  # course copy -> its autograde run of the attackers

    def course_of(self, student: str) -> Path:
        return self.students[student]


def _attacked_courses(course: Path) -> AttackedCourse:
    with open(course / "nbgrader_config.py", "a") as config:
        config.write(FASTER_LIMITS)
    assert pipeline.generate(course).ok
    release, source = (notebooks.read(f(course, NB01)) for f in (release_notebook, source_notebook))
    submissions.write_submission(course, "peer", {NB01: notebooks.filled(release, notebooks.solutions(source))})
    assert pipeline.autograde(course, quiet=True, students="peer").ok
    # The same course, the peer graded, once per group of attacks (a copy is as the course was: gradebook included).
    courses = [course] + [Path(shutil.copytree(course, course.with_name(f"{course.name}-{i}"), symlinks=True))
                          for i in range(1, GROUPS)]
    groups = dict(zip(courses, attack_groups()))
    before = [fingerprint(c) for c in courses]
    secret_file = course.parent / "instructor-only.txt"
    secret_file.write_text(SECRET)
    secret_file.chmod(0o600)
    listener = ConnectionCounter()
    os.environ["RNNCOURSE_TEST_SECRET"] = SECRET  # nbgrader, and so a stock kernel, inherits the grader's environment
    try:
        for c, group in groups.items():
            for attack in group:
                hand_in(c, attack, listener.port, secret_file)
        with ThreadPoolExecutor(max_workers=len(courses)) as pool:
            runs = {c: pool.submit(pipeline.autograde, c, quiet=True, students="x_*") for c in courses}
            results = {c: run.result() for c, run in runs.items()}
    finally:
        listener.close()
        del os.environ["RNNCOURSE_TEST_SECRET"]
    scores, notes = {}, {}
    for c in courses:
        scores.update(report.scores_by_cell(c))
        notes.update({(r.student, r.notebook): r.notes for r in report.collect(c)})
    return AttackedCourse(courses, {a.student: c for c, group in groups.items() for a in group}, before,
                          [fingerprint(c) for c in courses], scores, notes, listener.connections, results)


STOCK_ATTACKS = ("steal_solutions", "forge_displayhook")  # graded with stock nbgrader too, for the README


def _stock_course(course: Path) -> dict:
    with open(course / "nbgrader_config.py", "a") as config:
        config.write(executor.STOCK_AUTOGRADE_CONFIG)
    assert pipeline.generate(course).ok
    for name in STOCK_ATTACKS:
        hand_in(course, ATTACKS_BY_NAME[name], port=9, secret_file=course / "none")
    pipeline.autograde(course, quiet=True)
    return report.scores_by_cell(course)


@pytest.fixture(scope="session")
def attacked(tmp_path_factory):
    base = tmp_path_factory.mktemp("sandbox")
    with ThreadPoolExecutor(max_workers=2) as pool:
        attacked = pool.submit(_attacked_courses, make_course(base / "attacked"))
        stock = pool.submit(_stock_course, make_course(base / "stock"))
        course = attacked.result()
        course.stock_scores = stock.result()
    return course


def _autograded(where, student: str, notebook: str = NB01) -> Path:
    """The student's autograded notebook; `where` is a course directory, or the attacked courses (the student's
    own copy)."""
    return autograded_notebook(where.course_of(student) if isinstance(where, AttackedCourse) else where, student,
                               notebook)


def _graded(attacked: AttackedCourse) -> list:
    """The attacks whose notebook 01 was graded (test_every_attacked_notebook_is_graded says which were not)."""
    return [a for a in ATTACKS if _autograded(attacked, a.student).exists()]


def _test_cells(where, student: str, notebook: str = NB01) -> dict:
    """{grade id: outputs} of the autograded notebook's test cells."""
    nb = notebooks.read(_autograded(where, student, notebook))
    return {notebooks.nbgrader_meta(c)["grade_id"]: c.get("outputs", []) for c in nb.cells
            if (notebooks.nbgrader_meta(c).get("grade_id") or "").startswith("test_")}


def _cell_outputs(where, student: str, grade_id: str, notebook: str = NB01) -> list:
    nb = notebooks.read(_autograded(where, student, notebook))
    return next(c.get("outputs", []) for c in nb.cells if notebooks.nbgrader_meta(c).get("grade_id") == grade_id)


def _errors(outputs: list) -> list:
    return [(o["ename"], str(o.get("evalue", ""))) for o in outputs if o.get("output_type") == "error"]


def _shown(output) -> str:
    return str(output.get("text", "")) + str(output.get("data", {}).get("text/plain", ""))


def _outputs(where, student: str, notebook: str = NB01) -> str:
    nb = notebooks.read(_autograded(where, student, notebook))
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
    """The peer handed in notebook 01 only (nbgrader lists the others as 0, not submitted). In every course copy."""
    assert len(attacked.before) == len(attacked.after) == GROUPS
    for before, after in zip(attacked.before, attacked.after):
        assert before["peer grades"][NB01] == NB01_POINTS
        assert after["peer grades"][NB01] == NB01_POINTS
        for notebook in (NB03, "02_lstm_gates"):
            assert set(after["peer grades"].get(notebook, {}).values()) <= {0.0}
        changed = {path for path in before["files"].keys() | after["files"].keys()
                   if before["files"].get(path) != after["files"].get(path)}
        assert not changed


def test_nothing_leaks_and_nothing_gets_out(attacked):
    for attack in _graded(attacked):  # the hidden block, the checks, the references, the secret: never shown
        shown = _outputs(attacked, attack.student)
        for hidden in (SECRET, "BEGIN HIDDEN", "check_rnn_step(globals())", "def check_", "def reference_"):
            assert hidden not in shown, (attack.name, hidden)
    leaked = _outputs(attacked, "x_read_hidden")
    assert "LEAK" not in leaked, leaked[:3000]
    assert "blocked" in leaked and SECRET not in leaked
    for hidden in ("check_rnn_step(globals())", "def check_rnn_step", "BEGIN HIDDEN TESTS"):
        assert hidden not in leaked
    for student in ("x_write_gradebook", "x_write_others"):
        written = _outputs(attacked, student)
        assert "WROTE" not in written and "blocked" in written, written[:3000]
    network = _outputs(attacked, "x_network")
    assert "CONNECTED" not in network and "blocked" in network
    assert attacked.connections == 0


def test_forked_kernels_see_no_neighbour(attacked):
    """A kernel forked from the zygote cannot reach the zygote, list other kernels' folders or see their
    processes: its PID namespace holds only itself (and what it starts)."""
    seen = _outputs(attacked, "x_neighbours")
    assert "LEAK" not in seen, seen[:3000]
    processes = re.search(r"PROCESSES \[([\d, ]*)\]", seen)
    assert processes and len(processes.group(1).split(",")) <= 3, seen[:3000]
    if os.geteuid() == 0:  # grading as root forks kernels from the zygote
        assert "fork servers visible: 1" in seen and seen.count("blocked") == 3, seen[:3000]


def test_fork_is_limited_and_every_process_is_gone(attacked):
    forked = re.search(r"forked (\d+) processes", _outputs(attacked, "x_fork_many"))
    assert forked and 0 < int(forked.group(1)) <= executor.SandboxedExecute.process_limit.default_value
    left = subprocess.run(["pgrep", "-f", "sleep 3517"], capture_output=True, text=True).stdout.split()
    assert left == []


def test_kernels_run_unprivileged_with_the_configured_limits(attacked):
    """FASTER_LIMITS sets the memory limit to 2048 MiB; the rest are SandboxedExecute's defaults."""
    shown = re.search(r"LIMITS (\{.*?\}) UID (\d+)", _outputs(attacked, "x_show_limits"))
    assert shown, _outputs(attacked, "x_show_limits")[-2000:]
    limits, uid = eval(shown.group(1)), int(shown.group(2))  # noqa: S307 -- a dict of ints the test itself printed
    defaults = executor.SandboxedExecute
    assert limits["RLIMIT_DATA"] == 2048 << 20
    assert limits["RLIMIT_CPU"] == defaults.cpu_time_limit_s.default_value
    assert limits["RLIMIT_FSIZE"] == defaults.file_size_limit_mb.default_value << 20
    if os.geteuid() == 0:  # a uid of its own, whose process budget is the configured one
        assert uid >= defaults.sandbox_uid_base.default_value
        assert limits["RLIMIT_NPROC"] == defaults.process_limit.default_value
    else:
        assert uid == os.geteuid()


def test_flooded_output_is_bounded(attacked):
    size = _autograded(attacked, "x_flood_output", NB01).stat().st_size
    assert size < 5_000_000


def test_no_attack_scores_more_than_it_deserves_where_it_is_wrong(attacked):
    """In every test cell where an attack deserves less than full points (the function it got wrong, or left out),
    it never gets more: whatever it patched, forged or rewrote, the grader's verdict on that function stands."""
    over = {}
    for attack in ATTACKS:
        if attack.invalid_nb01:
            continue
        got = attacked.scores[attack.student][NB01]
        for cell, deserved in attack.expected.items():
            if deserved < NB01_POINTS[cell] and got[cell] > deserved:
                over[(attack.name, cell)] = (got[cell], deserved)
    assert not over, over


FORGED = {"forge_displayhook": "all hidden tests passed", "forge_sys_displayhook": "2.0", "forge_session": "100",
          "forge_post_run_cell": "2.0", "forge_printed_score": "Score: 2.0"}


def test_a_test_cell_never_keeps_an_execute_result(attacked):
    """nbgrader takes a test cell's first execute_result as its score: no graded test cell of any student has one."""
    kept = {(attack.name, cell) for attack in _graded(attacked)
            for cell, outputs in _test_cells(attacked, attack.student).items()
            if any(o.get("output_type") == "execute_result" for o in outputs)}
    assert not kept, kept


@pytest.mark.parametrize("name", FORGED)
def test_a_forged_score_is_plain_output_and_the_grader_decides(attacked, name):
    """The kernel did emit its forged score in every test cell (now plain output); before the cell's own error
    (where it did not swallow errors: stock nbgrader would have stopped at it), or with the grader's hidden verdict
    as the only error (where every visible failure was swallowed, or sent as the forged score)."""
    for cell, outputs in _test_cells(attacked, f"x_{name}").items():
        forged = [i for i, o in enumerate(outputs) if FORGED[name] in _shown(o)]
        errors = _errors(outputs)
        assert forged and errors, (cell, outputs)
        if name in ("forge_displayhook", "forge_sys_displayhook"):
            first_error = next(i for i, o in enumerate(outputs) if o.get("output_type") == "error")
            assert forged[0] < first_error and errors[0][0] == "NameError", (cell, outputs)
        else:
            assert [e for e, _ in errors] == ["HiddenTestFailure"], (cell, errors)
            assert "is not defined" in errors[0][1], (cell, errors)


def test_forging_from_a_thread_or_during_the_hidden_checks_changes_nothing(attacked):
    for cell, outputs in _test_cells(attacked, "x_forge_late").items():
        assert [e for e, _ in _errors(outputs)] == ["HiddenTestFailure"], (cell, outputs)


@pytest.mark.parametrize("name, verdict", [("rewrite_to_pass", "could not be looked up"),
                                           ("rewrite_ast", "is not defined")])
def test_a_rewritten_cell_is_judged_by_the_grader(attacked, name, verdict):
    """The kernel ran `pass` (even for the grader's serving cell) or a print instead of each cell: no visible test
    failed, and the grader's hidden verdict is each test cell's only error."""
    for cell, outputs in _test_cells(attacked, f"x_{name}").items():
        errors = _errors(outputs)
        assert [e for e, _ in errors] == ["HiddenTestFailure"] and verdict in errors[0][1], (cell, errors)
        if name == "rewrite_ast":
            assert any("passes the visible tests" in _shown(o) for o in outputs), (cell, outputs)


def test_the_hidden_verdict_decides_a_wrong_function_that_passes_its_visible_tests(attacked):
    """WRONG_RNN_STEP passes the visible tests: the patches, hooks and stack walks that come with it are judged by
    the grader's checks, whose failure is test_rnn_step's only error."""
    for attack in ATTACKS:
        if attack.name.startswith("patch_") and attack.name not in ("patch_builtins", "patch_builtin_bool") \
                or attack.name in ("stack_walk", "trace_hooks", "import_other_ways", "fake_callbacks",
                                   "delete_test_cell", "duplicate_test_cell", "edit_test_cell", "retype_test_cell",
                                   "raise_points"):
            errors = _errors(_test_cells(attacked, attack.student)["test_rnn_step"])
            assert [e for e, _ in errors] == ["HiddenTestFailure"], (attack.name, errors)
            assert "did not pass the hidden tests" in errors[0][1], (attack.name, errors)


def test_the_grading_modules_are_not_in_the_kernel(attacked):
    """What reached into rnncourse.grading in the kernel (the old guard's record, the checks, the compare helpers)
    finds nothing: no such module, no file of it, no sign of it on the heap."""
    for name, error in (("patch_check_functions", "KeyError"), ("patch_compare_helpers", "KeyError"),
                        ("import_reference", "ModuleNotFoundError")):
        errors = _errors(_cell_outputs(attacked, f"x_{name}", "rnn_step"))
        assert errors and errors[0][0] == error and "rnncourse.grading" in errors[0][1], (name, errors)
    ways = _outputs(attacked, "x_import_other_ways")
    assert "LEAK" not in ways and ways.count("blocked") == 11, ways[:3000]
    hidden = _outputs(attacked, "x_read_hidden")
    assert "grading module file blocked: KeyError" in hidden and "inspect blocked: KeyError" in hidden


def test_the_kernel_holds_nothing_of_the_hidden_tests(attacked):
    """A stack walk and a gc walk during the grader's call, trace and profile hooks on every call, and a scan of
    every string gc reaches and of the kernel's memory find no check, reference, expected value, hidden-test text or
    secret; the only rnncourse modules in the kernel are the call protocol's."""
    walked = _outputs(attacked, "x_stack_walk")
    assert "STACK suspicious: []" in walked, walked[-3000:]
    frames = re.search(r"STACK frames seen: (\[.*?\])", walked)
    assert frames and {"serve", "_guarded", "rnn_step"} <= set(eval(frames.group(1))), walked[-3000:]  # noqa: S307
    picked = re.search(r"STACK picked: (\[.*?\])\n", walked)
    assert picked and len(eval(picked.group(1))) == 5, walked[-3000:]  # noqa: S307 -- once per hidden case

    traced = _outputs(attacked, "x_trace_hooks")
    callee = re.search(r"TRACE callee frames: (\d+)", traced)
    assert callee and int(callee.group(1)) > 0, traced[-3000:]  # the hooks were on while the grader called
    assert "TRACE check frames: []" in traced and "TRACE hooks still on: True True" in traced, traced[-3000:]

    scanned = _outputs(attacked, "x_heap_scan")
    assert "HEAPLEAK" not in scanned, scanned[-5000:]
    summary = re.search(r"heap scan: (\{.*?\})\n", scanned)
    assert summary, scanned[-3000:]
    summary = eval(summary.group(1))  # noqa: S307 -- a dict the attack printed
    assert summary["strings scan"] == "complete" and summary["strings"] > 100_000, summary
    assert summary["in a call"] in ("complete", "stopped at its time limit") and summary["stack values"] > 0, summary
    found = re.search(r"CONTROL found in: (\[.*?\])", scanned)
    assert found, scanned[-3000:]
    if summary["memory"] == "complete":  # /proc/self/mem could be read: every writable region of it was
        assert summary["bytes"] > 10_000_000 and set(eval(found.group(1))) == {"memory", "object", "stack"}, summary
    else:
        assert summary["memory"].startswith("blocked") and set(eval(found.group(1))) == {"object", "stack"}, summary
    modules = re.search(r"rnncourse modules: (\[.*?\])", scanned)
    assert modules, scanned[-3000:]
    assert set(eval(modules.group(1))) == {name for name, _, _ in manager.kernel_modules()}  # noqa: S307
    assert all(m == "rnncourse" or m.startswith("rnncourse.kernels") for m in eval(modules.group(1)))  # noqa: S307


def test_fabricated_answers_on_the_protocol_fail_the_hidden_checks(attacked):
    for cell, outputs in _test_cells(attacked, "x_protocol_fabricate").items():
        errors = _errors(outputs)
        assert [e for e, _ in errors] == ["HiddenTestFailure"], (cell, errors)
        assert "did not pass the hidden tests" in errors[0][1], (cell, errors)


def test_garbage_on_the_protocol_costs_only_that_notebook(attacked):
    """Every kind of garbage is refused as the student's problem, in that test cell: the notebook is graded (the
    exit code test shows nothing else was dropped), and the peer's grades do not change."""
    # One kind of garbage per session, that is per test cell, in order (then the kinds start over).
    reasons = {"test_rnn_step": "not JSON", "test_rnn_unroll": "not a dict",
               "test_rnn_backward": "larger than the grader accepts", "test_rnn_params_from_torch": "not a dict",
               "test_rnn_unroll_masked": "a tensor whose size does not match its shape",
               "test_embed": "unknown tag '$pickle'", "test_task_alignment": "not JSON"}
    cells = _test_cells(attacked, "x_protocol_garbage")
    for cell, reason in reasons.items():
        errors = _errors(cells[cell])
        assert [e for e, _ in errors] == ["HiddenTestFailure"] and reason in errors[0][1], (cell, errors)
    assert _autograded(attacked, "x_protocol_deep_json", NB01).exists(), \
        "nbgrader dropped x_protocol_deep_json's notebook: the grader failed on it (see its logs/autograde.log)"
    for cell, outputs in _test_cells(attacked, "x_protocol_deep_json").items():
        assert [e for e, _ in _errors(outputs)] == ["HiddenTestFailure"], (cell, outputs)
    assert _autograded(attacked, "x_protocol_bad_values", NB01).exists(), \
        "nbgrader dropped x_protocol_bad_values's notebook: the grader failed on it (see its logs/autograde.log)"
    for cell, outputs in _test_cells(attacked, "x_protocol_bad_values").items():
        errors = _errors(outputs)
        assert [e for e, _ in errors] == ["HiddenTestFailure"] and "could not be looked up" in errors[0][1], \
            (cell, errors)


def test_a_protocol_that_never_answers_stops_that_kernel(attacked):
    """The serving cell starts the session, then ignores SIGINT and the grader's requests: the grader's deadline
    interrupts it, then the kernel is stopped, the cell says why (as a KernelDied error, which the report notes), and
    the rest of the notebook is marked not run with the reason."""
    cells = _test_cells(attacked, "x_protocol_hang")
    assert _errors(cells["test_rnn_step"]) == [] and _errors(cells["test_rnn_unroll"]) == []
    errors = _errors(cells["test_rnn_params_from_torch"])
    assert [e for e, _ in errors] == ["KernelDied"] and "stopped answering" in errors[0][1], errors
    for cell in ("test_rnn_unroll_masked", "test_embed", "test_task_alignment"):
        errors = _errors(cells[cell])
        assert [e for e, _ in errors] == ["NotRun"], (cell, errors)
        assert "the kernel stopped answering while the hidden tests of cell" in errors[0][1], (cell, errors)


def test_callbacks_that_are_not_stand_ins_get_an_error(attacked):
    """rnn_step asked for reference_rnn_step, check_rnn_step and rnn_step in each of its 5 hidden cases, embed for a
    stand-in kept from rnn_unroll_masked's session and for rnn_unroll in each of its 5: every answer is an error."""
    lines = [line for line in _outputs(attacked, "x_fake_callbacks").splitlines() if line.startswith("CALLBACK")]
    assert len(lines) == 5 * 3 + 5 * 2, lines
    assert all("'result'" not in line for line in lines), lines
    asked = [line for line in lines if "the kept rnn_step stand-in" not in line]
    assert len(asked) == 5 * 3 + 5 and all("is not available here" in line for line in asked), lines
    kept = [line for line in lines if "the kept rnn_step stand-in" in line]  # its session (and socket) is gone
    assert len(kept) == 5 and all("Error" in line.split("->")[1] for line in kept), lines


def test_stock_nbgrader_gives_the_solution_thief_full_marks_and_the_sandbox_none(attacked):
    """The README's side-by-side: the same submission, stock nbgrader vs this course's autograde."""
    assert attacked.stock_scores["x_steal_solutions"][NB01] == NB01_POINTS
    assert attacked.scores["x_steal_solutions"][NB01] == {cell: 0.0 for cell in NB01_POINTS}


def test_every_attacked_notebook_is_graded(attacked):
    """Whatever the kernel did or sent, nbgrader wrote a graded notebook 01 for every attacker but the one that
    handed in no notebook at all (a notebook nbgrader drops is "not graded", whatever its scores say)."""
    assert {a.name for a in ATTACKS} - {a.name for a in _graded(attacked)} == {"invalid_notebook"}


def test_stock_nbgrader_takes_a_forged_execute_result_as_the_score_and_the_sandbox_does_not(attacked):
    """Stock nbgrader scores a test cell by its first execute_result (one that is not a number: full points), so the
    forged display hook's empty notebook gets 12 / 12 there; here the execute_result is plain output."""
    assert attacked.stock_scores["x_forge_displayhook"][NB01] == NB01_POINTS
    assert attacked.scores["x_forge_displayhook"][NB01] == {cell: 0.0 for cell in NB01_POINTS}


def test_autograde_exits_non_zero_only_for_what_it_could_not_grade(attacked):
    """nbgrader's exit code (of the run that graded it) reports the invalid notebook; everything else was graded."""
    assert attacked.results[attacked.course_of("x_invalid_notebook")].returncode != 0
    missing = [dropped for course in attacked.courses for dropped in pipeline.dropped_notebooks(course, "x_*")]
    assert missing == [("x_invalid_notebook", NB01)]


@pytest.mark.skipif(not shutil.which("bwrap"), reason="bubblewrap missing")
def test_sandbox_also_works_without_root_in_a_user_namespace():
    """An instructor who is not root gets the same sandbox through an unprivileged user namespace: here an ordinary
    user (nobody) runs the system Python in it, with no network and no view of the host's files."""
    if os.geteuid() != 0 or not os.path.exists("/usr/bin/python3"):
        pytest.skip("needs root to become an ordinary user, and a system Python that user can run")
    command = bwrap.SandboxCommand(uid=None, tmp_bytes=16 << 20)
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
