"""The local worker pool: a dead worker costs only its own task (retried, then given up), a task's error is its own,
Ctrl-C stops the workers after their cleanups, and no worker outlives a coordinator that was killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pool_tasks

from rnncourse import workerpool
from rnncourse.course import tool_env

HERE = Path(__file__).parent


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]


def _wait_for(condition, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.1)


def test_a_dead_worker_costs_only_its_task_which_is_retried(tmp_path):
    tasks = [workerpool.Task("dies", pool_tasks.die_once, (str(tmp_path / "marker"),)),
             *[workerpool.Task(f"sq{i}", pool_tasks.square, (i,)) for i in range(6)]]
    seen = []
    events = workerpool.LocalPool(2, max_attempts=3).run(tasks, seen.append)
    final = {e.key: e for e in events}
    assert final["dies"].kind == "done" and final["dies"].result == "survived" and final["dies"].attempt == 2
    assert [e.kind for e in seen if e.key == "dies"] == ["retry", "done"]
    assert "killed by signal 9" in next(e.reason for e in seen if e.kind == "retry")
    assert {k: e.result[0] for k, e in final.items() if k.startswith("sq")} == {f"sq{i}": i * i for i in range(6)}
    assert all(e.attempt == 1 for k, e in final.items() if k != "dies"), "no other task was run twice"


def test_a_task_that_always_kills_its_worker_is_given_up_after_the_limit():
    events = workerpool.LocalPool(2, max_attempts=3).run([workerpool.Task("doomed", pool_tasks.always_die),
                                                          workerpool.Task("fine", pool_tasks.square, (3,))])
    final = {e.key: e for e in events}
    assert final["doomed"].kind == "gave_up" and final["doomed"].attempt == 3
    assert "gave up after 3 attempts" in final["doomed"].reason
    assert final["fine"].kind == "done" and final["fine"].result[0] == 9


def test_a_task_error_is_reported_not_retried():
    events = workerpool.LocalPool(1).run([workerpool.Task("bad", pool_tasks.fail)])
    assert events[0].kind == "error" and "ValueError: a task's own error" in events[0].reason
    assert events[0].attempt == 1


def _coordinator(folder: Path) -> tuple[subprocess.Popen, list[int]]:
    proc = subprocess.Popen([sys.executable, str(HERE / "pool_coordinator.py"), str(folder)], env=tool_env())
    _wait_for(lambda: len(list(folder.glob("pid-*"))) == 2)
    return proc, [int(p.name.split("-")[1]) for p in folder.glob("pid-*")]


def test_ctrl_c_stops_workers_after_their_cleanup(tmp_path):
    proc, workers = _coordinator(tmp_path)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    assert (tmp_path / "interrupted").read_text() == "running=['t0', 't1'] pending=['t2', 't3']"
    assert not any(_alive(pid) for pid in workers)
    assert not list(tmp_path.glob("work-*")), "each worker's cleanup removed its task's folder"


def test_workers_die_with_a_killed_coordinator_and_clean_up(tmp_path):
    proc, workers = _coordinator(tmp_path)
    proc.kill()
    proc.wait(timeout=30)
    _wait_for(lambda: not any(_alive(pid) for pid in workers), seconds=30)
    assert not list(tmp_path.glob("work-*")), "the parent-death signal ran each worker's cleanup"
