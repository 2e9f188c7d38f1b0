"""nbgrader's Execute step for autograde: every kernel sandboxed, every test cell's score the grader's verdict.

Stock nbgrader runs a submission with the instructor's file access, in ``autograded/<student>/<assignment>``, one
``../../../source`` away from the solutions, and scores a test cell from what the kernel printed. Here
``SandboxedExecute`` (named in ``nbgrader_config.py``):

* starts each kernel in its own sandbox (``SandboxedKernelManager``, given a frozen ``KernelSettings``): a read-only
  system, a private working copy without notebooks, no network, its own PID, IPC, UTS and user namespaces, an
  unprivileged uid of its own, no capability, a seccomp filter, limits on memory, CPU time, processes and file size;
  grading as root, forked from a zygote that imported torch & co. once (``forkserver``, ``boot``);
* runs only a test cell's visible part in the kernel; the hidden checks its hidden block names run here, in the
  grader, calling the student's functions through the call protocol (``channel`` here, ``callee`` there). An
  ``execute_result`` the kernel emits in a test cell is shown as plain output (nbgrader would take it as the score)
  and a failed verdict becomes the cell's error;
* makes a misbehaving notebook cost only its own points: a kernel that dies (``os._exit``, a crash, a limit),
  ignores the interrupt after a time-out, or stops answering the grader is stopped, the rest of that notebook is
  marked "not run" with the reason, and nbgrader goes on with the student's other notebooks (stock nbgrader deletes
  the whole assignment).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat import NotebookNode
from nbgrader.preprocessors import Execute
from traitlets import Bool, Enum, Integer, Unicode

from .. import notebooks
from ..grading import verdict
from ..outcomes import HIDDEN_TEST_FAILED, KERNEL_DIED, NOT_RUN
from .manager import SandboxedKernelManager
from .settings import KernelSettings

# nbgrader's own autograde steps (its Execute, no sandbox), as config lines: what the benchmark and the tests compare
# the sandbox with.
STOCK_AUTOGRADE_CONFIG = """
c.Autograde.autograde_preprocessors = [
    "nbgrader.preprocessors.Execute", "nbgrader.preprocessors.IgnorePattern",
    "nbconvert.preprocessors.ClearMetadataPreprocessor", "nbgrader.preprocessors.LimitOutput",
    "nbgrader.preprocessors.SaveAutoGrades", "nbgrader.preprocessors.AssignLatePenalties",
    "nbgrader.preprocessors.CheckCellMetadata"]
"""


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
    hidden_checks_time_limit_s = Integer(120, help="Seconds all hidden checks of one test cell may take together "
                                                   "(each call of student code also has its own 10 s limit); "
                                                   "past it the cell scores 0 with the reason.").tag(config=True)
    max_timeouts_in_a_row = Integer(2, help="Consecutive cells that time out before the kernel is taken as broken "
                                            "and stopped (the rest of its notebook is not run).").tag(config=True)
    fork_kernels = Bool(True, help="Fork each kernel from a sandboxed parent that has imported torch and the "
                                   "grading modules once (saves ~3 s per notebook); each kernel still gets its own "
                                   "namespaces, user namespace and limits (as root, its own uid too). Where that "
                                   "parent cannot start, kernels start one by one.").tag(config=True)
    shutdown_kernel = Enum(["graceful", "immediate"], default_value="immediate",
                           help="After the last cell, kill the kernel (its outputs are all in): a graceful shutdown "
                                "only waits for it to exit.").tag(config=True)
    run_root = Unicode("", help="Where the kernels' private folders are made (default: the system's temp "
                                "dir).").tag(config=True)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.sandbox:
            self.kernel_manager_class = SandboxedKernelManager

    def kernel_settings(self) -> KernelSettings:
        return KernelSettings(memory_limit_mb=self.memory_limit_mb, cpu_time_limit_s=self.cpu_time_limit_s,
                              process_limit=self.process_limit, file_size_limit_mb=self.file_size_limit_mb,
                              tmp_limit_mb=self.tmp_limit_mb, uid_base=self.sandbox_uid_base,
                              uid_count=self.sandbox_uid_count, fork_kernels=self.fork_kernels,
                              run_root=self.run_root)

    def create_kernel_manager(self):
        km = super().create_kernel_manager()
        if isinstance(km, SandboxedKernelManager):
            km.settings = self.kernel_settings()
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
        is_test = notebooks.is_test_cell(cell)
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
        if outcome.kernel_lost:
            cell.outputs.append(_error(KERNEL_DIED, f"{outcome.message} The kernel was stopped and the rest of "
                                                    f"this notebook was not run."))
        elif not outcome.passed:
            cell.outputs.append(_error(HIDDEN_TEST_FAILED, outcome.message))
        if outcome.kernel_lost:
            self._kill_kernel()
            self._stop(f"the kernel stopped answering while the hidden tests of cell {index + 1} ran, so it was "
                       f"stopped")

    def _judge(self, checks: list):
        """Run the hidden checks here, against the student's code in the kernel."""
        from ..grading.student import Student, StudentError
        from .channel import KernelChannel

        verdict.prepare()

        channel = KernelChannel(self.kc, interrupt=self.km.interrupt_kernel, socket_dir=self._socket_dir())
        outcome = verdict.judge(checks, Student(channel, time_budget_s=self.hidden_checks_time_limit_s))
        if not outcome.kernel_lost:
            try:
                channel.close()
            except StudentError as error:
                self.log.warning("Sandbox: the kernel did not end the grader's session (%s)", error)
                outcome = verdict.Verdict(False, f"The kernel did not end the grader's session ({error}).",
                                          kernel_lost=True)
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
            self._own_socket_dir = tempfile.TemporaryDirectory(prefix=f"rnncourse-calls-{os.getpid()}-")
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
