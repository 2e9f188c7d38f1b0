"""Uids for kernels when grading as root: each kernel's alone, on this machine, for as long as it runs."""

from __future__ import annotations

import grp
import os
import pwd
import secrets
import tempfile
import weakref
from pathlib import Path

from .bwrap import SandboxUnavailable


def processes_of(uid: int) -> int:
    count = 0
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            for line in status.read_text().splitlines():
                if line.startswith("Uid:"):
                    count += int(line.split()[1]) == uid
                    break
        except OSError:
            continue
    return count


class UidLease:
    """An unprivileged uid (and gid of the same number) for one kernel when grading as root: no other kernel, grading
    run or grader on this machine has it while the kernel runs, and almost surely none ever had it.

    What the kernel keys to a uid must not reach anyone else: RLIMIT_NPROC counts every process of the uid (a fork
    bomb would stop a classmate's kernel from starting a thread), and keyrings and the like outlive a process. So the
    uid is drawn at random from `count` uids from `first` (by default 2^20 up to 2^31: two kernels, of any runs,
    draw the same one with a chance of one in two billion) and leased by creating its file exclusively in a folder
    every grader on the machine shares (/run/rnncourse-uids); the file goes when the kernel ends, or stays until
    reboot if the grader dies. A uid that a process runs as, that an account has, or that /etc/subuid or
    /etc/subgid hand to someone's containers is skipped."""

    LOCKS = Path("/run/rnncourse-uids") if Path("/run").is_dir() else Path(tempfile.gettempdir()) / "rnncourse-uids"

    def __init__(self, first: int, count: int):
        self.LOCKS.mkdir(mode=0o700, exist_ok=True)
        reserved = _subordinate_ids()
        for _ in range(1000):
            uid = first + secrets.randbelow(count)
            if any(start <= uid < end for start, end in reserved) or _has_account(uid) or processes_of(uid):
                continue
            try:
                os.close(os.open(self.LOCKS / str(uid), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            except FileExistsError:
                continue
            self.uid = uid
            # release() removes the file; so does the lease's collection, or the grader's exit, if nothing called it.
            self.release = weakref.finalize(self, (self.LOCKS / str(uid)).unlink, missing_ok=True)
            return
        raise SandboxUnavailable(f"no free sandbox uid in {first}..{first + count - 1} after 1000 draws")


def _subordinate_ids() -> list[tuple[int, int]]:
    """[start, end) ranges that /etc/subuid and /etc/subgid give users for their containers' ids."""
    ranges = []
    for table in ("/etc/subuid", "/etc/subgid"):
        try:
            lines = Path(table).read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            fields = line.split(":")
            if len(fields) == 3 and fields[1].isdigit() and fields[2].isdigit():
                ranges.append((int(fields[1]), int(fields[1]) + int(fields[2])))
    return ranges


def _has_account(uid: int) -> bool:
    """A user or group with this number (local or from a directory service) exists."""
    for lookup in (pwd.getpwuid, grp.getgrgid):
        try:
            lookup(uid)
        except KeyError:
            continue
        return True
    return False
