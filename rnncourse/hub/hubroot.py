"""The folders a hub machine has, with the permissions nbgrader's exchange, the hub's secrets and the course's
solutions need."""

from __future__ import annotations

import os

from . import layout
from ..course import repo_root


def prepare() -> None:
    """exchange/: every account may create its folders there (nbgrader checks it is writable) but, as in /tmp, not
    remove or rename another's (sticky bit); inside, nbgrader makes inbound/ write-only and feedback/ unlistable.
    state/: the hub's database, cookie secret and proxy pid, root's alone."""
    layout.root().mkdir(parents=True, exist_ok=True)
    os.chmod(layout.root(), 0o755)
    layout.exchange().mkdir(exist_ok=True)
    os.chmod(layout.exchange(), 0o1777)
    layout.state().mkdir(exist_ok=True)
    os.chmod(layout.state(), 0o700)


def close_repository() -> None:
    """This repository holds the solutions (source/) and the grading code: on a machine where students have
    accounts, only its owner and group may enter it. Nothing a hub account runs lives in it (the shared environment
    is layout.env(); the instructor's course directory is a copy)."""
    os.chmod(repo_root(), os.stat(repo_root()).st_mode & ~0o007)
