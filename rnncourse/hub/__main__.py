"""`python -m rnncourse.hub <step>`: the course hub's setup, as root (the Makefile's hub targets run these).

    env      build the shared course environment every account runs (layout.env())
    users    accounts from --roster (and the instructor's), the instructor's course directory, the roster in the
             gradebook; new accounts' first passwords go to state/initial-passwords.csv
    start    run JupyterHub with the repository's jupyterhub_config.py (foreground; Ctrl-C stops it)
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import accounts, hubroot, layout, sharedenv
from ..course import repo_root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rnncourse.hub", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=["env", "users", "start"])
    parser.add_argument("--roster", type=Path, default=repo_root() / "roster.csv")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        parser.error("the hub's setup makes accounts and runs the hub as root (sudo make hub)")
    if args.step == "env":
        print(f"course environment ready: {sharedenv.build()}")
    elif args.step == "users":
        hubroot.prepare()
        hubroot.close_repository()
        try:
            rows = accounts.read_roster(args.roster)
        except accounts.RosterError as problem:
            raise SystemExit(str(problem)) from None
        passwords = accounts.setup_students(rows)
        instructor_password = accounts.setup_instructor(layout.instructor(), args.roster.resolve())
        if instructor_password:
            passwords[layout.instructor()] = instructor_password
        where = accounts.record_passwords(passwords)
        print(f"{len(rows)} students and the instructor {layout.instructor()} have accounts; course directory "
              f"{layout.course_dir()}; roster imported into its gradebook"
              + (f"; first passwords of the {len(passwords)} new accounts: {where}" if where else ""))
    elif args.step == "start":
        try:
            layout.home(layout.instructor())
        except KeyError:
            raise SystemExit(f"no account {layout.instructor()}: run `make hub-users ROSTER=<roster.csv>` first") from None
        hubroot.prepare()
        os.chdir(layout.state())
        hub = str(Path(sys.executable).with_name("jupyterhub"))
        os.execv(hub, [hub, "-f", str(repo_root() / "jupyterhub_config.py")])
    return 0


if __name__ == "__main__":
    sys.exit(main())
