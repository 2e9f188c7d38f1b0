"""Where things are in a course directory, and the environment nbgrader needs to run from it."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

ASSIGNMENT = "section09"
# The assignment's notebooks in teaching order.
NOTEBOOKS = ["01_rnn_unrolling", "02_lstm_gates", "03_pytorch_walkthrough"]
# The demo's due date, as nbgrader's `db assignment add --duedate` takes it; late work is penalised from here on.
DEMO_DUE_DATE = "2026-11-20 17:00:00 UTC"


def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]


def new_course_dir(dest: Path, extra_config: str = "") -> Path:
    """A fresh course directory holding only what an instructor commits: this repository's nbgrader_config.py (plus
    `extra_config` lines) and source/, with an empty autograded/ (no release, no gradebook yet)."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(repo_root() / "nbgrader_config.py", dest)
    if extra_config:
        with open(dest / "nbgrader_config.py", "a") as config:
            config.write("\n" + extra_config + "\n")
    shutil.copytree(repo_root() / "source", dest / "source")
    (dest / "autograded").mkdir()
    return dest


def tool_env(extra: dict | None = None) -> dict:
    """os.environ with this interpreter's bin/ first on PATH: nbgrader shells out to `alembic`, and the kernel and
    the `nbgrader` command must come from the same environment as this package."""
    env = dict(os.environ)
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    env.setdefault("PYTHONUNBUFFERED", "1")
    # Kernels inherit this: torch must not start more threads than the machine's cores share well.
    env.setdefault("OMP_NUM_THREADS", "1")
    env.update(extra or {})
    return env


def course_config(course_dir: Path, db_url: str | None = None):
    """The course's nbgrader configuration, loaded as `nbgrader` run in course_dir loads it (Jupyter's config
    folders, then the course's nbgrader_config.py)."""
    from jupyter_core.paths import jupyter_config_path
    from traitlets.config import Config, PyFileConfigLoader
    from traitlets.config.loader import ConfigFileNotFound

    config = Config()
    for folder in [*reversed(jupyter_config_path()), str(course_dir)]:
        try:
            config.merge(PyFileConfigLoader("nbgrader_config.py", path=folder).load_config())
        except ConfigFileNotFound:
            pass
    config.CourseDirectory.root = str(Path(course_dir).resolve())
    if db_url:
        config.CourseDirectory.db_url = db_url
    return config


def gradebook_url(course_dir: Path) -> str:
    """The gradebook's database URL: nbgrader_config.py's CourseDirectory.db_url, else nbgrader's default SQLite
    file in the course directory."""
    configured = course_config(course_dir).CourseDirectory.get("db_url")
    return configured or f"sqlite:///{Path(course_dir).resolve() / 'gradebook.db'}"


def bin_path(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def source_notebook(course_dir: Path, notebook: str) -> Path:
    return Path(course_dir) / "source" / ASSIGNMENT / f"{notebook}.ipynb"


def release_notebook(course_dir: Path, notebook: str) -> Path:
    return Path(course_dir) / "release" / ASSIGNMENT / f"{notebook}.ipynb"


def submitted_dir(course_dir: Path, student: str) -> Path:
    return Path(course_dir) / "submitted" / student / ASSIGNMENT


def autograded_notebook(course_dir: Path, student: str, notebook: str) -> Path:
    return Path(course_dir) / "autograded" / student / ASSIGNMENT / f"{notebook}.ipynb"
