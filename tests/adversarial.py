"""Hostile submissions: what a student could hand in to gain points, read what is hidden, or hurt others.

Each attack is a student (id ``x_<name>``) handing in notebook 01 (one also hands in notebook 03). `expected` is
what the student deserves per test cell; the sandbox must give exactly that, and `tests/test_sandbox.py` checks that
nothing outside the student's own results changed. In the attack code, COURSE stands for the course directory's
absolute path, REPO for the repository's, PORT for a TCP port the test listens on outside the sandbox, and
SECRET_FILE for a file only the grader can read (its content, like the grader's RNNCOURSE_TEST_SECRET environment
variable, is a random token): the attacker is assumed to know where everything is.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Callable

import nbformat

from rnncourse import notebooks

NB01, NB03 = "01_rnn_unrolling", "03_pytorch_walkthrough"
NB01_POINTS = {"test_rnn_step": 2.0, "test_rnn_unroll": 2.0, "test_rnn_params_from_torch": 2.0,
               "test_rnn_unroll_masked": 3.0, "test_embed": 2.0, "test_task_alignment": 1.0}
NB03_POINTS = {"test_sequence_predictor": 3.0, "test_detach_state": 2.0, "test_clip_grad_norm": 2.0,
               "test_train_tbptt": 3.0, "test_predictor": 2.0}
ALL_ZERO = {cell: 0.0 for cell in NB01_POINTS}


def _full(**zeros: float) -> dict:
    return dict(NB01_POINTS, **zeros)


def _up_to(cell: str) -> dict:
    """Full points for the test cells before `cell`, 0 from it on (the kernel is gone)."""
    cells = list(NB01_POINTS)
    return {c: (NB01_POINTS[c] if i < cells.index(cell) else 0.0) for i, c in enumerate(cells)}


# A plausible wrong rnn_step (concatenation in the wrong order), to see whether tampering buys its points.
WRONG_RNN_STEP = '''
def rnn_step(x_t, h_prev, W, b):
    return torch.tanh(torch.cat([x_t, h_prev], dim=1) @ W.T + b)
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

# Kernels forked from the grading process's zygote (rnncourse/forkserver.py) share its sandbox: look for the
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
_fake.__getattr__ = lambda name: (lambda *args, **kwargs: None)
sys.modules["rnncourse.grading.nb01"] = _fake
''',
    "compare_helpers": '''
import sys
_compare = sys.modules["rnncourse.grading.compare"]
_compare.close = lambda *args, **kwargs: True
_compare.Checker.finish = lambda self: None
''',
}


@dataclass
class Attack:
    name: str
    what: str
    build: Callable  # (release nb, source solutions) -> notebook handed in
    expected: dict  # test cell -> points deserved
    notes: tuple = ()  # text each expected in the report's notes for this notebook
    also_nb03: bool = False  # the student also hands in a fully solved notebook 03 (which must keep its 12 points)
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
    def build(release, answers):
        return notebooks.filled(release, dict({c: "pass" for c in answers}, **{cell: code}))
    return build


def with_test_cell(change: Callable) -> Callable:
    """A wrong rnn_step, and the test cell that would catch it changed by `change(cells, index)`."""
    def build(release, answers):
        nb = notebooks.filled(release, dict(answers, rnn_step=WRONG_RNN_STEP.strip()))
        index = next(i for i, c in enumerate(nb.cells)
                     if notebooks.nbgrader_meta(c).get("grade_id") == "test_rnn_step")
        change(nb.cells, index)
        return nb
    return build


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
    *[Attack(f"patch_{name}", f"monkeypatch {name.replace('_', ' ')} (with a wrong rnn_step)",
             solved(rnn_step=WRONG_RNN_STEP.strip() + "\n" + code), ALL_ZERO,
             notes=("tampering detected in test_",)) for name, code in PATCHES.items()],
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
]
