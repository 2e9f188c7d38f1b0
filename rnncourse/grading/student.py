"""The student's notebook as the hidden checks see it: names to look up and functions to call, in another process.

Checks run in the grader. ``Student`` stands for the notebook under test: ``name in student`` and ``student[name]``
look names up, and a ``StudentFunction`` calls the student's code where it lives, through a *channel*:

* ``rnncourse.kernels.channel.KernelChannel`` (autograde): the student's sandboxed kernel, over Jupyter messages;
* ``LocalChannel`` (the in-process test harness, an instructor running a source notebook): a namespace in this
  process, with every message still encoded and decoded, so both paths see the same data.

Arguments and results cross as data (``rnncourse.kernels.wire``): tensors as bytes, objects the kernel keeps as
handles (``RemoteObject``). After a call, the arguments come back as the student's code left them and are written
into the caller's tensors, so a check sees in-place edits as it would in one process. Earlier graded functions that
a function calls (``substituted``) answer from the grader while it runs.
"""

from __future__ import annotations

import contextlib
import json
import time
import types
from collections.abc import Callable

from rnncourse.kernels import wire
from rnncourse.kernels.callee import Callee

CALL_TIME_LIMIT_S = 10.0


class StudentError(Exception):
    """A call into student code did not return a result."""


class StudentRaised(StudentError):
    def __init__(self, type_name: str, message: str):
        super().__init__(f"{type_name}: {message}")
        self.type_name, self.message = str(type_name)[:100], str(message)[:400]


class StudentTimedOut(StudentError):
    pass


class OutOfTime(StudentError):
    """The hidden tests of one cell used up their time together (each call has its own limit too)."""


class KernelLost(StudentError):
    """The kernel stopped answering (it died, or ignored the time limit and the interrupt); it has been stopped."""


class ProtocolBroken(StudentError):
    """The kernel answered something that is not the protocol's data (the notebook broke or replaced it)."""


def _through_json(message: dict) -> dict:
    return json.loads(json.dumps(message))


class LocalChannel:
    """The protocol against a namespace in this process: the same requests, answers and encodings as a kernel."""

    def __init__(self, namespace: dict):
        self.callee = Callee(namespace, ask=self._ask)
        self._on_callback: Callable[[dict], dict] | None = None

    def request(self, message: dict, on_callback: Callable[[dict], dict], limit: float) -> dict:
        """Answer one request; here the kernel side's own alarm enforces the time limit."""
        self._on_callback = on_callback
        return _through_json(self.callee.handle(_through_json(message)))

    def _ask(self, message: dict) -> dict:
        return _through_json(self._on_callback(_through_json(message)))


class Student:
    """The notebook under test. Checks call ``student[name](...)`` and get data back, wherever the code runs."""

    def __init__(self, channel, time_budget_s: float | None = None):
        self.channel = channel
        self.deadline = None if time_budget_s is None else time.monotonic() + time_budget_s
        self.time_budget_s = time_budget_s
        self._stand_ins: dict[str, Callable] = {}
        self._lookups: dict[str, dict] = {}
        self._options: dict = {}

    # -- names ------------------------------------------------------------------------------------------------
    def lookup(self, name: str) -> dict:
        if name not in self._lookups:
            self._lookups[name] = self._request({"op": "lookup", "name": name})
        return self._lookups[name]

    def __contains__(self, name: str) -> bool:
        return bool(self.lookup(name).get("defined"))

    def __getitem__(self, name: str):
        info = self.lookup(name)
        if not info.get("defined"):
            raise KeyError(name)
        value = self.decode(info.get("value"))
        if isinstance(value, RemoteObject):
            value.__name__ = name
        return value

    # -- calls ------------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def substituting(self, stand_ins: dict[str, Callable]):
        """While inside, the student's code that calls these global names gets the grader's functions instead."""
        saved = self._stand_ins
        self._stand_ins = dict(saved, **stand_ins)
        try:
            yield
        finally:
            self._stand_ins = saved

    @contextlib.contextmanager
    def calling(self, **options):
        """Options for the calls made inside: ``seed`` (the kernel's CPU generator seeded for each call, then
        restored), ``no_grad``, ``inference_mode``, ``backward_args`` (see rnncourse.kernels.callee)."""
        saved = self._options
        self._options = dict(saved, **options)
        try:
            yield
        finally:
            self._options = saved

    def call(self, target: int | str, args: tuple, kwargs: dict | None = None, method: str | None = None,
             limit: float | None = None):
        """Call the student's object. Returns the result and the call's answer, whose "args_after" holds the
        arguments as the call left them (already written into `args`) and "backward" what backward_args found."""
        limit = CALL_TIME_LIMIT_S if limit is None else limit  # read now: tests shorten it
        args = [wire.Iterated(a) if isinstance(a, types.GeneratorType) else a for a in args]
        request = {"op": "call", "target": target, "method": method, "args": wire.encode(args),
                   "kwargs": wire.encode(dict(kwargs or {})), "proxies": sorted(self._stand_ins),
                   "limit": limit, "args_back": True, **self._options}
        answer = self._request(request, limit)
        after = self.decode(answer.get("args_after", {"$list": []}))
        if not isinstance(after, list) or len(after) != len(args):
            raise ProtocolBroken("the kernel did not return the call's arguments")
        wire.write_back(args, after)
        answer["args_after"] = after
        return self.decode(answer["result"]), answer

    def helper(self, name: str, *args, limit: float = 30.0):
        """One of the kernel's helpers (rnncourse.kernels.callee.HELPERS): recording objects, a model's
        description."""
        return self.decode(self._request({"op": "helper", "name": name, "args": wire.encode(list(args))},
                                         limit)["result"])

    # -- messages -----------------------------------------------------------------------------------------------
    def decode(self, data):
        try:
            return wire.decode(data, handle=lambda number: RemoteObject(self, number))
        except wire.WireError as exc:
            raise ProtocolBroken(f"the kernel sent data the grader cannot read ({exc})") from None

    def _request(self, message: dict, limit: float = 10.0) -> dict:
        if self.deadline is not None:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise OutOfTime(f"the hidden tests of this cell used up their {self.time_budget_s:g} s")
            limit = min(limit, remaining)
            if "limit" in message:
                message["limit"] = limit
        answer = self.channel.request(message, self._callback, limit)
        if not isinstance(answer, dict):
            raise ProtocolBroken("the kernel's answer is not a message")
        if answer.get("timed_out"):
            raise StudentTimedOut()
        if "raised" in answer:
            raised = answer["raised"] if isinstance(answer["raised"], dict) else {}
            raise StudentRaised(raised.get("type", "Exception"), raised.get("message", ""))
        if "error" in answer:
            raise ProtocolBroken(f"the kernel could not follow the grader ({str(answer['error'])[:200]})")
        if message.get("op") != "lookup" and "result" not in answer:
            raise ProtocolBroken("the kernel's answer holds no result")
        return answer

    def _callback(self, message: dict) -> dict:
        """A stand-in in the student's code asks for an earlier graded function's answer."""
        name = message.get("callback")
        if name not in self._stand_ins:
            return {"error": f"{name} is not available here"}
        try:
            args = wire.decode(message.get("args"))
            if not isinstance(args, list):
                raise wire.WireError("arguments are not a list")
            result = self._stand_ins[name](*args)
            return {"result": wire.encode(result), "args_after": wire.encode(args)}
        except Exception as exc:  # a reference given wrong inputs by the student's code: the student's error
            return {"error": f"{name} raised {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"}


class RemoteObject(wire.Handle):
    """Something the student's code made or defined that stays in the kernel: call it, read its attributes."""

    def __init__(self, student: Student, number: int):
        super().__init__(number)
        self._student = student
        self.__name__ = "object"
        self.last_answer: dict = {}

    def __call__(self, *args, **kwargs):
        result, self.last_answer = self._student.call(self.number, args, kwargs)
        return result

    def method(self, name: str, *args, **kwargs):
        """Call one of the object's methods (one round trip)."""
        result, self.last_answer = self._student.call(self.number, args, kwargs, method=name)
        return result


def as_student(namespace) -> Student:
    """A Student for what a check is given: a Student already, or a notebook's globals() (checked in-process)."""
    if isinstance(namespace, Student):
        return namespace
    return Student(LocalChannel(namespace))
