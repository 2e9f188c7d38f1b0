"""JupyterHub configuration for the Section 9 course hub (`make hub`; README, "Teaching on JupyterHub").

One machine: the hub and its proxy on loopback, one JupyterLab server per Unix account (students and the
instructor), started from the shared course environment, logins checked by PAM against the machine's accounts.
Paths, port and the instructor's account come from rnncourse/hub/layout.py (SECTION09_HUB_* variables), so a test
can run a second hub beside a real one. Run as root: PAM reads the password database, and the spawner starts each
server as its own account.
"""

import grp
import os

from rnncourse.hub import layout
from rnncourse.course import repo_root

c = get_config()  # noqa: F821 -- injected by traitlets when JupyterHub loads this file

# --- Where people connect -------------------------------------------------------------------------------------------
# Loopback only, on SECTION09_HUB_PORT (default 8000): http://127.0.0.1:8000. A class reaches the hub through a TLS
# reverse proxy (nginx, Caddy) in front of this port; never serve passwords over plain HTTP on a network.
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = layout.port()
# The hub's own API, which the proxy and the users' servers call: loopback, the next port up.
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = layout.port() + 1

# --- The proxy --------------------------------------------------------------------------------------------------------
# configurable-http-proxy from npm, pinned by package.json / package-lock.json and installed into node_modules/ by
# `make hub-tools` (npm ci). Its REST API on loopback, two ports up; the hub starts and stops it.
c.ConfigurableHTTPProxy.command = [str(repo_root() / "node_modules" / ".bin" / "configurable-http-proxy")]
c.ConfigurableHTTPProxy.api_url = f"https://127.0.0.1:{layout.port() + 2}"  # TLS: internal_ssl below
c.ConfigurableHTTPProxy.pid_file = str(layout.state() / "proxy.pid")

# --- The hub's own state ----------------------------------------------------------------------------------------------
# Its database (users, servers, tokens) and cookie secret in state/, readable by root only (hubroot.py). Keeping them
# means a restarted hub knows its users and their running servers: students stay logged in, work goes on.
c.JupyterHub.db_url = f"sqlite:///{layout.state() / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(layout.state() / "jupyterhub_cookie_secret")
# Stopping the hub (restart, upgrade) leaves users' servers running; the new hub finds them again.
c.JupyterHub.cleanup_servers = False
# The hub, the proxy and the users' servers talk over TLS with certificates from the hub's own CA (kept in state/;
# each server's in its owner's home). Any account can listen on a loopback port: without this, a student's process
# that took the hub's API port while the hub was down would be believed by every running server (and handed their
# tokens).
c.JupyterHub.internal_ssl = True
c.JupyterHub.internal_certs_location = str(layout.state() / "internal-ssl")

# --- Who may log in ---------------------------------------------------------------------------------------------------
# PAM checks the password of the machine's account. Only the course's accounts may log in: `make hub-users` puts
# students in section09-students and the instructor in section09-staff. Production: LTI 1.3 from the LMS instead
# (README, "Logins from the LMS").
c.JupyterHub.authenticator_class = "pam"
c.PAMAuthenticator.allowed_groups = {layout.STUDENT_GROUP, layout.STAFF_GROUP}
# A PAM session (pam_systemd, pam_limits) is not needed to run a server, and fails where there is no logind.
c.PAMAuthenticator.open_sessions = False
# No hub admins: an admin may open any user's server, and nobody in a course needs to.
c.Authenticator.admin_users = set()

# --- Each user's server -----------------------------------------------------------------------------------------------
# Started as the user's own account, in their home, from the shared course environment: JupyterLab with nbgrader's
# Assignments, Courses and Validate (students), plus Formgrader and Create Assignment (the instructor, turned on in
# their ~/.jupyter by `make hub-users`).
c.JupyterHub.spawner_class = "localprocess"
c.Spawner.cmd = [str(layout.env() / "bin" / "jupyterhub-singleuser")]
c.Spawner.notebook_dir = "~"
c.Spawner.default_url = "/lab"
# Nothing from root's environment reaches a user's server but the locale; PATH leads to the course environment (its
# `nbgrader` and `alembic`), nbgrader learns where the exchange is, and torch uses one thread per kernel (many
# students share the cores).
c.Spawner.env_keep = ["LANG", "LC_ALL"]
c.Spawner.environment = {**layout.server_environment(), "OMP_NUM_THREADS": "1",
                         # nothing in ~/.local changes what the server runs (a student's sitecustomize, say)
                         "PYTHONNOUSERSITE": "1"}
# A busy machine (a whole class logging in) starts servers slowly: wait up to two minutes.
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120


def settings_by_role(spawner):
    """The instructor's server imports the course package (the preprocessors nbgrader_config.py names, the grading
    runner) from their course directory and reads their ~/.jupyter (Formgrader on). A student's server ignores the
    student's own Jupyter configuration: all servers share the hub's address, and a server extension or page of a
    student's making, served there, could act in the instructor's browser."""
    if spawner.user.name in grp.getgrnam(layout.STAFF_GROUP).gr_mem:
        spawner.environment = {**spawner.environment, "PYTHONPATH": str(layout.course_dir(spawner.user.name))}
    else:
        spawner.disable_user_config = True


c.Spawner.pre_spawn_hook = settings_by_role


# --- Grading on submission ----------------------------------------------------------------------------------------------
# The section09-grader service (rnncourse/onsubmit/): started and stopped with the hub (and started again if it dies),
# as the instructor's account, in their course directory, from the course environment with the course package on
# PYTHONPATH. It watches the exchange and grades each submission as it arrives, then releases its feedback; what it
# does (on or off, feedback detail, the rate limit) is c.OnSubmit in the course's nbgrader_config.py. It needs no
# access to the hub's API, so it gets none; its log lines go to the hub's log and to logs/on-submit.log.
try:
    grader_course = layout.course_dir()
except KeyError:  # no instructor account yet: `make hub` refuses to start then (rnncourse/hub/__main__.py)
    grader_course = None
c.JupyterHub.services = [] if grader_course is None else [{
    "name": "section09-grader",
    "user": layout.instructor(),
    "cwd": str(grader_course),
    "command": [str(layout.env() / "bin" / "python"), "-m", "rnncourse.onsubmit", "--course-dir", str(grader_course)],
    "environment": {**layout.server_environment(), "PYTHONPATH": str(grader_course), "OMP_NUM_THREADS": "1",
                    "PYTHONNOUSERSITE": "1", "PYTHONUNBUFFERED": "1",
                    # The service stops when this hub dies (kill -9 included), even during its own start-up: it
                    # would otherwise grade on under settings nobody can change (rnncourse/onsubmit/__main__.py).
                    "SECTION09_HUB_PID": str(os.getpid())},
}]
