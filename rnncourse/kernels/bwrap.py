"""The bubblewrap command line that starts a sandboxed Python: binds, namespaces, user, capabilities, filter.

Every kernel (and the zygote kernels fork from) runs under ``bwrap`` (Debian's ``bubblewrap``): a fresh root holding
only the system, the Python installation and the course's virtual environment, read-only, a private size-limited
/tmp and /dev/shm, its own PID, network, IPC and UTS namespaces, and no environment but what it is given.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from . import seccomp

BOOT = Path(__file__).with_name("boot.py")  # the program a sandboxed Python runs first

SANDBOX_HINT = (
    "Install bubblewrap (Debian/Ubuntu: `sudo apt-get install bubblewrap`; `make venv` does it when run as root) on a "
    "kernel with unprivileged user namespaces (`sysctl kernel.unprivileged_userns_clone=1` where that knob exists), "
    "or, knowing that student code then runs with your file access, set c.SandboxedExecute.sandbox = False.")


class SandboxUnavailable(RuntimeError):
    """bwrap is missing or cannot create namespaces here."""


def bwrap() -> str:
    path = shutil.which("bwrap")
    if path is None:
        raise SandboxUnavailable(f"The grading sandbox needs bubblewrap (`bwrap`), which is not installed. "
                                 f"{SANDBOX_HINT}")
    return path

def read_only_paths(python: str) -> list[str]:
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
    `seccomp`. Not grading as root, that is the one bwrap's user namespace (or, for a zygote, each kernel's own,
    nested in the zygote's). Grading as root, the bwrap that mounts
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
        if zygote and os.geteuid() == 0:  # forks kernels: each makes its namespaces and mounts, then takes its uid
            self.args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_SYS_ADMIN"]
        elif zygote:  # an ordinary user's: CAP_SYS_ADMIN in bwrap's user namespace only, to make each kernel's
            self.args += ["--unshare-user", "--cap-add", "CAP_SYS_ADMIN"]
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
        for path in read_only_paths(python):
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
        """Load the BPF program that `program_fd` reads (seccomp.program_file()) in the kernel's process."""
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


def boot_argv(python: str, mode: str, *args: str) -> list[str]:
    """The command that starts a sandboxed Python on rnncourse/kernels/boot.py (see there for the modes)."""
    return [python, "-c", BOOT.read_text(), mode, *args]


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
        program = seccomp.program_file()
    except seccomp.FilterUnavailable as problem:
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
