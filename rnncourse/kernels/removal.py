"""Removing a folder a kernel wrote into, whatever modes the kernel left on what it made.

Grading as an ordinary user, a kernel has the grader's uid: a folder it made and then closed (chmod 0) is one the
grader may not list or empty either, and `shutil.rmtree(..., ignore_errors=True)` would leave it, and whatever it
holds, on the host's disk after every grading. The owner may always change a mode, so every folder is opened up
(0700, links not followed) before the tree is removed.
"""

from __future__ import annotations

import os
import shutil
import stat


def remove_tree(path) -> None:
    """Remove `path` and everything below it; what still cannot be removed is left (never raises)."""
    _open_up(os.fspath(path))
    shutil.rmtree(path, ignore_errors=True)


def _open_up(folder: str) -> None:
    try:
        if not stat.S_ISDIR(os.lstat(folder).st_mode):
            return
        os.chmod(folder, 0o700)
        with os.scandir(folder) as entries:
            below = [entry.path for entry in entries if entry.is_dir(follow_symlinks=False)]
    except OSError:
        return
    for child in below:
        _open_up(child)
