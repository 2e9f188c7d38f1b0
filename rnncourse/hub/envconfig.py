"""The shared environment's Jupyter configuration (its etc/jupyter/, read by every account's server): the course id
and the exchange for nbgrader, and the student's set of nbgrader extensions. The instructor's own ~/.jupyter turns
Formgrader and Create Assignment back on (accounts.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from . import layout

# A student fetches, validates and submits; creating assignments and grading are the instructor's.
INSTRUCTOR_SERVER_EXTENSIONS = ["nbgrader.server_extensions.formgrader"]
INSTRUCTOR_LAB_PLUGINS = ["@jupyter/nbgrader:formgrader", "@jupyter/nbgrader:create-assignment"]
# privatesubmit.py goes into the environment under this name (a module of its own: the course package stays out).
SUBMIT_MODULE = "section09_private_submit"
# JupyterLab's news prompt asks the network, which a course hub may not reach.
QUIET_LAB_PLUGINS = ["@jupyterlab/apputils-extension:announcements"]


def nbgrader_config() -> str:
    """Every account's nbgrader sees one course and one exchange: the hub tells each server where the exchange is
    (jupyterhub_config.py), so a test hub beside a real one keeps its own."""
    return (f'"""Written by `python -m rnncourse.hub env` (rnncourse/hub/envconfig.py)."""\n'
            f"import os\n"
            f"c = get_config()  # noqa: F821\n"
            f"c.CourseDirectory.course_id = {layout.COURSE_ID!r}\n"
            f"c.Exchange.root = os.environ.get({layout.EXCHANGE_VARIABLE!r}, {str(layout.exchange())!r})\n"
            f"# Submissions readable by the student and the staff only (privatesubmit.py).\n"
            f"c.ExchangeFactory.submit = '{SUBMIT_MODULE}.PrivateSubmit'\n")


def extension_switches(enabled: bool) -> tuple[dict, dict]:
    """(server config, lab page config) that turn the instructor's nbgrader parts on or off."""
    server = {"ServerApp": {"jpserver_extensions": {name: enabled for name in INSTRUCTOR_SERVER_EXTENSIONS}}}
    lab = {"disabledExtensions": {**{name: not enabled for name in INSTRUCTOR_LAB_PLUGINS},
                                  **{name: True for name in QUIET_LAB_PLUGINS}}}
    return server, lab


# JupyterLab starts a terminal as a login shell, and Debian's /etc/profile then resets PATH, losing the course
# environment (`python`, `nbgrader` not found); a plain interactive shell keeps the server's PATH.
TERMINAL_SETTINGS = {"ServerApp": {"terminado_settings": {"shell_command": ["/bin/bash"]}}}


def write_switches(config_dir: Path, enabled: bool) -> None:
    server, lab = extension_switches(enabled)
    (config_dir / "jupyter_server_config.d").mkdir(parents=True, exist_ok=True)
    (config_dir / "labconfig").mkdir(parents=True, exist_ok=True)
    # "zz-": read after nbgrader's own nbgrader.json, which turns everything on.
    (config_dir / "jupyter_server_config.d" / "zz-section09.json").write_text(json.dumps(server, indent=2))
    (config_dir / "labconfig" / "page_config.json").write_text(json.dumps(lab, indent=2))


def write(env: Path) -> None:
    site_packages = next((env / "lib").glob("python3*/site-packages"))
    shutil.copy(Path(__file__).with_name("privatesubmit.py"), site_packages / f"{SUBMIT_MODULE}.py")
    config_dir = env / "etc" / "jupyter"
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "nbgrader_config.py").write_text(nbgrader_config())
    write_switches(config_dir, enabled=False)
    # Jupyter reads the .d folder only for extension switches; settings go into the main file.
    (config_dir / "jupyter_server_config.json").write_text(json.dumps(TERMINAL_SETTINGS, indent=2))
