"""What of a student's hand-in folder nbgrader may read: regular files and folders, nothing else.

nbgrader autogrades `submitted/<student>/<assignment>/` as the instructor (root, often) and copies it into
`autograded/` with shutil, which follows symlinks: a hand-in holding a link to `source/`, the gradebook, a classmate's
submission or /etc/shadow would bring that content into the student's working copy, kernel and feedback. So, right
before grading, every entry of the hand-in is judged by `lstat` alone (never opened, never followed; a symlinked
folder is not descended): symlinks, hard links (a regular file with more than one name: its content is also someone
else's file), devices, FIFOs and sockets are refused.

A refused entry is set aside, not deleted: it moves to `refused/<student>/<assignment>/` in the course directory
(a hard link is copied there and its name in the hand-in removed, so the file's other names are left whole), and
`refused/<student>/<assignment>.json` records what was refused and why; the report's notes read that record. What
stays in the hand-in is regular files and folders only, so nbgrader's copy of it cannot follow a link. Cleaning right
before grading is enough: the instructor owns `submitted/` while grading runs.

A refused notebook counts as not handed in (nbgrader scores a missing notebook 0); the student's other notebooks are
graded as usual. All grading paths clean first: the parallel runner (`classgrade`), the serial one (`pipeline`), and
plain `nbgrader autograde` through `before_autograde`, which nbgrader_config.py sets as Autograde's pre-convert hook.
"""

from __future__ import annotations

import datetime as dt
import errno
import glob
import itertools
import json
import os
import shutil
import stat
from dataclasses import asdict, dataclass
from pathlib import Path

from .course import ASSIGNMENT, NOTEBOOKS, course_config, gradebook_url

REFUSED_DIR = "refused"  # in the course directory, beside submitted/
WHOLE_FOLDER = "."  # a Refusal's path when the hand-in folder itself is refused
_NOTE_TARGET_CHARS = 120


@dataclass(frozen=True)
class Refusal:
    """One entry of a hand-in that nbgrader must not read."""

    path: str  # relative to the hand-in folder, "/"-separated; WHOLE_FOLDER for the folder itself
    reason: str  # "symlink", "hard link", "device", "FIFO", "socket" or "special file"
    target: str = ""  # a symlink's target as written in the link (never what it points to)

    def note(self) -> str:
        what = "(the whole hand-in folder)" if self.path == WHOLE_FOLDER else printable(self.path)
        target = printable(self.target)
        if len(target) > _NOTE_TARGET_CHARS:
            target = target[:_NOTE_TARGET_CHARS - 1] + "…"
        return f"refused {self.reason} {what}" + (f" -> {target}" if self.target else "")


def printable(text: str) -> str:
    """A file name as one safe line: control characters (a newline in a name) become '?'."""
    return "".join(ch if ch.isprintable() else "?" for ch in text)


# ---- deciding ---------------------------------------------------------------------------------------------------

def refusal_reason(st: os.stat_result) -> str | None:
    """Why an entry with this lstat result may not be graded, or None for a folder or a file with one name."""
    mode = st.st_mode
    if stat.S_ISDIR(mode):
        return None
    if stat.S_ISREG(mode):
        return "hard link" if st.st_nlink > 1 else None
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "special file"


def refused_entries(folder: Path) -> list[Refusal]:
    """Every entry of the hand-in folder that may not be graded, in name order (the folder itself when it is a link).
    Only lstat is used; nothing is opened, and a refused folder (a symlink) is not descended."""
    folder = Path(folder)
    try:
        top = os.lstat(folder)
    except FileNotFoundError:
        return []
    reason = refusal_reason(top)
    if reason:
        return [Refusal(WHOLE_FOLDER, reason, _link_target(folder, top))]
    refused: list[Refusal] = []
    if stat.S_ISDIR(top.st_mode):
        _walk(folder, "", refused)
    return refused


def _walk(folder: Path, prefix: str, refused: list) -> None:
    with os.scandir(folder / prefix if prefix else folder) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            st = entry.stat(follow_symlinks=False)
            path = prefix + entry.name
            reason = refusal_reason(st)
            if reason:
                refused.append(Refusal(path, reason, _link_target(Path(entry.path), st)))
            elif stat.S_ISDIR(st.st_mode):
                _walk(folder, path + "/", refused)


def _link_target(path: Path, st: os.stat_result) -> str:
    return os.readlink(path) if stat.S_ISLNK(st.st_mode) else ""


def is_plain_file(path: Path | str) -> bool:
    """A regular file with one name: what nbgrader may read."""
    try:
        return refusal_reason(st := os.lstat(path)) is None and stat.S_ISREG(st.st_mode)
    except FileNotFoundError:
        return False


# ---- setting aside ----------------------------------------------------------------------------------------------

def handin_folder(course_dir: Path, student: str, assignment: str = ASSIGNMENT) -> Path:
    return Path(course_dir) / "submitted" / student / assignment


def handin_students(course_dir: Path, pattern: str = "*", assignment: str = ASSIGNMENT) -> list[str]:
    """Students matching the glob with a hand-in for the assignment, as nbgrader's own glob finds them (a folder that
    is a symlink included, so that it can be refused)."""
    found = glob.glob(os.path.join(glob.escape(str(Path(course_dir) / "submitted")), pattern, glob.escape(assignment)))
    return sorted(Path(p).parent.name for p in found)


def set_aside(course_dir: Path, students: list[str], assignment: str = ASSIGNMENT) -> dict[str, list[Refusal]]:
    """Move every refused entry of these students' hand-ins to refused/ and record it; return what was refused now,
    by student. All hand-ins are judged before anything moves, so both names of a file hard-linked between two
    hand-ins are refused alike, whichever student comes first."""
    course_dir = Path(course_dir)
    found = {s: refused_entries(handin_folder(course_dir, s, assignment)) for s in students}
    found = {s: refusals for s, refusals in found.items() if refusals}
    for student, refusals in found.items():
        _quarantine(course_dir, student, assignment, refusals)
    return found


def _quarantine(course_dir: Path, student: str, assignment: str, refusals: list[Refusal]) -> None:
    folder = handin_folder(course_dir, student, assignment)
    (course_dir / REFUSED_DIR).mkdir(mode=0o700, exist_ok=True)  # what was refused is the instructor's eyes only
    records = []
    for refusal in refusals:
        whole = refusal.path == WHOLE_FOLDER
        *parents, name = [student, assignment] if whole else [student, assignment, *refusal.path.split("/")]
        dest = _free_name(_real_folder(course_dir / REFUSED_DIR, parents) / name)
        kept = _move(folder if whole else folder / refusal.path, dest, refusal)
        records.append(dict(asdict(refusal), kept_as=str(dest.relative_to(course_dir)) if kept else "",
                            set_aside_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")))
    handed_in_at = timestamp_text(folder)  # read after the move: a refused timestamp.txt is not read
    for record in records:
        record["handed_in_at"] = handed_in_at
    _append_records(_real_folder(course_dir / REFUSED_DIR, [student]) / f"{assignment}.json", records)


def _real_folder(root: Path, parts: list[str]) -> Path:
    """root/part/part/..., made of real folders only: where a name is taken by something else (a link set aside
    earlier, say), the first of part.2, part.3, ... that is a folder or free is used, so nothing is ever moved
    through a link the student made."""
    folder = root
    for part in parts:
        for n in itertools.count(1):
            candidate = folder / (part if n == 1 else f"{part}.{n}")
            try:
                if stat.S_ISDIR(os.lstat(candidate).st_mode):
                    break
            except FileNotFoundError:
                candidate.mkdir()
                break
        folder = candidate
    return folder


def _free_name(dest: Path) -> Path:
    """dest, or dest.2, dest.3, ... when something was set aside under that name before."""
    candidate, n = dest, 1
    while os.path.lexists(candidate):
        n += 1
        candidate = dest.with_name(f"{dest.name}.{n}")
    return candidate


def _move(src: Path, dest: Path, refusal: Refusal) -> bool:
    """Take src out of the hand-in, keeping it at dest; False when there was nothing to keep (a FIFO, socket or
    device on another filesystem than refused/, which holds no data of the student's)."""
    if refusal.reason == "hard link":
        _copy_out(src, dest)
        return True
    try:
        os.rename(src, dest)  # renames the link or node itself; never opens or follows it
        return True
    except OSError as error:
        if error.errno != errno.EXDEV:  # refused/ on another filesystem than submitted/ is handled below
            raise
    if refusal.reason == "symlink":
        os.symlink(os.readlink(src), dest)
        os.unlink(src)
        return True
    os.unlink(src)
    return False


def _copy_out(src: Path, dest: Path) -> None:
    """Copy a hard-linked file to dest and remove its name from the hand-in, so the file's other names (a classmate's
    hand-in, say) become single again. Opened without following a link or blocking; must still be a regular file."""
    fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    with open(fd, "rb") as source:
        st = os.fstat(source.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise OSError(f"{src} changed while it was being set aside")
        with open(dest, "xb") as copy:
            shutil.copyfileobj(source, copy)
    os.utime(dest, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.unlink(src)


def timestamp_text(folder: Path) -> str | None:
    """The hand-in's timestamp.txt (nbgrader's collect writes it), which ties a refusal record to this hand-in."""
    path = folder / "timestamp.txt"
    return path.read_text(errors="replace").strip() if is_plain_file(path) else None


def _append_records(path: Path, records: list[dict]) -> None:
    earlier = json.loads(path.read_text()) if is_plain_file(path) else []
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(earlier + records, indent=1) + "\n")
    os.replace(partial, path)  # a reader sees the old record or the new one, never half of one


# ---- reading the record -----------------------------------------------------------------------------------------

def on_record(course_dir: Path, student: str, assignment: str = ASSIGNMENT) -> list[Refusal]:
    """What was refused of the student's current hand-in. A record is dropped once the hand-in was collected again
    (another timestamp.txt) or something is back at its path."""
    path = Path(course_dir) / REFUSED_DIR / student / f"{assignment}.json"
    if not is_plain_file(path):
        return []
    folder = handin_folder(course_dir, student, assignment)
    now = timestamp_text(folder)
    refusals = []
    for record in json.loads(path.read_text()):
        refusal = Refusal(record["path"], record["reason"], record.get("target", ""))
        if record.get("handed_in_at") == now and not os.path.lexists(folder / refusal.path) \
                and refusal not in refusals:
            refusals.append(refusal)
    return refusals


def refusal_notes(course_dir: Path, student: str, notebook: str) -> tuple[list[str], list[str]]:
    """(notes on this notebook's own refusal, notes on other refused entries). A refused notebook is not submitted;
    entries that are not one of the assignment's notebooks go on the first notebook's row, so they show once."""
    refused = on_record(course_dir, student)
    own = [f"not submitted: {r.note()}" for r in refused if r.path == f"{notebook}.ipynb"]
    notebook_files = {f"{name}.ipynb" for name in NOTEBOOKS}
    others = [r.note() for r in refused if r.path not in notebook_files] if notebook == NOTEBOOKS[0] else []
    return own, others


def has_notebooks(course_dir: Path, student: str, assignment: str = ASSIGNMENT) -> bool:
    """Whether nbgrader will find a notebook to grade in the hand-in."""
    folder = handin_folder(course_dir, student, assignment)
    return any(is_plain_file(p) for p in glob.glob(os.path.join(glob.escape(str(folder)), "*.ipynb")))


def record_not_handed_in(course_dir: Path, student: str, db_url: str | None = None) -> None:
    """Gradebook rows for a hand-in whose every notebook was refused. nbgrader skips a folder without notebooks, so
    the student would have no row at all; this gives them nbgrader's own treatment of a missing notebook (each grade
    0, nothing left to grade by hand) and removes an autograded copy of an earlier hand-in, as `--force` would."""
    from nbgrader.utils import parse_utc

    from .staging import record_nothing_gradeable

    course_dir = Path(course_dir)
    timestamp = timestamp_text(handin_folder(course_dir, student))
    course_id = course_config(course_dir).CourseDirectory.get("course_id", "")
    record_nothing_gradeable(db_url or gradebook_url(course_dir), course_id, student,
                             parse_utc(timestamp) if timestamp else None)
    stale = course_dir / "autograded" / student / ASSIGNMENT
    if stale.is_dir() and not stale.is_symlink():
        shutil.rmtree(stale)


# ---- plain `nbgrader autograde` ----------------------------------------------------------------------------------

def before_autograde(assignment: str, student: str, notebooks: list) -> None:
    """nbgrader's pre-convert hook (`c.Autograde.pre_convert_hook` in nbgrader_config.py), called for each hand-in
    after nbgrader listed its notebooks and before it copies anything. nbgrader passes the run's globs as
    `assignment` and `student`, and runs converters in the course directory: the first call sets aside the refused
    entries of every hand-in of the run, each call drops from `notebooks` (nbgrader's own list, changed in place)
    what is no longer there. nbgrader logs and ignores a failing hook, so a failure grades nothing of the hand-in."""
    from traitlets.log import get_logger

    log = get_logger()
    try:
        course_dir = Path.cwd()
        submitted = glob.escape(str(course_dir / "submitted"))
        by_assignment: dict = {}
        for folder in sorted(glob.glob(os.path.join(submitted, student, assignment))):
            by_assignment.setdefault(Path(folder).name, []).append(Path(folder).parent.name)
        for name, students in by_assignment.items():
            for who, refusals in set_aside(course_dir, students, name).items():
                for refusal in refusals:
                    log.warning("%s/%s: %s (kept in %s/)", who, name, refusal.note(), REFUSED_DIR)
        handed_in = sorted({f"{Path(path).parent.parent.name}/{Path(path).parent.name}" for path in notebooks})
        notebooks[:] = [path for path in notebooks if is_plain_file(path)]
        if not notebooks:
            log.warning("%s: every notebook was refused; nothing left to grade", ", ".join(handed_in))
    except Exception:
        log.exception("could not check the hand-in for links and special files; grading none of its notebooks")
        notebooks.clear()
