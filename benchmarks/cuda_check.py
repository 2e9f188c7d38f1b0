"""On a CUDA machine: run the solution notebooks (source/, hidden tests included) and the instructor demo's
autograde, and print scores and run times. The notebooks are device-agnostic: notebook 03 trains on `cuda` when
one is present, and every hidden check also runs its first case on the GPU. CPU stays the default everywhere else.

    python benchmarks/cuda_check.py             # benchmarks/cuda_run.sh prepares a bare GPU machine and calls this

Prints figures only; exits 1 if a test cell of a solution notebook fails, or if the demo graded on the GPU scores
differently from the same demo with CUDA hidden (run second, on the same machine).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from nbclient import NotebookClient

from rnncourse import notebooks, report
from rnncourse.course import (
    NOTEBOOKS,
    new_course_dir,
    repo_root,
    source_notebook,
    tool_env,
)


def run_solution_notebook(notebook: str, workdir: Path) -> tuple[float, list[str], str]:
    """Execute source/<notebook> (solutions and hidden tests) in a fresh kernel. Returns seconds, the ids of test
    cells with an error, and what the notebook printed about its device."""
    nb = notebooks.read(source_notebook(repo_root(), notebook))
    client = NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(workdir)}})
    start = time.monotonic()
    client.execute()
    seconds = time.monotonic() - start
    failed, device = [], ""
    for cell in nb.cells:
        outputs = cell.get("outputs", [])
        text = "".join(o.get("text", "") for o in outputs)
        if "device:" in text and not device:
            device = next(line for line in text.splitlines() if "device:" in line).strip()
        if notebooks.nbgrader_meta(cell).get("grade") and any(o.output_type == "error" for o in outputs):
            failed.append(cell.metadata.nbgrader.grade_id)
    return seconds, failed, device


def run_demo(course: Path, sandbox: bool = True, cpu_only: bool = False) -> tuple[float, dict, str, int]:
    """`python -m rnncourse demo` in a fresh course directory (`cpu_only`: with CUDA hidden from every process).
    Returns seconds, each student's score after late penalties, the demo's output and its exit status."""
    new_course_dir(course, "" if sandbox else "c.SandboxedExecute.sandbox = False")
    start = time.monotonic()
    env = tool_env({"CUDA_VISIBLE_DEVICES": ""} if cpu_only else None)
    proc = subprocess.run([sys.executable, "-m", "rnncourse", "demo", "--course-dir", str(course)],
                          env=env, capture_output=True, text=True, timeout=900)
    seconds = time.monotonic() - start
    scores: dict = {}
    if (course / "gradebook.db").exists():
        for result in report.collect(course):
            scores[result.student] = scores.get(result.student, 0.0) + result.final_score
    return seconds, scores, proc.stdout + proc.stderr, proc.returncode


def main() -> int:
    ok = True
    print(f"torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}", end="")
    if torch.cuda.is_available():
        print(f", {torch.cuda.get_device_name(0)}, CUDA {torch.version.cuda}")
    else:
        print(" -- no GPU: this check means little on a CPU")
    with tempfile.TemporaryDirectory() as tmp:
        print("\nsolution notebooks (source/, hidden tests included), each in a fresh kernel:")
        for notebook in NOTEBOOKS:
            workdir = Path(tmp) / notebook
            workdir.mkdir()
            seconds, failed, device = run_solution_notebook(notebook, workdir)
            tests = len(notebooks.test_cells(notebooks.read(source_notebook(repo_root(), notebook))))
            print(f"  {notebook:26s} {seconds:6.1f} s  test cells passed {tests - len(failed)}/{tests}"
                  + (f"  FAILED: {', '.join(failed)}" if failed else "") + (f"  ({device})" if device else ""))
            ok &= not failed

        print("\ninstructor demo (python -m rnncourse demo: generate, autograde in the sandbox, feedback, export):")
        sandbox = True
        runs = {}
        for name, cpu_only in [("GPU", False), ("CPU", True)] if torch.cuda.is_available() else [("CPU", True)]:
            seconds, scores, output, returncode = run_demo(Path(tmp) / name, sandbox, cpu_only)
            if "autograde refused" in output:  # no working bubblewrap here: say so, and grade without the sandbox
                print("  " + next(line for line in output.splitlines() if "autograde refused" in line)[:300])
                print("  ... so with c.SandboxedExecute.sandbox = False:")
                sandbox = False
                seconds, scores, output, returncode = run_demo(Path(tmp) / f"{name}-unsandboxed", sandbox, cpu_only)
            graded = [line.strip() for line in output.splitlines() if "students graded" in line] or ["no summary"]
            print(f"  on the {name}: exit {returncode}, {seconds:.0f} s in all; {graded[0]}")
            if returncode != 0:
                print(output[-6000:])
            ok &= returncode == 0
            runs[name] = scores
        for student in sorted(runs["CPU"]):
            line = f"  {student:20s} " + "   ".join(f"{name}: {scores.get(student, float('nan')):g}"
                                                   for name, scores in runs.items())
            same = len({scores.get(student) for scores in runs.values()}) == 1
            print(line + ("" if same else "   DIFFERENT"))
            ok &= same
    print("\nresult:", "OK" if ok else "PROBLEMS (above)")
    return 0 if ok else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
