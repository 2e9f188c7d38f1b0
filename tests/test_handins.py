"""Hand-ins are regular files only (rnncourse/handins.py): symlinks, hard links, devices, FIFOs and sockets are set
aside before nbgrader reads a hand-in, noted on the student's row, and a refused notebook counts as not handed in.

First the decision and the setting aside on a folder of their own; then one class, handed in with links into the
instructor's files, a hard link between two hand-ins, a FIFO and an honest peer, graded through real nbgrader three
ways: the serial pipeline (`nbgrader autograde` after cleaning), the parallel runner, and plain `nbgrader autograde`
with only nbgrader_config.py's hook.
"""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
import socket
import stat
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import DUE_DATE

from rnncourse import classgrade, handins, notebooks, pipeline, report, submissions
from rnncourse.course import ASSIGNMENT, NOTEBOOKS, new_course_dir, release_notebook, source_notebook, tool_env

NB01, NB02 = NOTEBOOKS[0], NOTEBOOKS[1]
SOURCE_ONLY = "### BEGIN SOLUTION"  # in source/ notebooks alone: release and hand-ins never hold the markers
SQLITE_HEADER = b"SQLite format 3"  # the first bytes of the gradebook


def _tree_digest(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink()}


# ---- the decision and the setting aside, on a folder of their own ----------------------------------------------

def _handin(course: Path, student: str, timestamp: str = "2026-11-20 12:00:00.000000 UTC") -> Path:
    folder = handins.handin_folder(course, student)
    folder.mkdir(parents=True)
    (folder / "timestamp.txt").write_text(timestamp)
    return folder


@pytest.fixture
def course(tmp_path) -> Path:
    """A course directory with an instructor's secret and a hand-in holding one of everything that is refused."""
    course = tmp_path / "course"
    (course / "source").mkdir(parents=True)
    (course / "source" / "secret.txt").write_text("the instructor's secret")
    folder = _handin(course, "mallory")
    (folder / f"{NB01}.ipynb").write_text("{}")
    (folder / "notes").mkdir()
    (folder / "notes" / "plain.txt").write_text("mine")
    (folder / "notes" / "deep_link").symlink_to("../../../../source/secret.txt")
    (folder / "steal").symlink_to("../../../source")
    (folder / "results.txt").symlink_to(course / "source" / "secret.txt")
    (folder / "dangling").symlink_to("/nonexistent/anywhere")
    os.mkfifo(folder / "pipe")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(folder / "sock"))
    (folder / "own.txt").write_text("two names")
    os.link(folder / "own.txt", folder / "own_again.txt")
    return course


def test_every_kind_is_refused_by_lstat_alone_and_a_linked_folder_is_not_descended(course):
    refused = handins.refused_entries(handins.handin_folder(course, "mallory"))
    assert [(r.path, r.reason) for r in refused] == [
        ("dangling", "symlink"), ("notes/deep_link", "symlink"), ("own.txt", "hard link"),
        ("own_again.txt", "hard link"), ("pipe", "FIFO"), ("results.txt", "symlink"), ("sock", "socket"),
        ("steal", "symlink")]  # nothing from inside source/ although `steal` points at it
    assert {r.path: r.target for r in refused}["steal"] == "../../../source"


@pytest.mark.skipif(os.geteuid() != 0, reason="making a device node needs root")
def test_a_device_is_refused(tmp_path):
    os.mknod(tmp_path / "null", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    assert [(r.path, r.reason) for r in handins.refused_entries(tmp_path)] == [("null", "device")]


def test_a_hand_in_folder_that_is_a_link_is_refused_whole(tmp_path):
    (tmp_path / "submitted" / "mallory").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    handins.handin_folder(tmp_path, "mallory").symlink_to(tmp_path / "elsewhere")
    assert handins.refused_entries(handins.handin_folder(tmp_path, "mallory")) == [
        handins.Refusal(handins.WHOLE_FOLDER, "symlink", str(tmp_path / "elsewhere"))]
    handins.set_aside(tmp_path, ["mallory"])
    assert not os.path.lexists(handins.handin_folder(tmp_path, "mallory"))
    assert (tmp_path / "refused" / "mallory" / ASSIGNMENT).is_symlink()
    assert (tmp_path / "elsewhere").is_dir()
    assert handins.refusal_notes(tmp_path, "mallory", NB01) == (
        [], [f"refused symlink (the whole hand-in folder) -> {tmp_path / 'elsewhere'}"])


def test_set_aside_moves_refused_entries_keeps_them_and_leaves_regular_files(course):
    folder = handins.handin_folder(course, "mallory")
    secret_before = _tree_digest(course / "source")
    handins.set_aside(course, ["mallory"])
    remaining = sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))
    assert remaining == [f"{NB01}.ipynb", "notes", "notes/plain.txt", "timestamp.txt"]
    assert handins.refused_entries(folder) == []
    kept = course / "refused" / "mallory" / ASSIGNMENT
    assert os.readlink(kept / "steal") == "../../../source"  # the link itself, moved, not what it points to
    assert os.readlink(kept / "notes" / "deep_link") == "../../../../source/secret.txt"
    assert stat.S_ISFIFO(os.lstat(kept / "pipe").st_mode)
    assert stat.S_ISSOCK(os.lstat(kept / "sock").st_mode)
    for name in ("own.txt", "own_again.txt"):  # copied out: the two names are two single files now
        assert (kept / name).read_text() == "two names" and os.lstat(kept / name).st_nlink == 1
    assert _tree_digest(course / "source") == secret_before
    assert stat.S_IMODE(os.stat(course / "refused").st_mode) & 0o077 == 0, "refused/ is the instructor's alone"


def test_notes_say_what_and_why_never_the_content(course):
    handins.set_aside(course, ["mallory"])
    own, others = handins.refusal_notes(course, "mallory", NB01)
    assert own == []
    assert others == [
        "refused symlink dangling -> /nonexistent/anywhere",
        "refused symlink notes/deep_link -> ../../../../source/secret.txt",
        "refused hard link own.txt", "refused hard link own_again.txt", "refused FIFO pipe",
        f"refused symlink results.txt -> {course / 'source' / 'secret.txt'}", "refused socket sock",
        "refused symlink steal -> ../../../source"]
    assert not any("the instructor's secret" in n or "two names" in n for n in others)
    assert handins.refusal_notes(course, "mallory", NB02) == ([], []), "hand-in-wide notes show once, on notebook 01"


def test_a_refused_notebook_is_not_submitted_and_the_record_outlives_a_second_cleaning(course):
    folder = handins.handin_folder(course, "mallory")
    (folder / f"{NB02}.ipynb").symlink_to(course / "source" / "secret.txt")
    handins.set_aside(course, ["mallory"])
    assert handins.set_aside(course, ["mallory"]) == {}, "nothing left to refuse"
    own, _ = handins.refusal_notes(course, "mallory", NB02)
    assert own == [f"not submitted: refused symlink {NB02}.ipynb -> {course / 'source' / 'secret.txt'}"]
    assert handins.has_notebooks(course, "mallory")  # notebook 01 is still there to grade


def test_a_record_is_dropped_when_the_hand_in_is_collected_again(course):
    handins.set_aside(course, ["mallory"])
    assert handins.on_record(course, "mallory")
    (handins.handin_folder(course, "mallory") / "timestamp.txt").write_text("2026-11-21 09:00:00.000000 UTC")
    assert handins.on_record(course, "mallory") == []


def test_a_file_hard_linked_between_two_hand_ins_is_refused_in_both_when_graded_together(tmp_path):
    lender, copier = _handin(tmp_path, "lender"), _handin(tmp_path, "copier")
    (lender / f"{NB01}.ipynb").write_text("lender's work")
    os.link(lender / f"{NB01}.ipynb", copier / f"{NB01}.ipynb")
    refused = handins.set_aside(tmp_path, ["copier", "lender"])
    assert {s: [(r.path, r.reason) for r in rs] for s, rs in refused.items()} == {
        "copier": [(f"{NB01}.ipynb", "hard link")], "lender": [(f"{NB01}.ipynb", "hard link")]}
    for student in ("copier", "lender"):
        assert not handins.has_notebooks(tmp_path, student)
        kept = tmp_path / "refused" / student / ASSIGNMENT / f"{NB01}.ipynb"
        assert kept.read_text() == "lender's work", "nothing is lost"


def test_setting_aside_one_name_of_a_hard_link_leaves_the_other_single(tmp_path):
    lender, copier = _handin(tmp_path, "lender"), _handin(tmp_path, "copier")
    (lender / f"{NB01}.ipynb").write_text("lender's work")
    os.link(lender / f"{NB01}.ipynb", copier / f"{NB01}.ipynb")
    handins.set_aside(tmp_path, ["copier"])
    assert handins.is_plain_file(lender / f"{NB01}.ipynb"), "the lender's own file is a single file again"
    assert handins.set_aside(tmp_path, ["lender"]) == {}


def test_something_set_aside_twice_under_one_name_keeps_both(course):
    folder = handins.handin_folder(course, "mallory")
    handins.set_aside(course, ["mallory"])
    (folder / "steal").symlink_to("/etc")
    handins.set_aside(course, ["mallory"])
    kept = course / "refused" / "mallory" / ASSIGNMENT
    assert os.readlink(kept / "steal") == "../../../source" and os.readlink(kept / "steal.2") == "/etc"


def test_nothing_is_ever_moved_through_a_link_set_aside_before(tmp_path):
    (tmp_path / "submitted" / "mallory").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    handins.handin_folder(tmp_path, "mallory").symlink_to(tmp_path / "elsewhere")
    handins.set_aside(tmp_path, ["mallory"])  # the folder link now sits at refused/mallory/section09
    folder = _handin(tmp_path, "mallory", timestamp="2026-11-21 09:00:00.000000 UTC")  # collected again
    (folder / "steal").symlink_to("/etc")
    os.mkfifo(folder / "pipe")
    handins.set_aside(tmp_path, ["mallory"])
    assert list((tmp_path / "elsewhere").iterdir()) == []
    kept = tmp_path / "refused" / "mallory" / f"{ASSIGNMENT}.2"
    assert os.readlink(kept / "steal") == "/etc" and stat.S_ISFIFO(os.lstat(kept / "pipe").st_mode)
    assert [r.path for r in handins.on_record(tmp_path, "mallory")] == ["pipe", "steal"]


def test_nbgraders_hook_sets_aside_the_whole_run_and_trims_its_notebook_list(course, monkeypatch):
    folder = handins.handin_folder(course, "mallory")
    (folder / f"{NB02}.ipynb").symlink_to(course / "source" / "secret.txt")
    listed = [str(folder / f"{NB01}.ipynb"), str(folder / f"{NB02}.ipynb")]  # nbgrader's own list, before the hook
    monkeypatch.chdir(course)  # nbgrader runs its converters in the course directory
    handins.before_autograde(assignment=ASSIGNMENT, student="*", notebooks=listed)
    assert listed == [str(folder / f"{NB01}.ipynb")]
    assert handins.refused_entries(folder) == []


def test_nbgraders_hook_grades_nothing_when_it_cannot_check(course, monkeypatch):
    listed = [str(handins.handin_folder(course, "mallory") / f"{NB01}.ipynb")]
    monkeypatch.chdir(course)
    monkeypatch.setattr(handins, "set_aside", lambda *a, **k: 1 / 0)
    handins.before_autograde(assignment=ASSIGNMENT, student="*", notebooks=listed)
    assert listed == []


def test_the_course_config_names_the_hook():
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py", path=str(Path(__file__).resolve().parents[1])).load_config()
    assert config.Autograde.pre_convert_hook == "rnncourse.handins.before_autograde"


# ---- one class through real nbgrader, three ways -----------------------------------------------------------------

# student -> what they hand in (notebook 01 only, but for `mixed`, which links notebook 02 to the source)
CLASS = ["peer", "linked_source", "steals", "copier", "lender", "fifo", "mixed"]
STEALS_LINKS = {"steal": "../../../source", "results.txt": f"../../../source/{ASSIGNMENT}/{NB01}.ipynb",
                "grades.db": "../../../gradebook.db"}


def hand_in_class(course: Path) -> None:
    solved = notebooks.filled(notebooks.read(release_notebook(course, NB01)),
                              notebooks.solutions(notebooks.read(source_notebook(course, NB01))))
    for student in ("peer", "steals", "lender", "fifo", "mixed"):
        submissions.write_submission(course, student, {NB01: solved})
    linked = submissions.write_submission(course, "linked_source", {})
    (linked / f"{NB01}.ipynb").symlink_to(source_notebook(course, NB01))
    steals = handins.handin_folder(course, "steals")
    for name, target in STEALS_LINKS.items():
        (steals / name).symlink_to(target)
    copier = submissions.write_submission(course, "copier", {})
    os.link(handins.handin_folder(course, "lender") / f"{NB01}.ipynb", copier / f"{NB01}.ipynb")
    os.mkfifo(handins.handin_folder(course, "fifo") / "pipe")
    (handins.handin_folder(course, "mixed") / f"{NB02}.ipynb").symlink_to(source_notebook(course, NB02))


@dataclass
class GradedClass:
    path: Path
    results: dict  # (student, notebook) -> report.NotebookResult
    ok: bool
    source_before: dict
    source_after: dict


def _graded_class(course: Path, grade) -> GradedClass:
    hand_in_class(course)
    source_before = _tree_digest(course / "source")
    ok = grade(course)
    results = {(r.student, r.notebook): r for r in report.collect(course)}
    return GradedClass(course, results, ok, source_before, _tree_digest(course / "source"))


def _serial(course: Path) -> bool:
    return pipeline.autograde(course, quiet=True).ok


def _parallel(course: Path) -> bool:
    return all(o.graded for o in classgrade.grade(course, workers=1, quiet=True))


def _plain_nbgrader(course: Path) -> bool:
    return pipeline.nbgrader(course, "autograde", ASSIGNMENT, "--force").ok


PATHS = {"serial": _serial, "parallel": _parallel, "plain nbgrader": _plain_nbgrader}


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> dict:
    os.environ["PATH"] = tool_env()["PATH"]  # nbgrader's Gradebook shells out to `alembic`
    base = tmp_path_factory.mktemp("handins")
    template = new_course_dir(base / "template")
    assert pipeline.generate(template).ok
    assert pipeline.set_due_date(template, DUE_DATE).ok  # the runner's preflight blocks a late policy without one
    assert SOURCE_ONLY in source_notebook(template, NB01).read_text()
    classes = {}
    for name, grade in PATHS.items():
        course = base / name.replace(" ", "_")
        shutil.copytree(template, course, symlinks=True)
        classes[name] = _graded_class(course, grade)
    return classes


@pytest.fixture(params=list(PATHS))
def graded_class(request, graded) -> GradedClass:
    return graded[request.param]



def _full(result: report.NotebookResult) -> bool:
    return result.score == result.max_score > 0 and all(result.cells[c] == result.cell_max[c] for c in result.cells)


@pytest.mark.autograde
def test_the_honest_peer_is_graded_as_always(graded_class):
    peer = graded_class.results[("peer", NB01)]
    assert _full(peer) and peer.notes == []


@pytest.mark.autograde
def test_a_notebook_linked_to_the_source_scores_0_with_the_note(graded_class):
    r = graded_class.results[("linked_source", NB01)]
    assert r.score == 0 and set(r.cells.values()) == {0}
    assert r.notes == [f"not submitted: refused symlink {NB01}.ipynb -> {source_notebook(graded_class.path, NB01)}"]


@pytest.mark.autograde
def test_links_beside_a_correct_notebook_are_refused_and_the_notebook_graded(graded_class):
    r = graded_class.results[("steals", NB01)]
    assert _full(r)
    assert r.notes == [f"refused symlink {name} -> {target}" for name, target in sorted(STEALS_LINKS.items())]
    autograded = graded_class.path / "autograded" / "steals" / ASSIGNMENT
    assert sorted(p.name for p in autograded.iterdir()) == [f"{NB01}.ipynb", "timestamp.txt"]


@pytest.mark.autograde
def test_a_file_hard_linked_between_two_hand_ins_scores_0_in_both(graded_class):
    for student in ("copier", "lender"):
        r = graded_class.results[(student, NB01)]
        assert r.score == 0, student
        assert r.notes == [f"not submitted: refused hard link {NB01}.ipynb"], student


@pytest.mark.autograde
def test_a_fifo_is_refused_and_grading_goes_on(graded_class):
    r = graded_class.results[("fifo", NB01)]
    assert _full(r) and r.notes == ["refused FIFO pipe"]


@pytest.mark.autograde
def test_a_refused_notebook_costs_only_its_own_points(graded_class):
    assert _full(graded_class.results[("mixed", NB01)])
    r = graded_class.results[("mixed", NB02)]
    assert r.score == 0 and r.max_score > 0
    assert r.notes == [f"not submitted: refused symlink {NB02}.ipynb -> {source_notebook(graded_class.path, NB02)}"]


@pytest.mark.autograde
def test_nothing_of_the_instructors_files_reaches_autograded(graded_class):
    for path in (graded_class.path / "autograded").rglob("*"):
        assert not path.is_symlink() and (path.is_dir() or path.is_file()), path
        if path.is_file():
            data = path.read_bytes()
            assert SOURCE_ONLY.encode() not in data, path
            assert not data.startswith(SQLITE_HEADER), path
    assert graded_class.source_after == graded_class.source_before


@pytest.mark.autograde
def test_everything_refused_is_kept_under_refused(graded_class):
    kept = graded_class.path / "refused"
    assert os.readlink(kept / "linked_source" / ASSIGNMENT / f"{NB01}.ipynb") == str(
        source_notebook(graded_class.path, NB01))
    for name, target in STEALS_LINKS.items():
        assert os.readlink(kept / "steals" / ASSIGNMENT / name) == target
    lent = (kept / "lender" / ASSIGNMENT / f"{NB01}.ipynb").read_bytes()
    assert (kept / "copier" / ASSIGNMENT / f"{NB01}.ipynb").read_bytes() == lent and b'"cells"' in lent
    assert stat.S_ISFIFO(os.lstat(kept / "fifo" / ASSIGNMENT / "pipe").st_mode)


@pytest.mark.autograde
def test_the_same_grades_whichever_way_the_class_is_graded(graded):
    def grades(c):
        return {key: (r.score, dict(r.cells), [n.replace(str(c.path), "COURSE") for n in r.notes])
                for key, r in c.results.items()}
    assert grades(graded["parallel"]) == grades(graded["serial"])
    assert grades(graded["plain nbgrader"]) == grades(graded["serial"])
    assert graded["serial"].ok and graded["parallel"].ok
    # Plain nbgrader errors on a hand-in left without notebooks (it has nothing to grade); the grades are the same.
    assert not graded["plain nbgrader"].ok


@pytest.mark.autograde
def test_feedback_and_export_show_the_notes_and_nothing_of_the_source(graded):
    course = graded["serial"].path
    assert pipeline.feedback(course).ok
    for path in (course / "feedback").rglob("*"):
        if path.is_file():
            assert SOURCE_ONLY.encode() not in path.read_bytes(), path
    assert pipeline.export(course).ok
    with open(course / "grades.csv", newline="") as f:
        notes = {row["student_id"]: row["notes"] for row in csv.DictReader(f)}
    assert notes["steals"].startswith(f"{NB01}: refused symlink grades.db -> ../../../gradebook.db")
    assert f"{NB01}: not submitted: refused symlink {NB01}.ipynb" in notes["linked_source"]
    assert "refused" not in notes["peer"]
