"""Collect from a shared exchange (rnncourse/trustedcollect.py), through real `nbgrader collect` with the course's
config, on an inbound/ laid out by hand as hostile students could leave it. Root makes the folders and gives them to
accounts every Debian machine has (nobody, daemon), so no account is created; the hub tests do the same through a
real hub with real students."""

from __future__ import annotations

import datetime as dt
import os
import pwd
import shutil
from pathlib import Path

import pytest

from rnncourse import pipeline
from rnncourse.course import ASSIGNMENT, NOTEBOOKS, new_course_dir, repo_root

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="giving folders to other accounts needs root")

NB01 = f"{NOTEBOOKS[0]}.ipynb"


def handed_in(inbound: Path, name: str, owner: str, claimed: str) -> Path:
    """A submission folder as nbgrader's submit leaves it (notebook 01 and timestamp.txt), owned by `owner`."""
    folder = inbound / name
    folder.mkdir()
    shutil.copy(repo_root() / "release" / ASSIGNMENT / NB01, folder / NB01)
    (folder / "timestamp.txt").write_text(claimed)
    uid = pwd.getpwnam(owner).pw_uid
    for path in (folder, *folder.iterdir()):
        os.lchown(path, uid, uid)
    return folder


def test_collect_trusts_the_filesystem_not_the_names(tmp_path):
    exchange = tmp_path / "exchange"
    inbound = exchange / "section9-rnn" / "inbound"
    inbound.mkdir(parents=True)
    course = new_course_dir(tmp_path / "course", extra_config=f"c.Exchange.root = {str(exchange)!r}")
    backdated = "2020-01-01 00:00:00.000000 UTC"
    start = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)

    # nobody's own submission, backdated by years, with a link to the instructor's source, a FIFO and a file that
    # root (another account) put into it.
    own = handed_in(inbound, f"nobody+{ASSIGNMENT}+{backdated}+abc", "nobody", backdated)
    (own / "solution.ipynb").symlink_to(course / "source" / ASSIGNMENT / NB01)
    os.mkfifo(own / "pipe")
    for name in ("solution.ipynb", "pipe"):
        os.lchown(own / name, pwd.getpwnam("nobody").pw_uid, pwd.getpwnam("nobody").pw_gid)
    (own / "planted.py").write_text("print('not nobody's')\n")
    # daemon's name on a folder nobody owns: a hand-in "as daemon".
    handed_in(inbound, f"daemon+{ASSIGNMENT}+2026-01-01 00:00:00.000000 UTC+def", "nobody",
              "2026-01-01 00:00:00.000000 UTC")
    # A name collect cannot parse.
    (inbound / f"nobody+{ASSIGNMENT}+yesterday").mkdir()

    result = pipeline.nbgrader(course, "collect", ASSIGNMENT)
    log = Path(result.log).read_text()
    assert result.ok, log
    collected = course / "submitted" / "nobody" / ASSIGNMENT
    assert (collected / NB01).is_file()
    # The later of the claimed time and the folder's change time (now, not 2020).
    stamp = dt.datetime.strptime((collected / "timestamp.txt").read_text(), "%Y-%m-%d %H:%M:%S.%f UTC")
    assert stamp >= start - dt.timedelta(seconds=5), stamp
    assert "the later time counts" in log
    # The link is a link (the preflight refuses it), the FIFO and the planted file were not copied.
    assert (collected / "solution.ipynb").is_symlink()
    assert not (collected / "pipe").exists() and not (collected / "planted.py").exists()
    # No hand-in counts for daemon; the unparsable folder is skipped, not fatal.
    assert not (course / "submitted" / "daemon").exists()
    assert "names daemon but belongs to nobody" in log
    assert "not a submission folder name" in log


def test_one_unfit_folder_stops_no_one_else(tmp_path):
    """A submission nested deeper than the collect goes, and one larger than max_dir_size, are reported and left
    out; the classmate's is collected."""
    exchange = tmp_path / "exchange"
    inbound = exchange / "section9-rnn" / "inbound"
    inbound.mkdir(parents=True)
    course = new_course_dir(tmp_path / "course", extra_config=f"c.Exchange.root = {str(exchange)!r}")
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f UTC")
    deep = handed_in(inbound, f"nobody+{ASSIGNMENT}+{now}+abc", "nobody", now)
    folder = deep
    for _ in range(12):
        folder = folder / "d"
        folder.mkdir()
        os.lchown(folder, pwd.getpwnam("nobody").pw_uid, -1)
    big = handed_in(inbound, f"daemon+{ASSIGNMENT}+{now}+def", "daemon", now)
    with open(big / "huge.bin", "wb") as handle:  # sparse: 200 GB claimed, nothing written
        handle.truncate(200 * 10**9)
    os.lchown(big / "huge.bin", pwd.getpwnam("daemon").pw_uid, -1)
    honest = handed_in(inbound, f"bin+{ASSIGNMENT}+{now}+ghi", "bin", now)

    result = pipeline.nbgrader(course, "collect", ASSIGNMENT)
    log = Path(result.log).read_text()
    assert result.ok, log
    assert (course / "submitted" / "bin" / ASSIGNMENT / NB01).is_file(), log
    assert not (course / "submitted" / "nobody").exists() or not any((course / "submitted" / "nobody").iterdir())
    assert not (course / "submitted" / "daemon" / ASSIGNMENT).exists()
    assert "nested deeper" in log and "max_dir_size" in log
    assert honest.exists()
