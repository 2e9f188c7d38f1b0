"""Worker processes that run one task at a time, retry a task whose worker died, and die with their parent.

`concurrent.futures.ProcessPoolExecutor` treats one dead worker as a broken pool: it kills the other workers' tasks
and fails everything still queued. Grading a class needs the opposite: a worker killed (by the OOM killer, an
instructor, a fault) costs only its own task, which is run again on a fresh worker, up to `max_attempts` times.

- Each worker is a spawned process with a pipe to the coordinator. It asks the kernel to send it SIGTERM when the
  coordinator dies (prctl PR_SET_PDEATHSIG) and also leaves when the pipe closes, so no worker outlives a killed
  runner. On SIGTERM it runs the cleanups its tasks registered (`on_termination`: staging folders, the sandbox's
  zygote) and exits at once.
- Workers ignore SIGINT: Ctrl-C reaches the coordinator only, which stops handing out tasks, sends SIGTERM to the
  workers (they clean up their running kernels and folders), and raises `Interrupted` with what finished.
- `DaskPool` offers the same `run` on a Dask cluster, whose scheduler itself reruns the task of a worker that died
  (its `allowed-failures`, then `KilledWorker`).
"""

from __future__ import annotations

import ctypes
import multiprocessing
import multiprocessing.connection
import os
import signal
import traceback
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

PR_SET_PDEATHSIG = 1
STOP_GRACE_S = 30  # how long a worker told to stop may spend cleaning up before it is killed
_CLEANUPS: list[Callable[[], None]] = []


@dataclass
class Task:
    key: str
    fn: Callable
    args: tuple = ()


@dataclass
class Event:
    """Something the coordinator reports while tasks run."""

    kind: str  # "done" (result set), "error" (the task raised; reason), "retry" (its worker died), "gave_up"
    key: str
    attempt: int = 1
    result: Any = None
    reason: str = ""


class Interrupted(Exception):
    """Ctrl-C (or SIGTERM) reached the coordinator: `events` holds what finished; `running` and `pending` the rest."""

    def __init__(self, events: list, running: list, pending: list):
        super().__init__("interrupted")
        self.events, self.running, self.pending = events, running, pending


# ---- in a worker ------------------------------------------------------------------------------------------------

def on_termination(cleanup: Callable[[], None]) -> Callable[[], None]:
    """Run cleanup if this worker is told to stop (or its parent dies) while a task runs; returns a function that
    cancels the registration."""
    _CLEANUPS.append(cleanup)
    return lambda: _CLEANUPS.remove(cleanup) if cleanup in _CLEANUPS else None


def _terminate(signum, frame) -> None:
    for cleanup in reversed(list(_CLEANUPS)):
        try:
            cleanup()
        except Exception:
            pass
    import atexit
    atexit._run_exitfuncs()  # e.g. the sandbox's zygote and its folder
    os._exit(128 + signum)


def die_with_parent(parent: int) -> None:
    """SIGTERM to this process when `parent` dies (Linux), at once if it already has."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: the pipe's end still stops the worker between tasks
    if os.getppid() != parent:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _worker_main(conn, parent: int, initializer, initargs) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _terminate)
    die_with_parent(parent)
    if initializer is not None:
        initializer(*initargs)
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):  # the coordinator is gone
            _terminate(signal.SIGTERM, None)
        if message is None:
            return
        key, fn, args = message
        try:
            reply = ("done", key, fn(*args))
        except Exception:
            reply = ("error", key, traceback.format_exc(limit=20))
        conn.send(reply)


# ---- in the coordinator -----------------------------------------------------------------------------------------

@dataclass
class _Worker:
    process: Any
    conn: Any
    task: Task | None = None


@dataclass
class LocalPool:
    """n spawned worker processes on this machine. `run` grades a list of tasks and stops its workers; a service
    that grades tasks as they come keeps them warm between tasks instead: `open`, then `submit` and `poll`, `close`."""

    workers: int
    initializer: Callable | None = None
    initargs: tuple = ()
    max_attempts: int = 3
    label: str = field(default="local")

    def _start(self) -> _Worker:
        ctx = multiprocessing.get_context("spawn")
        ours, theirs = ctx.Pipe()
        process = ctx.Process(target=_worker_main, args=(theirs, os.getpid(), self.initializer, self.initargs),
                              daemon=True)
        process.start()
        theirs.close()
        return _Worker(process, ours)

    def open(self, size: int | None = None) -> None:
        """Start the workers (at most `size`), each prepared by the initializer."""
        self._pool = [self._start() for _ in range(min(self.workers, self.workers if size is None else size))]
        self._pending: deque = deque()
        self._attempts: dict = {}

    def submit(self, task: Task) -> None:
        """Queue a task; it starts on the next idle worker (in `poll`)."""
        self._attempts[task.key] = 0
        self._pending.append(task)

    @property
    def busy(self) -> bool:
        return bool(self._pending) or any(w.task for w in self._pool)

    @property
    def size(self) -> int:
        """How many workers are up."""
        return len(self._pool)

    def poll(self, timeout: float | None = None, on_event: Callable[[Event], None] = lambda e: None) -> list[Event]:
        """Start queued tasks on idle workers, wait up to `timeout` seconds (None: until something happens) for a
        task to finish or a worker to die; return the final events ("done", "error", "gave_up") that came. A dead
        worker is replaced, its task queued again (an on_event "retry") or given up."""
        for worker in self._pool:
            if worker.task is None and self._pending:
                worker.task = self._pending.popleft()
                self._attempts[worker.task.key] += 1
                worker.conn.send((worker.task.key, worker.task.fn, worker.task.args))
        waiting = [w.conn for w in self._pool if w.task] + [w.process.sentinel for w in self._pool if w.task]
        if not waiting:
            return []
        ready = multiprocessing.connection.wait(waiting, timeout)
        finished: list[Event] = []
        for worker in list(self._pool):
            if worker.task is None:
                continue
            if worker.conn in ready or worker.conn.poll():
                try:
                    kind, key, payload = worker.conn.recv()
                except (EOFError, OSError):
                    kind = None
                if kind is not None:
                    event = Event(kind, key, self._attempts.pop(key), payload if kind == "done" else None,
                                  payload if kind == "error" else "")
                    worker.task = None
                    finished.append(event)
                    on_event(event)
                    continue
            if worker.process.sentinel in ready or not worker.process.is_alive():
                task, worker.task = worker.task, None
                finished.extend(self._worker_died(task, worker, self._attempts, self._pending, on_event))
                self._pool[self._pool.index(worker)] = self._start()
        return finished

    def running(self) -> list[str]:
        return [w.task.key for w in self._pool if w.task]

    def close(self) -> None:
        """Let the workers finish and leave."""
        self._close(self._pool)

    def stop(self) -> None:
        """SIGTERM to every worker: they clean up their running kernels and folders, then exit."""
        self._stop(self._pool)

    def run(self, tasks: list[Task], on_event: Callable[[Event], None] = lambda e: None) -> list[Event]:
        """Run every task; return one final event per task ("done", "error" or "gave_up"), in finishing order."""
        self.open(len(tasks))
        for task in tasks:
            self.submit(task)
        finished: list[Event] = []
        try:
            while self.busy:
                finished.extend(self.poll(None, on_event))
        except KeyboardInterrupt:
            running, pending = self.running(), [t.key for t in self._pending]
            self.stop()
            raise Interrupted(finished, running, pending) from None
        self.close()
        return finished

    def _worker_died(self, task: Task, worker: _Worker, attempts: dict, pending: deque, on_event) -> list[Event]:
        worker.process.join(timeout=5)
        code = worker.process.exitcode
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exited with {code}"
        reason = f"its worker process (pid {worker.process.pid}) {how}"
        if attempts[task.key] < self.max_attempts:
            on_event(Event("retry", task.key, attempts[task.key], reason=reason))
            pending.appendleft(task)
            return []
        event = Event("gave_up", task.key, attempts[task.key],
                      reason=f"{reason}; gave up after {attempts[task.key]} attempts")
        on_event(event)
        return [event]

    def _close(self, pool: list[_Worker]) -> None:
        for worker in pool:
            try:
                worker.conn.send(None)
            except OSError:
                pass
        for worker in pool:
            worker.process.join(timeout=STOP_GRACE_S)
            if worker.process.is_alive():
                worker.process.kill()

    def _stop(self, pool: list[_Worker]) -> None:
        for worker in pool:
            if worker.process.is_alive():
                worker.process.terminate()  # SIGTERM: the worker cleans up its kernels and folders, then exits
        for worker in pool:
            worker.process.join(timeout=STOP_GRACE_S)
            if worker.process.is_alive():
                worker.process.kill()


@dataclass
class DaskPool:
    """The workers of a running Dask cluster."""

    scheduler: str
    label: str = field(default="dask")

    def run(self, tasks: list[Task], on_event: Callable[[Event], None] = lambda e: None) -> list[Event]:
        from distributed import Client, as_completed
        from distributed.scheduler import KilledWorker

        finished: list[Event] = []
        with Client(self.scheduler, timeout="30s") as client:
            futures = {client.submit(t.fn, *t.args, key=f"grade-{t.key}-{os.urandom(6).hex()}", pure=False): t.key
                       for t in tasks}
            try:
                for future in as_completed(futures):
                    key = futures[future]
                    try:
                        event = Event("done", key, result=future.result())
                    except KilledWorker as died:
                        event = Event("gave_up", key, reason=f"the Dask workers running it died ({died})")
                    except Exception:
                        event = Event("error", key, reason=traceback.format_exc(limit=20))
                    finished.append(event)
                    on_event(event)
            except KeyboardInterrupt:
                done = {e.key for e in finished}
                client.cancel([f for f in futures if futures[f] not in done])
                running = [k for f, k in futures.items() if k not in done and f.status == "processing"]
                raise Interrupted(finished, running, [k for k in futures.values() if k not in done]) from None
        return finished
