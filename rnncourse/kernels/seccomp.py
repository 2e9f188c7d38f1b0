"""The system calls no grading kernel may make: one seccomp filter, the same program in both ways a kernel starts.

A kernel started on its own gets the program through `bwrap --seccomp FD`; a kernel forked from the zygote loads
the same program itself, as its last step before student code (``rnncourse.kernels.boot``). Each denied call fails
with EPERM, as it does for an unprivileged process, so a notebook that tries one sees an ordinary error.
"""

from __future__ import annotations

import errno
import tempfile
from typing import IO

DENIED = (
    # Keyrings belong to a uid and outlive the process: a channel between students and grading runs.
    "keyctl", "add_key", "request_key",
    # Reading or steering another process.
    "ptrace", "process_vm_readv", "process_vm_writev",
    # New namespaces, mounts and roots: the sandbox's layout is final once the kernel runs.
    "unshare", "setns", "mount", "umount2", "pivot_root", "fsopen", "fsconfig", "fsmount", "fspick", "move_mount",
    "open_tree", "mount_setattr",
    # Kernel interfaces no notebook needs, each a known way to attack the kernel or to see other processes.
    "bpf", "perf_event_open", "userfaultfd", "open_by_handle_at", "io_uring_setup", "io_uring_enter",
    "io_uring_register", "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
)

# clone() with any of these flags makes new namespaces, as unshare() does. (Its low byte is the exit signal, so
# CLONE_NEWTIME, 0x80, exists for unshare and clone3 only.)
CLONE_NAMESPACE_FLAGS = {
    "CLONE_NEWNS": 0x00020000, "CLONE_NEWCGROUP": 0x02000000, "CLONE_NEWUTS": 0x04000000,
    "CLONE_NEWIPC": 0x08000000, "CLONE_NEWUSER": 0x10000000, "CLONE_NEWPID": 0x20000000,
    "CLONE_NEWNET": 0x40000000,
}


class FilterUnavailable(RuntimeError):
    """pyseccomp or the system's libseccomp is missing."""


def kernel_filter():
    """Allow everything but DENIED (EPERM) and clone() with a namespace flag (EPERM). clone3 passes its flags in
    memory a filter cannot read, so it answers ENOSYS, on which glibc falls back to clone(). A call from another
    architecture's system call table (int 0x80 on x86-64) kills the process: libseccomp's default."""
    try:  # here, not at import: a grader without libseccomp learns why its kernels cannot start, not a traceback
        import pyseccomp as seccomp
    except (ImportError, RuntimeError) as problem:  # RuntimeError: pyseccomp found no libseccomp.so
        raise FilterUnavailable(f"the kernels' seccomp filter needs pyseccomp (requirements.txt) and libseccomp "
                                f"(Debian: `apt-get install libseccomp2`): {problem}") from None
    rules = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    for name in DENIED:
        rules.add_rule(seccomp.ERRNO(errno.EPERM), name)
    for flag in CLONE_NAMESPACE_FLAGS.values():
        rules.add_rule(seccomp.ERRNO(errno.EPERM), "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
    rules.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
    return rules


def program_file() -> IO[bytes]:
    """kernel_filter() as the BPF program the kernel runs, in an unlinked file read from its start: what
    `bwrap --seccomp FD` reads."""
    exported = tempfile.TemporaryFile()
    kernel_filter().export_bpf(exported)
    exported.seek(0)
    return exported


def bpf_program() -> bytes:
    """The same program as bytes: what a forked kernel hands to prctl(PR_SET_SECCOMP)."""
    with program_file() as exported:
        return exported.read()
