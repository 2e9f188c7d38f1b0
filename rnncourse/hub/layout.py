"""Where the course hub keeps its parts, read from the environment so that tests can run a hub beside a real one.

    SECTION09_HUB_PREFIX  software every account runs (default /opt/section09): python/ (an interpreter every
                          account can run) and env/ (the course environment: JupyterLab, nbgrader, torch, jupyterhub)
    SECTION09_HUB_ROOT    the hub's data (default /srv/section09): exchange/ (nbgrader's exchange) and state/ (the
                          hub's database, cookie secret and proxy pid; root only)
    SECTION09_HUB_PORT    the port the hub listens on, on 127.0.0.1 (default 8000)
    SECTION09_INSTRUCTOR  the instructor's account (default s9-instructor); their course directory is
                          ~/section09-course
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path

COURSE_ID = "section9-rnn"  # nbgrader_config.py's CourseDirectory.course_id; a test checks they agree
STUDENT_GROUP = "section09-students"  # every account on the roster; the hub lets these log in
STAFF_GROUP = "section09-staff"  # the instructor (and any grader): Formgrader on, course directory in their home
COURSE_DIR_NAME = "section09-course"
EXCHANGE_VARIABLE = "SECTION09_EXCHANGE"  # how the hub tells each user's server (and its nbgrader) the exchange


def prefix() -> Path:
    return Path(os.environ.get("SECTION09_HUB_PREFIX", "/opt/section09"))


def shared_python() -> Path:
    return prefix() / "python"


def env() -> Path:
    return prefix() / "env"


def root() -> Path:
    return Path(os.environ.get("SECTION09_HUB_ROOT", "/srv/section09"))


def exchange() -> Path:
    return root() / "exchange"


def state() -> Path:
    return root() / "state"


def port() -> int:
    return int(os.environ.get("SECTION09_HUB_PORT", "8000"))


def instructor() -> str:
    return os.environ.get("SECTION09_INSTRUCTOR", "s9-instructor")


def server_environment() -> dict:
    """What every account's processes on the hub need in their environment: the course environment first on PATH
    (its `python`, `nbgrader`, `alembic`), and where nbgrader's exchange is."""
    return {"PATH": f"{env() / 'bin'}:/usr/local/bin:/usr/bin:/bin", EXCHANGE_VARIABLE: str(exchange())}


def home(user: str) -> Path:
    return Path(pwd.getpwnam(user).pw_dir)


def course_dir(user: str | None = None) -> Path:
    """The instructor's nbgrader course directory, in their home (mode 0700: students cannot enter it)."""
    return home(user or instructor()) / COURSE_DIR_NAME
