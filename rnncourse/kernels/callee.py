"""The kernel's side of the grading call protocol: the grader asks, this calls the student's code, and answers in data.

Hidden tests do not run in the student's kernel. The grader chooses the inputs, asks the kernel to call a student's
function by name on them, gets plain data back (``rnncourse.kernels.wire``) and judges it in its own process. This
module is all of the grading machinery a kernel holds: no test, no reference, no expected value, no secret. Nothing
it does is trusted: whatever the kernel answers is data that the grader checks.

Requests (dicts) and what they answer:

* ``{"op": "lookup", "name": n}``: whether the notebook defines ``n``, what it is, and its value as data (objects
  that cannot cross stay in the kernel as handles);
* ``{"op": "call", "target": name or handle, "method": m or None, "args": [...], "kwargs": {...}, "proxies": [...],
  "limit": seconds, "args_back": bool}``: call it (quietly, with a time limit, the student's random streams left
  as they were); while it runs, the global names in ``proxies`` (earlier graded functions) are stand-ins that ask
  the grader, so a function is graded on its own and no reference code enters the kernel. The answer holds the
  result and, with ``args_back``, the arguments as they are afterwards (in-place edits show);
* ``{"op": "helper", "name": n, "args": [...]}``: one of ``HELPERS`` (recording objects for behaviour checks, a
  module's description): what they return, with modules as data;
* ``{"op": "end"}``: the session is over.

A call may also ask for ``"seed"`` (the kernel's CPU generator seeded for the call, then restored), ``"no_grad"``,
``"inference_mode"`` (autograd cannot record at all: a hand-written backward pass must not lean on it), and
``"backward_args"`` (after the call, backpropagate through the arguments' graphs and say whether that worked:
whether the student's code left the caller's graph intact).

While a call runs, a stand-in sends ``{"callback": name, "args": [...]}`` and waits for ``{"result": ...}`` or
``{"error": text}``. In the kernel, messages travel on a Unix socket the grader opens for the session (``serve``);
in-process (the test harness, an instructor running the source notebook) the grader talks to a ``Callee`` directly.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import json
import os
import shutil
import signal
import socket
import stat
import tempfile
import threading
import types
import warnings

import torch

from rnncourse.kernels import recorders, wire

def describe_module(module) -> dict:
    """A model as data: its mode, parameter count, dtype and device, and its PyTorch recurrent layers and cells
    (``units``) and linear layers (``heads``) in registration order, each as a module the grader can rebuild."""
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"a {type(module).__name__} is not an nn.Module")
    first = next(iter(module.parameters()), None)
    recurrent = (torch.nn.RNNBase, torch.nn.RNNCellBase)
    return {"training": module.training, "parameter_count": sum(p.numel() for p in module.parameters()),
            "dtype": None if first is None else first.dtype, "device": None if first is None else first.device.type,
            "units": [m for m in module.modules() if isinstance(m, recurrent) and wire.module_kind(m)],
            "other_units": [type(m).__name__ for m in module.modules()
                            if isinstance(m, recurrent) and not wire.module_kind(m)],
            "heads": [m for m in module.modules() if isinstance(m, torch.nn.Linear)]}


_SCRATCH_FOLDERS: list[str] = []


def scratch_path(name: str) -> str:
    """A path for a file named `name` in a fresh folder of the kernel's own temporary space (checkpoint checks). The
    folders go when the process exits: a kernel's /tmp goes with its sandbox anyway, but the in-process harness and an
    instructor's own run share the machine's /tmp. (Not named rnncourse-*: those are the runner's, swept by pid.)"""
    if not _SCRATCH_FOLDERS:
        atexit.register(_remove_scratch_folders)
    _SCRATCH_FOLDERS.append(tempfile.mkdtemp(prefix="section09-check-"))
    return os.path.join(_SCRATCH_FOLDERS[-1], os.path.basename(str(name)) or "file")


def _remove_scratch_folders() -> None:
    for folder in _SCRATCH_FOLDERS:
        shutil.rmtree(folder, ignore_errors=True)


class NotARegularFile(OSError):
    """read_bytes was pointed at a directory, a FIFO, a device (through a link, say): not a checkpoint file."""


class FileTooLarge(OSError):
    """read_bytes was pointed at a file larger than the wire carries."""


def read_bytes(path: str) -> torch.Tensor:
    """A regular file's bytes as a uint8 tensor (data the wire carries), for the grader to read with its own safe
    loader. Opened without blocking and checked first, so a FIFO, /dev/zero or a 500 MB file is refused at once
    (NotARegularFile, FileTooLarge) instead of hanging or filling the kernel's memory and the grader's socket."""
    fd = os.open(str(path), os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotARegularFile(f"{os.path.basename(str(path))} is not a regular file")
        data = f.read(wire.MAX_TENSOR_BYTES + 1)
    if len(data) > wire.MAX_TENSOR_BYTES:
        raise FileTooLarge(f"the file is larger than {wire.MAX_TENSOR_BYTES >> 20} MiB")
    return torch.frombuffer(bytearray(data), dtype=torch.uint8).clone() if data else torch.empty(0, dtype=torch.uint8)


def write_bytes(path: str, data: torch.Tensor) -> str:
    """Write a uint8 tensor's bytes to a file (a checkpoint the grader made); returns the path."""
    with open(str(path), "wb") as f:
        f.write(data.to(torch.uint8).numpy().tobytes())
    return str(path)


def state_dict_of(module) -> dict:
    """A module's state_dict as {name: tensor}, detached copies on their own device."""
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"a {type(module).__name__} is not an nn.Module")
    return {str(k): v.detach().clone() for k, v in module.state_dict().items()}


HELPERS = {"make_probe": recorders.make_probe, "recordings": recorders.recordings, "describe": describe_module,
           "scratch_path": scratch_path, "read_bytes": read_bytes, "write_bytes": write_bytes,
           "state_dict": state_dict_of}


class _CallTimedOut(BaseException):
    """Raised inside student code that runs too long (a BaseException, so `except Exception` cannot eat it)."""


@contextlib.contextmanager
def time_limit(seconds: float):
    """SIGALRM cuts off a call that runs past `seconds` (the kernel runs calls in its main thread). The grader has its
    own deadline too, for code that blocks the alarm."""
    if threading.current_thread() is not threading.main_thread() or not seconds:
        yield
        return

    def on_alarm(signum, frame):
        raise _CallTimedOut()

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def quiet():
    """Prints, warnings and stderr of student code stay out of the cell (and the grader's IOPub stream)."""
    sink = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        warnings.simplefilter("ignore")
        yield


def _first_line(exc: BaseException, limit: int = 300) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else ""
    return line if len(line) <= limit else line[:limit] + "..."


class Callee:
    """Answers the grader's requests against one notebook namespace."""

    def __init__(self, namespace: dict, ask):
        self.namespace = namespace
        self.ask = ask  # sends a message to the grader and returns its answer (a dict)
        self.kept: dict[int, object] = {}

    # -- objects that stay here ---------------------------------------------------------------------------------
    def keep(self, obj) -> wire.Handle:
        number = len(self.kept) + 1
        self.kept[number] = obj
        return wire.Handle(number, type(obj).__name__)

    def resolve(self, number: int):
        if number not in self.kept:
            raise wire.WireError(f"no kernel object {number}")
        return self.kept[number]

    def encode(self, value):
        return wire.encode(value, unknown=self.keep)

    def decode(self, data):
        return wire.decode(data, handle=self.resolve)

    # -- requests -------------------------------------------------------------------------------------------------
    def handle(self, request: dict) -> dict:
        answer = self._handle(request)
        if wire.too_large(answer):  # the grader would refuse it unread, and the session would lose its footing
            return {"raised": {"type": "WireError", "message": f"the answer is larger than the "
                                                              f"{wire.MAX_MESSAGE_BYTES >> 20} MiB the grader reads"}}
        return answer

    def _handle(self, request: dict) -> dict:
        try:
            op = request.get("op")
            if op == "lookup":
                return self._lookup(str(request["name"]))
            if op == "call":
                return self._call(request)
            if op == "helper":
                helper = HELPERS[str(request["name"])]
                args = self.decode(request.get("args", {"$list": []}))
                answer = self._guarded(lambda: helper(*args), 30.0, modules=True)
                return answer
            return {"error": f"unknown request {op!r}"}
        except wire.WireError as exc:
            return {"error": str(exc)}

    def _target(self, target):
        if isinstance(target, int):
            return self.resolve(target)
        return self.namespace[str(target)]

    def _lookup(self, name: str) -> dict:
        if name not in self.namespace:
            return {"defined": False}
        obj = self.namespace[name]
        is_class = isinstance(obj, type)
        return {"defined": True, "type": type(obj).__name__, "callable": callable(obj), "is_class": is_class,
                "is_module_class": is_class and issubclass(obj, torch.nn.Module),
                "is_module": isinstance(obj, torch.nn.Module), "value": self.encode(obj)}

    def _call(self, request: dict) -> dict:
        fn = self._target(request["target"])
        if request.get("method"):
            fn = getattr(fn, str(request["method"]))
        args = self.decode(request.get("args", {"$list": []}))
        kwargs = self.decode(request.get("kwargs", {"$dict": []}))
        seed, no_grad = request.get("seed"), bool(request.get("no_grad"))
        inference = bool(request.get("inference_mode"))

        def call():
            if isinstance(seed, int):
                torch.default_generator.manual_seed(seed)
            grad_mode = torch.inference_mode() if inference else torch.no_grad() if no_grad else None
            with grad_mode or contextlib.nullcontext():
                return fn(*args, **kwargs)
        with self._stand_ins(list(request.get("proxies", []))):
            answer = self._guarded(call, float(request.get("limit", 10.0)))
        if "result" in answer:
            if request.get("args_back"):
                answer["args_after"] = wire.encode(list(args), self.keep, modules=True)
            if request.get("backward_args"):
                answer["backward"] = self._backward_through(args)
        return answer

    def _backward_through(self, args) -> str:
        """Whether the arguments' graphs still backpropagate: "ok", "none" (no graph), or the error's name."""
        with_graph = [t for t in recorders.tensors_of(args) if t.grad_fn is not None]
        if not with_graph:
            return "none"
        try:
            with quiet():
                sum(t.sum() for t in with_graph).backward()
        except Exception as exc:
            return type(exc).__name__
        return "ok"

    def _guarded(self, thunk, limit: float, modules: bool = False) -> dict:
        try:
            with quiet(), time_limit(limit), torch.random.fork_rng(devices=[]):
                value = thunk()
        except _CallTimedOut:
            return {"timed_out": True}
        except BaseException as exc:  # the student's error, reported as data; SystemExit and KeyboardInterrupt too,
            # which would otherwise end the session (the grader's own interrupt still reads as a time-out there)
            return {"raised": {"type": type(exc).__name__, "message": _first_line(exc)}}
        try:
            return {"result": wire.encode(value, self.keep, modules=modules)}
        except wire.WireError as exc:
            return {"raised": {"type": "WireError", "message": f"the result cannot be sent to the grader: {exc}"}}
        except Exception as exc:  # noqa: BLE001 - a sparse tensor, memory for a huge one: the result, not the session
            return {"raised": {"type": "WireError", "message": f"the result cannot be sent to the grader "
                                                              f"({type(exc).__name__}: {_first_line(exc, 200)})"}}

    @contextlib.contextmanager
    def _stand_ins(self, names: list):
        missing = object()
        saved = {name: self.namespace.get(name, missing) for name in names}
        for name in names:
            self.namespace[name] = self._stand_in(name)
        try:
            yield
        finally:
            for name, value in saved.items():
                if value is missing:
                    self.namespace.pop(name, None)
                else:
                    self.namespace[name] = value

    def _stand_in(self, name: str):
        def stand_in(*args):
            args = [wire.Iterated(a) if isinstance(a, types.GeneratorType) else a for a in args]
            answer = self.ask({"callback": name, "args": self.encode(args)})
            if "result" not in answer:
                raise RuntimeError(str(answer.get("error", "the grader did not answer")))
            wire.write_back(args, self.decode(answer.get("args_after", {"$list": []})))  # in-place effects
            return self.decode(answer["result"])
        stand_in.__name__ = name
        return stand_in


def serve(path: str) -> None:
    """Answer the grader's requests until it says "end" (run by the grader as a silent cell of the kernel). Messages
    are JSON, each preceded by its length in 8 bytes, on a Unix socket the grader listens on at `path`."""
    from IPython import get_ipython

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.connect(path)
        stream = connection.makefile("rwb")

        def ask(message: dict) -> dict:
            data = json.dumps(message).encode()
            stream.write(len(data).to_bytes(8, "big") + data)
            stream.flush()
            size = int.from_bytes(stream.read(8), "big")
            return json.loads(stream.read(size))

        callee = Callee(get_ipython().user_ns, ask)
        answer = {"ready": True}
        while True:
            request = ask(answer)
            if request.get("op") == "end":
                return
            answer = callee.handle(request)
