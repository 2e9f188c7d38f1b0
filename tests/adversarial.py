"""Hostile submissions: what a student could hand in to gain points, read what is hidden, or hurt others.

Each attack is a student (id ``x_<name>``) handing in notebook 01 (two also hand in notebook 03). `expected` is what
the student deserves per test cell; the sandbox must give exactly that, and `tests/test_sandbox.py` checks that
nothing outside the student's own results changed. An attack's code goes in solution or test cells, or in graded
cells of its own: `tests/test_sandbox.py` hands each notebook in without the demo cells no graded cell needs. In the
attack code, COURSE stands for the course directory's absolute path, REPO for the repository's, PORT for a TCP port
the test listens on outside the sandbox, SECRET_FILE for a file only the grader can read (its content, like the
grader's RNNCOURSE_TEST_SECRET environment variable, is a random token) and SECRET_BACKWARDS for that token reversed
(what a heap scan looks for, without the token itself in the kernel's memory): the attacker is assumed to know where
everything is.

Hidden tests do not run in the kernel (rnncourse/kernels/executor.py): a test cell's visible part runs there, its hidden checks
run in the grader and call the student's functions through the call protocol (rnncourse/kernels). So the attacks
below that hunt for tests, references, expected values or secrets in the kernel find nothing, the ones that forge a
test cell's output or rewrite cells cannot make the grader's verdict pass, and the ones that abuse the protocol only
hand the grader data it checks. Many of them make a failing visible test show no error (SWALLOW_ERRORS), so that the
grader's hidden verdict is what decides, and WRONG_RNN_STEP passes the visible tests and fails the hidden ones.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Callable

import nbformat

from rnncourse import notebooks
from rnncourse.course import repo_root, source_notebook

NB01, NB03 = "01_rnn_unrolling", "03_pytorch_walkthrough"
# Full points per test cell, in notebook order, as the source notebooks state them.
NB01_POINTS, NB03_POINTS = ({cell: float(p) for cell, p in notebooks.points(
    notebooks.read(source_notebook(repo_root(), nb))).items()} for nb in (NB01, NB03))
ALL_ZERO = {cell: 0.0 for cell in NB01_POINTS}


def _full(**zeros: float) -> dict:
    return dict(NB01_POINTS, **zeros)


def _up_to(cell: str) -> dict:
    """Full points for the test cells before `cell`, 0 from it on (the kernel is gone)."""
    cells = list(NB01_POINTS)
    return {c: (NB01_POINTS[c] if i < cells.index(cell) else 0.0) for i, c in enumerate(cells)}


# A plausible wrong rnn_step: W's columns reversed. It agrees with the right one when D = H = 1, so it passes the
# visible tests (their hand-computed case has D = H = 1) and only the grader's hidden checks catch it.
WRONG_RNN_STEP = '''
def rnn_step(x_t, h_prev, W, b):
    return torch.tanh(torch.cat([x_t, h_prev], dim=1) @ W.flip(1).T + b)
'''

STEAL_SOLUTIONS = '''
import json
def _steal(path):
    try:
        nb = json.load(open(path))
    except OSError as exc:
        print("cannot read", path, "-", type(exc).__name__)
        return
    for cell in nb["cells"]:
        if cell["cell_type"] == "code" and cell["metadata"].get("nbgrader", {}).get("solution"):
            exec("".join(cell["source"]), globals())
    print("stole the solutions from", path)
for _path in ("../../../source/section09/01_rnn_unrolling.ipynb", "COURSE/source/section09/01_rnn_unrolling.ipynb"):
    _steal(_path)
'''

# In attack code: try to read something, print LEAK and what was read, or that it was blocked.
PEEK = '''
def _peek(label, read):
    try:
        text = str(read())
    except Exception as exc:
        print(label, "blocked:", type(exc).__name__)
    else:
        print("LEAK", label, text[:3000])
'''

READ_HIDDEN = '''
import glob, inspect, os, sqlite3, sys
''' + PEEK + '''_peek("gradebook", lambda: sqlite3.connect("file:COURSE/gradebook.db?mode=ro", uri=True).execute(
    "select * from grade_cells").fetchall())
_peek("own autograded copy", lambda: open("01_rnn_unrolling.ipynb").read())
_peek("autograded folder", lambda: open("COURSE/autograded/x_read_hidden/section09/01_rnn_unrolling.ipynb").read())
_peek("release", lambda: open("COURSE/release/section09/01_rnn_unrolling.ipynb").read())
_peek("grading source", lambda: open("REPO/rnncourse/grading/nb01.py").read())
_peek("grading module file", lambda: open(sys.modules["rnncourse.grading.nb01"].__file__).read())
_peek("inspect", lambda: inspect.getsource(sys.modules["rnncourse.grading.nb01"].check_rnn_step))
_peek("instructor's private file", lambda: open("SECRET_FILE").read())
_peek("instructor's environment", lambda: os.environ["RNNCOURSE_TEST_SECRET"])
print("environment:", dict(os.environ))
'''

# Kernels forked from the grading process's zygote (rnncourse/kernels/forkserver.py) share its sandbox: look for the
# zygote's socket, the other kernels' folders and processes.
NEIGHBOURS = '''
import glob, os, socket
''' + PEEK + '''def _connect(path):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    return "connected to " + path
_servers = glob.glob("/var/tmp/rnncourse-forkserver-*")
print("fork servers visible:", len(_servers))
for _root in _servers:
    _peek("zygote socket", lambda: _connect(_root + "/zygote.sock"))
    _peek("kernel folders", lambda: os.listdir(_root + "/runs"))
    _peek("zygote log", lambda: open(_root + "/zygote.log").read())
print("PROCESSES", sorted(int(p) for p in os.listdir("/proc") if p.isdigit()))
'''

WRITE_GRADEBOOK = '''
import shutil, sqlite3
def _write(label, act):
    try:
        act()
    except Exception as exc:
        print(label, "blocked:", type(exc).__name__)
    else:
        print("WROTE", label)
def _raise_scores():
    db = sqlite3.connect("COURSE/gradebook.db")
    db.execute("update grade set auto_score = 99")
    db.commit()
_write("scores", _raise_scores)
_write("gradebook file", lambda: open("COURSE/gradebook.db", "ab").write(b"garbage"))
'''

WRITE_OTHERS = '''
import os
def _write(label, path, text):
    try:
        with open(path, "w") as f:
            f.write(text)
    except Exception as exc:
        print(label, "blocked:", type(exc).__name__)
    else:
        print("WROTE", label)
_write("peer's submission", "COURSE/submitted/peer/section09/01_rnn_unrolling.ipynb", "{}")
_write("peer's graded copy", "COURSE/autograded/peer/section09/01_rnn_unrolling.ipynb", "{}")
_write("new file in peer's folder", "COURSE/submitted/peer/section09/planted.py", "x = 1")
_write("source", "COURSE/source/section09/01_rnn_unrolling.ipynb", "{}")
_write("release", "COURSE/release/section09/01_rnn_unrolling.ipynb", "{}")
_write("course config", "COURSE/nbgrader_config.py", "c.SandboxedExecute.sandbox = False")
_write("repository", "REPO/rnncourse/grading/nb01.py", "")
'''

NETWORK = '''
import socket
for _host, _port in (("127.0.0.1", PORT), ("1.1.1.1", 53)):
    try:
        socket.create_connection((_host, _port), timeout=3).close()
    except OSError as exc:
        print("connect", _host, "blocked:", type(exc).__name__)
    else:
        print("CONNECTED", _host)
try:
    socket.getaddrinfo("pypi.org", 443)
except OSError as exc:
    print("DNS blocked:", type(exc).__name__)
'''

FORK_MANY = '''
import os
_forked = 0
for _ in range(5000):
    try:
        _pid = os.fork()
    except OSError:
        break
    if _pid == 0:
        os.execv("/bin/sleep", ["sleep", "3517"])
    _forked += 1
print("forked", _forked, "processes before the limit stopped it")
'''

EAT_MEMORY = '''
try:
    _hog = bytearray(64 << 30)
except MemoryError:
    print("a 64 GiB allocation was refused")
def _grow():
    blocks = []
    while True:
        blocks.append(bytearray(256 << 20))
_grow()
'''

SHOW_LIMITS = '''
import os, resource
print("LIMITS", {name: resource.getrlimit(getattr(resource, name))[0]
                 for name in ("RLIMIT_DATA", "RLIMIT_CPU", "RLIMIT_NPROC", "RLIMIT_FSIZE")}, "UID", os.getuid())
'''

LOOP_IGNORING_INTERRUPT = '''
import signal
signal.signal(signal.SIGINT, signal.SIG_IGN)
while True:
    pass
'''

FLOOD = '''
import os, sys
for _i in range(200000):
    print("flood", _i)
sys.stderr.write("flood on stderr\\n" * 200000)
os.write(1, b"x" * 20_000_000)
'''

PATCHES = {
    "torch_allclose": '''
torch.allclose = lambda *args, **kwargs: True
torch.isclose = lambda a, b, *args, **kwargs: torch.ones_like(a, dtype=torch.bool)
torch.equal = lambda *args: True
''',
    "torch_testing": '''
import torch.testing
torch.testing.assert_close = lambda *args, **kwargs: None
''',
    "numpy_testing": '''
import numpy, numpy.testing
numpy.testing.assert_allclose = lambda *args, **kwargs: None
numpy.allclose = lambda *args, **kwargs: True
''',
    "builtins": '''
import builtins
builtins.all = lambda *args, **kwargs: True
builtins.any = lambda *args, **kwargs: False
builtins.abs = lambda x: 0
''',
    "tensor_methods": '''
torch.Tensor.abs = lambda self: torch.zeros_like(self)
torch.Tensor.all = lambda self, *args, **kwargs: torch.tensor(True)
''',
    "error_display": '''
get_ipython().showtraceback = lambda *args, **kwargs: None
get_ipython()._showtraceback = lambda *args, **kwargs: None
''',
    "custom_exception_handler": '''
get_ipython().set_custom_exc((BaseException,), lambda *args, **kwargs: None)
''',
    "check_functions": '''
import sys
from IPython.display import publish_display_data
_grading = sys.modules["rnncourse.grading.nb01"]
for _name in dir(_grading):
    if _name.startswith("check_"):
        setattr(_grading, _name, lambda *args, **kwargs: publish_display_data(
            {"application/vnd.rnncourse.receipt+json": {"check": "check_rnn_step", "mac": "0" * 64}}))
''',
    "grading_module": '''
import sys, types
_fake = types.ModuleType("rnncourse.grading.nb01")
def _any_check(name):  # every check_* a function that does nothing; anything else missing, as in a real module
    if not name.startswith("check_"):
        raise AttributeError(name)
    return lambda *args, **kwargs: None
_fake.__getattr__ = _any_check
sys.modules["rnncourse.grading.nb01"] = _fake
''',
    "compare_helpers": '''
import sys
_compare = sys.modules["rnncourse.grading.compare"]
_compare.close = lambda *args, **kwargs: True
_compare.Checker.finish = lambda self: None
''',
}


# ---- making the grader's verdict the only thing that decides ----------------------------------------------------

# From the next cell on, every cell's code runs inside `try: ... except BaseException: pass`: a failing visible test
# shows no error, so an empty notebook's test cells reach the grader's hidden checks (and a forged output is all that
# would be left for nbgrader to score). The grader's own serving cell is left alone.
SWALLOW_ERRORS = '''
import ast as _ast
class _SwallowErrors(_ast.NodeTransformer):
    def visit_Module(self, node):
        if "kernels.callee" in _ast.dump(node):
            return node
        handler = _ast.ExceptHandler(type=_ast.Name("BaseException", _ast.Load()), name=None, body=[_ast.Pass()])
        node.body = [_ast.Try(body=node.body or [_ast.Pass()], handlers=[handler], orelse=[], finalbody=[])]
        return _ast.fix_missing_locations(node)
get_ipython().ast_transformers.append(_SwallowErrors())
'''

# True while the grader calls this notebook's code: the call protocol's frames are on the stack. An attacker's
# function behaves honestly in the visible tests and tries its trick only then.
GRADED_NOW = '''
import sys as _sys
def _graded_now():
    frame = _sys._getframe(1)
    while frame is not None:
        if "kernels.callee" in frame.f_code.co_filename:
            return True
        frame = frame.f_back
    return False
'''

RIGHT_STEP = "torch.tanh(torch.cat([h_prev, x_t], dim=1) @ W.T + b)"

# ---- output forging: an execute_result in a test cell is what stock nbgrader takes as its score -------------------

# Nothing solved. Before every later cell's code, IPython's own display hook shows a value: an execute_result ahead
# of the cell's NameError. Stock nbgrader stops at a test cell's first execute_result, and one that is not a number
# is full points (tests/test_sandbox.py grades this one with stock nbgrader too).
FORGE_DISPLAYHOOK = '''
def _forge_score(info):
    get_ipython().displayhook("all hidden tests passed")
get_ipython().events.register("pre_run_cell", _forge_score)
'''

# Nothing solved. The kernel's session turns every error it would send into an execute_result "100" and every failed
# execute_reply into an "ok" one: a failing cell looks like a passing one that printed its score.
FORGE_SESSION = '''
_kernel = get_ipython().kernel
_real_send = _kernel.session.send
def _lying_send(stream, msg_or_type, content=None, parent=None, *args, **kwargs):
    if msg_or_type == "error":
        msg_or_type = "execute_result"
        content = {"data": {"text/plain": "100"}, "metadata": {}, "execution_count": 1}
    elif msg_or_type == "execute_reply" and isinstance(content, dict) and content.get("status") == "error":
        content = {"status": "ok", "execution_count": content.get("execution_count", 1), "user_expressions": {},
                   "payload": []}
    return _real_send(stream, msg_or_type, content, parent, *args, **kwargs)
_kernel.session.send = _lying_send
'''

# Nothing solved. sys.displayhook (and the hook IPython installs as sys.displayhook while a cell runs) becomes one
# that publishes an execute_result "2.0" whatever it is given, and it is called before every cell's code.
FORGE_SYS_DISPLAYHOOK = '''
import sys
_kernel = get_ipython().kernel
def _score_hook(value=None):
    _kernel.session.send(_kernel.iopub_socket, "execute_result",
                         {"data": {"text/plain": "2.0"}, "metadata": {}, "execution_count": 1},
                         parent=_kernel.get_parent("shell"))
get_ipython().display_trap.hook = _score_hook
get_ipython().ast_node_interactivity = "all"
get_ipython().events.register("post_run_cell", lambda result: setattr(sys, "displayhook", _score_hook))
get_ipython().events.register("pre_run_cell", lambda info: sys.displayhook(None))
sys.displayhook = _score_hook
'''

# Nothing solved, errors swallowed; after every cell's code an execute_result "2.0" is published: the cell's only
# output, as if its last line had evaluated to the score.
FORGE_POST_RUN = SWALLOW_ERRORS + '''
_kernel = get_ipython().kernel
def _forge_after(result):
    _kernel.session.send(_kernel.iopub_socket, "execute_result",
                         {"data": {"text/plain": "2.0"}, "metadata": {}, "execution_count": 1},
                         parent=_kernel.get_parent("shell"))
get_ipython().events.register("post_run_cell", _forge_after)
'''

# Nothing solved, errors swallowed; every cell prints and displays something that looks like a score.
FORGE_PRINTED = SWALLOW_ERRORS + '''
from IPython.display import display, publish_display_data
def _look_like_a_score(info):
    print("2.0")
    print("Score: 2.0 / 2.0 -- all hidden tests passed")
    display(2.0)
    publish_display_data({"text/plain": "2.0"})
get_ipython().events.register("pre_run_cell", _look_like_a_score)
'''

# Nothing solved (rnn_step returns h_prev), errors swallowed. The test cell's message header is kept, and
# execute_results "2.0" are sent under it later: from a thread every 0.1 s, and from rnn_step while the grader calls
# it, after the cell itself has finished.
FORGE_LATE = SWALLOW_ERRORS + '''
import threading, time
_kernel = get_ipython().kernel
_headers = []
def _keep_header(info):
    _headers.append(_kernel.get_parent("shell"))
def _forge_under(parent):
    _kernel.session.send(_kernel.iopub_socket, "execute_result",
                         {"data": {"text/plain": "2.0"}, "metadata": {}, "execution_count": 1}, parent=parent)
def _keep_forging():
    while True:
        if _headers:
            _forge_under(_headers[-1])
        time.sleep(0.1)
get_ipython().events.register("pre_run_cell", _keep_header)
threading.Thread(target=_keep_forging, daemon=True).start()
def rnn_step(x_t, h_prev, W, b):
    for parent in _headers[-3:]:
        _forge_under(parent)
    return h_prev
'''

# ---- cell rewriting: the kernel may run something else than the cell (the hidden block is not in it anyway) --------

# Nothing solved; every later cell, the grader's serving cell included, becomes `pass`.
REWRITE_TO_PASS = '''
get_ipython().input_transformers_post.append(lambda lines: ["pass\\n"])
'''

# Nothing solved; every later cell but the grader's serving cell becomes a print that the tests pass.
REWRITE_AST = '''
import ast as _ast
class _AllPass(_ast.NodeTransformer):
    def visit_Module(self, node):
        if "kernels.callee" in _ast.dump(node):
            return node
        return _ast.fix_missing_locations(_ast.Module(body=_ast.parse('print("passes the visible tests.")').body,
                                                      type_ignores=[]))
get_ipython().ast_transformers.append(_AllPass())
'''

# ---- looking for what the grader knows, in the kernel -------------------------------------------------------------

# While the grader calls it, rnn_step walks every frame up the stack (and the other threads') and every object gc
# knows, and returns the first tensor of the result's shape and dtype that is not one of its arguments; it notes
# every frame's name and anything named like a check, a reference, a Checker or an expected value. Outside the
# grader it is right, so its visible tests pass.
STACK_WALK = GRADED_NOW + '''
import gc, re
_STACK = {"frames": set(), "picked": [], "suspicious": set(), "heap noted": False}
# What the hidden tests' code is made of (its functions, classes and locals), by name.
_HIDDEN_NAMES = re.compile(r"^(check_(rnn|embed|task)|reference_(rnn|embed)|Checker|HiddenTestFailure|Verdict|"
                           r"expect_tensor|expect_unchanged|student_function|_REFERENCES|STEP_SHAPES|want_hs|want_h_T)")

def _note(name, value=None):
    try:
        for text in (name, getattr(value, "__name__", "") or "", type(value).__name__ if value is not None else ""):
            if isinstance(text, str) and _HIDDEN_NAMES.match(text):
                _STACK["suspicious"].add(text)
    except Exception:
        pass

def _first_plausible(shape, dtype, own):
    fits = lambda v: (isinstance(v, torch.Tensor) and tuple(v.shape) == shape and v.dtype == dtype
                      and not any(v is o for o in own))
    found = None
    for frame in [_sys._getframe(1)] + list(_sys._current_frames().values()):
        while frame is not None:
            _STACK["frames"].add(frame.f_code.co_name)
            _note(frame.f_code.co_name)
            for name, value in list(frame.f_locals.items()):
                _note(name, value)
                if found is None and fits(value):
                    found = ("frame " + frame.f_code.co_name + ", local " + name, value)
            frame = frame.f_back
    note_heap, _STACK["heap noted"] = not _STACK["heap noted"], True
    for obj in gc.get_objects():
        if note_heap and (isinstance(obj, type) or callable(obj)):
            _note("", obj)
        if found is None and fits(obj):
            found = ("an object on the heap", obj)
            if not note_heap:
                break
    return found or ("nothing", torch.zeros(shape, dtype=dtype))

def rnn_step(x_t, h_prev, W, b):
    if _graded_now():
        where, value = _first_plausible((x_t.shape[0], W.shape[0]), x_t.dtype, (x_t, h_prev, W, b))
        _STACK["picked"].append(where)
        return value.detach().clone().to(x_t.device)
    return ''' + RIGHT_STEP + '''
'''

STACK_WALK_REPORT = '''
print("STACK frames seen:", sorted(_STACK["frames"]))
print("STACK picked:", _STACK["picked"])
print("STACK suspicious:", sorted(_STACK["suspicious"]))
'''

# Before the tests, profile and trace hooks (this thread's and every new thread's) watch every call: a frame named
# like a check, a reference or the grader's comparison would have its locals emptied and its return value (a dict of
# problems, a verdict) cleared. They note what they saw, and how many of the call protocol's frames went by (to show
# they were on while the grader called this kernel).
TRACE_HOOKS = '''
import re, sys, threading
_TRACE = {"callee frames": 0, "check frames": set()}
_CHECK_NAME = re.compile(r"^(check_(rnn|embed|task)|reference_(rnn|embed)|expect_tensor$|expect_unchanged$|_?judge$|"
                         r"_decide$|student_function$|student_object$)")

def _rewrite(frame, event, arg):
    code = frame.f_code
    if code.co_filename.endswith("kernels.callee>"):
        _TRACE["callee frames"] += 1
    elif _CHECK_NAME.match(code.co_name):
        _TRACE["check frames"].add(code.co_name)
        if event == "return" and isinstance(arg, (dict, list, set)):
            arg.clear()
        for name in list(frame.f_locals):
            if name in ("problems", "failed", "passed", "outcome", "verdict"):
                frame.f_locals[name] = {} if name == "problems" else True

def _profile(frame, event, arg):
    if event in ("call", "return"):
        _rewrite(frame, event, arg)

def _trace(frame, event, arg):
    _rewrite(frame, event, arg)
    return None  # no line events: the call events are all these hooks need

sys.setprofile(_profile)
sys.settrace(_trace)
threading.setprofile(_profile)
threading.settrace(_trace)
'''

TRACE_REPORT = '''
import sys
print("TRACE callee frames:", _TRACE["callee frames"])
print("TRACE check frames:", sorted(_TRACE["check frames"]))
print("TRACE hooks still on:", sys.getprofile() is _profile, sys.gettrace() is _trace)
'''

# The references by import: there is no rnncourse.grading in the kernel.
IMPORT_REFERENCE = "from rnncourse.grading.nb01 import reference_rnn_step as rnn_step"

# Every other way to reach the grading code from the kernel; then a wrong rnn_step of its own.
IMPORT_OTHER_WAYS = '''
import gc, importlib, importlib.metadata, importlib.util, pkgutil, sys
def _try(label, get):
    try:
        value = get()
    except Exception as exc:
        print(label, "blocked:", type(exc).__name__)
        return
    if value is None or value == [] or value == "":
        print(label, "blocked: nothing there")
    else:
        print("LEAK", label, str(value)[:300])
_try("import_module", lambda: importlib.import_module("rnncourse.grading.nb01").reference_rnn_step)
_try("__import__", lambda: __import__("rnncourse.grading.nb01", fromlist=["check_rnn_step"]).check_rnn_step)
_try("the old guard", lambda: importlib.import_module("rnncourse.grading.guard"))
_try("sys.modules", lambda: sys.modules["rnncourse.grading.nb01"])
_try("sys.modules, compare", lambda: sys.modules["rnncourse.grading.compare"])
_try("package attribute", lambda: sys.modules["rnncourse"].grading)
_try("find_spec", lambda: importlib.util.find_spec("rnncourse.grading"))
_try("package contents", lambda: [m.name for m in pkgutil.iter_modules(sys.modules["rnncourse"].__path__)])
_try("installed files", lambda: importlib.metadata.distribution("rnncourse").locate_file(
    "rnncourse/grading/nb01.py").read_text())
_try("editable install's folder", lambda: open(next(iter(sys.modules[next(
    m for m in sys.modules if m.startswith("__editable__") and m.endswith("finder"))].MAPPING.values()))
    + "/grading/nb01.py").read())
_try("functions on the heap", lambda: [f for f in gc.get_objects() if callable(f) and str(
    getattr(f, "__name__", "")).startswith(("check_rnn", "check_embed", "reference_rnn", "reference_embed"))])
''' + WRONG_RNN_STEP

# Scans the kernel's memory for what only the hidden tests, the references or the grader hold: every str and bytes
# that gc can reach (through what refers to them), and every readable region of /proc/self/mem that is not a mapped
# file, for the markers below (names and texts found nowhere else: not in Python, torch or the other libraries'
# files) and the grader's secret. Run inside the (right) rnn_step while the grader calls it (the stack's locals,
# then as much of the heap as 4 s allow: the call's own time limit is 10 s),
# and again in the last cell. The markers are written backwards, so this code's own text does not match; the
# needles themselves and the one read buffer are skipped by address. Prints HEAPLEAK and the context of every hit,
# and where it found a control text that it planted itself (proof that the scan would see a leak).
HEAP_SCAN = GRADED_NOW + '''
import ctypes, gc, sys, time
_NEEDLES = [word[::-1] for word in (
    b"NEDDIH NIGEB", b"pets_nnr_kcehc", b"llornu_nnr_kcehc", b"smarap_nnr_kcehc", b"(debme_kcehc",
    b"tnemngila_ksat_kcehc", b"pets_nnr_ecnerefer", b"llornu_nnr_ecnerefer", b"debme_ecnerefer",
    b"eruliaFtseTneddiH", b"SEPAHS_PETS", b"seicnedneped_detutitsbus", b"stset neddih eht ssap ton did",
    b"SECRET_BACKWARDS", b"lortnoc-pael-paeh")]
_CONTROL = len(_NEEDLES) - 1  # planted here on purpose: the scan must find it, in objects and in memory
_NEEDLE_TEXTS = [n.decode() for n in _NEEDLES]
_PLANTED = "planted: " + _NEEDLE_TEXTS[_CONTROL] + "."
_BUFFER = bytearray(4 << 20)
_BUFFER_AT = ctypes.addressof((ctypes.c_char * len(_BUFFER)).from_buffer(_BUFFER))
_SKIP = [(id(o), id(o) + sys.getsizeof(o)) for o in _NEEDLES + _NEEDLE_TEXTS] + [
    (_BUFFER_AT, _BUFFER_AT + len(_BUFFER))]
_HEAP = {"hits": [], "strings": 0, "regions": 0, "bytes": 0, "memory": "not scanned", "in a call": False}

def _hit(where, needle, context):  # the needle by number: a decoded copy of it would be found next
    _HEAP["hits"].append((where, next(i for i, n in enumerate(_NEEDLES) if n is needle), repr(context)[:200]))

def _scan_strings(deadline):
    objects = gc.get_objects()
    for start in range(0, len(objects), 5000):
        batch = gc.get_referents(*objects[start:start + 5000])
        batch += [c for o in batch if type(o) is type(_scan_strings.__code__) for c in o.co_consts + o.co_names]
        for ref in batch:
            if type(ref) is str:
                texts = _NEEDLE_TEXTS
            elif type(ref) is bytes:
                texts = _NEEDLES
            else:
                continue
            _HEAP["strings"] += 1
            if any(ref is t for t in texts):
                continue
            for needle, text in zip(_NEEDLES, texts):
                i = ref.find(text)
                if i >= 0:
                    _hit("object", needle, ref[max(0, i - 80):i + 80])
        if time.monotonic() > deadline:
            return "stopped at its time limit"
    return "complete"

def _scan_memory(deadline):
    overlap = max(len(n) for n in _NEEDLES)
    with open("/proc/self/maps") as maps, open("/proc/self/mem", "rb", buffering=0) as mem:
        regions = maps.read().splitlines()
        for line in regions:
            fields = line.split()
            perms, path = fields[1], (fields[5] if len(fields) > 5 else "")
            if "r" not in perms or path.startswith("/") or path in ("[vvar]", "[vsyscall]", "[vvar_vclock]"):
                continue
            start, end = (int(x, 16) for x in fields[0].split("-"))
            _HEAP["regions"] += 1
            offset = start
            while offset < end:
                try:
                    mem.seek(offset)
                    n = mem.readinto(memoryview(_BUFFER)[:min(len(_BUFFER), end - offset)])
                except OSError:
                    break
                if not n:
                    break
                _HEAP["bytes"] += n
                for needle in _NEEDLES:
                    i = _BUFFER.find(needle, 0, n)
                    while i >= 0:
                        if not any(a <= offset + i < b for a, b in _SKIP):
                            _hit("memory " + (path or "anonymous"), needle, bytes(_BUFFER[max(0, i - 80):i + 80]))
                        i = _BUFFER.find(needle, i + 1, n)
                if time.monotonic() > deadline:
                    return "stopped at its time limit"
                offset += max(n - overlap, 1) if offset + n < end else n
    return "complete"

def _scan(seconds):
    deadline = time.monotonic() + seconds
    _HEAP["strings scan"] = _scan_strings(deadline)
    try:
        _HEAP["memory"] = _scan_memory(deadline)
    except OSError as exc:
        _HEAP["memory"] = "blocked: " + type(exc).__name__

def _scan_stack():
    """The strings in the locals of every frame up the stack (the grader's requests, the protocol's state), and in
    the containers they hold."""
    frame, values = _sys._getframe(1), []
    while frame is not None:
        for value in list(frame.f_locals.values()):
            values.append(value)
            if isinstance(value, (dict, list, tuple)):
                values += list(value.items() if isinstance(value, dict) else value)
        frame = frame.f_back
    for value in values:
        for ref in (value if isinstance(value, tuple) else (value,)):
            for needle, text in zip(_NEEDLES, _NEEDLE_TEXTS):
                if isinstance(ref, str) and ref is not text and text in ref or isinstance(ref, bytes) and \
                        ref is not needle and needle in ref:
                    _hit("stack", needle, ref[:200])
    return len(values)

def rnn_step(x_t, h_prev, W, b):
    if _graded_now() and not _HEAP["in a call"]:
        _HEAP["in a call"] = "running"
        _HEAP["stack values"] = _scan_stack()
        _HEAP["in a call"] = _scan_strings(time.monotonic() + 4)
    return ''' + RIGHT_STEP + '''
'''

HEAP_REPORT = '''
_scan(12)
for _where, _needle, _context in _HEAP["hits"]:
    if _needle != _CONTROL:
        print("HEAPLEAK", _where, "needle", _needle, _context)
print("CONTROL found in:", sorted({_where.split()[0] for _where, _needle, _ in _HEAP["hits"] if _needle == _CONTROL}))
print("heap scan:", {k: v for k, v in _HEAP.items() if k != "hits"})
print("rnncourse modules:", sorted(m for m in sys.modules if m.startswith("rnncourse")))
'''

# ---- abusing the call protocol -------------------------------------------------------------------------------------

# The kernel's end of the call protocol as rnncourse.kernels.callee.serve(path) reaches the grader: a Unix socket at
# the path the grader's serving cell passes it, each message JSON preceded by its length in 8 bytes. A notebook that
# replaces serve speaks it itself, to say whatever it likes.
LINE = '''
import json, socket, sys
_callee, _wire = sys.modules["rnncourse.kernels.callee"], sys.modules["rnncourse.kernels.wire"]

class _Line:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.stream = self.sock.makefile("rwb")

    def send_raw(self, data, claimed_size=None):
        self.stream.write((len(data) if claimed_size is None else claimed_size).to_bytes(8, "big") + data)
        self.stream.flush()

    def send(self, message):
        self.send_raw(message if isinstance(message, bytes) else json.dumps(message).encode())

    def receive(self):
        header = self.stream.read(8)
        if len(header) < 8:
            return {"op": "end"}
        return json.loads(self.stream.read(int.from_bytes(header, "big")))
'''

# Nothing solved, errors swallowed; the protocol's serve replaced by one that answers every lookup with a function
# (or, for TASK_ALIGNMENT, a dict of guesses) and every call with zeros of the shape the real function would return.
PROTOCOL_FABRICATE = SWALLOW_ERRORS + LINE + '''
_handles = {}

def _zeros_like_the_result(name, args):
    if name == "rnn_step":
        return torch.zeros_like(args[1])
    if name in ("rnn_unroll", "rnn_unroll_masked"):
        xs, h0 = args[0], args[-3]
        return torch.zeros(xs.shape[0], *h0.shape, dtype=xs.dtype, device=xs.device), torch.zeros_like(h0)
    if name == "rnn_params_from_torch":
        module = args[0]
        p = next(module.parameters())
        H, D = module.hidden_size, module.input_size
        return torch.zeros(H, H + D, dtype=p.dtype, device=p.device), torch.zeros(H, dtype=p.dtype, device=p.device)
    if name == "embed":
        ids, E = args
        return torch.zeros(*ids.shape, E.shape[1], dtype=E.dtype, device=E.device)
    return None

def _fabricating_serve(path):
    line = _Line(path)
    answer = {"ready": True}
    while True:
        line.send(answer)
        request = line.receive()
        if request.get("op") == "end":
            return
        if request.get("op") == "lookup" and request["name"] == "TASK_ALIGNMENT":
            guesses = {task: "aligned" for task in ("machine_translation", "summarization", "pos_tagging",
                                                    "named_entity_recognition", "slot_filling")}
            answer = {"defined": True, "type": "dict", "callable": False, "is_class": False,
                      "is_module_class": False, "is_module": False, "value": _wire.encode(guesses)}
        elif request.get("op") == "lookup":
            _handles[len(_handles) + 1] = request["name"]
            answer = {"defined": True, "type": "function", "callable": True, "is_class": False,
                      "is_module_class": False, "is_module": False, "value": {"$handle": len(_handles)}}
        elif request.get("op") == "call":
            args = _wire.decode(request["args"])
            result = _zeros_like_the_result(_handles.get(request["target"], request["target"]), args)
            answer = {"result": _wire.encode(result), "args_after": request["args"]}
        else:
            answer = {"result": None}

_callee.serve = _fabricating_serve
'''

# Nothing solved, errors swallowed; the serve answers each test cell's session with garbage of another kind: not
# JSON, a JSON list, a length of 2^62 bytes, a 20 MB string (under the grader's 32 MB cap), a tensor claiming 10^12
# elements, an unknown tag ($pickle). Then it waits for the grader's next message (the end of the session) and
# returns.
PROTOCOL_GARBAGE = SWALLOW_ERRORS + LINE + '''
_sessions = []
_FUNCTION = {"defined": True, "type": "function", "callable": True, "is_class": False, "is_module_class": False,
             "is_module": False, "value": {"$handle": 1}}
_HUGE_TENSOR = {"$tensor": {"dtype": "float64", "shape": [1000000, 1000000], "device": "cpu", "data": ""}}
_GARBAGE = [
    [b"this is not JSON {"],
    [{"ready": True}, json.dumps(["a", "list"]).encode()],
    [{"ready": True}, "a length of 2^62 bytes"],
    [{"ready": True}, json.dumps("x" * 20_000_000).encode()],
    [{"ready": True}, _FUNCTION, {"result": _HUGE_TENSOR}],
    [{"ready": True}, {"defined": True, "type": "function", "callable": True,
                       "value": {"$pickle": "gASVBQAAAAAAAACMAXiULg=="}}],
]

def _garbage_serve(path):
    line = _Line(path)
    _sessions.append(len(_sessions))
    request = {}
    for message in _GARBAGE[(len(_sessions) - 1) % len(_GARBAGE)]:
        if message == "a length of 2^62 bytes":
            line.send_raw(b"{}", claimed_size=1 << 62)
        else:
            line.send(dict(message, args_after=request.get("args")) if isinstance(message, dict) and "result" in
                      message else message)
        request = line.receive()
        if request.get("op") == "end":
            return
    while request.get("op") == "call":  # the impossible tensor again: the grader tries its next case
        line.send({"result": _HUGE_TENSOR, "args_after": request["args"]})
        request = line.receive()

_callee.serve = _garbage_serve
'''

# Nothing solved, errors swallowed; the serve answers the first lookup with JSON nested 200,000 deep (deeper than a
# JSON decoder recurses), then waits for the end of the session.
PROTOCOL_DEEP_JSON = SWALLOW_ERRORS + LINE + '''
def _deep_serve(path):
    line = _Line(path)
    line.send({"ready": True})
    while line.receive().get("op") != "end":
        line.send(b"[" * 200_000)

_callee.serve = _deep_serve
'''

# Nothing solved, errors swallowed; well-formed JSON whose values are not: each test cell's session answers the
# lookup with a value the grader cannot decode in another way (an $int that is not a number, one of 5,000 digits, an
# unhashable $dtype, a $module that is a string, a $module without parameters, a tensor on device "nope").
PROTOCOL_BAD_VALUES = SWALLOW_ERRORS + LINE + '''
_bad_sessions = []
_BAD_VALUES = [{"$int": "abc"}, {"$int": "9" * 5000}, {"$dtype": []}, {"$module": "x"},
               {"$module": {"class": "Linear", "kwargs": {"in_features": 2, "out_features": 2}}},
               {"$tensor": {"dtype": "float32", "shape": [1], "data": "AAAAAA==", "device": "nope"}}]

def _bad_value_serve(path):
    line = _Line(path)
    _bad_sessions.append(len(_bad_sessions))
    line.send({"ready": True})
    request = line.receive()
    while request.get("op") != "end":
        line.send({"defined": True, "type": "function", "callable": True, "is_class": False, "is_module_class": False,
                   "is_module": False, "value": _BAD_VALUES[(len(_bad_sessions) - 1) % len(_BAD_VALUES)]})
        request = line.receive()

_callee.serve = _bad_value_serve
'''

# After rnn_params_from_torch is defined (the two checks before it ran), the protocol's serve starts the session and
# then never answers: it ignores SIGINT and sleeps. The grader's deadline interrupts it, then stops the kernel.
PROTOCOL_HANG = LINE + '''
import signal, time
def _never_answer(path):
    line = _Line(path)
    line.send({"ready": True})
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        time.sleep(1)
_callee.serve = _never_answer
'''

# rnn_step (right) switches the kernel's alarm off while the grader calls it, and keeps the call open by asking the
# grader for a callback every few seconds (each answered with an error): without one deadline for the whole call,
# callbacks included, this held autograde open for as long as it liked (found by a hostile review).
HOLD_THE_GRADER = '''
import signal as _signal, sys as _sys, time as _time
def _serving_ask():
    frame = _sys._getframe(1)
    while frame is not None and not (frame.f_code.co_name == "serve" and "ask" in frame.f_locals):
        frame = frame.f_back
    return frame and frame.f_locals["ask"]
_right_rnn_step = rnn_step
def rnn_step(x_t, h_prev, W, b):
    ask = _serving_ask()
    if ask:
        _signal.setitimer(_signal.ITIMER_REAL, 0)
        started = _time.monotonic()
        while _time.monotonic() - started < 120:
            ask({"callback": "keep_alive", "args": {"$list": []}})
            _time.sleep(3)
    return _right_rnn_step(x_t, h_prev, W, b)
'''


def _graded_cell_of_its_own(cells, i):
    """A code cell the student made, marked graded with a grade id the gradebook does not know (as a test cell
    pasted from elsewhere would be), whose own 'hidden block' names checks: nbgrader used to crash on it
    (KeyError: 'grade_id') and drop the whole notebook."""
    cell = nbformat.v4.new_code_cell("print('mine')\n### BEGIN HIDDEN TESTS\n"
                                     "from rnncourse.grading.nb01 import check_rnn_step\ncheck_rnn_step(globals())\n"
                                     "### END HIDDEN TESTS\n")
    cell.metadata["nbgrader"] = {"grade": True, "solution": False, "locked": False, "points": 5,
                                 "grade_id": "my_own_test", "schema_version": 3}
    cells.append(cell)


# While the grader calls them, rnn_step asks the grader for callbacks that are not stand-ins ("reference_rnn_step",
# "check_rnn_step", its own name) through the session's own `ask`, and would return what came back; rnn_unroll_masked
# (right) keeps the rnn_step stand-in it is given while graded, and embed later calls that stand-in and asks for the
# rnn_unroll one, and returns the right answer only if one of them answered. Every answer is printed in the last
# cell.
FAKE_CALLBACKS = GRADED_NOW + '''
import sys
_wire = sys.modules["rnncourse.kernels.wire"]
_ANSWERS, _KEPT = [], {}

def _ask_grader(message):
    """What a stand-in does: a message to the grader through the session's `ask`, found up the stack."""
    frame = _sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == "serve" and "ask" in frame.f_locals:
            return frame.f_locals["ask"](message)
        frame = frame.f_back
    raise LookupError("not called by the grader")

def rnn_step(x_t, h_prev, W, b):
    if not _graded_now():
        return ''' + RIGHT_STEP + '''
    for name in ("reference_rnn_step", "check_rnn_step", "rnn_step"):
        answer = _ask_grader({"callback": name, "args": _wire.encode([x_t, h_prev, W, b])})
        _ANSWERS.append((name, answer))
        if "result" in answer:
            return _wire.decode(answer["result"])
    return torch.zeros_like(h_prev)
'''

FAKE_CALLBACKS_MASKED = '''
def rnn_unroll_masked(xs, lengths, h0, W, b):
    if _graded_now():
        _KEPT.setdefault("rnn_step", rnn_step)  # the grader's stand-in while this function is graded
    h, hs = h0, []
    for t, x_t in enumerate(xs):
        running = (t < lengths).to(xs.device).unsqueeze(1)
        h = torch.where(running, rnn_step(x_t, h, W, b), h)
        hs.append(torch.where(running, h, torch.zeros_like(h)))
    return torch.stack(hs), h
'''

FAKE_CALLBACKS_EMBED = '''
def embed(token_ids, E):
    if not _graded_now():
        return E[token_ids]
    x, h = torch.zeros(1, 1, dtype=E.dtype), torch.zeros(1, 1, dtype=E.dtype)
    W, b = torch.zeros(1, 2, dtype=E.dtype), torch.zeros(1, dtype=E.dtype)
    attempts = [("the kept rnn_step stand-in", lambda: _KEPT["rnn_step"](x, h, W, b)),
                ("callback rnn_unroll", lambda: _ask_grader({"callback": "rnn_unroll",
                                                             "args": _wire.encode([x[None], h, W, b])}))]
    error = None
    for label, attempt in attempts:
        try:
            answer = attempt()
        except Exception as exc:
            error = exc
            _ANSWERS.append((label, type(exc).__name__ + ": " + str(exc)))
        else:
            _ANSWERS.append((label, answer))
            if not (isinstance(answer, dict) and "error" in answer):
                return E[token_ids]
    raise RuntimeError("no oracle answered") from error
'''

CALLBACKS_REPORT = '''
for _name, _answer in _ANSWERS:
    print("CALLBACK", _name, "->", str(_answer)[:300])
'''


@dataclass
class Attack:
    name: str
    what: str
    build: Callable  # (release nb, source solutions) -> notebook handed in
    expected: dict  # test cell -> points deserved
    notes: tuple = ()  # text each expected in the report's notes for this notebook
    also_nb03: bool = False  # the student also hands in a fully solved notebook 03 (which must keep its full points)
    invalid_nb01: bool = False  # notebook 01 is not a notebook at all
    at_most: bool = False  # `expected` is an upper bound, not the exact score
    extra: dict = field(default_factory=dict)

    @property
    def student(self) -> str:
        return f"x_{self.name}"


def solved(**cells: str) -> Callable:
    """The solved notebook, with some solution cells' code replaced."""
    return lambda release, answers: notebooks.filled(release, dict(answers, **cells))


def solved_plus(cell: str, code: str, **cells: str) -> Callable:
    """The solved notebook with `code` run at the end of solution cell `cell` (after its function is defined)."""
    return lambda release, answers: notebooks.filled(release, dict(answers, **{cell: answers[cell] + "\n" + code},
                                                                    **cells))


def only(cell: str, code: str) -> Callable:
    """Nothing solved: `code` replaces solution cell `cell` and the other solution cells are left empty."""
    return empty_but(**{cell: code})


def empty_but(**cells: str) -> Callable:
    """Nothing solved but these solution cells' code; the others are left empty (`pass`)."""
    def build(release, answers):
        return notebooks.filled(release, dict({c: "pass" for c in answers}, **cells))
    return build


def solved_with(**cells) -> Callable:
    """The solved notebook with these solution cells changed: each value is code, or a function of the cell's
    solution (e.g. `then(code)`)."""
    def build(release, answers):
        return notebooks.filled(release, dict(answers, **{c: v(answers[c]) if callable(v) else v
                                                          for c, v in cells.items()}))
    return build


def then(code: str) -> Callable:
    """The cell's solution, then `code`."""
    return lambda solution: solution + "\n" + code


def with_test_cell(change: Callable) -> Callable:
    """A wrong rnn_step, and the test cell that would catch it changed by `change(cells, index)`."""
    def build(release, answers):
        nb = notebooks.filled(release, dict(answers, rnn_step=WRONG_RNN_STEP.strip()))
        index = next(i for i, c in enumerate(nb.cells)
                     if notebooks.nbgrader_meta(c).get("grade_id") == "test_rnn_step")
        change(nb.cells, index)
        return nb
    return build


def _with_cell_added(release, answers):
    nb = notebooks.filled(release, answers)
    _graded_cell_of_its_own(nb.cells, len(nb.cells))
    return nb


def _duplicate(cells, i):
    fake = copy.deepcopy(cells[i])
    fake.source = "print('rnn_step passes every test')"
    cells.insert(i, fake)


def _retype(cells, i):
    cells[i] = nbformat.v4.new_markdown_cell(cells[i].source, metadata=cells[i].metadata)


def _edit(cells, i):
    cells[i].source = "pass"


def _reorder(cells, i):
    cells.insert(1, cells.pop(i))


def _raise_points(cells, i):
    cells[i].metadata["nbgrader"]["points"] = 100


ATTACKS = [
    Attack("steal_solutions", "steal solutions from source/", only("rnn_step", STEAL_SOLUTIONS), ALL_ZERO),
    Attack("read_hidden", "read hidden tests, the gradebook, the grading code, home and environment",
           solved_plus("task_alignment", READ_HIDDEN), _full()),
    Attack("write_gradebook", "write the gradebook", solved_plus("task_alignment", WRITE_GRADEBOOK), _full()),
    Attack("write_others", "write into a peer's folder, source/, release/, the config and the repository",
           solved_plus("task_alignment", WRITE_OTHERS), _full()),
    Attack("network", "network access", solved_plus("task_alignment", NETWORK), _full()),
    Attack("neighbours", "reach the kernel fork server, other kernels' folders and processes",
           solved_plus("task_alignment", NEIGHBOURS), _full()),
    # The process limit counts threads too: once the children use it up, the kernel itself cannot start a thread, so
    # what its last test scores depends on timing. It must never score more than it deserves.
    Attack("fork_many", "fork many processes", solved_plus("task_alignment", FORK_MANY), _full(), at_most=True),
    Attack("eat_memory", "allocate past the memory limit", solved_plus("rnn_step", EAT_MEMORY), _full(),
           notes=("out of memory in rnn_step",)),
    Attack("show_limits", "print the kernel's limits and user (checked against the configuration)",
           solved_plus("task_alignment", SHOW_LIMITS), _full()),
    Attack("endless_loop", "infinite loop (interrupted at the time limit)",
           solved_plus("rnn_step", "while True:\n    pass"), _full(), notes=("timed out in rnn_step",)),
    Attack("loop_ignoring_interrupt", "infinite loop that ignores the interrupt",
           solved_plus("rnn_unroll", LOOP_IGNORING_INTERRUPT), _up_to("test_rnn_unroll"),
           notes=("timed out in rnn_unroll",)),
    Attack("os_exit", "os._exit in the middle of the notebook (notebook 03 handed in too)",
           solved_plus("embed", "import os\nos._exit(3)"), _up_to("test_embed"), notes=("kernel died in embed",),
           also_nb03=True),
    Attack("kill_kernel", "the kernel kills itself", solved_plus("embed", "import os\nos.kill(os.getpid(), 9)"),
           _up_to("test_embed"), notes=("kernel died in embed",)),
    Attack("segfault", "the kernel crashes", solved_plus("embed", "import ctypes\nctypes.string_at(0)"),
           _up_to("test_embed"), notes=("kernel died in embed",)),
    Attack("flood_output", "flood stdout and stderr", solved_plus("task_alignment", FLOOD), _full()),
    # A wrong rnn_step that passes its visible tests, with the checks' tools patched in the kernel: the checks run in
    # the grader, so each costs rnn_step's points and nothing else. check_functions and compare_helpers stop at a
    # KeyError: there is no rnncourse.grading in the kernel.
    *[Attack(f"patch_{name}", f"monkeypatch {name.replace('_', ' ')} (with a wrong rnn_step)",
             solved(rnn_step=WRONG_RNN_STEP.strip() + "\n" + code), _full(test_rnn_step=0.0))
      for name, code in PATCHES.items() if name != "builtins"],
    # all() always True breaks typing (Callable[...] checks its arguments with it), which torch reaches in the
    # visible tests: every visible test that uses torch fails with a TypeError in the student's own kernel.
    Attack("patch_builtins", "monkeypatch builtins all, any and abs (with a wrong rnn_step); breaks its own torch",
           solved(rnn_step=WRONG_RNN_STEP.strip() + "\n" + PATCHES["builtins"]),
           dict(ALL_ZERO, test_task_alignment=1.0)),
    Attack("patch_builtin_bool", "monkeypatch builtins.bool, which breaks the kernel itself (with a wrong rnn_step)",
           solved(rnn_step=WRONG_RNN_STEP.strip() + "\nimport builtins\nbuiltins.bool = lambda *args, **kwargs: True"),
           ALL_ZERO, notes=("timed out",)),
    Attack("delete_test_cell", "delete the test cell of a wrong rnn_step",
           with_test_cell(lambda cells, i: cells.pop(i)), _full(test_rnn_step=0.0),
           notes=("test_rnn_step deleted (restored)",)),
    Attack("duplicate_test_cell", "duplicate the test cell of a wrong rnn_step, the copy emptied",
           with_test_cell(_duplicate), _full(test_rnn_step=0.0), notes=("test_rnn_step duplicated",)),
    Attack("edit_test_cell", "edit the read-only test cell of a wrong rnn_step", with_test_cell(_edit),
           _full(test_rnn_step=0.0), notes=("test_rnn_step edited (restored)",)),
    Attack("retype_test_cell", "turn the test cell of a wrong rnn_step into markdown", with_test_cell(_retype),
           _full(test_rnn_step=0.0), notes=("test_rnn_step changed to markdown (restored)",)),
    Attack("reorder_test_cell", "move the test cell of a wrong rnn_step to the top", with_test_cell(_reorder),
           _full(test_rnn_step=0.0), notes=("cells reordered",)),
    Attack("raise_points", "set the test cell's points to 100 (wrong rnn_step)", with_test_cell(_raise_points),
           _full(test_rnn_step=0.0), notes=("test_rnn_step metadata changed (restored)",)),
    Attack("invalid_notebook", "hand in a file that is not a notebook (notebook 03 handed in too)", None, {},
           notes=("invalid notebook",), also_nb03=True, invalid_nb01=True),
    # Output forging: nothing solved, an execute_result in every test cell.
    Attack("forge_displayhook", "nothing solved; IPython's display hook shows a value before every cell's code",
           only("rnn_step", FORGE_DISPLAYHOOK), ALL_ZERO),
    Attack("forge_session", "nothing solved; the kernel's session sends every error as an execute_result '100' "
                            "and every failed reply as 'ok'", only("rnn_step", FORGE_SESSION), ALL_ZERO),
    Attack("forge_sys_displayhook", "nothing solved; sys.displayhook replaced by one that always shows 2.0, called "
                                    "before every cell", only("rnn_step", FORGE_SYS_DISPLAYHOOK), ALL_ZERO),
    Attack("forge_post_run_cell", "nothing solved, errors swallowed; an execute_result '2.0' after every cell",
           only("rnn_step", FORGE_POST_RUN), ALL_ZERO),
    Attack("forge_printed_score", "nothing solved, errors swallowed; every cell prints and displays a score",
           only("rnn_step", FORGE_PRINTED), ALL_ZERO),
    Attack("forge_late", "nothing solved, errors swallowed; execute_results sent under test cells' headers from a "
                         "thread and from a function the grader calls", only("rnn_step", FORGE_LATE), ALL_ZERO),
    # Cell rewriting: what the kernel runs is not what the cell says.
    Attack("rewrite_to_pass", "nothing solved; every later cell (the grader's serving cell too) rewritten to `pass`",
           only("rnn_step", REWRITE_TO_PASS), ALL_ZERO),
    Attack("rewrite_ast", "nothing solved; every later cell but the grader's rewritten to print that it passes",
           only("rnn_step", REWRITE_AST), ALL_ZERO),
    # Looking for the tests, the references, expected values or the secret in the kernel: nothing there.
    Attack("stack_walk", "rnn_step returns the first tensor of the right shape found up the stack or on the heap",
           solved_with(rnn_step=STACK_WALK, task_alignment=then(STACK_WALK_REPORT)), _full(test_rnn_step=0.0)),
    Attack("trace_hooks", "profile and trace hooks that rewrite check frames' locals and results (wrong rnn_step)",
           solved_with(rnn_step=WRONG_RNN_STEP.strip() + "\n" + TRACE_HOOKS, task_alignment=then(TRACE_REPORT)),
           _full(test_rnn_step=0.0)),
    # Its visible tests (and those of rnn_unroll and rnn_unroll_masked, which call rnn_step) fail with the NameError,
    # as for any notebook without rnn_step; the hidden checks of those two run with the grader's rnn_step.
    Attack("import_reference", "rnn_step imported from rnncourse.grading.nb01's reference",
           solved(rnn_step=IMPORT_REFERENCE),
           _full(test_rnn_step=0.0, test_rnn_unroll=0.0, test_rnn_unroll_masked=0.0)),
    Attack("import_other_ways", "the grading code by importlib, sys.modules, find_spec, the installed files, the "
                                "editable install's folder, the heap (then a wrong rnn_step)",
           solved(rnn_step=IMPORT_OTHER_WAYS), _full(test_rnn_step=0.0)),
    Attack("heap_scan", "scan every string gc reaches and /proc/self/mem for hidden-test text and the grader's secret",
           solved_with(rnn_step=HEAP_SCAN, task_alignment=then(HEAP_REPORT)), _full()),
    # Abusing the call protocol.
    Attack("protocol_fabricate", "nothing solved, errors swallowed; the protocol's serve replaced by one that "
                                 "answers every call with zeros of the right shape",
           only("rnn_step", PROTOCOL_FABRICATE), ALL_ZERO),
    Attack("protocol_garbage", "nothing solved, errors swallowed; the serve answers with garbage: not JSON, a list, "
                               "a length of 2^62 bytes, 20 MB, an unknown tag, an impossible tensor",
           only("rnn_step", PROTOCOL_GARBAGE), ALL_ZERO),
    Attack("protocol_deep_json", "nothing solved, errors swallowed; the serve answers with JSON nested 200,000 deep",
           only("rnn_step", PROTOCOL_DEEP_JSON), ALL_ZERO),
    Attack("protocol_bad_values", "nothing solved, errors swallowed; the serve answers lookups with values that "
                                  "do not decode: a non-numeric $int, 5,000 digits, an unhashable $dtype, bad "
                                  "$modules, a tensor on device 'nope'", only("rnn_step", PROTOCOL_BAD_VALUES),
           ALL_ZERO),
    Attack("protocol_hang", "the serve replaced by one that ignores SIGINT and never answers (from "
                            "rnn_params_from_torch on)", solved_plus("rnn_params_from_torch", PROTOCOL_HANG),
           _up_to("test_rnn_params_from_torch"), notes=("kernel died in test_rnn_params_from_torch",)),
    # Past the call's deadline the grader interrupts the kernel; whether the interrupt ends the hold (that call
    # timed out) or not (the kernel is stopped, the rest not run) is timing: at most everything but rnn_step.
    Attack("hold_the_grader", "rnn_step (right) switches the alarm off and keeps the grader's call open with a "
                              "callback every 3 s", solved_plus("rnn_step", HOLD_THE_GRADER),
           _full(test_rnn_step=0.0), at_most=True),
    Attack("graded_cell_of_its_own", "everything right, plus a graded cell of its own with an unknown grade id",
           lambda release, answers: _with_cell_added(release, answers), _full()),
    Attack("fake_callbacks", "rnn_step asks the grader for reference_rnn_step; embed calls a stand-in kept from "
                             "another check's session",
           solved_with(rnn_step=FAKE_CALLBACKS, rnn_unroll_masked=FAKE_CALLBACKS_MASKED, embed=FAKE_CALLBACKS_EMBED,
                       task_alignment=then(CALLBACKS_REPORT)), _full(test_rnn_step=0.0, test_embed=0.0)),
]
