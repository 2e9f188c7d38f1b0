"""Sandboxed autograding: every kernel that ``nbgrader autograde`` starts runs inside its own bubblewrap sandbox.

Stock nbgrader runs a submission with the instructor's file access, in ``autograded/<student>/<assignment>``, one
``../../../source`` away from the solutions. Here nbgrader's ``Execute`` step is replaced (in ``nbgrader_config.py``)
by ``SandboxedExecute``, whose kernels start under ``bwrap`` (Debian's ``bubblewrap``):

* the file system is a fresh root holding only the system (``/usr``), the Python installation and the course's
  virtual environment, all read-only, plus a private working copy of the submission's folder (without notebooks)
  and a private, size-limited ``/tmp``: no course directory, no gradebook, no other student, no home, and no
  environment variables but a few harmless ones;
* its own PID, network, IPC and UTS namespaces: no network at all (the kernel talks to nbgrader over Unix sockets
  in a private folder), and every process it started dies with it;
* its own user namespace, as an unprivileged uid (grading as root, one leased for this kernel alone), with an
  empty capability bounding set, a seccomp filter (``rnncourse.seccomp_policy``) and limits on memory, CPU time,
  processes and file size;
* grading as root, kernels are forked from a sandboxed parent that imported torch & co. once
  (``rnncourse.forkserver``), each isolating itself the same way before student code runs;
* no hidden test runs in the kernel: a test cell's visible part runs there, and its hidden checks run here, in the
  grader, calling the student's functions through the call protocol (``rnncourse.kernels``: the kernel holds only
  ``callee`` and ``wire``, no test, reference, expected value or secret). The grader alone decides a test cell's
  score: an ``execute_result`` the kernel emits in a test cell is shown as plain output (nbgrader would take it as
  the score) and a failed verdict becomes the cell's error.

The executor also makes a misbehaving notebook cost only its own points: a kernel that dies (``os._exit``, a crash,
a limit) or ignores the interrupt after a time-out is stopped, the rest of that notebook is marked "not run" with
the reason, and nbgrader goes on with the student's other notebooks (stock nbgrader deletes the whole assignment).
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import weakref
from pathlib import Path
from queue import Empty

import zmq
from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.manager import AsyncKernelManager
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat import NotebookNode
from nbgrader.preprocessors import Execute, NbGraderPreprocessor
from nbgrader.utils import is_grade, is_solution
from traitlets import Bool, DottedObjectName, Enum, Integer, Type, Unicode

from . import forkserver, seccomp_policy
from .grading import verdict
from .outcomes import HIDDEN_TEST_FAILED, KERNEL_DIED, NOT_RUN

SANDBOX_HINT = (
    "Install bubblewrap (Debian/Ubuntu: `sudo apt-get install bubblewrap`; `make venv` does it when run as root) on a "
    "kernel with unprivileged user namespaces (`sysctl kernel.unprivileged_userns_clone=1` where that knob exists), "
    "or, knowing that student code then runs with your file access, set c.SandboxedExecute.sandbox = False.")

# Runs inside the sandbox as `python -c`, before ipykernel: limits, the call protocol's modules from stdin.
LAUNCHER = r'''
import importlib, importlib.abc, importlib.util, json, os, resource, signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)  # bwrap was started with SIGINT ignored; the kernel needs it
_payload = json.loads(sys.stdin.buffer.read().decode())
_null = os.open(os.devnull, os.O_RDONLY)
os.dup2(_null, 0)
os.close(_null)
for _name, (_soft, _hard) in _payload["limits"].items():
    resource.setrlimit(getattr(resource, _name), (_soft, _hard))

''' + forkserver.IMPORT_KERNEL_MODULES + r'''
from ipykernel.kernelapp import IPKernelApp
_app = IPKernelApp.instance(parent_handle=1)  # no parent poller (its parent is outside the PID namespace), no banner
_app.initialize(sys.argv[1:])
del _payload, _finder, _module, _name, _soft, _hard
_app.start()
'''


# nbgrader's own autograde steps (its Execute, no sandbox), as config lines: what the benchmark and the tests compare
# the sandbox with.
STOCK_AUTOGRADE_CONFIG = """
c.Autograde.autograde_preprocessors = [
    "nbgrader.preprocessors.Execute", "nbgrader.preprocessors.IgnorePattern",
    "nbconvert.preprocessors.ClearMetadataPreprocessor", "nbgrader.preprocessors.LimitOutput",
    "nbgrader.preprocessors.SaveAutoGrades", "nbgrader.preprocessors.AssignLatePenalties",
    "nbgrader.preprocessors.CheckCellMetadata"]
"""


class SandboxUnavailable(RuntimeError):
    """bwrap is missing or cannot create namespaces here."""


def bwrap() -> str:
    path = shutil.which("bwrap")
    if path is None:
        raise SandboxUnavailable(f"The grading sandbox needs bubblewrap (`bwrap`), which is not installed. "
                                 f"{SANDBOX_HINT}")
    return path


def kernel_modules() -> list[tuple[str, str, bool]]:
    """(module name, source, is package) of what a kernel holds of the course: the call protocol's kernel side
    (``rnncourse.kernels.callee``, ``.wire``, ``.recorders``), in an order that imports cleanly. No grading code."""
    package = Path(__file__).resolve().parent / "kernels"
    return [("rnncourse", "", True),
            ("rnncourse.kernels", (package / "__init__.py").read_text(), True),
            *[(f"rnncourse.kernels.{name}", (package / f"{name}.py").read_text(), False)
              for name in ("wire", "recorders", "callee")]]


def _processes_of(uid: int) -> int:
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


def _read_only_paths(python: str) -> list[str]:
    """What a Python kernel needs to see: the system, the interpreter's installation, the environment."""
    candidates = ["/usr", sys.prefix, sys.base_prefix, str(Path(os.path.realpath(python)).parents[1])]
    candidates += [p for p in ("/etc/ld.so.cache", "/etc/localtime", "/etc/passwd", "/etc/group",
                               "/etc/nsswitch.conf", "/etc/fonts") if os.path.exists(p)]
    paths: list[str] = []
    for path in sorted({os.path.realpath(p) for p in candidates} | {os.path.abspath(p) for p in candidates}):
        if not any(path == kept or path.startswith(kept + "/") for kept in paths):
            paths.append(path)
    return paths


class SandboxCommand:
    """The bwrap command line for one kernel: binds, namespaces, environment.

    Every kernel runs in a user namespace of its own, as an unprivileged uid that the namespace maps to itself, with
    no capability (bounding set included), no way to make another user namespace, and the seccomp filter given to
    `seccomp`. Not grading as root, that is the one bwrap's user namespace. Grading as root, the bwrap that mounts
    runs as root (it binds paths only root can reach, e.g. a Python under /root); inside it `setpriv` becomes the
    kernel's leased uid and a second bwrap, as that uid, makes the user namespace (see `command`). bwrap as root
    with --unshare-user would map the kernel's uid to root outside, sharing root's files, keyrings and processes."""

    def __init__(self, uid: int | None, tmp_bytes: int, zygote: bool = False):
        self.uid = None if zygote else uid
        self.pass_fds: list[int] = []  # descriptors the command reads (the seccomp program): Popen's pass_fds
        self.args = [bwrap(), "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
                     "--unshare-cgroup-try", "--hostname", "grader", "--die-with-parent", "--new-session",
                     "--clearenv"]
        # The kernel's own user namespace, in the bwrap that runs as the kernel's uid.
        self.user_namespace = ["--unshare-user", "--disable-userns", "--cap-drop", "ALL"]
        if zygote:  # root that forks kernels: each makes its own namespaces and mounts, then drops to its uid
            self.args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_SYS_ADMIN"]
        elif uid is None:  # not root: this bwrap is already the grader's unprivileged uid
            self.args += self.user_namespace
            self.user_namespace = []
        else:  # root: mount as root, then (in `command`) become `uid`, whose own bwrap makes the user namespace
            self.args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
            self.user_namespace += ["--uid", str(uid), "--gid", str(uid)]
        self._dirs: set[str] = {"/"}
        # The private /tmp comes first: binds below it (the kernel's folders, a venv in /tmp) go on top.
        self.args += ["--proc", "/proc", "--dev", "/dev", "--size", str(tmp_bytes), "--tmpfs", "/tmp",
                      "--size", str(tmp_bytes), "--tmpfs", "/dev/shm"]
        for top in ("/bin", "/lib", "/lib32", "/lib64", "/libx32", "/sbin"):
            if os.path.islink(top):
                self.args += ["--symlink", os.readlink(top), top]
                self._dirs.add(top)
        self._dirs |= {"/tmp", "/dev/shm"}

    def parents(self, path: str) -> None:
        parts = Path(path).parts
        for i in range(2, len(parts)):
            parent = str(Path(*parts[:i]))
            if parent not in self._dirs:
                self.args += ["--perms", "0755", "--dir", parent]
                self._dirs.add(parent)

    def bind(self, option: str, path: str) -> None:
        self.parents(path)
        self.args += [option, path, path]
        self._dirs.add(path)

    def bind_python(self, python: str) -> None:
        for path in _read_only_paths(python):
            self.bind("--ro-bind", path)

    def bind_gpus(self) -> None:
        if os.path.exists("/dev/nvidiactl"):
            for device in sorted(Path("/dev").glob("nvidia*")):
                self.args += ["--dev-bind", str(device), str(device)]
            self.bind("--ro-bind", "/sys")

    def setenv(self, env: dict) -> None:
        for name, value in env.items():
            self.args += ["--setenv", name, value]

    def seccomp(self, program_fd: int) -> None:
        """Load the BPF program that `program_fd` reads (seccomp_policy.program_file()) in the kernel's process."""
        (self.user_namespace if self.uid is not None else self.args).extend(["--seccomp", str(program_fd)])
        self.pass_fds.append(program_fd)

    def command(self, workdir: str, *argv: str) -> list[str]:
        """The whole command line: start in `workdir`; as root, become the sandbox's uid and make its user
        namespace (a bwrap that sees the same tree: --dev-bind / /) before running argv."""
        user = []
        if self.uid is not None:
            user = ["setpriv", f"--reuid={self.uid}", f"--regid={self.uid}", "--clear-groups", "--inh-caps=-all",
                    "--bounding-set=-all", "--no-new-privs", "--", self.args[0], *self.user_namespace,
                    "--dev-bind", "/", "/", "--die-with-parent", "--chdir", workdir, "--"]
        return [*self.args, "--chdir", workdir, "--", *user, *argv]


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
            if any(start <= uid < end for start, end in reserved) or _has_account(uid) or _processes_of(uid):
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


class SandboxedKernelClient(AsyncKernelClient):
    """jupyter_client's client, but its start-up check ends 0.02 s after the kernel's last start-up message instead
    of 0.2 s (a fixed cost per notebook otherwise: nbclient ignores messages that answer no request of its own), and
    it connects as soon as the kernel listens instead of up to 0.1 s later."""

    def _create_connected_socket(self, channel: str, identity: bytes | None = None):
        # The client connects before the kernel has bound its Unix sockets, and zmq retries a refused connect only
        # every 100 ms by default: retry every 5 ms. (A context option applies to the sockets made after it.)
        self.context.setsockopt(zmq.RECONNECT_IVL, 5)
        return super()._create_connected_socket(channel, identity)

    async def _async_wait_for_ready(self, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (timeout if timeout is not None else float("inf"))
        while True:
            self.kernel_info()
            try:
                msg = await self.shell_channel.get_msg(timeout=1)
            except Empty:
                pass
            else:
                if msg["msg_type"] == "kernel_info_reply":
                    try:  # the kernel's status messages show that IOPub is connected too
                        await self.iopub_channel.get_msg(timeout=0.2)
                    except Empty:
                        pass
                    else:
                        self._handle_kernel_info_reply(msg)
                        break
            if not await self._async_is_alive():
                raise RuntimeError("Kernel died before replying to kernel_info")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kernel didn't respond in {timeout} s")
        while True:
            try:
                await self.iopub_channel.get_msg(timeout=0.02)
            except Empty:
                break

    wait_for_ready = _async_wait_for_ready  # AsyncKernelClient binds its public name to the base's coroutine


class SandboxedKernelManager(AsyncKernelManager):
    """A kernel manager whose kernel starts under bwrap and talks over Unix sockets (there is no network inside).

    Its settings come from the SandboxedExecute that creates it (`executor`)."""

    client_class = DottedObjectName("rnncourse.sandbox.SandboxedKernelClient")
    client_factory = Type(klass="rnncourse.sandbox.SandboxedKernelClient")
    executor: SandboxedExecute | None = None
    run_dir: Path | None = None
    uid_lease: UidLease | None = None
    seccomp_program = None  # the filter's file, open from a one-by-one kernel's command until it has started

    async def _async_pre_start_kernel(self, **kw):
        executor = self.executor
        assert executor is not None, "SandboxedKernelManager is created by SandboxedExecute"
        server = None
        if executor.fork_kernels and os.geteuid() == 0:
            try:
                server = _fork_server()
            except forkserver.ForkServerError as problem:  # each kernel then starts its own interpreter
                self.log.warning("Sandbox: kernels start one by one (%s)", problem)
                executor.fork_kernels = False
        runs = server.runs if server is not None else executor.run_root or None
        self.run_dir = Path(tempfile.mkdtemp(prefix="rnncourse-sandbox-", dir=runs))
        ipc, work, home = self.run_dir / "ipc", self.run_dir / "work", self.run_dir / "home"
        ipc.mkdir()
        home.mkdir()
        _copy_working_copy(Path(kw.get("cwd") or "."), work)
        self.transport = "ipc"
        self.ip = str(ipc / "kernel")
        self.connection_file = str(self.run_dir / "kernel.json")
        # Interrupts go as a message: a SIGINT to the process group would end bwrap, not the cell.
        self.kernel_spec.interrupt_mode = "message"
        cmd, kw = await super()._async_pre_start_kernel(**kw)
        if "ipykernel_launcher" not in cmd:
            raise SandboxUnavailable(f"The sandbox starts IPython kernels only; the kernel command was {cmd}.")
        python, kernel_args = cmd[0], cmd[cmd.index("ipykernel_launcher") + 1:]

        uid = None
        if os.geteuid() == 0:
            self.uid_lease = UidLease(executor.sandbox_uid_base, executor.sandbox_uid_count)
            uid = self.uid_lease.uid
        os.chmod(self.connection_file, 0o644)
        if uid is not None:
            for path in (ipc, work, home, *work.rglob("*")):
                os.chown(path, uid, uid)
        if server is not None:  # the run folder is the only way in to the kernel's: its uid's alone
            os.chown(self.run_dir, uid, uid)
        sandbox = SandboxCommand(uid, executor.tmp_limit_mb << 20)
        sandbox.bind_python(python)
        sandbox.bind_gpus()
        sandbox.bind("--bind", str(ipc))
        sandbox.bind("--bind", str(work))
        sandbox.bind("--bind", str(home))
        sandbox.bind("--ro-bind", self.connection_file)
        outside_env = kw.get("env") or {}
        env = {"PATH": f"{Path(python).parent}:/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "TMPDIR": "/tmp",
               "LANG": "C.UTF-8", "PYTHONNOUSERSITE": "1", "MPLCONFIGDIR": str(home / ".matplotlib")}
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NBGRADER_EXECUTION",
                     "NBGRADER_VALIDATING", "CUDA_VISIBLE_DEVICES", "LD_LIBRARY_PATH", "PYTHONHASHSEED", "TZ",
                     "PYTHONUNBUFFERED"):
            if name in outside_env:
                env[name] = outside_env[name]
        sandbox.setenv(env)
        _seed_matplotlib_cache(home / ".matplotlib", uid)

        limits = executor.rlimits(uid if uid is not None else os.geteuid())
        payload = tempfile.TemporaryFile()  # unlinked: only the kernel's stdin ever points at it
        kw["stdin"] = payload
        kw["preexec_fn"] = _ignore_sigint
        if server is not None:
            payload.write(json.dumps({"limits": limits, "uid": uid, "env": env,
                                      "cwd": str(work), "argv": kernel_args,
                                      "tmp_bytes": executor.tmp_limit_mb << 20, **server.mounts()}).encode())
            payload.seek(0)
            return server.bridge_command(), kw
        payload.write(json.dumps({"limits": limits, "modules": kernel_modules()}).encode())
        payload.seek(0)
        self.seccomp_program = seccomp_policy.program_file()
        sandbox.seccomp(self.seccomp_program.fileno())
        kw["pass_fds"] = sandbox.pass_fds
        return sandbox.command(str(work), python, "-c", LAUNCHER, *kernel_args), kw

    async def _async_launch_kernel(self, kernel_cmd, **kw):
        payload = kw.get("stdin")
        try:
            return await super()._async_launch_kernel(kernel_cmd, **kw)
        finally:
            if payload is not None:
                payload.close()
            if self.seccomp_program is not None:
                self.seccomp_program.close()
                self.seccomp_program = None

    async def _async_wait(self, pollinterval: float = 0.1) -> None:
        # Polled only while a kernel is being stopped; it ends within milliseconds of the kill.
        await super()._async_wait(pollinterval=min(pollinterval, 0.005))

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart=restart)
        if self.run_dir is not None:
            shutil.rmtree(self.run_dir, ignore_errors=True)
            self.run_dir = None
        if self.uid_lease is not None:
            self.uid_lease.release()
            self.uid_lease = None

    # AsyncKernelManager binds its public name to the base's coroutine, and nbclient calls only that one for a kernel
    # that died (no shutdown): without this, a dead kernel's folder and uid lease would stay behind.
    cleanup_resources = _async_cleanup_resources

    def exit_description(self) -> str:
        """Why the kernel process ended, in words, from bwrap's exit status (the kernel's own)."""
        process = getattr(self.provisioner, "process", None)
        code = process.poll() if process is not None else None
        if code is None:
            return "it stopped answering"
        signum = -code if code < 0 else code - 128 if code > 128 else None
        if signum == signal.SIGXCPU:
            return "it used up its CPU-time limit"
        if signum == signal.SIGKILL:
            return "it was killed (SIGKILL), e.g. by the memory or CPU limit"
        if signum:
            try:
                name = signal.Signals(signum).name
            except ValueError:
                name = f"signal {signum}"
            return f"it crashed ({name})"
        return f"the notebook's code ended the kernel process (exit code {code}, e.g. os._exit or sys.exit)"


def _fork_server() -> forkserver.ForkServer:
    """This process's zygote: a root sandbox (no network, read-only system) with torch & co. imported."""
    python = sys.executable

    def command_for(server: forkserver.ForkServer) -> list[str]:
        sandbox = SandboxCommand(None, 16 << 20, zygote=True)
        sandbox.bind_python(python)
        server.keep = [p for p in _read_only_paths(python) if p.startswith(("/tmp/", "/dev/shm/"))]
        sandbox.bind_gpus()
        sandbox.bind("--bind", str(server.root))
        # matplotlib reads its config and font list once, in the zygote: a readable seeded folder for all kernels
        _seed_matplotlib_cache(server.root / "matplotlib", None)
        os.chmod(server.root / "matplotlib", 0o755)
        sandbox.setenv({"MPLCONFIGDIR": str(server.root / "matplotlib")})
        return sandbox.args + ["--chdir", str(server.root), "--"]

    env = {"PATH": f"{Path(python).parent}:/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "TMPDIR": "/tmp",
           "PYTHONNOUSERSITE": "1", "MPLBACKEND": "module://matplotlib_inline.backend_inline"}
    # LD_LIBRARY_PATH: on some GPU machines the driver's libcuda is found only through it.
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "CUDA_VISIBLE_DEVICES",
                 "LD_LIBRARY_PATH"):
        if name in os.environ:
            env[name] = os.environ[name]
    server = forkserver.fork_server(python, command_for, python, {"env": env, "modules": kernel_modules(),
                                                                  "preload": forkserver.PRELOAD})
    return server


def prestart_fork_server(config) -> bool:
    """Start this process's zygote now, before the first kernel is needed (a grading worker calls this when it
    starts), if `config` grades with forked kernels. False where kernels would not be forked; a zygote that cannot
    start is left to the first kernel, which logs why and falls back to starting kernels one by one."""
    preprocessors = config.Autograde.get("autograde_preprocessors", [])
    wanted = any(p in (SandboxedExecute, "rnncourse.sandbox.SandboxedExecute") for p in preprocessors)
    if not (wanted and os.geteuid() == 0 and SandboxedExecute(config=config).fork_kernels):
        return False
    try:
        _fork_server()
    except forkserver.ForkServerError:
        return False
    return True


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _copy_working_copy(source: Path, work: Path) -> None:
    """The submission's folder without notebooks: its data files, not the autograded notebooks (which hold the
    restored hidden tests) and not the timestamp."""
    ignore = shutil.ignore_patterns("*.ipynb", "timestamp.txt", ".ipynb_checkpoints")
    if source.is_dir():
        shutil.copytree(source, work, ignore=ignore, symlinks=False, ignore_dangling_symlinks=True)
    else:
        work.mkdir()


def _seed_matplotlib_cache(config_dir: Path, uid: int | None) -> None:
    """Copy the grader's matplotlib font list into the kernel's private config dir (saves a rebuild per kernel)."""
    try:
        import matplotlib
        cached = sorted(Path(matplotlib.get_cachedir()).glob("fontlist-*.json"))
    except Exception:  # matplotlib missing or its cache unreadable: the kernel builds its own
        cached = []
    config_dir.mkdir(exist_ok=True)
    for path in cached:
        shutil.copy(path, config_dir / path.name)
    if uid is not None:
        for path in (config_dir, *config_dir.iterdir()):
            os.chown(path, uid, uid)


def check_sandbox_works(python: str = sys.executable) -> None:
    """Run a trivial command in a sandbox like the kernels' and see its isolation hold: no capability, the seccomp
    filter on (raises SandboxUnavailable with the reason)."""
    bwrap_cmd = bwrap()
    uid = 65534 if os.geteuid() == 0 else None  # nobody, for this one-line check
    sandbox = SandboxCommand(uid, 16 << 20)
    sandbox.bind_python(python)
    probe = ("status = dict(line.split(':', 1) for line in open('/proc/self/status') if ':' in line)\n"
             "print('sandbox ok', int(status['CapBnd'], 16), int(status['CapEff'], 16), status['Seccomp'].strip())")
    try:
        program = seccomp_policy.program_file()
    except seccomp_policy.FilterUnavailable as problem:
        raise SandboxUnavailable(str(problem)) from None
    with program:
        sandbox.seccomp(program.fileno())
        proc = subprocess.run(sandbox.command("/tmp", python, "-c", probe), capture_output=True, text=True,
                              timeout=60, pass_fds=sandbox.pass_fds)
    if proc.returncode != 0 or "sandbox ok" not in proc.stdout:
        raise SandboxUnavailable(f"{bwrap_cmd} could not start a sandbox here: {proc.stderr.strip()[:500]}. "
                                 f"{SANDBOX_HINT}")
    if proc.stdout.split() != ["sandbox", "ok", "0", "0", "2"]:
        raise SandboxUnavailable(f"a sandbox here keeps capabilities or runs without its seccomp filter (bounding "
                                 f"set, effective set, seccomp mode: {proc.stdout.split()[2:]}). {SANDBOX_HINT}")


class RemoveEmptyGradeMetadata(NbGraderPreprocessor):
    """Sanitize step after nbgrader's DeduplicateIds, which empties the nbgrader metadata of a duplicated cell but
    leaves the empty dict, on which OverwriteCells.add_missing_cells then fails and nbgrader drops the student's
    whole assignment. A duplicated graded cell thus becomes an ordinary cell, and the last copy is graded."""

    def preprocess_cell(self, cell, resources, index):
        if cell.metadata.get("nbgrader") == {}:
            del cell.metadata["nbgrader"]
        return cell, resources


class SandboxedExecute(Execute):
    """nbgrader's Execute step with every kernel in a sandbox, and a notebook that breaks its kernel graded alone."""

    sandbox = Bool(True, help="Run kernels in a bubblewrap sandbox. Turning this off runs student code with the "
                              "grader's own file and network access.").tag(config=True)
    memory_limit_mb = Integer(4096, help="Memory a kernel may allocate (RLIMIT_DATA), in MiB; an allocation past it "
                                         "fails with MemoryError in the cell that made it.").tag(config=True)
    cpu_time_limit_s = Integer(900, help="CPU seconds one notebook's kernel may use; past it the kernel is "
                                         "stopped and the rest of the notebook is not run.").tag(config=True)
    process_limit = Integer(256, help="Processes and threads a kernel may run (RLIMIT_NPROC; when not grading as "
                                      "root, beyond those the grader's user already runs).").tag(config=True)
    file_size_limit_mb = Integer(512, help="Largest file the kernel may write, in MiB.").tag(config=True)
    tmp_limit_mb = Integer(512, help="Size of the kernel's private /tmp and /dev/shm, in MiB.").tag(config=True)
    notebook_time_limit_s = Integer(1200, help="Wall-clock seconds for a whole notebook; cells not started by "
                                               "then are marked not run.").tag(config=True)
    max_output_bytes = Integer(2_000_000, help="Output kept per cell, in bytes; a flood beyond it is dropped "
                                               "while it arrives.").tag(config=True)
    sandbox_uid_base = Integer(1 << 20, help="When grading as root, each kernel runs as a uid drawn at random from "
                                            "sandbox_uid_count uids from this one, leased to it alone (no account "
                                            "needed).").tag(config=True)
    sandbox_uid_count = Integer((1 << 31) - (1 << 20), help="How many uids, from sandbox_uid_base, kernels draw "
                                                            "theirs from; the more, the less likely any uid is ever "
                                                            "used twice.").tag(config=True)
    max_timeouts_in_a_row = Integer(2, help="Consecutive cells that time out before the kernel is taken as broken "
                                            "and stopped (the rest of its notebook is not run).").tag(config=True)
    fork_kernels = Bool(True, help="When grading as root, fork each kernel from a sandboxed parent that has imported "
                                   "torch and the grading modules once (saves ~3 s per notebook); each kernel still "
                                   "gets its own namespaces, uid and limits.").tag(config=True)
    shutdown_kernel = Enum(["graceful", "immediate"], default_value="immediate",
                           help="After the last cell, kill the kernel (its outputs are all in): a graceful shutdown "
                                "only waits for it to exit.").tag(config=True)
    run_root = Unicode("", help="Where the kernels' private folders are made (default: the system's temp "
                                "dir).").tag(config=True)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.sandbox:
            self.kernel_manager_class = SandboxedKernelManager

    def rlimits(self, uid: int) -> dict:
        return {"RLIMIT_DATA": [self.memory_limit_mb << 20] * 2,
                "RLIMIT_CPU": [self.cpu_time_limit_s, self.cpu_time_limit_s + 5],
                "RLIMIT_NPROC": [_processes_of(uid) + self.process_limit] * 2,
                "RLIMIT_FSIZE": [self.file_size_limit_mb << 20] * 2,
                "RLIMIT_CORE": [0, 0]}

    def create_kernel_manager(self):
        km = super().create_kernel_manager()
        if isinstance(km, SandboxedKernelManager):
            km.executor = self
        return km

    def preprocess(self, nb, resources=None, km=None):
        self._stopped: str | None = None
        self._started = time.monotonic()
        self._output_bytes: dict[int, int] = {}
        self._dropped_bytes: dict[int, int] = {}
        self._timeouts_in_a_row = 0
        self._own_socket_dir = None
        try:
            return super().preprocess(nb, resources, km)
        finally:
            if self._own_socket_dir is not None:
                self._own_socket_dir.cleanup()

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code" or not cell.source.strip():
            return super().preprocess_cell(cell, resources, index)
        is_test = is_grade(cell) and not is_solution(cell)
        checks = verdict.named_checks(cell.source) if is_test else []
        source = cell.source
        if checks:
            cell.source = verdict.visible_part(source)  # the hidden block never reaches the kernel
        try:
            cell, resources = self._run_in_kernel(cell, resources, index)
        finally:
            cell.source = source
        if is_test:
            self._decide(cell, checks, index)
        return cell, resources

    def _run_in_kernel(self, cell, resources, index):
        if not cell.source.strip():
            return super().preprocess_cell(cell, resources, index)
        if self._stopped is None and time.monotonic() - self._started > self.notebook_time_limit_s:
            self._stop(f"the notebook used its {self.notebook_time_limit_s} s time limit before this cell")
        if self._stopped is not None:
            cell.outputs = [_error(NOT_RUN, f"This cell was not run: {self._stopped}.")]
            return cell, resources
        try:
            cell, resources = super().preprocess_cell(cell, resources, index)
        except DeadKernelError:
            why = self.km.exit_description() if isinstance(self.km, SandboxedKernelManager) else "it died"
            self._stop(f"the kernel stopped while running cell {index + 1} ({why})")
            cell.outputs.append(_error(KERNEL_DIED, f"The kernel stopped while running this cell: {why}. The "
                                                    f"rest of this notebook was not run."))
        except CellTimeoutError:  # interrupted after its time-out but never finished: it ignores interrupts
            self._kill_kernel()
            self._stop(f"cell {index + 1} ran past its {self.timeout} s limit and ignored the interrupt, so its "
                       f"kernel was stopped")
            cell.outputs.append(_error("CellTimeoutError", f"This cell ran past its {self.timeout} s time limit "
                                                           f"and did not stop when interrupted; its kernel was "
                                                           f"stopped and the rest of this notebook was not run."))
        except Exception as exc:  # noqa: BLE001 -- the kernel is the student's: it may send anything, or garbage
            self._kill_kernel()
            self._stop(f"the kernel sent something the grader could not read in cell {index + 1} "
                       f"({type(exc).__name__}), so it was stopped")
            cell.outputs.append(_error(KERNEL_DIED, f"The grader could not read the kernel's answer to this cell "
                                                    f"({type(exc).__name__}: {str(exc)[:200]}); the kernel was "
                                                    f"stopped and the rest of this notebook was not run."))
        else:
            timed_out = any(o.get("ename") == "CellTimeoutError" for o in cell.outputs)
            self._timeouts_in_a_row = self._timeouts_in_a_row + 1 if timed_out else 0
            if self._timeouts_in_a_row >= self.max_timeouts_in_a_row:
                self._kill_kernel()  # it answers nothing any more: every later cell would time out as well
                self._stop(f"{self._timeouts_in_a_row} cells in a row, up to cell {index + 1}, timed out, so the "
                           f"kernel was stopped")
        self._note_dropped_output(cell, index)
        return cell, resources

    def _decide(self, cell, checks: list, index: int) -> None:
        """The test cell's score is the grader's: nothing the kernel printed or displayed can raise it."""
        for output in cell.outputs:  # nbgrader takes a test cell's first execute_result as its score
            if output.get("output_type") == "execute_result":
                output["output_type"] = "display_data"
                output.pop("execution_count", None)
        if not checks or self._stopped is not None or any(o.get("output_type") == "error" for o in cell.outputs):
            return  # not run, or its visible tests failed: it scores 0 already
        started = time.monotonic()
        outcome = self._judge(checks)
        self.log.debug("Sandbox: hidden checks of cell %d took %.2f s", index + 1, time.monotonic() - started)
        if not outcome.passed:
            cell.outputs.append(_error(HIDDEN_TEST_FAILED, outcome.message))
        if outcome.kernel_lost:
            self._kill_kernel()
            self._stop(f"the kernel stopped answering while the hidden tests of cell {index + 1} ran, so it was "
                       f"stopped")

    def _judge(self, checks: list):
        """Run the hidden checks here, against the student's code in the kernel."""
        from .grading.student import Student, StudentError
        from .kernels.channel import KernelChannel

        verdict.prepare()

        channel = KernelChannel(self.kc, interrupt=self.km.interrupt_kernel, socket_dir=self._socket_dir())
        outcome = verdict.judge(checks, Student(channel))
        if not outcome.kernel_lost:
            try:
                channel.close()
            except StudentError as error:
                self.log.warning("Sandbox: the kernel did not end the grader's session (%s)", error)
                outcome = verdict.Verdict(outcome.passed, outcome.message, kernel_lost=True)
        return outcome

    def output(self, outs, msg, display_id, cell_index):
        size = len(json.dumps(msg.get("content", {}), default=str))
        used = self._output_bytes.get(cell_index, 0) + size
        self._output_bytes[cell_index] = used
        if used > self.max_output_bytes and msg.get("msg_type") != "error":
            self._dropped_bytes[cell_index] = self._dropped_bytes.get(cell_index, 0) + size
            return None
        return super().output(outs, msg, display_id, cell_index)

    def _note_dropped_output(self, cell, index: int) -> None:
        dropped = self._dropped_bytes.pop(index, 0)
        if dropped:
            cell.outputs.append(NotebookNode(output_type="stream", name="stdout", text=(
                f"\n[grader: {dropped} bytes of output beyond this cell's {self.max_output_bytes} byte limit were "
                f"dropped]\n")))

    def _socket_dir(self) -> Path:
        """A folder the kernel reaches at the same path: its sandbox's ipc folder, else one made for this run."""
        run_dir = getattr(self.km, "run_dir", None)
        if run_dir is not None:
            return Path(run_dir) / "ipc"
        if getattr(self, "_own_socket_dir", None) is None:
            self._own_socket_dir = tempfile.TemporaryDirectory(prefix="rnncourse-calls-")
        return Path(self._own_socket_dir.name)

    def _stop(self, reason: str) -> None:
        if self._stopped is None:
            self._stopped = reason
            self.log.warning("Sandbox: %s", reason)

    def _kill_kernel(self) -> None:
        process = getattr(getattr(self.km, "provisioner", None), "process", None)
        if process is not None and process.poll() is None:
            process.kill()  # bwrap: its PID namespace, and every process in it, goes with it
            process.wait()


def _error(name: str, message: str) -> NotebookNode:
    return NotebookNode(output_type="error", ename=name, evalue=message,
                        traceback=[f"\x1b[0;31m{name}\x1b[0m: {message}"])
