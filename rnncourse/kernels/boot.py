"""The first program a sandboxed Python runs, before any student code: ``python -c <this file's text> MODE ...``,
with a JSON payload on its stdin (which then points at /dev/null). It is handed over as text because the sandbox
holds no course file; it imports only the standard library until the payload's modules are in.

* ``kernel IPYKERNEL_ARGS`` (a kernel that starts on its own, one ``bwrap`` each): take the payload's rlimits, import
  the call protocol's kernel side from the sources in the payload, start ipykernel.
* ``zygote SOCKET`` (``rnncourse.kernels.forkserver``): import the libraries and the call protocol once, then for
  every request on SOCKET fork a kernel that isolates itself before any student code runs: new mount, PID, network,
  IPC and UTS namespaces (private /tmp, /dev/shm and /proc, the fork server's folder hidden but for its own run
  folder), the rlimits, its uid and a user namespace of its own as that uid, no capability left (bounding set
  included), no_new_privs, and last the seccomp filter compiled by ``rnncourse.kernels.seccomp``. Grading as root it
  runs as root with CAP_SETUID, CAP_SETGID and CAP_SYS_ADMIN only, and each kernel takes its leased uid; grading as
  an ordinary user (the hub's grading service) it runs in a user namespace of bwrap's with CAP_SYS_ADMIN there only,
  and each kernel keeps that user's uid. Either way in a sandbox of its own (read-only system, no network).
"""

import ctypes
import errno
import importlib
import importlib.abc
import importlib.util
import json
import os
import resource
import select
import signal
import socket
import stat
import sys
import traceback

_SECCOMP = b""  # the zygote's payload sets it: every kernel it forks loads this BPF program


class _FromMemory(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports modules from (name, source, is package) triples: no file of them exists in the sandbox."""

    def __init__(self, modules):
        self.modules = {name: (source, package) for name, source, package in modules}

    def find_spec(self, name, path=None, target=None):
        if name not in self.modules:
            return None
        return importlib.util.spec_from_loader(name, self, origin="<course>", is_package=self.modules[name][1])

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        source, _ = self.modules.pop(module.__name__)
        exec(compile(source, "<" + module.__name__ + ">", "exec"), module.__dict__)


def import_from_memory(modules):
    finder = _FromMemory(modules)
    sys.meta_path.insert(0, finder)
    for name, _, _ in modules:
        importlib.import_module(name)
    sys.meta_path.remove(finder)
    if sys.path and sys.path[0] == "":
        del sys.path[0]


def read_payload():
    payload = json.loads(sys.stdin.buffer.read().decode())
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    return payload


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
    _read_only_system(req)
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
    _hide_fork_server(req)
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None)
    # This process stays PID 1 of the namespace, as bwrap's init does: the kernel must not be PID 1, which ignores
    # signals it has no handler for (a notebook's os.kill(os.getpid(), 9) would do nothing).
    kernel = os.fork()
    if kernel == 0:
        _run_kernel(req)
        os._exit(0)
    for fd in (0, 1, 2):
        os.close(fd)
    if os.getuid() == 0:
        os.setgroups([])
        os.setresgid(65534, 65534, 65534)  # nobody: not the kernel's uid (its process budget), no capabilities
        os.setresuid(65534, 65534, 65534)
    else:  # an ordinary user's zygote: only its own uid is mapped; keep it, without a capability or a core (its
        _drop_capabilities(bounding=False)  # bounding set is bwrap's, CAP_SYS_ADMIN only; no_new_privs below)
        _ok(_libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), "not dumpable")
    _ok(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    while True:  # reap whatever ends in the namespace until the kernel itself does; its end ends the namespace
        pid, status = os.wait()
        if pid == kernel:
            os._exit(128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status))

_KEPT_FLAGS = {"nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC, "noatime": 1024, "nodiratime": 2048,
               "relatime": 1 << 21}

def _read_only_system(req):
    """Every mount the kernel inherits from the zygote made read-only (its flags kept), but for device nodes, the
    pty filesystem and the fork server's folder (covered later): bwrap's root and /dev are tmpfs that the zygote's
    user owns, so an ordinary user's kernels, which all have that uid, could otherwise leave files there (say,
    /etc/ipython/ipython_kernel_config.py) that run in every kernel forked after them. The kernel's own /tmp,
    /dev/shm, /proc and run folder are mounted after this, writable."""
    with open("/proc/self/mountinfo") as table:
        mounts = [line.split(" - ")[0].split()[4:6] + [line.split(" - ")[1].split()[0]] for line in table]
    for point, options, fstype in mounts:
        point = point.encode().decode("unicode_escape")  # mountinfo writes a space as \040, etc.
        options = options.split(",")
        beneath = point == req["root"] or point.startswith(req["root"] + "/")
        if "ro" in options or beneath or fstype == "devpts" or _is_device(point):
            continue
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY | sum(flag for name, flag in _KEPT_FLAGS.items() if name in options)
        _mount(None, point, None, flags, None)

def _is_device(path):
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return False
    return stat.S_ISCHR(mode) or stat.S_ISBLK(mode)

def _hide_fork_server(req):
    """Cover the fork server's folder (its socket, its log, every kernel's run folder) with an empty read-only
    tmpfs that nobody may list, and bind back this kernel's own run folder alone. Grading as an ordinary user every
    kernel has the same uid, so permissions alone would not keep one kernel out of another's sockets."""
    run = req.get("run")
    own = os.open(run, os.O_PATH | os.O_DIRECTORY) if run else None
    _mount("tmpfs", req["root"], "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=64k,mode=0700")
    if run:
        os.makedirs(run)
        _mount("/proc/self/fd/%d" % own, run, None, MS_BIND | MS_REC, None)
        os.close(own)
        # Its folders (ipc, work, home) stay writable, the run folder itself not: nothing in it can be renamed or
        # swapped for a symlink (the grader binds its sockets in ipc/, by path).
        for entry in os.scandir(run):
            if entry.is_dir(follow_symlinks=False):
                _mount(entry.path, entry.path, None, MS_BIND | MS_REC, None)
        _mount(None, run, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, None)
        parent = os.path.dirname(run)
        while parent != req["root"]:  # passable, not listable
            os.chmod(parent, 0o111)
            parent = os.path.dirname(parent)
    os.chmod(req["root"], 0o111)
    _mount(None, req["root"], None, MS_REMOUNT | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY, "size=64k")

def _drop_capabilities(bounding=True):
    """No capability left: the bounding set emptied (that takes CAP_SETPCAP, which a user namespace's creator has),
    then effective, permitted and inheritable (ambient with them)."""
    if bounding:
        with open("/proc/sys/kernel/cap_last_cap") as last:
            for cap in range(int(last.read()) + 1):
                _ok(_libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), "drop capability %d from the bounding set" % cap)
    header, sets = (ctypes.c_uint32 * 2)(LINUX_CAPABILITY_VERSION_3, 0), (ctypes.c_uint32 * 6)()
    _ok(_libc.capset(header, sets), "capset: no capability")

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
    _drop_capabilities()

def _load_seccomp():
    program = _SockFprog(len(_SECCOMP) // 8, _SECCOMP)  # 8 bytes per BPF instruction
    _ok(_libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(program), 0, 0), "seccomp filter")

def _selftest_failures(uid, req):
    """What the self-test fork finds missing of the isolation above, as words for the zygote's log."""
    with open("/proc/self/status") as lines:
        status = dict(line.split(":", 1) for line in lines if ":" in line)
    denied = _libc.unshare(CLONE_NEWUSER) != 0 and ctypes.get_errno() == errno.EPERM
    checks = {"its uid": os.getuid() == uid, "PID 2 of its namespace": os.getpid() == 2,
              "the binds below /tmp": all(os.path.isdir(p) for p in req["keep"]),
              "the fork server's folder hidden": not os.path.exists(os.path.join(req["root"], "zygote.sock")),
              "a read-only system": not any(os.access(p, os.W_OK) for p in ("/", "/etc", "/var", "/dev")),
              "an empty capability bounding set": int(status["CapBnd"], 16) == 0 == int(status["CapEff"], 16),
              "the seccomp filter": status["Seccomp"].strip() == "2" and denied}
    return [what for what, ok in checks.items() if not ok]

def _run_kernel(req):
    for name, (soft, hard) in req["limits"].items():
        resource.setrlimit(getattr(resource, name), (soft, hard))
    uid = req["uid"] if req["uid"] is not None else os.getuid()  # None: an ordinary user's zygote, its own uid
    if os.getuid() == 0:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)  # leaving root drops every capability of the zygote's
    _own_user_namespace(uid)  # an ordinary user's zygote's capabilities (in bwrap's namespace) are left behind here
    _ok(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    _ok(_libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0), "dumpable")  # as after an exec: /proc/self stays its own
    _ok(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "pdeathsig")
    os.chdir(req["cwd"])
    os.environ.clear()
    os.environ.update(req["env"])
    _load_seccomp()  # last: nothing below needs a denied call
    if req.get("selftest"):
        failures = _selftest_failures(uid, req)
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


def kernel(argv):
    """A kernel on its own: bwrap was started with SIGINT ignored, and the kernel needs it."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    payload = read_payload()
    for name, (soft, hard) in payload["limits"].items():
        resource.setrlimit(getattr(resource, name), (soft, hard))
    import_from_memory(payload["modules"])
    del payload
    from ipykernel.kernelapp import IPKernelApp
    app = IPKernelApp.instance(parent_handle=1)  # no parent poller (its parent is outside the PID namespace)
    app.initialize(argv)
    app.start()


def zygote(socket_path):
    global _SECCOMP
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    payload = read_payload()
    os.environ.update(payload["env"])
    _SECCOMP = bytes.fromhex(payload["seccomp"])
    import_from_memory(payload["modules"])
    for name in payload["preload"]:
        try:
            importlib.import_module(name)
        except Exception:
            pass  # the kernel imports it itself, or reports its absence as usual
    del payload
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(socket_path)
    os.chmod(socket_path, 0o600)
    server.listen(64)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # handlers are reaped automatically
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    while True:
        conn, _ = server.accept()
        if os.fork() == 0:
            server.close()
            try:
                _serve(conn)
            except BaseException:
                traceback.print_exc()
            os._exit(0)
        conn.close()


if __name__ == "__main__":
    if sys.argv[1] == "kernel":
        kernel(sys.argv[2:])
    else:
        zygote(sys.argv[2])
