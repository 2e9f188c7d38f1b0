"""A hidden-test cell's verdict, decided in the grader: which checks the cell names, and whether they pass.

A test cell's hidden block is two lines the instructor wrote, e.g.::

    ### BEGIN HIDDEN TESTS
    from rnncourse.grading.nb01 import check_rnn_step
    check_rnn_step(globals())
    ### END HIDDEN TESTS

At autograde the block is never sent to the kernel: the executor runs the cell's visible part there, reads the block
here (parsed, never executed), and calls each named check in this process with the student's kernel behind a
``Student``. Only ``check_*`` functions of ``rnncourse.grading.nbNN`` modules can be named.
"""

from __future__ import annotations

import ast
import importlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

from rnncourse import notebooks

from .compare import HiddenTestFailure
from .student import KernelLost, OutOfTime, Student, StudentError

_CHECK_MODULE = re.compile(r"rnncourse\.grading\.nb\d\d")
FAILED = "HiddenTestFailure"  # the error name a failed verdict is shown under


def hidden_block(source: str) -> str:
    return notebooks.region(source, notebooks.HIDDEN_TEST_MARKERS)


def visible_part(source: str) -> str:
    """The cell without its hidden block: what the student's kernel runs."""
    begin, end = notebooks.HIDDEN_TEST_MARKERS
    kept, hidden = [], False
    for line in source.splitlines():
        if line.strip() == begin:
            hidden = True
        elif line.strip() == end:
            hidden = False
        elif not hidden:
            kept.append(line)
    return "\n".join(kept)


def named_checks(source: str) -> list[Callable]:
    """The checks a test cell's hidden block calls, in order; [] when it has none."""
    block = hidden_block(source)
    if not block.strip():
        return []
    try:
        tree = ast.parse(block)
    except SyntaxError:
        return []
    imported = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and _CHECK_MODULE.fullmatch(node.module):
            for alias in node.names:
                if alias.name.startswith("check_"):
                    imported[alias.asname or alias.name] = (node.module, alias.name)
    checks = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in imported:
            module, name = imported[node.func.id]
            checks.append(getattr(importlib.import_module(module), name))
    return checks


def prepare() -> None:
    """Ready this process to run checks: the check modules imported, torch on one thread (the checks' tensors are
    tiny; threads would only contend with the kernels for cores), and torch._dynamo imported now rather than by
    the first optimizer.step() of a check (about 2 s, once per process)."""
    import torch
    import torch._dynamo  # noqa: F401

    torch.set_num_threads(1)
    for number in ("01", "02", "03"):
        importlib.import_module(f"rnncourse.grading.nb{number}")


@dataclass
class Verdict:
    passed: bool
    message: str = ""
    kernel_lost: bool = False


def judge(checks: list[Callable], student: Student) -> Verdict:
    """Run each check against the student's notebook; the first failure is the verdict."""
    for check in checks:
        try:
            check(student)
        except HiddenTestFailure as failure:
            return Verdict(False, str(failure))
        except OutOfTime as spent:
            return Verdict(False, f"The hidden tests of this cell did not finish: {spent}. Each call of your code "
                                  f"may take up to 10 s, and all of this cell's calls together are limited too: make "
                                  f"your functions faster (no sleeping, no needless loops).")
        except KernelLost as lost:
            return Verdict(False, f"The kernel stopped answering while the hidden tests ran ({lost}).", True)
        except StudentError as error:
            return Verdict(False, f"The hidden tests could not talk to this notebook's code: {error}.")
        except OSError:  # the grader's own sockets or files failed: not the student's doing, so no verdict at all
            raise
        except Exception as error:  # data no check foresaw: this notebook's verdict, never the whole run's
            logging.getLogger(__name__).exception("%s could not judge this notebook", check.__name__)
            return Verdict(False, f"The hidden tests could not judge what this notebook's code returned "
                                  f"({type(error).__name__}); the grading log has the details.")
    return Verdict(True)
