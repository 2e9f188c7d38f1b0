"""The kernel manager for autograde kernels: each starts in its own sandbox, forked from the zygote (or, where that
cannot start, started one by one), and talks over Unix sockets in a private folder (there is no network inside). It
is given a frozen ``KernelSettings``; it never reads the executor."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from queue import Empty

import zmq
from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.manager import AsyncKernelManager
from traitlets import DottedObjectName, Type

from . import forkserver, removal, seccomp
from .bwrap import SandboxCommand, SandboxUnavailable, boot_argv, read_only_paths
from .leases import UidLease
from .settings import KernelSettings

_FORKING_FAILED: list[str] = []  # why this process's zygote could not start: kernels then start one by one


def kernel_modules() -> list[tuple[str, str, bool]]:
    """(module name, source, is package) of what a kernel holds of the course: the call protocol's kernel side
    (``rnncourse.kernels.callee``, ``.wire``, ``.recorders``), in an order that imports cleanly. No grading code."""
    package = Path(__file__).resolve().parent
    return [("rnncourse", "", True),
            ("rnncourse.kernels", (package / "__init__.py").read_text(), True),
            *[(f"rnncourse.kernels.{name}", (package / f"{name}.py").read_text(), False)
              for name in ("wire", "recorders", "callee")]]


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

    The SandboxedExecute that creates it gives it its `settings`."""

    client_class = DottedObjectName("rnncourse.kernels.manager.SandboxedKernelClient")
    client_factory = Type(klass="rnncourse.kernels.manager.SandboxedKernelClient")
    settings: KernelSettings | None = None
    run_dir: Path | None = None
    uid_lease: UidLease | None = None
    seccomp_program = None  # the filter's file, open from a one-by-one kernel's command until it has started
    kernel_output = None  # the kernel process's stdout and stderr

    async def _async_pre_start_kernel(self, **kw):
        settings = self.settings
        assert settings is not None, "SandboxedKernelManager is created by SandboxedExecute"
        server = None
        if settings.fork_kernels and not _FORKING_FAILED:
            try:
                server = _fork_server()
            except forkserver.ForkServerError as problem:  # each kernel then starts its own interpreter
                self.log.warning("Sandbox: kernels start one by one (%s)", problem)
                _FORKING_FAILED.append(str(problem))
        runs = server.runs if server is not None else settings.run_root or None
        # Short inside a fork server's folder: Unix socket paths below it are limited to 107 bytes. Elsewhere the
        # name carries our pid, so that the folder of a killed grader is swept (rnncourse.staging.sweep).
        prefix = "k" if server is not None else f"rnncourse-sandbox-{os.getpid()}-"
        self.run_dir = Path(tempfile.mkdtemp(prefix=prefix, dir=runs))
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
            self.uid_lease = UidLease(settings.uid_base, settings.uid_count)
            uid = self.uid_lease.uid
        os.chmod(self.connection_file, 0o644)
        if uid is not None:
            for path in (ipc, work, home, *work.rglob("*")):
                os.chown(path, uid, uid)
        if server is not None:  # the kernel passes through its run folder but cannot rename what is in it (an `ipc`
            os.chmod(self.run_dir, 0o711)  # swapped for a symlink would move the grader's socket); as root it is root's
        sandbox = SandboxCommand(uid, settings.tmp_bytes)
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

        limits = settings.rlimits(uid if uid is not None else os.geteuid())
        payload = tempfile.TemporaryFile()  # unlinked: only the kernel's stdin ever points at it
        kw["stdin"] = payload
        # The kernel's stdout and stderr are a file of its own (unlinked; its size limited by RLIMIT_FSIZE), never
        # the grader's: with those it could write into, read back or truncate the grader's log.
        self.kernel_output = tempfile.TemporaryFile()
        kw["stdout"] = kw["stderr"] = self.kernel_output
        kw["preexec_fn"] = _ignore_sigint
        if server is not None:
            payload.write(json.dumps({"limits": limits, "uid": uid, "env": env, "run": str(self.run_dir),
                                      "cwd": str(work), "argv": kernel_args,
                                      "tmp_bytes": settings.tmp_bytes, **server.mounts()}).encode())
            payload.seek(0)
            return server.bridge_command(), kw
        payload.write(json.dumps({"limits": limits, "modules": kernel_modules()}).encode())
        payload.seek(0)
        self.seccomp_program = seccomp.program_file()
        sandbox.seccomp(self.seccomp_program.fileno())
        kw["pass_fds"] = sandbox.pass_fds
        return sandbox.command(str(work), *boot_argv(python, "kernel", *kernel_args)), kw

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
        if self.kernel_output is not None:
            self._log_kernel_crash()
            self.kernel_output.close()
            self.kernel_output = None
        if self.run_dir is not None:
            removal.remove_tree(self.run_dir)
            self.run_dir = None
        if self.uid_lease is not None:
            self.uid_lease.release()
            self.uid_lease = None

    # AsyncKernelManager binds its public name to the base's coroutine, and nbclient calls only that one for a kernel
    # that died (no shutdown): without this, a dead kernel's folder and uid lease would stay behind.
    cleanup_resources = _async_cleanup_resources

    def _log_kernel_crash(self) -> None:
        """A traceback at the end of the kernel process's own output (a kernel that could not start, say) goes to the
        grader's log, each line marked as the kernel's."""
        self.kernel_output.seek(0, os.SEEK_END)
        self.kernel_output.seek(max(0, self.kernel_output.tell() - 3000))
        tail = self.kernel_output.read().decode(errors="replace")
        if "Traceback" in tail:
            lines = tail[tail.index("Traceback"):].splitlines()
            self.log.warning("Sandbox: the kernel process's own output ended with:\n%s",
                             "\n".join(f"  kernel | {line}" for line in lines))

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
    """This process's zygote: a sandbox (no network, read-only system; as an ordinary user, in a user namespace)
    with torch & co. imported."""
    python = sys.executable

    def command_for(server: forkserver.ForkServer) -> list[str]:
        sandbox = SandboxCommand(None, 16 << 20, zygote=True)
        sandbox.bind_python(python)
        server.keep = [p for p in read_only_paths(python) if p.startswith(("/tmp/", "/dev/shm/"))]
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
    from .executor import SandboxedExecute

    preprocessors = config.Autograde.get("autograde_preprocessors", [])
    wanted = any(p in (SandboxedExecute, "rnncourse.kernels.executor.SandboxedExecute") for p in preprocessors)
    if not (wanted and SandboxedExecute(config=config).fork_kernels):
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
