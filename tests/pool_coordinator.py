"""A coordinator process for tests/test_workerpool.py: two workers sleeping in tasks until it is stopped."""

import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import pool_tasks  # noqa: E402

from rnncourse import workerpool  # noqa: E402

if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)  # as the runner does: started in the background or not
    folder = sys.argv[1]
    tasks = [workerpool.Task(f"t{i}", pool_tasks.sleep_with_cleanup, (folder, 120)) for i in range(4)]
    try:
        workerpool.LocalPool(2).run(tasks)
    except workerpool.Interrupted as stop:
        Path(folder, "interrupted").write_text(f"running={sorted(stop.running)} pending={sorted(stop.pending)}")
        sys.exit(130)
