"""Unix accounts for the course hub from a roster: one per student and one for the instructor, each with a private
home, in the groups the hub lets log in; the instructor's course directory and nbgrader settings; the roster in the
gradebook."""

from __future__ import annotations

import grp
import os
import pwd
import re
import secrets
import shutil
import stat
import subprocess
from pathlib import Path

from . import envconfig, layout
from ..course import ASSIGNMENT, repo_root
from ..roster import RosterError, read_rows

# useradd's own rule for portable names (and nbgrader's student ids need nothing more)
ACCOUNT_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
# Accounts below this uid, or with a home outside /home, are the system's (login.defs' UID_MIN on Debian).
FIRST_PERSON_UID = 1000
# What the instructor's course directory is made of: what an instructor commits (the grading code included).
COURSE_PARTS = ("nbgrader_config.py", "source", "rnncourse")


def read_roster(path: Path) -> list[dict]:
    """The roster's rows (rnncourse/roster.py); refuses a file whose ids could not be account names."""
    rows = read_rows(path)
    bad = [row["id"] for row in rows if not ACCOUNT_NAME.match(row["id"])]
    if bad:
        raise RosterError(f"{path}: not usable as account names (lowercase letters, digits, - and _; at most 32; "
                          f"starting with a letter): {', '.join(map(repr, bad))}")
    return rows


def ensure_group(name: str) -> None:
    try:
        grp.getgrnam(name)
    except KeyError:
        subprocess.run(["groupadd", name], check=True)


def ensure_account(name: str, group: str, password: str | None = None) -> str | None:
    """The account `name` in `group`, home mode 0700. Returns the password set: `password` if given, a new random
    one for an account created now, None for an existing account (its password is left alone)."""
    ensure_group(group)
    try:
        existing = pwd.getpwnam(name)
        if existing.pw_uid < FIRST_PERSON_UID or not existing.pw_dir.startswith("/home/"):
            raise SystemExit(f"{name} is a system account (uid {existing.pw_uid}, home {existing.pw_dir}); a roster "
                             f"id must be a person's account: rename it in the roster")
        created = False
        subprocess.run(["usermod", "--append", "--groups", group, name], check=True)
    except KeyError:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", "--groups", group, name], check=True)
        created = True
    os.chmod(layout.home(name), 0o700)  # useradd's default may be 0755: homes are private
    if password is None and created:
        password = secrets.token_urlsafe(12)
    if password is not None:
        subprocess.run(["chpasswd"], input=f"{name}:{password}\n", text=True, check=True)
    return password


def run_as(user: str, argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """argv as `user` (their home, the shared environment first on PATH, the course package importable)."""
    env = {"HOME": str(layout.home(user)), "USER": user, "LOGNAME": user, "LANG": "C.UTF-8",
           "PYTHONPATH": str(layout.course_dir(user)), **layout.server_environment()}
    return subprocess.run(["setpriv", f"--reuid={user}", f"--regid={pwd.getpwnam(user).pw_gid}", "--init-groups",
                           "--", *argv], cwd=cwd, env=env, capture_output=True, text=True)


def install_course(user: str) -> Path:
    """Copy the committed course (config, source/, the grading package) into the instructor's course directory,
    replacing older copies of those parts and nothing else (gradebook, release, submissions stay)."""
    course = layout.course_dir(user)
    course.mkdir(exist_ok=True)
    for part in COURSE_PARTS:
        src, dest = repo_root() / part, course / part
        if dest.is_dir():
            shutil.rmtree(dest)
        if src.is_dir():
            shutil.copytree(src, dest, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest)
    return course


def instructor_nbgrader_config(course: Path) -> str:
    return ('"""Written by `python -m rnncourse.hub users`: Formgrader grades the course in '
            f'{course}."""\nc = get_config()  # noqa: F821\n'
            f"c.CourseDirectory.root = {str(course)!r}\n"
            "# Formgrader shows students' notebooks on the hub's address, in the instructor's browser: their HTML and\n"
            "# scripts are stripped, or a student's markdown could act as the instructor.\n"
            "c.HTMLExporter.sanitize_html = True\n")


def instructor_settings(user: str) -> None:
    """~/.jupyter of the instructor: Formgrader on, pointed at the course directory."""
    config_dir = layout.home(user) / ".jupyter"
    config_dir.mkdir(exist_ok=True)
    (config_dir / "nbgrader_config.py").write_text(instructor_nbgrader_config(layout.course_dir(user)))
    envconfig.write_switches(config_dir, enabled=True)


def chown_tree(path: Path, user: str) -> None:
    entry = pwd.getpwnam(user)
    subprocess.run(["chown", "-R", f"{entry.pw_uid}:{entry.pw_gid}", str(path)], check=True)


def own_course_exchange(user: str) -> None:
    """The course's exchange folder, the instructor's before any student can make one of that name. Its inbound/ is
    as nbgrader makes it (students write, cannot list; setgid) with two changes: its group is the staff's, which every
    submission folder inherits (students' submit makes them 0750: privatesubmit.py), and the sticky bit: nobody can
    remove or rename a submission folder they do not own, even knowing its name. Only these two folders change owner
    (never what students put inside), and a folder someone else made, or a link, is refused rather than adopted."""
    entry = pwd.getpwnam(user)
    course_exchange = layout.exchange() / layout.COURSE_ID
    inbound = course_exchange / "inbound"
    for folder, mode in ((course_exchange, 0o755), (inbound, 0o3733)):
        try:
            os.mkdir(folder, 0o700)  # root's until its modes and owner are set below
        except FileExistsError:
            pass
        st = os.lstat(folder)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid not in (0, entry.pw_uid):
            raise SystemExit(f"{folder} was not made by the course (owner uid {st.st_uid}, or not a folder): move it "
                             f"aside and run hub-users again")
        os.chmod(folder, mode)
        os.chown(folder, entry.pw_uid, grp.getgrnam(layout.STAFF_GROUP).gr_gid if folder == inbound else entry.pw_gid,
                 follow_symlinks=False)


def setup_instructor(user: str, roster: Path, password: str | None = None) -> str | None:
    """The instructor's account, course directory (generated, roster imported) and the course's exchange folder."""
    password = ensure_account(user, layout.STAFF_GROUP, password)
    course = install_course(user)
    shutil.copy2(roster, course / "roster.csv")
    instructor_settings(user)
    chown_tree(layout.home(user), user)
    own_course_exchange(user)
    nbgrader = str(layout.env() / "bin" / "nbgrader")
    steps = [[nbgrader, "db", "student", "import", "roster.csv"]]
    if not (course / "release" / ASSIGNMENT).exists():
        steps.insert(0, [nbgrader, "generate_assignment", ASSIGNMENT])
    for argv in steps:
        done = run_as(user, argv, course)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(argv[1:])} as {user} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return password


def setup_students(rows: list[dict], passwords: dict[str, str] | None = None) -> dict[str, str]:
    """An account per roster row; returns the passwords set (new accounts, or those given)."""
    given = passwords or {}
    set_now = {}
    for row in rows:
        password = ensure_account(row["id"], layout.STUDENT_GROUP, given.get(row["id"]))
        if password is not None:
            set_now[row["id"]] = password
    return set_now


def record_passwords(passwords: dict[str, str]) -> Path | None:
    """New accounts' first passwords, for the instructor to hand out: state/initial-passwords.csv, root only."""
    if not passwords:
        return None
    path = layout.state() / "initial-passwords.csv"
    old = path.read_text() if path.exists() else "account,password\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(old + "".join(f"{name},{password}\n" for name, password in passwords.items()))
    return path
