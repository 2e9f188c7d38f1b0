"""Names under which the grader writes an outcome into a cell's error output; reports turn them into notes.

Kept apart from the executor so that `nbgrader export` and the reports read them without importing torch or zmq.
"""

KERNEL_DIED = "KernelDied"  # the kernel ended or stopped answering: the rest of the notebook was not run
NOT_RUN = "NotRun"  # a cell not run because the kernel was stopped earlier
HIDDEN_TEST_FAILED = "HiddenTestFailure"  # the grader's verdict on a test cell's hidden checks
