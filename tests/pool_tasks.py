"""Tasks for tests/test_workerpool.py, importable by spawned worker processes."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from rnncourse import workerpool


def square(x: int) -> tuple[int, int]:
    return x * x, os.getpid()


def die_once(marker: str) -> str:
    """Kills its own worker the first time it runs (SIGKILL: no cleanup, as the OOM killer would)."""
    if not os.path.exists(marker):
        Path(marker).write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return "survived"


def always_die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def fail() -> None:
    raise ValueError("a task's own error")


def sleep_with_cleanup(folder: str, seconds: float) -> str:
    """Creates a folder that only its cleanup removes, records its pid, then sleeps."""
    work = Path(folder) / f"work-{os.getpid()}"
    work.mkdir()
    workerpool.on_termination(lambda: work.rmdir())
    (Path(folder) / f"pid-{os.getpid()}").write_text("")
    time.sleep(seconds)
    work.rmdir()
    return "slept"
