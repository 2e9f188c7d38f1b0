"""Each kernel is alone: its own user namespace, no capability, a seccomp filter, and a uid no one else gets.

Through real `nbgrader autograde` with the course's own config: two students hand in notebook 01 solved, with a
probe after their last answer that makes the calls a kernel could use to reach another (keyrings, ptrace, new
namespaces, mounts, bpf, perf) and prints each one's errno, its capability sets, seccomp mode, uid and user
namespace; a third runs the probe after its first answer and ends its kernel (`os._exit`) after its last: its uid
must be given back all the same. The course is graded twice: first with kernels forked from the zygote (the default
as root), then again with `fork_kernels = False` (a bwrap per kernel), so both ways a kernel starts are checked, and
the second run's uids are compared with the first's. A copy of the course is graded a third time by an ordinary user
(nobody), as the hub's grading service grades as the instructor: kernels forked from that user's zygote, in a user
namespace of bwrap's, must be as alone (their uid is that user's: no leases without root).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from conftest import POINTS, make_course

import rnncourse
from rnncourse import notebooks, pipeline, report, submissions
from rnncourse.course import autograded_notebook, release_notebook, source_notebook
from rnncourse.hub import layout
from rnncourse.kernels.executor import SandboxedExecute
from rnncourse.kernels.leases import UidLease

pytestmark = [pytest.mark.autograde,
              pytest.mark.skipif(not shutil.which("bwrap"), reason="bubblewrap missing")]

NB01 = "01_rnn_unrolling"
STUDENTS = ("iso_a", "iso_b")
DIES = "iso_dies"
FULL_MARKS = float(POINTS[NB01])

# Run in the kernel after the student's last answer. Each call's arguments are chosen so that, without the filter,
# most would succeed or fail with another errno than EPERM (setns(-1): EBADF, a mount on a missing path: ENOENT,
# perf_event_open(NULL): EFAULT); only the filter answers EPERM to all of them.
PROBE = r'''
import ctypes, errno, os
_libc = ctypes.CDLL(None, use_errno=True)
_NR = {"x86_64": dict(keyctl=250, add_key=248, ptrace=101, unshare=272, setns=308, mount=165, bpf=321,
                      perf_event_open=298),
       "aarch64": dict(keyctl=219, add_key=217, ptrace=117, unshare=97, setns=268, mount=40, bpf=280,
                       perf_event_open=241)}[os.uname().machine]
_long, _text, _null = ctypes.c_long, ctypes.c_char_p, ctypes.c_void_p(None)

def _probe(label, name, *args):
    ctypes.set_errno(0)
    result = _libc.syscall(_long(_NR[name]), *args)
    print("ISOLATION", label, "allowed" if result != -1 else errno.errorcode[ctypes.get_errno()])

_probe("keyctl_join_session_keyring", "keyctl", _long(1), _null)
_probe("add_key_user_keyring", "add_key", _text(b"user"), _text(b"isolation-probe"), _text(b"from a kernel"),
       ctypes.c_size_t(13), _long(-4))
_probe("ptrace_attach_pid_1", "ptrace", _long(16), _long(1), _null, _null)
_probe("ptrace_traceme", "ptrace", _long(0), _long(0), _null, _null)
_probe("unshare_user_namespace", "unshare", _long(0x10000000))
_probe("setns", "setns", _long(-1), _long(0))
_probe("mount", "mount", _text(b"none"), _text(b"/isolation-probe-missing"), _text(b"tmpfs"), ctypes.c_ulong(0),
       _null)
_probe("bpf", "bpf", _long(0), _null, _long(0))
_probe("perf_event_open", "perf_event_open", _null, _long(0), _long(-1), _long(-1), ctypes.c_ulong(0))
for _line in open("/proc/self/status"):
    if _line.startswith(("CapBnd:", "CapEff:", "CapPrm:", "Seccomp:", "NoNewPrivs:")):
        print("ISOLATION", _line.split(":")[0], _line.split()[1])
print("ISOLATION uid", os.getuid())
def _plant(path):  # a file a later kernel of the same zygote would run (IPython reads /etc/ipython at start)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as planted:
            planted.write("print('PLANTED')\n")
        return 1
    except OSError:
        return 0
print("ISOLATION wrote_system", sum(_plant(p) for p in ("/etc/ipython/ipython_kernel_config.py", "/planted",
                                                        "/var/tmp/planted", "/dev/planted", "/opt/planted")))
def _move_ipc():  # the grader binds its sockets in ipc/ by path: a kernel that could move it could redirect them
    ipc = os.path.join(os.path.dirname(os.getcwd()), "ipc")
    try:
        os.rename(ipc, ipc + "-moved")
    except OSError:
        return 0
    os.rename(ipc + "-moved", ipc)
    return 1
print("ISOLATION moved_ipc", _move_ipc())
_trap = os.path.join(os.getcwd(), "trap", "inner")  # a folder closed to its owner, for the grader to clean up
os.makedirs(_trap)
with open(os.path.join(_trap, "blob"), "wb") as _blob:
    _blob.write(b"x" * (1 << 20))
os.chmod(_trap, 0)
os.chmod(os.path.dirname(_trap), 0o500)
print("ISOLATION run_folder", os.path.dirname(os.getcwd()))
import stat, sys
def _own_output(stream):  # the kernel process's own stdout/stderr (ipykernel keeps a copy): an unlinked file of its
    fd = getattr(stream, "_original_stdstream_copy", None)  # own, not the grader's log or pipe
    info = os.fstat(fd if fd is not None else 2)
    return stat.S_ISREG(info.st_mode) and info.st_nlink == 0
print("ISOLATION own_output", int(_own_output(sys.stdout) and _own_output(sys.stderr)))
import glob
_servers = glob.glob("/var/tmp/rnncourse-forkserver-*")
print("ISOLATION fork_server_reachable", sum(os.path.exists(_s + "/zygote.sock") + os.path.exists(_s + "/zygote.log")
                                             + len(glob.glob(_s + "/runs/*")) for _s in _servers))
print("ISOLATION user_namespace", os.readlink("/proc/self/ns/user"))
'''
CALLS = ("keyctl_join_session_keyring", "add_key_user_keyring", "ptrace_attach_pid_1", "ptrace_traceme",
         "unshare_user_namespace", "setns", "mount", "bpf", "perf_event_open")
END_KERNEL = """
import os
os._exit(3)
"""
ONE_BY_ONE = """
# tests/test_isolation.py: the second run starts a bwrap per kernel
c.SandboxedExecute.fork_kernels = False
"""
NOBODY = 65534


def _grade_as_nobody(course: Path) -> tuple[dict, str]:
    """`nbgrader autograde` run by an ordinary user (nobody) on its own copy of the course, with the course hub's
    shared environment (`make hub-env`: an interpreter every account can run; this venv's lies under /root):
    {student: (what the probe printed, notebook 01 score)}, and the log."""
    # The course package copied beside the course, as the hub copies it into the instructor's course directory:
    # the repository itself is closed to other accounts once a hub is set up (hubroot.close_repository).
    package = course.parent / "package"
    shutil.copytree(Path(rnncourse.__file__).resolve().parent, package / "rnncourse",
                    ignore=shutil.ignore_patterns("__pycache__"))
    env = dict(os.environ, HOME=str(course / ".home"), PATH=f"{layout.env() / 'bin'}:/usr/bin:/bin",
               OMP_NUM_THREADS="1", PYTHONPATH=str(package))
    (course / ".home").mkdir()
    subprocess.run(["chown", "-R", f"{NOBODY}:{NOBODY}", str(course)], check=True)
    proc = subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--",
                           str(layout.env() / "bin" / "nbgrader"), "autograde", pipeline.ASSIGNMENT, "--force"],
                          cwd=course, env=env, capture_output=True, text=True, timeout=900)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    return _results(course), log


def _probed(course: Path, student: str) -> dict:
    """What the probe printed in `student`'s autograded notebook 01: {label: value}."""
    nb = notebooks.read(autograded_notebook(course, student, NB01))
    text = "".join(o.get("text", "") for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs)
    return dict(re.findall(r"^ISOLATION (\S+) (\S+)$", text, flags=re.M))


def _results(course: Path) -> dict:
    """{student: (what the probe printed, notebook 01 score)} of a graded course."""
    scores = report.scores_by_cell(course)
    return {student: (_probed(course, student), sum(scores[student][NB01].values())) for student in (*STUDENTS, DIES)}


def _grade(course: Path) -> dict:
    """Autograde everyone; {student: (what the probe printed, notebook 01 score)}, and the nbgrader log."""
    result = pipeline.autograde(course, quiet=True)
    log = result.log.read_text()
    assert result.ok, log[-3000:]
    return _results(course), log


@pytest.fixture(scope="module")
def graded_three_ways(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("kernels are forked, and get leased uids, only when grading as root")
    course = make_course(tmp_path_factory.mktemp("isolation") / "course")
    assert pipeline.generate(course).ok
    release, source = (notebooks.read(f(course, NB01)) for f in (release_notebook, source_notebook))
    answers = notebooks.solutions(source)
    probed = dict(answers, task_alignment=answers["task_alignment"] + "\n" + PROBE)
    for student in STUDENTS:
        submissions.write_submission(course, student, {NB01: notebooks.filled(release, probed)})
    # The probe's cell finishes before the kernel ends: output printed just before an os._exit may never arrive.
    dies = dict(answers, rnn_step=answers["rnn_step"] + "\n" + PROBE,
                task_alignment=answers["task_alignment"] + "\n" + END_KERNEL)
    submissions.write_submission(course, DIES, {NB01: notebooks.filled(release, dies)})
    # Its own copy, where nobody can reach it (pytest's folders are root's alone), graded by nobody.
    shared = Path(tempfile.mkdtemp(prefix="rnncourse-isolation-", dir="/var/tmp"))
    os.chmod(shared, 0o755)
    as_user = shared / "course"
    shutil.copytree(course, as_user)
    forked, forked_log = _grade(course)
    with open(course / "nbgrader_config.py", "a") as config:
        config.write(ONE_BY_ONE)
    one_by_one, _ = _grade(course)
    as_nobody, nobody_log = None, ""
    try:
        if (layout.env() / "bin" / "nbgrader").exists():
            as_nobody, nobody_log = _grade_as_nobody(as_user)
    finally:
        shutil.rmtree(shared, ignore_errors=True)
    return {"forked": forked, "one by one": one_by_one, "forked log": forked_log,
            "forked as an ordinary user": as_nobody, "forked as an ordinary user log": nobody_log}


def _graded(graded_three_ways: dict, path: str) -> dict:
    if graded_three_ways[path] is None:
        pytest.skip("grading as an ordinary user needs the hub's shared environment (make hub-env)")
    return graded_three_ways[path]


PATHS = ["forked", "one by one", "forked as an ordinary user"]


@pytest.mark.parametrize("path", PATHS)
def test_every_call_that_reaches_past_the_kernel_is_denied(graded_three_ways, path):
    for student, (probed, _) in _graded(graded_three_ways, path).items():
        assert {call: probed.get(call) for call in CALLS} == {call: "EPERM" for call in CALLS}, (student, probed)


@pytest.mark.parametrize("path", PATHS)
def test_no_capability_and_the_filter_on(graded_three_ways, path):
    for student, (probed, _) in _graded(graded_three_ways, path).items():
        assert int(probed["CapBnd"], 16) == int(probed["CapEff"], 16) == int(probed["CapPrm"], 16) == 0, probed
        assert probed["Seccomp"] == "2" and probed["NoNewPrivs"] == "1", probed


@pytest.mark.parametrize("path", PATHS)
def test_each_kernel_has_its_own_user_namespace(graded_three_ways, path):
    grader = os.readlink("/proc/self/ns/user")
    for student, (probed, _) in _graded(graded_three_ways, path).items():
        assert probed["user_namespace"].startswith("user:[") and probed["user_namespace"] != grader, probed


def test_no_uid_is_shared_between_kernels_or_runs(graded_three_ways):
    """Six kernels (three students, graded twice, once per path): six uids, all leased from the configured range
    and all given back, the ones whose kernel died too."""
    uids = [int(probed["uid"]) for path in ("forked", "one by one") for probed, _ in graded_three_ways[path].values()]
    assert len(set(uids)) == len(uids), uids
    base, count = SandboxedExecute.sandbox_uid_base.default_value, SandboxedExecute.sandbox_uid_count.default_value
    assert all(base <= uid < base + count for uid in uids), uids
    assert not any((UidLease.LOCKS / str(uid)).exists() for uid in uids)


def test_the_probing_students_still_get_full_marks(graded_three_ways):
    for path in PATHS:
        for student in STUDENTS:
            if graded_three_ways[path] is None:
                continue  # skipped above, as in _graded
            score = graded_three_ways[path][student][1]
            assert score == FULL_MARKS, (path, student, score)


@pytest.mark.parametrize("path", ["forked", "forked as an ordinary user"])
def test_the_forked_runs_forked_their_kernels(graded_three_ways, path):
    """The zygote's self-test passed here, so these runs did not fall back to starting kernels one by one."""
    _graded(graded_three_ways, path)
    log = graded_three_ways[f"{path} log"]
    assert "kernels start one by one" not in log, log[-3000:]


@pytest.mark.parametrize("path", PATHS)
def test_no_kernel_reaches_a_fork_server(graded_three_ways, path):
    """Not its socket, not its log, not a kernel's run folder: covered in each kernel's mount namespace (an ordinary
    user's kernels all have that user's uid, so permissions alone would not keep them apart)."""
    for student, (probed, _) in _graded(graded_three_ways, path).items():
        assert probed["fork_server_reachable"] == "0", (student, probed)


@pytest.mark.parametrize("path", PATHS)
def test_no_kernel_leaves_a_file_for_the_next(graded_three_ways, path):
    """The system a kernel sees is read-only but for its own /tmp, /dev/shm and run folder: an ordinary user's
    kernels share a uid, and a file left in the zygote's root (/etc/ipython's kernel config) would run in every kernel
    forked after it."""
    for student, (probed, _) in _graded(graded_three_ways, path).items():
        assert probed["wrote_system"] == "0", (student, probed)
        assert probed["moved_ipc"] == "0", (student, probed)


@pytest.mark.parametrize("path", PATHS)
def test_no_kernel_leaves_its_folder_behind(graded_three_ways, path):
    """Each probe closed a folder it made (chmod 0) with a file in it: an ordinary user's grader has the kernel's uid
    and no power over modes, so it must open them up again to remove the kernel's run folder."""
    for student, (probed, _) in _graded(graded_three_ways, path).items():
        assert not os.path.lexists(probed["run_folder"]), (student, probed["run_folder"])


@pytest.mark.parametrize("path", PATHS)
def test_no_kernel_holds_the_graders_output(graded_three_ways, path):
    """A kernel's stdout and stderr are a file of its own: with the grader's it could forge, read or truncate its
    log (a hostile review did, as an ordinary user)."""
    for student, (probed, _) in _graded(graded_three_ways, path).items():
        assert probed["own_output"] == "1", (student, probed)


def test_an_ordinary_users_kernels_keep_its_uid(graded_three_ways):
    for student, (probed, _) in _graded(graded_three_ways, "forked as an ordinary user").items():
        assert probed["uid"] == str(NOBODY), (student, probed)
