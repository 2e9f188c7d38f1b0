"""A course hub for a test module, set up as the README tells an instructor to (`make hub-users`, `make hub`): real
accounts from a roster, the instructor's course directory, JupyterHub with its npm proxy and PAM logins, on free
loopback ports, its data in a folder of its own. Account names carry a random tag, so a real hub's accounts and a
second test run are never touched; everything is removed afterwards (accounts, homes, servers, data)."""

from __future__ import annotations

import csv
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from hubclient import HubUser
from rnncourse import report
from rnncourse.course import repo_root
from rnncourse.hub import layout

HUB_START_S = 120


@dataclass
class CourseHub:
    base: str
    env: dict
    instructor: str
    students: list[str]
    passwords: dict[str, str]
    proc: subprocess.Popen | None = None
    log_path: Path | None = None
    users: dict = field(default_factory=dict)

    def path_env(self):
        return dict(os.environ, **self.env)

    @property
    def root(self) -> Path:
        return Path(self.env["SECTION09_HUB_ROOT"])

    @property
    def course_exchange(self) -> Path:
        return self.root / "exchange" / layout.COURSE_ID

    @property
    def course_dir(self) -> Path:
        return Path("/home") / self.instructor / layout.COURSE_DIR_NAME

    def results(self) -> dict:
        """(student, notebook) -> what the gradebook shows (rnncourse.report), read as root."""
        return {(r.student, r.notebook): r for r in report.collect(self.course_dir)}

    def user(self, name: str) -> HubUser:
        """`name` logged in through the hub, their server started (one login per test module)."""
        if name not in self.users:
            self.users[name] = HubUser(self.base, name, self.passwords[name])
        self.users[name].start_server()
        return self.users[name]

    def start(self) -> None:
        log = open(self.log_path, "a")
        self.proc = subprocess.Popen([sys.executable, "-m", "rnncourse.hub", "start"], env=self.path_env(),
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + HUB_START_S
        while True:
            assert self.proc.poll() is None, f"the hub exited:\n{self.log_path.read_text()[-4000:]}"
            try:
                if httpx.get(f"{self.base}/hub/health", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"the hub did not answer:\n{self.log_path.read_text()[-4000:]}"
            time.sleep(0.3)

    def stop(self) -> None:
        """Stop the hub and its proxy as an administrator's Ctrl-C would (users' servers keep running); whatever of
        its process group outlives it (a proxy left by a hub that died) is killed."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()


def free_port_block(size: int = 3) -> int:
    """A port p with p .. p+size-1 free on loopback (the hub, its API and the proxy's API)."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port + size >= 65536:
            continue
        try:
            for offset in range(1, size):
                with socket.socket() as other:
                    other.bind(("127.0.0.1", port + offset))
            return port
        except OSError:
            continue
    raise RuntimeError("no block of free ports")


def remove_account(name: str) -> None:
    subprocess.run(["pkill", "-KILL", "-u", name], capture_output=True)
    for _ in range(50):  # userdel refuses while the account still has processes
        if subprocess.run(["userdel", "--remove", name], capture_output=True).returncode in (0, 6):
            return
        time.sleep(0.2)


@contextmanager
def course_hub(student_names: list[str], workdir: Path, course_config: str = ""):
    """A running course hub whose roster is `student_names` (each prefixed with the run's tag); `course_config` lines
    are added to the instructor's nbgrader_config.py before the hub (and its grading service) starts."""
    if os.geteuid() != 0:
        pytest.skip("the hub tests make Unix accounts and run JupyterHub as root (as CI does)")
    if not (layout.env() / "bin" / "jupyterhub-singleuser").exists():
        raise AssertionError(f"{layout.env()} is missing: `make hub-env` builds it (make test does)")
    tag = f"t{secrets.token_hex(2)}"
    students = [f"{tag}-{name}" for name in student_names]
    instructor = f"{tag}-instructor"
    port = free_port_block()
    env = {"SECTION09_HUB_ROOT": f"/srv/section09-test-{tag}", "SECTION09_HUB_PORT": str(port),
           "SECTION09_INSTRUCTOR": instructor}
    roster = workdir / "roster.csv"
    with open(roster, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "first_name", "last_name", "email", "lms_user_id", "sis_user_id", "sis_login_id",
                         "section"])
        for i, name in enumerate(students):
            writer.writerow([name, name.split("-")[-1].title(), f"Tester{i}", f"{name}@example.edu", 20000 + i,
                             f"S{i:04d}", name, "Section 9 T"])
    hub = CourseHub(f"http://127.0.0.1:{port}", env, instructor, students, {}, log_path=workdir / "hub.log")
    try:
        setup = subprocess.run([sys.executable, "-m", "rnncourse.hub", "users", "--roster", str(roster)],
                               env=hub.path_env(), capture_output=True, text=True, cwd=repo_root())
        assert setup.returncode == 0, setup.stdout + setup.stderr
        with open(hub.root / "state" / "initial-passwords.csv") as handle:
            hub.passwords = {row["account"]: row["password"] for row in csv.DictReader(handle)}
        if course_config:
            with open(hub.course_dir / "nbgrader_config.py", "a") as config:
                config.write(f"\n{course_config}\n")
        hub.start()
        yield hub
    finally:
        hub.stop()
        for name in [*students, instructor]:
            remove_account(name)
        shutil.rmtree(hub.root, ignore_errors=True)
