"""Sandboxed kernels forked from a pre-imported parent: no interpreter start and no `import torch` per notebook.

Starting a kernel and importing torch and matplotlib costs about 3.4 s per notebook, more than the cell compute
of most notebooks here. When grading as root, each grading process starts one *zygote* in a bubblewrap sandbox
(the same read-only system, Python and venv, no network), which imports the libraries and the call protocol's kernel side once
and then, per kernel, forks a child that isolates itself before any student code runs:

* new mount, PID, network, IPC and UTS namespaces: a private /tmp, /dev/shm and /proc, no loopback shared with other
  kernels, every process it starts dies with it;
* the kernel's own leased uid, and as that uid a user namespace of its own (mapping only that uid, allowing no
  nested one), with no capability left, not even in the bounding set; no_new_privs, the executor's rlimits, and
  last the seccomp filter of ``rnncourse.seccomp_policy``;
* its working copy, home and Unix sockets in a folder only its uid can enter.

Each kernel still runs exactly one notebook. The executor talks to it as to any kernel: the process it launches is a
small *bridge* that hands the request (and its stdio) to the zygote over a Unix socket, exits with the kernel's exit
status, and whose death (a kill from the executor) kills the kernel.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
from pathlib import Path

from . import seccomp_policy

# Python run first in a sandboxed interpreter (the zygote, or a kernel started on its own) with `_payload` read from
# stdin: imports the call protocol's kernel side (rnncourse.kernels.callee and .wire) from their sources in the
# payload; the sandbox has no course files.
IMPORT_KERNEL_MODULES = r'''
class _FromMemory(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def __init__(self, modules):
        self.modules = {name: (source, package) for name, source, package in modules}
    def find_spec(self, name, path=None, target=None):
        if name not in self.modules:
            return None
        return importlib.util.spec_from_loader(name, self, origin="<grading>", is_package=self.modules[name][1])
    def create_module(self, spec):
        return None
    def exec_module(self, module):
        source, _ = self.modules.pop(module.__name__)
        exec(compile(source, "<" + module.__name__ + ">", "exec"), module.__dict__)

_finder = _FromMemory(_payload["modules"])
sys.meta_path.insert(0, _finder)
for _module in [m[0] for m in _payload["modules"]]:
    importlib.import_module(_module)
sys.meta_path.remove(_finder)
if sys.path and sys.path[0] == "":
    del sys.path[0]
'''

# Libraries the section's notebooks and checks import; imported once in the zygote.
PRELOAD = ["numpy", "torch", "torch.nn", "torch.nn.functional", "torch.optim", "torch.utils.data", "matplotlib",
           "matplotlib.pyplot", "matplotlib_inline.backend_inline", "IPython", "ipykernel.kernelapp",
           "ipykernel.ipkernel", "ipykernel.debugger", "pdb", "sqlite3", "tornado.gen", "tornado.locks",
           "tornado.queues", "tqdm", "tqdm.auto"]  # the last line: what IPKernelApp.initialize imports

# Runs as `python -c ZYGOTE <socket>` inside bwrap, as root with CAP_SETUID/SETGID/SYS_ADMIN (nothing else).
ZYGOTE = r'''
import ctypes, errno, importlib, importlib.abc, importlib.util, json, os, resource, select, signal, socket, sys
import traceback
signal.signal(signal.SIGINT, signal.SIG_IGN)
_payload = json.loads(sys.stdin.buffer.read().decode())
_null = os.open(os.devnull, os.O_RDONLY)
os.dup2(_null, 0)
os.close(_null)
os.environ.update(_payload["env"])
_SECCOMP = bytes.fromhex(_payload["seccomp"])  # seccomp_policy.bpf_program(): every kernel loads it

''' + IMPORT_KERNEL_MODULES + r'''
for _module in _payload["preload"]:
    try:
        importlib.import_module(_module)
    except Exception:
        pass  # the kernel imports it itself, or reports its absence as usual

_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x20000, 0x4000000, 0x8000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND = 1, 2, 4, 8, 32, 4096
MS_REC, MS_PRIVATE, MNT_DETACH = 16384, 1 << 18, 2
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_SECCOMP, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 1, 4, 22, 24, 38
SECCOMP_MODE_FILTER, LINUX_CAPABILITY_VERSION_3 = 2, 0x20080522

class _SockFprog(ctypes.Structure):  # struct sock_fprog: a BPF program for prctl(PR_SET_SECCOMP)
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]

def _ok(result, what):
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, what + ": " + os.strerror(err))

def _mount(source, target, fstype, flags, data):
    _ok(_libc.mount(source and source.encode(), target.encode(), fstype and fstype.encode(), ctypes.c_ulong(flags),
                    data and data.encode()), "mount " + target)

def _become_kernel(req, fds):
    os.dup2(fds[0], 0)
    os.dup2(fds[1], 1)
    os.dup2(fds[2], 2)
    os.closerange(3, os.sysconf("SC_OPEN_MAX"))  # nothing of the zygote's or the handler's reaches student code
    _mount(None, "/", None, MS_REC | MS_PRIVATE, None)
    # Read-only binds below /tmp (a venv in /tmp) would vanish under the kernel's own /tmp: park them, mount the
    # new /tmp and /dev/shm, and bind them back, read-only.
    parked = []
    for i, path in enumerate(req["keep"]):
        stage = os.path.join(req["stage"], "%d-%d" % (os.getpid(), i))
        os.makedirs(stage)
        _mount(path, stage, None, MS_BIND | MS_REC, None)
        parked.append((stage, path))
    size = "size=%d,mode=1777" % req["tmp_bytes"]
    _mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, size)
    _mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, size)
    for stage, path in parked:
        os.makedirs(path, exist_ok=True)
        _mount(stage, path, None, MS_BIND | MS_REC, None)
        _mount(None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, None)
        _ok(_libc.umount2(stage.encode(), MNT_DETACH), "umount " + stage)
        os.rmdir(stage)
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None)
    # This process stays PID 1 of the namespace, as bwrap's init does: the kernel must not be PID 1, which ignores
    # signals it has no handler for (a notebook's os.kill(os.getpid(), 9) would do nothing).
    kernel = os.fork()
    if kernel == 0:
        _run_kernel(req)
        os._exit(0)
    for fd in (0, 1, 2):
        os.close(fd)
    os.setgroups([])
    os.setresgid(65534, 65534, 65534)  # nobody: not the kernel's uid (its process budget), no capabilities
    os.setresuid(65534, 65534, 65534)
    _ok(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    while True:  # reap whatever ends in the namespace until the kernel itself does; its end ends the namespace
        pid, status = os.wait()
        if pid == kernel:
            os._exit(128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status))

def _own_user_namespace(uid):
    """As `uid`, a user namespace of the kernel's own that maps only `uid`: what the kernel keys to its user
    (keyrings, counts) lives and dies with it. Its creator holds every capability in it, bounding set included:
    drop them all."""
    _ok(_libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0), "dumpable")  # /proc/self/*_map are then the kernel's to write
    _ok(_libc.unshare(CLONE_NEWUSER), "unshare(CLONE_NEWUSER)")
    only_uid = "%d %d 1" % (uid, uid)  # inside as outside; setgroups must be denied before an unprivileged gid_map
    for name, line in (("setgroups", "deny"), ("uid_map", only_uid), ("gid_map", only_uid)):
        with open("/proc/self/" + name, "w") as table:
            table.write(line)
    with open("/proc/sys/user/max_user_namespaces", "w") as limit:  # no nested one: bwrap's --disable-userns
        limit.write("0")
    with open("/proc/sys/kernel/cap_last_cap") as last:
        for cap in range(int(last.read()) + 1):
            _ok(_libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), "drop capability %d from the bounding set" % cap)
    header, sets = (ctypes.c_uint32 * 2)(LINUX_CAPABILITY_VERSION_3, 0), (ctypes.c_uint32 * 6)()
    _ok(_libc.capset(header, sets), "capset: no capability")  # effective, permitted, inheritable (ambient with them)

def _load_seccomp():
    program = _SockFprog(len(_SECCOMP) // 8, _SECCOMP)  # 8 bytes per BPF instruction
    _ok(_libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(program), 0, 0), "seccomp filter")

def _selftest_failures(uid, keep):
    """What the self-test fork finds missing of the isolation above, as words for the zygote's log."""
    with open("/proc/self/status") as lines:
        status = dict(line.split(":", 1) for line in lines if ":" in line)
    denied = _libc.unshare(CLONE_NEWUSER) != 0 and ctypes.get_errno() == errno.EPERM
    checks = {"its uid": os.getuid() == uid, "PID 2 of its namespace": os.getpid() == 2,
              "the binds below /tmp": all(os.path.isdir(p) for p in keep),
              "an empty capability bounding set": int(status["CapBnd"], 16) == 0 == int(status["CapEff"], 16),
              "the seccomp filter": status["Seccomp"].strip() == "2" and denied}
    return [what for what, ok in checks.items() if not ok]

def _run_kernel(req):
    for name, (soft, hard) in req["limits"].items():
        resource.setrlimit(getattr(resource, name), (soft, hard))
    uid = req["uid"]
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)  # leaving root drops every capability of the zygote's
    _own_user_namespace(uid)
    _ok(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    _ok(_libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0), "dumpable")  # as after an exec: /proc/self stays its own
    _ok(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "pdeathsig")
    os.chdir(req["cwd"])
    os.environ.clear()
    os.environ.update(req["env"])
    _load_seccomp()  # last: nothing below needs a denied call
    if req.get("selftest"):
        failures = _selftest_failures(uid, req["keep"])
        if failures:
            sys.stderr.write("fork self-test: the kernel lacks " + ", ".join(failures) + "\n")
        os._exit(71 if failures else 0)
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.argv = ["ipykernel_launcher", *req["argv"]]
    from ipykernel.kernelapp import IPKernelApp
    app = IPKernelApp.instance(parent_handle=1)
    app.initialize(req["argv"])
    del req
    app.start()

def _serve(conn):
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    data, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)
    while not data.endswith(b"\n"):
        more = conn.recv(1 << 20)
        if not more:
            return
        data += more
    req = json.loads(data)
    _ok(_libc.unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS), "unshare")
    kid = os.fork()  # PID 1 of the new PID namespace: when it ends, everything in the namespace ends
    if kid == 0:
        conn.close()
        try:
            _become_kernel(req, fds)
        except BaseException:
            traceback.print_exc()
            os._exit(70)
        os._exit(0)
    for fd in fds:
        os.close(fd)
    kid_fd = os.pidfd_open(kid)
    while True:
        ready, _, _ = select.select([conn, kid_fd], [], [])
        if kid_fd in ready:
            _, status = os.waitpid(kid, 0)
            conn.sendall(json.dumps({"status": status}).encode() + b"\n")
            return
        if not conn.recv(64):  # the bridge is gone: the executor killed the kernel
            os.kill(kid, signal.SIGKILL)
            os.waitpid(kid, 0)
            return

_server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
_server.bind(sys.argv[1])
os.chmod(sys.argv[1], 0o600)
_server.listen(64)
del _payload, _finder
signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # handlers are reaped automatically
sys.stdout.write("ready\n")
sys.stdout.flush()
while True:
    _conn, _ = _server.accept()
    if os.fork() == 0:
        _server.close()
        try:
            _serve(_conn)
        except BaseException:
            traceback.print_exc()
        os._exit(0)
    _conn.close()
'''

# Runs outside the sandbox as `python -I -S -c BRIDGE <socket>`, with the request on stdin: the kernel "process"
# the executor sees.
BRIDGE = r'''
import json, os, signal, socket, sys
request = sys.stdin.buffer.read()
null = os.open(os.devnull, os.O_RDONLY)
server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
server.connect(sys.argv[1])
socket.send_fds(server, [request + b"\n"], [null, 1, 2])
os.close(null)
answer = b""
while not answer.endswith(b"\n"):
    chunk = server.recv(4096)
    if not chunk:
        sys.exit(70)
    answer += chunk
status = json.loads(answer)["status"]
if os.WIFSIGNALED(status):
    signal.signal(os.WTERMSIG(status), signal.SIG_DFL)
    os.kill(os.getpid(), os.WTERMSIG(status))
sys.exit(os.waitstatus_to_exitcode(status))
'''


class ForkServerError(RuntimeError):
    """The zygote could not be started."""


class ForkServer:
    """One zygote per grading process and sandbox shape; started on first use, ended with the process."""

    def __init__(self, command_for, python: str, payload: dict):
        self.root = Path(tempfile.mkdtemp(prefix="rnncourse-forkserver-", dir="/var/tmp"))
        os.chmod(self.root, 0o711)  # kernels reach their own folders inside; nobody lists the others
        self.socket = str(self.root / "zygote.sock")
        self.runs = self.root / "runs"
        self.runs.mkdir(mode=0o711)
        self.stage = self.root / "stage"  # where a kernel parks binds while it mounts its own /tmp
        self.stage.mkdir(mode=0o700)
        self.keep: list[str] = []  # set by the caller: read-only binds below /tmp or /dev/shm
        self.process = None
        # Every kernel loads the seccomp program, compiled here, once, from the one policy both kernel paths use.
        self._payload = {**payload, "seccomp": seccomp_policy.bpf_program().hex()}
        self._command_for, self._python = command_for, python
        self._lock = threading.Lock()
        atexit.register(self.close)

    def ensure_running(self) -> None:
        with self._lock:
            if self.process is not None and self.process.poll() is None:
                return
            argv = self._command_for(self) + [self._python, "-c", ZYGOTE, self.socket]
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
        request = {"selftest": True, "uid": 65534, "limits": {}, "env": {}, "cwd": "/", "argv": [],
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
        """What each kernel's request says about mounts: read-only binds to keep visible under its own /tmp."""
        return {"keep": self.keep, "stage": str(self.stage)}

    def bridge_command(self) -> list[str]:
        return [self._python, "-I", "-S", "-c", BRIDGE, self.socket]

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)


_SERVERS: dict = {}
_SERVERS_LOCK = threading.Lock()


def fork_server(key, command_for, python: str, payload: dict) -> ForkServer:
    with _SERVERS_LOCK:
        server = _SERVERS.get(key)
        if server is None:
            server = _SERVERS[key] = ForkServer(command_for, python, payload)
    server.ensure_running()
    return server
