"""Real servers on loopback for the class-grading tests: a PostgreSQL server and a Dask scheduler with workers, each
a separate process, stopped when the test is done. Nothing is mocked."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from rnncourse.course import bin_path, tool_env

INSTALL_HINT = "PostgreSQL's server programs are missing: run `make test` (it installs Debian's postgresql as root) " \
               "or `sudo apt-get install postgresql`."


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or [shutil.which(name)]
    if not found[-1]:
        raise RuntimeError(INSTALL_HINT)
    return found[-1]


def _wait_for_port(port: int, what: str, proc: subprocess.Popen, log: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {seconds} s:\n{log.read_text()[-3000:]}")


@contextmanager
def postgres_server():
    """A throw-away PostgreSQL cluster on 127.0.0.1, trust auth; yields the gradebook's SQLAlchemy URL. PostgreSQL
    refuses to run as root, so as root it runs as the `postgres` user the Debian package creates (in a folder of its
    own: pytest's temporary folders are closed to other users)."""
    workdir = Path(tempfile.mkdtemp(prefix="rnncourse-postgres-"))
    data, sockets, log = workdir / "data", workdir / "sockets", workdir / "postgres.log"
    sockets.mkdir(exist_ok=True)
    as_user: list[str] = []
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        for path in (workdir, sockets):
            os.chown(path, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    init = subprocess.run([*as_user, postgres_bin("initdb"), "-D", str(data), "-U", "grader", "-A", "trust",
                           "-E", "UTF8"], capture_output=True, text=True)
    if init.returncode:
        raise RuntimeError(f"initdb failed:\n{init.stdout}{init.stderr}")
    proc = subprocess.Popen([*as_user, postgres_bin("postgres"), "-D", str(data), "-p", str(port),
                             "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={sockets}",
                             "-c", "fsync=off"],
                            stdout=open(log, "w"), stderr=subprocess.STDOUT)
    try:
        _wait_for_port(port, "postgres", proc, log)
        subprocess.run([postgres_bin("createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "grader", "gradebook"],
                       check=True, capture_output=True, text=True, timeout=60)
        yield f"postgresql+psycopg2://grader@127.0.0.1:{port}/gradebook"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(workdir, ignore_errors=True)


@contextmanager
def dask_cluster(workdir: Path, n_workers: int = 2):
    """`dask scheduler` and n `dask worker` processes on 127.0.0.1, one task at a time each; yields the scheduler's
    address and the workers' Popen objects."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = tool_env({"DASK_DISTRIBUTED__WORKER__DAEMON": "False"})
    dask = [bin_path("dask")] if os.path.exists(bin_path("dask")) else [sys.executable, "-m", "dask"]
    procs = []
    try:
        log = workdir / "scheduler.log"
        scheduler = subprocess.Popen([*dask, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                                      "--no-dashboard"], stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env)
        procs.append(scheduler)
        _wait_for_port(port, "dask scheduler", scheduler, log)
        for i in range(n_workers):
            procs.append(subprocess.Popen(
                [*dask, "worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard", "--memory-limit", "0",
                 "--name", f"grader-{i}", "--host", "127.0.0.1"],
                stdout=open(workdir / f"worker-{i}.log", "w"), stderr=subprocess.STDOUT, env=env))
        _wait_for_workers(address, n_workers)
        yield address, procs[1:]
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def _wait_for_workers(address: str, n: int, seconds: float = 90) -> None:
    from distributed import Client

    with Client(address, timeout="30s") as client:
        client.wait_for_workers(n, timeout=seconds)
