"""Tamper evidence for hidden tests, which run in the student's own kernel, after the student's code.

A submission can replace what the checks rely on: ``torch.allclose = lambda *a, **k: True``, a no-op
``torch.testing.assert_close``, a silent ``InteractiveShell.showtraceback`` (no error output, no lost points), a
patched builtin, or the check function itself. Inside the sandbox (``rnncourse.sandbox``) two things stop that:

* ``arm`` runs in the kernel before any student code and records the identity of every attribute the checks and
  nbgrader's scoring depend on. Each ``graded_check`` verifies that record before and after the check runs; anything
  replaced is put back and the check fails with ``TamperingDetected``, and so does every later check in that kernel.
* A check that passes publishes a receipt, an HMAC of its name under a per-kernel secret that reached the kernel
  through its stdin. The sandboxed executor gives a hidden-test cell its points only if every check the cell calls
  left a valid receipt, so a replaced check, a swallowed exception or a hidden error display still scores 0.

Outside the sandbox (the in-process test harness, a plain ``nbgrader autograde``) nothing is armed and checks run
as they are. Code that reads the interpreter's memory could still forge a receipt: an in-kernel test cannot be made
safe from that, and the README says so.
"""

from __future__ import annotations

import builtins
import functools
import hashlib
import hmac
import sys
from collections.abc import Callable
from pathlib import Path

from .compare import HiddenTestFailure

RECEIPT_MIME = "application/vnd.rnncourse.receipt+json"

# Builtins IPython and ipykernel swap in and out around every cell (BuiltinTrap, the display hook, input
# forwarding): not tampering.
_VOLATILE_BUILTINS = {"_", "__", "___", "exit", "quit", "get_ipython", "display", "__IPYTHON__", "__builtins__",
                      "input", "raw_input"}
# Shell methods a submission could shadow on the instance to hide errors or skip cells.
_SHELL_METHODS = ("showtraceback", "_showtraceback", "showsyntaxerror", "showindentationerror", "run_cell",
                  "run_cell_async", "run_ast_nodes", "run_code", "transform_cell", "set_custom_exc")
_SHELL_ATTRIBUTES = ("CustomTB", "custom_exceptions", "InteractiveTB", "SyntaxTB", "display_pub", "kernel")
_MISSING = object()


class TamperingDetected(HiddenTestFailure):
    """The notebook replaced something the hidden tests rely on; no hidden test in this kernel can be trusted."""


class _Guard:
    def __init__(self, secret: bytes, shell) -> None:
        self._secret = secret
        self._shell = shell
        import torch

        self._torch_dir = str(Path(torch.__file__).parent) + "/"
        self._records = [(owner, _identities(owner)) for owner in _owners(shell)]
        self._shell_attributes = {name: getattr(shell, name, _MISSING) for name in _SHELL_ATTRIBUTES}
        # ipykernel itself sets some of these methods on the instance at start-up: record what is there now.
        self._shell_methods = {name: vars(shell).get(name, _MISSING) for name in _SHELL_METHODS} if shell else {}
        from IPython.display import publish_display_data
        self._publish = publish_display_data
        self.tampered: list[str] = []

    def verify(self) -> None:
        """Put back anything replaced since `arm`, then fail if anything was (now or in an earlier check)."""
        changed = []
        for owner, record in self._records:
            current = vars(owner)
            if isinstance(owner, type):  # a new entry on a class shadows what its bases define (Tensor.abs = ...)
                for name in [n for n in current if n not in record]:
                    changed.append(f"{_label(owner)}.{name}")
                    _restore(owner, name, _MISSING)
            for name, original in record.items():
                now = current.get(name, _MISSING)
                if now is original:
                    continue
                if _torch_wrapper_of(now, original, self._torch_dir):
                    record[name] = now  # torch's own lazy patch (see below): the wrapper is the original now
                    continue
                changed.append(f"{_label(owner)}.{name}")
                _restore(owner, name, original)
        if self._shell is not None:
            for name, original in self._shell_methods.items():
                if vars(self._shell).get(name, _MISSING) is not original:
                    changed.append(f"get_ipython().{name}")
                    _restore(self._shell, name, original)
            for name, original in self._shell_attributes.items():
                if getattr(self._shell, name, _MISSING) is not original:
                    changed.append(f"get_ipython().{name}")
                    setattr(self._shell, name, original)
        self.tampered += [c for c in changed if c not in self.tampered]
        if self.tampered:
            shown = ", ".join(self.tampered[:5]) + (" ..." if len(self.tampered) > 5 else "")
            raise TamperingDetected(
                f"Grading stopped: this notebook replaced what the hidden tests rely on ({shown}). Hidden tests "
                f"cannot be trusted in this kernel, so this one and every later one score 0. Remove the code that "
                f"reassigns library functions, builtins or IPython's error display, and run the notebook again.")

    def receipt(self, check_name: str) -> None:
        mac = hmac.new(self._secret, check_name.encode(), hashlib.sha256).hexdigest()
        self._publish({RECEIPT_MIME: {"check": check_name, "mac": mac}}, metadata={})


_active: list = [None]  # the armed guard, if any (a list so the decorator's closure sees arming)


def arm(secret: bytes, shell=None) -> None:
    """Record what the checks rely on; called by the sandbox's kernel launcher before any student code runs."""
    _active[0] = _Guard(secret, shell)


def receipt_mac(secret: bytes, check_name: str) -> str:
    """What the executor expects in a passing check's receipt."""
    return hmac.new(secret, check_name.encode(), hashlib.sha256).hexdigest()


def graded_check(check: Callable) -> Callable:
    """Wrap a ``check_*`` function: verify before and after it runs, and publish a receipt when it passes."""

    @functools.wraps(check)
    def run(*args, **kwargs):
        guard = _active[0]
        if guard is None:
            return check(*args, **kwargs)
        guard.verify()
        check(*args, **kwargs)
        guard.verify()  # student code called by the check may have patched a comparison while it ran
        guard.receipt(check.__name__)

    return run


def _torch_wrapper_of(new, original, torch_dir: str) -> bool:
    """torch patches some of its own functions on first use: importing torch._dynamo (which the first optimizer step
    does) wraps torch.manual_seed, and an optimizer class wraps its `step` when first instantiated. Those wrappers
    keep the original as __wrapped__ and their code lives in torch's own files."""
    if getattr(new, "__wrapped__", None) is not original:
        return False
    code = getattr(new, "__code__", None)
    return code is not None and code.co_filename.startswith(torch_dir)


def _owners(shell) -> list:
    """Modules and classes whose attributes the checks, their references and nbgrader's scoring use."""
    import contextlib
    import math
    import signal
    import warnings

    import numpy
    import numpy.testing
    import torch
    import torch.nn.functional
    import torch.nn.utils.rnn
    import torch.testing
    from IPython.core.interactiveshell import InteractiveShell

    owners = [builtins, math, contextlib, signal, warnings, functools, hmac, hashlib,
              torch, torch.testing, torch.nn, torch.nn.functional, torch.nn.init, torch.nn.utils,
              torch.nn.utils.rnn, torch.autograd, torch.optim, torch.random, numpy, numpy.testing, numpy.linalg,
              torch.Tensor, torch._C.TensorBase, torch.optim.Optimizer, torch.optim.SGD, torch.optim.Adam,
              InteractiveShell]
    owners += [cls for cls in vars(torch.nn).values() if isinstance(cls, type) and issubclass(cls, torch.nn.Module)]
    if shell is not None:
        owners += [cls for cls in type(shell).__mro__ if cls.__module__.split(".")[0] in ("IPython", "ipykernel")]
        owners += [cls for cls in type(shell.display_pub).__mro__ if cls is not object]
        if getattr(shell, "kernel", None) is not None:
            owners += [cls for cls in type(shell.kernel).__mro__ if cls.__module__.split(".")[0] == "ipykernel"]
    for name, module in list(sys.modules.items()):
        if name.startswith("rnncourse"):
            owners.append(module)
            owners += [v for v in vars(module).values() if isinstance(v, type) and v.__module__ == name]
    unique, seen = [], set()
    for owner in owners:
        if id(owner) not in seen:
            seen.add(id(owner))
            unique.append(owner)
    return unique


def _identities(owner) -> dict:
    record = dict(vars(owner))
    if owner is builtins:
        for name in _VOLATILE_BUILTINS:
            record.pop(name, None)
    return record


def _label(owner) -> str:
    return getattr(owner, "__qualname__", None) or getattr(owner, "__name__", repr(owner))


def _restore(owner, name: str, original) -> None:
    try:
        if original is _MISSING:
            delattr(owner, name)
        else:
            setattr(owner, name, original)
    except (AttributeError, TypeError):
        pass  # an attribute that cannot be set back was not settable by the student either
