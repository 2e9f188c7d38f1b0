"""Sandboxed kernels forked from a pre-imported parent: no interpreter start and no `import torch` per notebook.

Starting a kernel and importing torch and matplotlib costs about 3.4 s per notebook, more than the cell compute
of most notebooks here. Each grading process starts one *zygote* in a bubblewrap sandbox
(the same read-only system, Python and venv, no network), which imports the libraries and the call protocol's kernel side once
and then, per kernel, forks a child that isolates itself before any student code runs:

* new mount, PID, network, IPC and UTS namespaces: a private /tmp, /dev/shm and /proc, no loopback shared with other
  kernels, every process it starts dies with it;
* its uid (grading as root, a leased uid of its own; as an ordinary user, that user's, as kernels started one by
  one have), and as that uid a user namespace of its own (mapping only that uid, allowing no nested one), with no
  capability left, not even in the bounding set; no_new_privs, the executor's rlimits, and last the seccomp filter
  of ``rnncourse.kernels.seccomp``;
* its working copy, home and Unix sockets in a run folder of its own; the server's folder (socket, log, the other
  kernels' run folders) is covered by an empty read-only tmpfs in its mount namespace, its own run folder bound
  back on top, read-only itself but for its ipc/, work/ and home/ (nothing in it can be renamed).

As an ordinary user (the hub's grading service runs as the instructor) the zygote runs in a user namespace of
bwrap's, holding CAP_SYS_ADMIN there only, enough to make each kernel's namespaces and mounts.

The zygote and the kernels run rnncourse/kernels/boot.py. Each kernel still runs exactly one notebook. The executor talks to it as to any kernel: the process it launches is a
small *bridge* that hands the request (and its stdio) to the zygote over a Unix socket, exits with the kernel's exit
status, and whose death (a kill from the executor) kills the kernel.
"""

from __future__ import annotations

import atexit
import json
import os
import socket
import subprocess
import tempfile
import threading
from pathlib import Path

from . import removal, seccomp
from .bwrap import boot_argv

# Libraries the section's notebooks and checks import; imported once in the zygote.
PRELOAD = ["numpy", "torch", "torch.nn", "torch.nn.functional", "torch.optim", "torch.utils.data", "matplotlib",
           "matplotlib.pyplot", "matplotlib_inline.backend_inline", "IPython", "ipykernel.kernelapp",
           "ipykernel.ipkernel", "ipykernel.debugger", "pdb", "sqlite3", "tornado.gen", "tornado.locks",
           "tornado.queues", "tqdm", "tqdm.auto"]  # the last line: what IPKernelApp.initialize imports


class ForkServerError(RuntimeError):
    """The zygote could not be started."""


class ForkServer:
    """One zygote per grading process and sandbox shape; started on first use, ended with the process."""

    def __init__(self, command_for, python: str, payload: dict):
        self.root = Path(tempfile.mkdtemp(prefix=f"rnncourse-forkserver-{os.getpid()}-", dir="/var/tmp"))
        os.chmod(self.root, 0o711)  # kernels reach their own folders inside; nobody lists the others
        self.socket = str(self.root / "zygote.sock")
        self.runs = self.root / "runs"
        self.runs.mkdir(mode=0o711)
        self.stage = self.root / "stage"  # where a kernel parks binds while it mounts its own /tmp
        self.stage.mkdir(mode=0o700)
        self.keep: list[str] = []  # set by the caller: read-only binds below /tmp or /dev/shm
        self.process = None
        # Every kernel loads the seccomp program, compiled here, once, from the one policy both kernel paths use.
        self._payload = {**payload, "seccomp": seccomp.bpf_program().hex()}
        self._command_for, self._python = command_for, python
        self._lock = threading.Lock()
        atexit.register(self.close)

    def ensure_running(self) -> None:
        with self._lock:
            if self.process is not None and self.process.poll() is None:
                return
            argv = self._command_for(self) + boot_argv(self._python, "zygote", self.socket)
            if os.path.exists(self.socket):
                os.unlink(self.socket)
            log_path = self.root / "zygote.log"
            with open(os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab") as log:
                self.process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                                start_new_session=True)
            self.process.stdin.write(json.dumps(self._payload).encode())
            self.process.stdin.close()
            ready = self.process.stdout.readline()
            self.process.stdout.close()
            status = self._selftest() if ready.strip() == b"ready" else None
            if status != 0:
                self.process.kill()
                log = (self.root / "zygote.log").read_text(errors="replace")[-2000:]
                raise ForkServerError(f"the kernel fork server did not start (exit {self.process.wait()}, self-test "
                                      f"{status}): {log}")

    def _selftest(self) -> int | None:
        """Fork one child through every isolation step, as an unprivileged uid, and see it exit cleanly: it checks
        its uid, namespaces, binds, capabilities and seccomp filter, and writes what it lacks to the log."""
        uid = 65534 if os.geteuid() == 0 else None  # None: an ordinary user's zygote, whose kernels keep its uid
        request = {"selftest": True, "uid": uid, "limits": {}, "env": {}, "cwd": "/", "argv": [],
                   "tmp_bytes": 1 << 20, **self.mounts()}
        null = os.open(os.devnull, os.O_RDWR)
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn, \
                    open(self.root / "zygote.log", "ab") as log:
                conn.settimeout(60)
                conn.connect(self.socket)
                socket.send_fds(conn, [json.dumps(request).encode() + b"\n"], [null, null, log.fileno()])
                answer = b""
                while not answer.endswith(b"\n"):
                    chunk = conn.recv(4096)
                    if not chunk:
                        return None
                    answer += chunk
            return json.loads(answer)["status"]
        except OSError:
            return None
        finally:
            os.close(null)

    def mounts(self) -> dict:
        """What each kernel's request says about mounts: read-only binds to keep visible under its own /tmp, and
        this server's folder, which the kernel hides but for its own run folder."""
        return {"keep": self.keep, "stage": str(self.stage), "root": str(self.root)}

    def bridge_command(self) -> list[str]:
        return [self._python, "-I", "-S", str(Path(__file__).with_name("bridge.py")), self.socket]

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        removal.remove_tree(self.root)


_SERVERS: dict = {}
_SERVERS_LOCK = threading.Lock()


def fork_server(key, command_for, python: str, payload: dict) -> ForkServer:
    with _SERVERS_LOCK:
        server = _SERVERS.get(key)
        if server is None:
            server = _SERVERS[key] = ForkServer(command_for, python, payload)
    server.ensure_running()
    return server
