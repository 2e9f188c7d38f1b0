"""What a kernel manager needs to know to start one sandboxed kernel, fixed before it starts."""

from __future__ import annotations

from dataclasses import dataclass

from .leases import processes_of


@dataclass(frozen=True)
class KernelSettings:
    """The executor's limits and choices for its kernels (its traits, read once per notebook)."""

    memory_limit_mb: int
    cpu_time_limit_s: int
    process_limit: int
    file_size_limit_mb: int
    tmp_limit_mb: int
    uid_base: int
    uid_count: int
    fork_kernels: bool
    run_root: str

    @property
    def tmp_bytes(self) -> int:
        return self.tmp_limit_mb << 20

    def rlimits(self, uid: int) -> dict:
        """The kernel's resource limits; the process count adds what `uid` already runs (as an ordinary user)."""
        return {"RLIMIT_DATA": [self.memory_limit_mb << 20] * 2,
                "RLIMIT_CPU": [self.cpu_time_limit_s, self.cpu_time_limit_s + 5],
                "RLIMIT_NPROC": [processes_of(uid) + self.process_limit] * 2,
                "RLIMIT_FSIZE": [self.file_size_limit_mb << 20] * 2,
                "RLIMIT_CORE": [0, 0]}
