"""What every hidden test shares: call student code safely, compare with a reference, report in words.

A hidden test cell calls one ``check_*`` function (see ``nb01``). Each check

* builds inputs from fixed seeds with a private ``torch.Generator`` inside ``fork_rng``, so the score is the same on
  every run and the student's own random stream is left as it was;
* computes the expected result with PyTorch's own modules, in float64;
* calls the student's function quietly: its prints, warnings and stderr never reach the cell (nbgrader scores a test
  cell 0 for any stderr), an endless loop is cut off after ``student.CALL_TIME_LIMIT_S``, and its errors are reported;
* collects every property that fails and raises one ``HiddenTestFailure`` that says what is wrong and how to look
  for it, never the hidden inputs, the expected values or the test's code.

The grading tolerance lives here and nowhere else.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence

import torch

from . import student as student_calls
from .student import (
    ProtocolBroken,
    RemoteObject,
    StudentRaised,
    StudentTimedOut,
    as_student,
)

# Tolerance by the dtype the student computed in. float64 results must match PyTorch's to 1e-7 (torch.testing's
# float64 default); float32 ones are compared with the float64 reference, so they get float32 round-off room.
TOLERANCE = {
    torch.float64: dict(rtol=1e-7, atol=1e-7),
    torch.float32: dict(rtol=1e-4, atol=1e-5),
}


def extra_devices() -> tuple[str, ...]:
    """Devices beyond the CPU that each check also runs its first case on ("cuda" when a GPU is present), so
    device-agnostic code is verified there. Asked when a check runs, never at import: the grading zygote imports this
    module and forks kernels from it, and a child forked after its parent initialised CUDA cannot use CUDA."""
    return ("cuda",) if torch.cuda.is_available() else ()


class HiddenTestFailure(AssertionError):
    """A hidden test failed. IPython shows only this message: no test code and no hidden inputs."""

    def _render_traceback_(self) -> list[str]:  # IPython's hook for custom tracebacks
        return [f"\x1b[0;31m{type(self).__name__}\x1b[0m: {self}"]


class StudentCallFailed(Exception):
    """The student's function raised or timed out; the Checker has already recorded why."""


def substituted(fn: RemoteObject, **replacements: Callable):
    """While inside, the names that the student's `fn` looks up globally (e.g. `rnn_step` inside `rnn_unroll`) are
    stand-ins in the kernel answered by these functions, here in the grader. This grades each function on its own:
    a wrong `rnn_step` cannot cost the points of a correct `rnn_unroll`."""
    return fn._student.substituting(replacements)


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randn(gen: torch.Generator, *shape: int, scale: float = 1.0) -> torch.Tensor:
    return torch.randn(*shape, generator=gen, dtype=torch.float64) * scale


def uniform(gen: torch.Generator, *shape: int, bound: float) -> torch.Tensor:
    """U(-bound, bound) in float64, PyTorch's own initialisation range for recurrent layers."""
    return (torch.rand(*shape, generator=gen, dtype=torch.float64) * 2 - 1) * bound


def to(tensors: Sequence, dtype: torch.dtype, device: str) -> list:
    """Move float tensors to dtype and device; integer tensors (token ids, lengths) keep their dtype."""
    moved = []
    for t in tensors:
        if isinstance(t, torch.Tensor):
            t = t.to(device=device, dtype=dtype if t.is_floating_point() else t.dtype)
        moved.append(t)
    return moved


def variants(base_cases: Sequence[dict]) -> list[dict]:
    """The float64 cases, the first case again in float32, and the first case on each extra device."""
    cases = [dict(case, dtype=torch.float64, device="cpu") for case in base_cases]
    first = base_cases[0]
    cases.append(dict(first, dtype=torch.float32, device="cpu", label=f"{first['label']}, float32 inputs"))
    for device in extra_devices():
        cases.append(dict(first, dtype=torch.float64, device=device, label=f"{first['label']}, on {device}"))
    return cases


class Checker:
    """Collects what is wrong with one student function across all hidden cases, then reports it once."""

    def __init__(self, name: str, namespace):
        self.name = name
        self.student = as_student(namespace)
        self.problems: dict[str, dict] = {}  # problem text -> the cases it was seen in and the largest error
        self.cases_run = 0
        self.cases_failed = 0
        self._case_failed = False

    # -- finding the student's object -------------------------------------------------------------------------
    def student_object(self, name: str | None = None):
        name = name or self.name
        try:
            defined = name in self.student
        except ProtocolBroken as exc:
            raise HiddenTestFailure(f"{name} could not be looked up: {exc}.") from None
        if not defined:
            raise HiddenTestFailure(
                f"{name} is not defined. Run the cell that defines it and make sure that cell finishes without an "
                f"error (a syntax error or a missing implementation leaves it undefined)."
            )
        try:
            return self.student[name]
        except ProtocolBroken as exc:
            raise HiddenTestFailure(f"{name} could not be looked up: {exc}.") from None

    def student_function(self, name: str | None = None) -> Callable:
        name = name or self.name
        fn = self.student_object(name)
        if not self.student.lookup(name).get("callable"):
            raise HiddenTestFailure(f"{name} should be a function, but it is a "
                                    f"{self.student.lookup(name).get('type', 'value')}.")
        return fn

    # -- recording --------------------------------------------------------------------------------------------
    def fail(self, text: str, label: str | None = None, error: float | None = None) -> None:
        """Record a problem; the same problem seen in several cases is reported once, with those cases."""
        self._case_failed = True
        seen = self.problems.setdefault(text, {"labels": [], "error": None})
        if label and label not in seen["labels"]:
            seen["labels"].append(label)
        if error is not None:
            seen["error"] = max(seen["error"] or 0.0, error)

    @contextlib.contextmanager
    def case(self, label: str) -> Iterator[str]:
        """One hidden case; a StudentCallFailed inside it ends the case, not the check."""
        self.cases_run += 1
        self._case_failed = False
        try:
            with torch.random.fork_rng(devices=[]):
                yield label
        except StudentCallFailed:
            pass
        if self._case_failed:
            self.cases_failed += 1

    def call(self, fn: Callable, *args, label: str, hint_on_error: str = ""):
        """Call student code (in its kernel: quietly, with a time limit); record and re-raise as StudentCallFailed
        when it does not return a result. A kernel that stops answering (KernelLost) ends the whole check."""
        name = getattr(fn, "__name__", self.name)
        try:
            return fn(*args)
        except StudentTimedOut:
            self.fail(f"{name} did not return within {student_calls.CALL_TIME_LIMIT_S:g} s: look for a loop that "
                      f"never ends.",
                      label)
        except StudentRaised as exc:
            if exc.type_name == "NotImplementedError":
                self.fail(f"{name} is not implemented yet: it still raises NotImplementedError.")
            else:  # the student's bug, reported in words; a traceback would show test code
                text = f"{name} raised {exc.type_name}: {exc.message.rstrip('.')}."
                self.fail(text + (f" {hint_on_error}" if hint_on_error else ""), label)
        except ProtocolBroken as exc:
            self.fail(f"{name}: {exc}.", label)
        raise StudentCallFailed()

    # -- comparing --------------------------------------------------------------------------------------------
    def pair(self, result, names: str, label: str):
        """The two parts of a result that must be a pair such as (hs, h_T); ends the case if it is not one."""
        if not (isinstance(result, (tuple, list)) and len(result) == 2):
            length = f" of length {len(result)}" if isinstance(result, (tuple, list)) else ""
            self.fail(f"{self.name} should return a pair {names}, but it returned {type(result).__name__}{length}.",
                      label)
            raise StudentCallFailed()
        return result

    def expect_tensor(self, got, want: torch.Tensor, what: str, label: str,
                      mistakes: Iterable[tuple[str, Callable[[], torch.Tensor]]] = (),
                      shape_hint: str = "") -> bool:
        """got must match want in type, shape, dtype, device and values. On a value mismatch, name the first
        known mistake whose output got matches, so the student learns what to look at."""
        if not isinstance(got, torch.Tensor):
            self.fail(f"{what} should be a torch.Tensor, but it is a {type(got).__name__}.", label)
            return False
        if type(got) not in (torch.Tensor, torch.nn.Parameter):  # a subclass could answer the comparison itself
            self.fail(f"{what} should be a plain torch.Tensor, but it is a {type(got).__name__}, a Tensor subclass.",
                      label)
            return False
        if tuple(got.shape) != tuple(want.shape):
            self.fail(f"{what} has shape {tuple(got.shape)} but should have shape {tuple(want.shape)}."
                      + (f" {shape_hint}" if shape_hint else ""), label)
            return False
        if got.dtype != want.dtype:
            self.fail(f"{what} has dtype {got.dtype} but the inputs were {want.dtype}: build new tensors with the "
                      f"inputs' dtype and device (e.g. torch.zeros(..., dtype=x.dtype, device=x.device)).", label)
            return False
        if got.device != want.device:
            self.fail(f"{what} is on {got.device.type} but the inputs were on {want.device.type}: keep results on "
                      f"the inputs' device.", label)
            return False
        if close(got, want):
            return True
        error = (got.detach().double().cpu() - want.detach().double().cpu()).abs().max().item()
        message = f"{what}: the shape is right but the values are wrong."
        for description, make_wrong in mistakes:
            try:
                wrong = make_wrong()
            except Exception:  # a mistake that is impossible for these shapes cannot be what the student did
                continue
            if tuple(wrong.shape) == tuple(got.shape) and close(got, wrong.to(got.dtype)):
                message += f" It looks like {description}."
                break
        self.fail(message, label, error)
        return False

    def expect_unchanged(self, before: Sequence[torch.Tensor], after: Sequence[torch.Tensor],
                         names: Sequence[str], label: str) -> None:
        """An input edited in place ends the case: comparing results made from changed inputs would mislead."""
        changed = [n for b, a, n in zip(before, after, names) if isinstance(b, torch.Tensor)
                   and (getattr(a, "wire_changed", False) or not torch.equal(b, a))]
        if changed:
            self.fail(f"{self.name} changed its input {', '.join(changed)} in place: the caller's tensors must stay "
                      f"as they were; compute new tensors instead of writing into (or +=-ing) an input.", label)
            raise StudentCallFailed()

    def finish(self) -> None:
        """Raise one HiddenTestFailure listing every problem found, or return quietly if there were none."""
        if not self.problems:
            return
        lines = [f"{self.name} did not pass the hidden tests ({self.cases_failed} of {self.cases_run} hidden cases "
                 f"failed). What is wrong:"]
        for text, seen in self.problems.items():
            where = ""
            if seen["labels"]:
                n = len(seen["labels"])
                where = f" [{n} case{'s' if n > 1 else ''}: {' | '.join(seen['labels'])}"
                where += f"; largest error {seen['error']:.1e}]" if seen["error"] is not None else "]"
            lines.append(f"  - {text}{where}")
        raise HiddenTestFailure("\n".join(lines))


def close(got: torch.Tensor, want: torch.Tensor) -> bool:
    """True when got matches want within the tolerance of got's dtype (compared in float64 on the CPU)."""
    tol = TOLERANCE.get(got.dtype, TOLERANCE[torch.float32])
    g, w = got.detach().double().cpu(), want.detach().double().cpu()
    if g.shape != w.shape:
        return False
    if not (torch.isfinite(g).all() and torch.isfinite(w).all()):
        return False
    return bool(((g - w).abs() <= tol["atol"] + tol["rtol"] * w.abs()).all())


def clones(tensors: Sequence) -> list:
    return [t.detach().clone() if isinstance(t, torch.Tensor) else t for t in tensors]
