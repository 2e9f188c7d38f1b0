"""Hidden tests of notebook 03 (PyTorch walkthrough: truncated BPTT, detach, clipping, forecasting, checkpoints). One
``check_*`` per graded cell, called from its test cell as

    from rnncourse.grading.nb03 import check_detach_state
    check_detach_state(globals())

The checks run in the grader; the student's code runs in its kernel and is reached through ``Student``
(``rnncourse.grading.student``). References are PyTorch's own: Tensor.detach, torch.nn.utils.clip_grad_norm_,
nn.RNN/nn.GRU/nn.LSTM. A model the student's class builds stays in the kernel: the checks call it, and rebuild its
PyTorch layers here from its description (``describe``) to compute what it should output. train_tbptt is graded by
observing it: in the kernel it trains a probe model with a recording optimizer (``rnncourse.kernels.recorders``), and
their recordings are compared with what the reference truncated-BPTT loop makes an identical probe see here. While
train_tbptt is graded, the student's detach_state and clip_grad_norm are stand-ins that answer from the grader's
references, so it is graded on its own. The trained predictor is run one step at a time on held-out series the kernel
never sees ahead: it is causal by construction. forecast is run on models the student's class builds (or recording
probes), against a twin rebuilt here; checkpoints are read and made here with the grader's own torch.load/torch.save
(weights_only=True: a file from the kernel never runs code in the grader).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import os
import pickle
import resource
import select
import signal
import time
import zipfile

import numpy as np
import torch
from torch import nn

from rnncourse.kernels import wire
from rnncourse.kernels.recorders import make_probe, tensors_of

from .compare import (
    Checker,
    HiddenTestFailure,
    StudentCallFailed,
    close,
    extra_devices,
    randn,
    seeded,
    substituted,
)
from . import student as student_calls
from .student import ProtocolBroken, StudentRaised, StudentTimedOut

# -- the notebook's data --------------------------------------------------------------------------------------------
# The same generator as the notebook's §1 cell (a test keeps the two identical): the hidden quality test draws its
# held-out series from it with seeds the notebook never uses.


def make_series(n_steps, seed, noise=0.05):
    """A noisy Henon system: x[t] = 1 - 1.4 * x[t-1]**2 + 0.3 * x[t-2], observed with Gaussian noise."""
    rng = np.random.default_rng(seed)
    x = np.zeros(n_steps + 100)
    x[0], x[1] = rng.uniform(-0.5, 0.5, size=2)
    for t in range(2, len(x)):
        x[t] = 1 - 1.4 * x[t - 1] ** 2 + 0.3 * x[t - 2]
    observed = x[100:] + noise * rng.standard_normal(n_steps)  # the first 100 steps let the system settle
    return torch.tensor(observed, dtype=torch.float32)


# -- references -----------------------------------------------------------------------------------------------------
def _map_tensors(state, fn):
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return fn(state)
    return type(state)(_map_tensors(s, fn) for s in state)


def reference_detach_state(state):
    return _map_tensors(state, torch.Tensor.detach)


def reference_clip_grad_norm(parameters, max_norm):
    return torch.nn.utils.clip_grad_norm_(list(parameters), max_norm)


def reference_train_tbptt(model, inputs, targets, chunk_len, optimizer, loss_fn, max_grad_norm=None,
                          carry_state=True):
    losses, state = [], None
    for start in range(0, inputs.shape[1], chunk_len):
        if not carry_state:
            state = None
        prediction, state = model(inputs[:, start:start + chunk_len], state)
        state = reference_detach_state(state)
        loss = loss_fn(prediction, targets[:, start:start + chunk_len])
        optimizer.zero_grad()
        loss.backward()
        if max_grad_norm is not None:
            reference_clip_grad_norm(model.parameters(), max_grad_norm)
        optimizer.step()
        losses.append(loss.item())
    return losses


_REFERENCES = {"detach_state": reference_detach_state, "clip_grad_norm": reference_clip_grad_norm}


_tensors = tensors_of


# -- detach_state -----------------------------------------------------------------------------------------------
def _graph_states(gen, dtype, device):
    """A leaf weight w and states computed from it (so each has a grad_fn), in every shape the check uses."""
    w = randn(gen, 3, 4).to(dtype=dtype, device=device).requires_grad_()
    x = randn(gen, 2, 3).to(dtype=dtype, device=device)

    def state(scale):
        return torch.tanh(scale * x @ w).unsqueeze(0)  # (1, B, H), like an nn.GRU's h_n
    return w, state


DETACH_CASES = [  # (label, builder of the state from the `state` factory above)
    ("a tensor (an nn.GRU's h)", lambda s: s(1.0)),
    ("an LSTM's (h, c) tuple", lambda s: (s(1.0), s(2.0))),
    ("a list holding an (h, c) tuple and a tensor", lambda s: [(s(1.0), s(0.5)), s(3.0)]),
    ("a tensor that does not require grad", lambda s: s(1.0).detach()),
]


def _same_structure(got, want) -> bool:
    if want is None or isinstance(want, torch.Tensor):
        return (got is None) if want is None else isinstance(got, torch.Tensor)
    return (type(got) is type(want) and len(got) == len(want)
            and all(_same_structure(g, w) for g, w in zip(got, want)))


def check_detach_state(namespace: dict) -> None:
    check = Checker("detach_state", namespace)
    detach_state = check.student_function()
    with check.case("None") as label:
        if check.call(detach_state, None, label=label) is not None:
            check.fail("detach_state(None) should return None: a model called with state=None starts from zeros.",
                       label)
    cases = [(label, make, torch.float64, "cpu") for label, make in DETACH_CASES]
    cases.append((DETACH_CASES[1][0] + " in float32", DETACH_CASES[1][1], torch.float32, "cpu"))
    cases += [(DETACH_CASES[1][0] + f" on {d}", DETACH_CASES[1][1], torch.float64, d) for d in extra_devices()]
    for seed, (label, make, dtype, device) in enumerate(cases):
        with check.case(label), check.student.calling(backward_args=True):
            _, factory = _graph_states(seeded(3000 + seed), dtype, device)
            state = make(factory)
            originals = _tensors(state)
            values = [t.detach().clone() for t in originals]
            had_graph = [t.grad_fn is not None for t in originals]
            got = check.call(detach_state, state, label=label)
            answer = detach_state.last_answer  # the caller's state as the call left it, and whether it backprops
            left = _tensors(answer["args_after"][0])
            if not _same_structure(got, state):
                kind = type(state).__name__
                check.fail(f"detach_state should return the same structure it was given (here a {kind}"
                           f"{' nesting tuples' if isinstance(state, list) else ''}), with every tensor replaced by "
                           f"its detached copy: a tuple stays a tuple, a list a list, nested containers are handled "
                           f"recursively.", label)
                raise StudentCallFailed()
            for t, value in zip(_tensors(got), values):
                if not (t.shape == value.shape and t.dtype == value.dtype and t.device == value.device
                        and torch.equal(t.detach(), value)):
                    zeros = t.shape == value.shape and not t.detach().any()
                    check.fail("The detached state has different values"
                               + (" (all zeros)" if zeros else "") + ": detaching keeps the values and cuts only the "
                               "graph; a state reset to zero loses what the model remembered.", label)
                elif t.grad_fn is not None or t.requires_grad:
                    check.fail("A tensor in the result still belongs to the graph (it has a grad_fn or requires "
                               "grad): every tensor of the state must be detached, e.g. both h and c of an LSTM; "
                               ".clone() alone keeps the graph.", label)
            if len(left) != len(originals) or any(had and t.grad_fn is None for had, t in zip(had_graph, left)):
                check.fail("detach_state detached the caller's tensors in place (.detach_()): the original state "
                           "must keep its graph; return new detached tensors with .detach().", label)
            elif any(had_graph) and answer.get("backward") != "ok":
                check.fail("After detach_state the original state no longer backpropagates: leave the caller's "
                           "tensors and their graph as they were.", label)
    check.finish()


# -- clip_grad_norm -------------------------------------------------------------------------------------------
CLIP_CASES = [  # (label, parameter shapes (None: a parameter without .grad), max_norm as a multiple of the norm)
    ("three parameters, total norm above max_norm", [(3, 4), (5,), (2, 2, 2)], 0.3),
    ("three parameters, total norm below max_norm (nothing to clip)", [(3, 4), (5,), (2, 2, 2)], 2.0),
    ("a parameter without .grad among them, above max_norm", [(4, 2), None, (3,)], 0.5),
    ("a single parameter, far above max_norm", [(6, 6)], 0.01),
    ("parameters given as a generator, as model.parameters() is", [(2, 5), (5,), (5, 1)], 0.2),
]


def _params_with_grads(gen, shapes, dtype, device) -> list[torch.Tensor]:
    params = []
    for shape in shapes:
        p = randn(gen, *(shape or (3,))).to(dtype=dtype, device=device).requires_grad_()
        if shape is not None:
            p.grad = randn(gen, *shape, scale=2.0).to(dtype=dtype, device=device)
        params.append(p)
    return params


def _total_norm(grads) -> float:
    return math.sqrt(sum(float((g.double() ** 2).sum()) for g in grads))


def check_clip_grad_norm(namespace: dict) -> None:
    check = Checker("clip_grad_norm", namespace)
    clip = check.student_function()
    cases = [(label, shapes, ratio, torch.float64, "cpu") for label, shapes, ratio in CLIP_CASES]
    cases.append((CLIP_CASES[0][0] + ", float32", CLIP_CASES[0][1], CLIP_CASES[0][2], torch.float32, "cpu"))
    cases += [(CLIP_CASES[0][0] + f", on {d}", CLIP_CASES[0][1], CLIP_CASES[0][2], torch.float64, d)
              for d in extra_devices()]
    for seed, (label, shapes, ratio, dtype, device) in enumerate(cases):
        with check.case(label):
            gen = seeded(3100 + seed)
            params = _params_with_grads(gen, shapes, dtype, device)
            grads = [p.grad.clone() if p.grad is not None else None for p in params]
            norm = _total_norm([g for g in grads if g is not None])
            max_norm = ratio * norm
            expected = [p.detach().clone().requires_grad_() for p in params]
            for e, g in zip(expected, grads):
                e.grad = None if g is None else g.clone()
            want_total = float(torch.nn.utils.clip_grad_norm_(expected, max_norm))
            given = (p for p in params) if "generator" in label else params
            total = check.call(clip, given, max_norm, label=label)
            if isinstance(total, torch.Tensor) and total.numel() == 1:
                total = total.item()
            if not isinstance(total, (int, float)):
                check.fail(f"clip_grad_norm should return the total norm (a number or a 0-dim tensor), not a "
                           f"{type(total).__name__}.", label)
            elif not math.isclose(total, want_total, rel_tol=1e-6):
                hint = ""
                if math.isclose(total, min(max_norm, want_total), rel_tol=1e-4):
                    hint = " It looks like the norm *after* clipping is returned; return the norm before clipping."
                elif math.isclose(total, want_total ** 2, rel_tol=1e-5):
                    hint = " It looks like the square root is missing."
                elif math.isclose(total, sum(float(g.double().norm()) for g in grads if g is not None), rel_tol=1e-5):
                    hint = (" It looks like the parameters' norms are added; the global norm is the square root of "
                            "the sum of all squared gradient entries.")
                check.fail("The returned total norm is wrong: it is the L2 norm of all gradients together, as if "
                           "they were one long vector, measured before clipping." + hint, label)
            for p, g, e in zip(params, grads, expected):
                if g is None:
                    if p.grad is not None:
                        check.fail("A parameter whose .grad is None got a gradient: skip such parameters.", label)
                    continue
                got = p.grad
                if not (isinstance(got, torch.Tensor) and got.shape == g.shape):
                    check.fail("A parameter's .grad lost its shape or was removed: scale the gradients, keep them.",
                               label)
                    break
                # torch adds 1e-6 to the norm before dividing; an exact division is as right.
                if not torch.allclose(got.detach().double().cpu(), e.grad.double().cpu(), rtol=1e-5, atol=1e-9):
                    check.fail(_clip_mistake(got, g, max_norm, ratio), label)
                    break
    check.finish()


def _clip_mistake(got, grad, max_norm, ratio) -> str:
    """Words for what went wrong with the clipped gradients of one parameter."""
    g, original = got.detach().double().cpu(), grad.double().cpu()
    if torch.allclose(g, original, rtol=1e-6, atol=0):
        if ratio < 1:
            return ("The gradients were not scaled although the total norm is above max_norm: scale every .grad in "
                    "place (g.mul_(coef)). If parameters is a generator (model.parameters()), it can be read only "
                    "once: turn it into a list first.")
    if ratio >= 1:
        return "The gradients changed although the total norm is below max_norm: then they must stay as they are."
    if torch.allclose(g, original.clamp(-max_norm, max_norm), rtol=1e-6, atol=1e-12):
        return ("The gradients were clipped entry by entry (clip_grad_value_): clip_grad_norm scales all of them by "
                "one factor, max_norm / total_norm.")
    own_norm = float(original.norm())
    if own_norm > 0 and torch.allclose(g, original * min(1.0, max_norm / own_norm), rtol=1e-5, atol=1e-12):
        return ("Each parameter was clipped by its own norm: clip_grad_norm uses one global norm over all "
                "parameters together and scales every gradient by the same factor.")
    return ("The clipped gradients are wrong: when the total norm is above max_norm, multiply every gradient by "
            "max_norm / total_norm.")


# -- SequencePredictor --------------------------------------------------------------------------------------------
LAYER_OF = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}
CELL_OF = {"rnn": nn.RNNCell, "gru": nn.GRUCell, "lstm": nn.LSTMCell}
PREDICTOR_CASES = [  # (label, cell or None for the default, input_size, hidden_size, output_size, num_layers, B, T)
    ("cell='lstm', D=3, H=5, output_size=2", "lstm", 3, 5, 2, 1, 4, 7),
    ("cell='gru' with num_layers=2", "gru", 2, 4, 3, 2, 3, 6),
    ("cell='rnn', D=1, H=6", "rnn", 1, 6, 1, 1, 2, 9),
    ("cell='lstm' with num_layers=2 and a batch of one", "lstm", 2, 3, 1, 2, 1, 5),
    ("the default cell", None, 4, 3, 2, 1, 3, 4),
]


def expected_parameter_count(cell: str, D: int, H: int, out: int, L: int) -> int:
    gates = {"rnn": 1, "gru": 3, "lstm": 4}[cell]
    recurrent = sum(gates * H * ((D if layer == 0 else H) + H + 2) for layer in range(L))
    return recurrent + H * out + out


def _describe(check: Checker, model, label: str) -> dict:
    """The student's model as data (rnncourse.kernels.callee.describe_module); ends the case if it is no nn.Module."""
    try:
        return check.student.helper("describe", model)
    except StudentRaised:
        check.fail("SequencePredictor(...) did not create an nn.Module.", label)
        raise StudentCallFailed() from None


def _method(model, name: str):
    """A callable for one method of the student's model, named for the messages."""
    def call(*args):
        return model.method(name, *args)
    call.__name__ = name
    return call


def _reference_outputs(units, head, x, cell):
    """y for batch-first x, computed by the model's own PyTorch modules, applied in order, from a zero state."""
    with torch.no_grad():
        out = x
        for unit in units:
            if isinstance(unit, nn.RNNBase):
                out = unit(out if unit.batch_first else out.transpose(0, 1))[0]
                out = out if unit.batch_first else out.transpose(0, 1)
            else:
                state, steps = None, []
                for t in range(out.shape[1]):
                    state = unit(out[:, t], state)
                    steps.append(state[0] if cell == "lstm" else state)
                out = torch.stack(steps, 1)
        return head(out)


def _state_problem(state, cell, L, B, H, dtype, device) -> str | None:
    shape = (L, B, H)
    if cell == "lstm":
        if not (isinstance(state, tuple) and len(state) == 2):
            return (f"For cell='lstm' the state is the pair (h, c), each of shape (num_layers, B, hidden_size); "
                    f"got a {type(state).__name__}.")
        parts = state
    else:
        if not isinstance(state, torch.Tensor):
            return (f"For cell='{cell}' the state is one tensor h of shape (num_layers, B, hidden_size); got a "
                    f"{type(state).__name__}.")
        parts = (state,)
    for part in parts:
        if not isinstance(part, torch.Tensor) or tuple(part.shape) != shape:
            got = tuple(part.shape) if isinstance(part, torch.Tensor) else type(part).__name__
            return (f"Each state tensor should have shape (num_layers, B, hidden_size) = {shape}, but one has "
                    f"{got}.")
        if part.dtype != dtype or part.device != device:
            return (f"The state is {part.dtype} on {part.device.type} but the model is {dtype} on {device.type}: "
                    f"create it with the model's dtype and device (e.g. from next(self.parameters())).")
    return None


def check_sequence_predictor(namespace: dict) -> None:
    check = Checker("SequencePredictor", namespace)
    predictor_class = check.student_object()
    if not check.student.lookup("SequencePredictor").get("is_module_class"):
        raise HiddenTestFailure("SequencePredictor should be a class derived from nn.Module.")
    cases = [dict(zip(("label", "cell", "D", "H", "O", "L", "B", "T"), row), dtype=torch.float64, device="cpu")
             for row in PREDICTOR_CASES]
    cases.append(dict(cases[0], label=cases[0]["label"] + ", float32", dtype=torch.float32))
    cases += [dict(cases[1], label=cases[1]["label"] + f", on {d}", device=d) for d in extra_devices()]
    for seed, case in enumerate(cases):
        with check.case(case["label"]) as label:
            _check_predictor_case(check, predictor_class, case, seed, label)
    check.finish()


def _check_predictor_case(check: Checker, predictor_class, case: dict, seed: int, label: str) -> None:
    cell, D, H, out, L, B, T = (case[k] for k in ("cell", "D", "H", "O", "L", "B", "T"))
    kind = cell or "lstm"
    kwargs = {"num_layers": L} if cell is None else {"num_layers": L, "cell": cell}

    def build():
        return predictor_class(D, H, out, **kwargs)
    build.__name__ = "SequencePredictor"
    # The kernel's CPU generator is seeded for the call and restored after it: the student's streams are untouched.
    with check.student.calling(seed=3200 + seed):
        model = check.call(build, label=label)
    _describe(check, model, label)
    model = check.call(_method(model, "to"), case["dtype"], label=label)
    model = check.call(_method(model, "to"), case["device"], label=label)
    described = _describe(check, model, label)
    dtype, device = case["dtype"], torch.device(case["device"])
    count = described["parameter_count"]
    want_count = expected_parameter_count(kind, D, H, out, L)
    if count != want_count:
        check.fail(f"The model has {count} parameters but a {kind.upper()} with these sizes and num_layers, plus "
                   f"an nn.Linear head, has {want_count}: build the recurrent layer that `cell` names, with "
                   f"num_layers layers, one direction, and biases (PyTorch's defaults).", label)
    x = randn(seeded(3300 + seed), B, T, D).to(dtype=dtype, device=device)
    with check.student.calling(no_grad=True):
        result = check.call(model, x, label=label, hint_on_error="forward(x) must work without a state.")
        y, state = check.pair(result, "(y, state)", label)
        if not isinstance(y, torch.Tensor) or tuple(y.shape) != (B, T, out):
            got = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
            check.fail(f"y should have shape (B, T, output_size) = {(B, T, out)}, but it has {got}: the head "
                       f"predicts at every time step, and x is batch-first.", label)
            raise StudentCallFailed()
        batch_first_ok = _check_batch_independence(check, model, x, y, label)
        _check_layers(check, described, x, y, kind, label, compare_values=batch_first_ok)
        problem = _state_problem(state, kind, L, B, H, dtype, device)
        if problem:  # every check below passes states around
            check.fail("The state returned by forward: " + problem, label)
            raise StudentCallFailed()
        zero = check.call(_method(model, "init_state"), B, label=label)
        problem = _state_problem(zero, kind, L, B, H, dtype, device)
        if problem:
            check.fail("init_state(batch_size): " + problem, label)
        elif any(t.any() for t in _tensors(zero)):
            check.fail("init_state(batch_size) should return zeros.", label)
        else:
            y_zero, _ = check.pair(check.call(model, x, zero, label=label), "(y, state)", label)
            if not close(y_zero, y):
                check.fail("forward(x, model.init_state(B)) differs from forward(x): with no state given, forward "
                           "starts from the zero state.", label)
        _check_predictor_behaviour(check, model, x, y, label)


def _check_layers(check: Checker, described: dict, x, y, kind: str, label: str, compare_values: bool) -> None:
    """The recurrent modules are the kind `cell` names, and y is the head applied to what they compute (compared
    only when the batch layout is right: a time-major layer fed batch-first data is reported as that). The model's
    layers are rebuilt here from its description, so the reference outputs are computed by the grader."""
    units, heads = described["units"], described["heads"]
    if described["other_units"]:
        units = units + [None]  # a recurrent module of a kind the grader cannot rebuild: not the one `cell` names
    expected_unit = (LAYER_OF[kind], CELL_OF[kind])
    if kind == "rnn" and any(isinstance(u, (nn.RNN, nn.RNNCell)) and u.nonlinearity != "tanh" for u in units):
        check.fail("cell='rnn' is the slides' tanh RNN: keep nn.RNN's default nonlinearity.", label)
    elif units and heads and all(isinstance(u, expected_unit) for u in units) and len(heads) == 1:
        want = _reference_outputs(units, heads[0], x, kind)
        if compare_values and want.shape == y.shape and not close(y, want):
            check.fail("y should be the head applied to the recurrent layer's outputs, nothing more: "
                       "y = head(outputs), no activation on top (a regression target can be any real number).",
                       label, (y - want).abs().max().item())
    elif units and not all(isinstance(u, expected_unit) for u in units):
        used = {type(u).__name__ for u in units if u is not None} | set(described["other_units"])
        check.fail(f"cell='{kind}' should build an nn.{LAYER_OF[kind].__name__} (or nn.{CELL_OF[kind].__name__} "
                   f"cells); this model uses {', '.join(sorted(used))}.", label)
    elif not units:
        check.fail("Build the model from PyTorch's nn.RNN / nn.GRU / nn.LSTM (or their cells) and an nn.Linear "
                   "head.", label)


def _check_batch_independence(check: Checker, model, x, y, label: str) -> bool:
    """Each sequence of a batch is processed on its own: changing the first one must not change the others."""
    if x.shape[0] < 2:
        return True
    changed_first = x.clone()
    changed_first[0] += 1.0
    y_other, _ = check.pair(check.call(model, changed_first, label=label), "(y, state)", label)
    if isinstance(y_other, torch.Tensor) and y_other.shape == y.shape and not close(y_other[1:], y[1:]):
        check.fail("The outputs for some sequences change when *another* sequence of the batch changes: x is "
                   "batch-first (B, T, input_size), so create the layer with batch_first=True (or transpose to "
                   "time-major and back).", label)
        return False
    return True


def _check_predictor_behaviour(check: Checker, model, x, y, label: str) -> None:
    """What every correct predictor does, however it is built: continue from a state, look only at the past."""
    B, T, _ = x.shape
    k = T // 2
    y1, s1 = check.pair(check.call(model, x[:, :k], label=label), "(y, state)", label)
    y2, _ = check.pair(check.call(model, x[:, k:], s1, label=label), "(y, state)", label)
    if isinstance(y1, torch.Tensor) and isinstance(y2, torch.Tensor) and y1.shape[:2] == (B, k):
        if not close(torch.cat([y1, y2], 1), y):
            check.fail("Running the first half of a sequence and then the second half from the returned state "
                       "should give the same outputs as one pass over the whole sequence: forward must start from "
                       "the state it is given and return the state after the last step.", label)
    changed_future = x.clone()
    changed_future[:, k:] += 1.0
    y_future, _ = check.pair(check.call(model, changed_future, label=label), "(y, state)", label)
    if isinstance(y_future, torch.Tensor) and y_future.shape == y.shape and not close(y_future[:, :k], y[:, :k]):
        check.fail("Outputs at time t depend on inputs after t: the predictor must be causal (one direction, time "
                   "along dimension 1 of the batch-first input).", label)


# -- train_tbptt -------------------------------------------------------------------------------------------------
TBPTT_CASES = [  # (label, cell, T, chunk_len, max_grad_norm, carry_state)
    ("a GRU, T=23 in chunks of 5 (the last one shorter), state carried", "gru", 23, 5, None, True),
    ("an LSTM, T=30 in 10 chunks of 3, state carried, clipped at 0.05", "lstm", 30, 3, 0.05, True),
    ("an LSTM, T=18 in chunks of 6, carry_state=False", "lstm", 18, 6, None, False),
    ("a GRU, T=16 in chunks of 4, carry_state=False, clipped at 0.05", "gru", 16, 4, 0.05, False),
    ("a GRU, T=7 with chunk_len=10 (one chunk)", "gru", 7, 10, None, True),
]


def _tbptt_data(case: dict, seed: int):
    """The probe's arguments (cell, D, H, out, seed, dtype, device), and the inputs and targets, of one case."""
    gen = seeded(3400 + seed)
    dtype, device = case["dtype"], case["device"]
    inputs = randn(gen, 3, case["T"], 2).to(dtype=dtype, device=device)
    targets = randn(gen, 3, case["T"], 2).to(dtype=dtype, device=device)
    return (case["cell"], 2, 3, 2, 3500 + seed, dtype, device), inputs, targets


def _tbptt_args(case: dict, probe, inputs, targets, optimizer) -> tuple:
    return (probe, inputs, targets, case["chunk_len"], optimizer, nn.MSELoss(), case["max_grad_norm"],
            case["carry_state"])


def check_train_tbptt(namespace: dict) -> None:
    check = Checker("train_tbptt", namespace)
    train = check.student_function()
    cases = [dict(zip(("label", "cell", "T", "chunk_len", "max_grad_norm", "carry_state"), row),
                  dtype=torch.float64, device="cpu") for row in TBPTT_CASES]
    cases.append(dict(cases[1], label=cases[1]["label"] + ", float32", dtype=torch.float32))
    cases += [dict(cases[1], label=cases[1]["label"] + f", on {d}", device=d) for d in extra_devices()]
    for seed, case in enumerate(cases):
        with check.case(case["label"]) as label, substituted(train, **_REFERENCES):
            probe_args, inputs, targets = _tbptt_data(case, seed)
            want_probe, want_opt = make_probe(*probe_args)
            reference_train_tbptt(*_tbptt_args(case, want_probe, inputs, targets, want_opt))

            def run_student():  # in the kernel: a probe and its optimizer, the student's loop, their recordings
                probe, optimizer = check.student.helper("make_probe", *probe_args)
                losses = train(*_tbptt_args(case, probe, inputs, targets, optimizer))
                return check.student.helper("recordings", probe, optimizer), losses
            run_student.__name__ = "train_tbptt"
            recorded, losses = check.call(run_student, label=label, hint_on_error=(
                "If it says 'backward through the graph a second time' or 'modified by an inplace operation', the "
                "state carried into the next chunk still holds the previous chunk's graph: detach it."))
            _compare_tbptt(check, case, label, recorded, losses, targets,
                           {"calls": want_probe.calls, "steps": want_opt.steps})
    check.finish()


def _compare_tbptt(check, case, label, recorded: dict, losses, targets, wanted: dict) -> None:
    """What the student's loop made the probe see, against the reference loop. States and losses are compared with
    the student's own run (so one wrong update does not make every later chunk look wrong); gradients with the
    reference run, step by step, up to the first step that differs."""
    chunks = len(wanted["calls"])
    calls, steps = recorded.get("calls"), recorded.get("steps")
    shapes = [None if g is None else g.shape for g in wanted["steps"][0]] if wanted["steps"] else []
    if not (isinstance(calls, list) and isinstance(steps, list) and all(_is_call_record(c) for c in calls)
            and all(_is_step_record(step, shapes) for step in steps)):
        check.fail("The probe's recordings came back malformed: the model and the optimizer given to train_tbptt "
                   "must be used as they are (call them, do not replace or edit them).", label)
        raise StudentCallFailed()
    if len(calls) != chunks or any(c["x"].shape != w["x"].shape or not torch.equal(c["x"], w["x"])
                                   for c, w in zip(calls, wanted["calls"])):
        check.fail(f"The model should be called once per chunk, on consecutive chunks inputs[:, k*chunk_len:"
                   f"(k+1)*chunk_len] along the time axis (the last one may be shorter); here that is {chunks} "
                   f"call{'s' if chunks > 1 else ''}.", label)
        raise StudentCallFailed()
    state_problem = _state_entering_problem(case, calls)
    if state_problem:
        check.fail(state_problem, label)
    if len(steps) != chunks:
        check.fail(f"There should be one optimizer.step() per chunk ({chunks} here), but there were "
                   f"{len(steps)}.", label)
    elif not state_problem:  # with a wrong state the gradients differ anyway: report the cause only
        _compare_steps(check, case, label, steps, wanted["steps"])
    if not (isinstance(losses, (list, tuple)) and len(losses) == chunks):
        n = len(losses) if isinstance(losses, (list, tuple)) else type(losses).__name__
        check.fail(f"train_tbptt should return a list with one loss per chunk ({chunks} here), got {n}.", label)
    elif not all(isinstance(v, (float, int, np.floating)) for v in losses):
        check.fail("Return the losses as plain floats (loss.item()): a list of tensors keeps every chunk's graph "
                   "alive.", label)
    else:
        n = case["chunk_len"]
        chunk_losses = [nn.functional.mse_loss(call["y"], targets[:, k * n:(k + 1) * n]).item()
                        for k, call in enumerate(calls)]
        if not all(math.isclose(v, w, rel_tol=1e-5, abs_tol=1e-7) for v, w in zip(losses, chunk_losses)):
            check.fail("The returned losses are not the chunks' losses: return loss.item() of every chunk, in order, "
                       "computed as loss_fn(predictions, targets of that chunk).", label)


def _is_call_record(call) -> bool:
    """One forward call as ProbeModel records it (data from the kernel: checked before it is used)."""
    tensor_list = lambda v: isinstance(v, list) and all(isinstance(t, torch.Tensor) for t in v)  # noqa: E731
    return (isinstance(call, dict) and isinstance(call.get("x"), torch.Tensor) and isinstance(call.get("y"),
            torch.Tensor) and (call.get("state") is None or tensor_list(call.get("state")))
            and tensor_list(call.get("state_out")) and isinstance(call.get("state_has_graph"), bool))


def _is_step_record(step, shapes: list) -> bool:
    """One optimizer.step() as RecordingSGD records it: a gradient (or None) for every parameter, in its shape."""
    return (isinstance(step, list) and len(step) == len(shapes)
            and all(g is None or (isinstance(g, torch.Tensor) and g.shape == shape) for g, shape in zip(step, shapes)))


def _state_entering_problem(case, calls) -> str | None:
    """What is wrong with the state the model was given at the start of each chunk, if anything."""
    for k, call in enumerate(calls):
        entering = call["state"]
        is_zero = entering is None or not any(t.any() for t in entering)
        if k == 0 or not case["carry_state"]:
            if not is_zero:
                return ("With carry_state=False (and for the first chunk always) a chunk must start from the zero "
                        "state: pass state=None or model.init_state(B).")
        elif call["state_has_graph"]:
            return ("The state entering a chunk still belongs to the previous chunk's graph: detach it "
                    "(detach_state) after each chunk, so backpropagation stops at the chunk boundary.")
        elif is_zero:
            return ("With carry_state=True the state entering a chunk is zero: it must be the previous chunk's final "
                    "state, detached (values kept, graph cut), not a fresh zero state.")
        else:
            previous = calls[k - 1]["state_out"]
            if len(entering) != len(previous) or not all(close(t, w) for t, w in zip(entering, previous)):
                return ("With carry_state=True each chunk must start from the previous chunk's final state (the "
                        "state the model returned for it).")
    return None


def _compare_steps(check, case, label, got_steps, want_steps) -> None:
    limit = case["max_grad_norm"]
    for got, want in zip(got_steps, want_steps):
        present = [g for g in got if g is not None]
        norm = _total_norm(present) if present else 0.0
        if limit is not None and norm > limit * (1 + 1e-4):
            check.fail("At optimizer.step() the gradients' global norm is above max_grad_norm: call "
                       "clip_grad_norm(model.parameters(), max_grad_norm) after loss.backward() and before "
                       "optimizer.step().", label)
            return
        if any((g is None) != (w is None) or (g is not None and not close(g, w)) for g, w in zip(got, want)):
            if limit is None and norm < _total_norm([w for w in want if w is not None]) * (1 - 1e-6):
                check.fail("The gradients were clipped although max_grad_norm is None: clip only when it is given.",
                           label)
            else:
                check.fail("The gradients at optimizer.step() are not those of the chunk's loss: call "
                           "optimizer.zero_grad() before loss.backward() in every chunk (gradients must not "
                           "accumulate across chunks), and clip only the current chunk's gradients.", label)
            return


# -- the trained predictor ------------------------------------------------------------------------------------
# 63-bit seeds, drawn once for the course and shown nowhere students look: a notebook that knows make_series cannot
# find them by trying seeds (small ones could be found in seconds from the first value it is given).
QUALITY_SEEDS = (5501247757011949360, 8473829875278574994)
QUALITY_STEPS = 1000
MAX_L1_RATIO = 0.25  # the predictor's one-step L1 must be at most this fraction of the persistence baseline's
# Below this, predictions beat the series' own observation noise (0.05): possible only for a model that knows the
# values before it is given them.
MIN_L1_RATIO = 0.02


def one_step_l1(model, series, warmup=20):
    """Mean |prediction - next value| of the model run over the whole series from the zero state, after warmup."""
    parameter = next(model.parameters())
    x = series[:-1].view(1, -1, 1).to(dtype=parameter.dtype, device=parameter.device)
    with torch.no_grad():
        y, _ = model(x)
    prediction = y.reshape(-1).double().cpu()
    return (prediction[warmup:] - series[1 + warmup:].double()).abs().mean().item()


def persistence_l1(series, warmup=20):
    return (series[warmup:-1].double() - series[1 + warmup:].double()).abs().mean().item()


def streamed_one_step_l1(check: Checker, model, series: torch.Tensor, dtype, device, warmup=20) -> list[float]:
    """one_step_l1 for each row of `series` (S, T), with the predictions made one step at a time: the model is
    given x[t] and its state, and returns its prediction of x[t + 1] before it sees x[t + 1]."""
    x = series[:, :-1].unsqueeze(2).to(dtype=dtype, device=device)
    state, steps = None, []
    with check.student.calling(no_grad=True):
        for t in range(x.shape[1]):
            y, state = check.pair(model(x[:, t:t + 1], state), "(y, state)", "held-out series")
            if not (isinstance(y, torch.Tensor) and y.numel() == x.shape[0]):
                check.fail("predictor(x) with x of shape (B, 1, 1) should return y of shape (B, 1, 1).")
                raise StudentCallFailed()
            steps.append(y.reshape(-1).double().cpu())
    prediction = torch.stack(steps, 1)
    target = series[:, 1:].double()
    return [(p[warmup:] - s[warmup:]).abs().mean().item() for p, s in zip(prediction, target)]


def check_predictor(namespace: dict) -> None:
    check = Checker("predictor", namespace)
    model = check.student_object()
    info = check.student.lookup("predictor")
    described = check.student.helper("describe", model) if info.get("is_module") else {}
    if not described.get("parameter_count"):
        raise HiddenTestFailure("predictor should be your trained SequencePredictor (an nn.Module with parameters); "
                                f"it is a {info.get('type', 'value')}.")
    was_training = bool(described["training"])
    dtype, device = described["dtype"], described["device"]
    series = torch.stack([make_series(QUALITY_STEPS, seed) for seed in QUALITY_SEEDS])
    _ask_quietly(model, "eval")
    try:
        with check.case("held-out series"):
            def evaluate():
                return streamed_one_step_l1(check, model, series, dtype, device)
            evaluate.__name__ = "predictor"
            l1s = check.call(evaluate, label="held-out series", hint_on_error=(
                "predictor(x, state) is called with x of shape (B, 1, 1), one step at a time, and must return "
                "(y, state)."))
            for k, l1 in enumerate(l1s):
                label = f"held-out series {k + 1}"
                ratio = l1 / persistence_l1(series[k])
                if math.isfinite(ratio) and ratio < MIN_L1_RATIO:
                    check.fail("predictor predicts held-out values more exactly than the noise in the series "
                               "allows: no model that sees only the past can; it must not use anything but the "
                               "values it is given.", label)
                elif not (math.isfinite(ratio) and ratio <= MAX_L1_RATIO):
                    shown = f"{ratio:.2f}" if math.isfinite(ratio) else "not finite"
                    check.fail(f"On held-out series from the same system, predictor's one-step-ahead L1 error is "
                               f"{shown} times that of the persistence baseline (predict the last value); it must "
                               f"be at most {MAX_L1_RATIO:g} times. Check that predictor was trained on the "
                               f"training windows to predict the next value (y[:, t] ≈ x[:, t + 1]), for enough "
                               f"epochs, and that its loss went down.", label)
    finally:
        _ask_quietly(model, "train", was_training)
    check.finish()


def _ask_quietly(model, name: str, *args) -> None:
    """Call a method whose failure the quality test itself reports (a kernel that stops answering still ends it)."""
    try:
        model.method(name, *args)
    except (StudentRaised, StudentTimedOut, ProtocolBroken):
        pass


# -- forecast ---------------------------------------------------------------------------------------------------
# forecast is graded on its own: its cases use models the student's SequencePredictor builds (every cell type, one
# and two layers) when that class computes what its PyTorch modules compute; otherwise (the class is missing, broken
# or wrong) a case uses a stand-in with the same interface, a recording probe (rnncourse.kernels.recorders), so a
# wrong SequencePredictor does not cost forecast's points. The expected forecast is computed here, by a twin of the
# model rebuilt from its modules (or an identical probe), in float64. Two cases always use a probe, whose recordings
# show how forecast used the model: whether it re-read the history, carried the state and fed its predictions back.
FORECAST_CASES = [  # (label, cell, D, H, num_layers, B, T0, steps, model in training mode)
    ("cell='lstm', D=2, H=5, a model in training mode", "lstm", 2, 5, 1, 3, 6, 8, True),
    ("cell='gru' with num_layers=2, a model in eval mode", "gru", 1, 4, 2, 2, 9, 6, False),
    ("cell='rnn', D=3, H=6, a model in training mode", "rnn", 3, 6, 1, 2, 4, 9, True),
    ("cell='lstm' with num_layers=2, a one-step context, eval mode", "lstm", 2, 3, 2, 2, 1, 5, False),
    ("cell='gru', a single step to forecast", "gru", 2, 4, 1, 3, 5, 1, True),
]
FORECAST_PROBE_CASES = [  # (label, cell, D, H, B, T0, steps, training): forecast watched through a recording model
    ("a recording GRU model", "gru", 2, 4, 2, 6, 10, True),
    ("a recording LSTM model in eval mode", "lstm", 1, 3, 3, 5, 12, False),
]


class _Twin:
    """The student's model rebuilt here from its PyTorch modules (float64, CPU), called like a SequencePredictor:
    twin(x, state) -> (y, state), with a state of its own layout (one per recurrent module)."""

    def __init__(self, units, head):
        self.units = [copy.deepcopy(u).double().cpu() for u in units]
        self.head = copy.deepcopy(head).double().cpu()

    def __call__(self, x, state=None):
        out = x.detach().double().cpu()
        states, new = (list(state) if state is not None else [None] * len(self.units)), []
        with torch.no_grad():
            for unit, s in zip(self.units, states):
                if isinstance(unit, nn.RNNBase):
                    out, s = unit(out if unit.batch_first else out.transpose(0, 1), s)
                    out = out if unit.batch_first else out.transpose(0, 1)
                else:
                    steps = []
                    for t in range(out.shape[1]):
                        s = unit(out[:, t], s)
                        steps.append(s[0] if isinstance(s, tuple) else s)
                    out = torch.stack(steps, 1)
                new.append(s)
            return self.head(out), new


class _ProbeTwin:
    """An identical probe (rnncourse.kernels.recorders) in float64 on the CPU, called like the model."""

    def __init__(self, cell, D, H, seed):
        self.probe = make_probe(cell, D, H, D, seed, torch.float64, "cpu")[0]

    def __call__(self, x, state=None):
        with torch.no_grad():
            return self.probe(x.detach().double().cpu(), state)


def reference_forecast(model, context, steps, feed=None, carry=True):
    """What forecast returns, for any model called as model(x, state) -> (y, state). `feed` and `carry` make the
    known mistakes: feed(k, prediction) is the input of step k; carry=False restarts every step from zeros."""
    with torch.no_grad():
        y, state = model(context)
        prediction = y[:, -1:]
        predictions = [prediction]
        for k in range(steps - 1):
            x = prediction if feed is None else feed(k, prediction)
            prediction, new_state = model(x, state if carry else None)
            state = new_state
            predictions.append(prediction)
        return torch.cat(predictions, 1)


def _forecast_mistakes(twin, context, steps):
    """(description, output) for the plausible mistakes, for Checker.expect_tensor."""
    c = context.double().cpu()
    return [
        ("the last observed value is fed back at every step instead of the model's own previous prediction: after "
         "the context, each input is the prediction just made",
         lambda: reference_forecast(twin, c, steps, feed=lambda k, p: c[:, -1:])),
        ("the one-step predictions over the context are returned (the model reads observed values, never its own "
         "predictions); a forecast continues past the context, feeding each prediction back",
         lambda: twin(c)[0][:, c.shape[1] - steps:] if steps <= c.shape[1] else _impossible()),
        ("the state is reset to zero before each new step: carry the state the model returned",
         lambda: reference_forecast(twin, c, steps, carry=False)),
        ("the predictions start one step too early: the first one is the output at the second-to-last context "
         "step; read the whole context, the first prediction is the output at its last step",
         lambda: reference_forecast(twin, c[:, :-1], steps)),
        ("the predictions start one step too late: the first prediction is the output at the last context step "
         "itself, before anything is fed back",
         lambda: reference_forecast(twin, c, steps + 1)[:, 1:]),
    ]


def _impossible():
    raise ValueError("a mistake these shapes cannot show")


def _student_forecast_model(check: Checker, case: dict, seed: int):
    """A model built by the student's SequencePredictor for this case, with its twin; None when the class is missing,
    cannot build it, or builds a model that does not compute what its own modules compute (state carried included)."""
    if "SequencePredictor" not in check.student or not check.student.lookup("SequencePredictor").get("callable"):
        return None
    predictor_class = check.student["SequencePredictor"]
    D, L, B, T0 = case["D"], case["L"], case["B"], case["T0"]
    try:
        with check.student.calling(seed=3600 + seed):
            model = predictor_class(D, case["H"], D, num_layers=L, cell=case["cell"])
        model = model.method("to", case["dtype"]).method("to", case["device"])
        described = check.student.helper("describe", model)
        units, heads = described["units"], described["heads"]
        if described["other_units"] or not units or len(heads) != 1:
            return None
        twin = _Twin(units, heads[0])
        z = randn(seeded(3700 + seed), B, T0 + 2, D).to(dtype=case["dtype"], device=case["device"])
        with check.student.calling(no_grad=True):
            y_all = model(z)[0]
            y_first, state = model(z[:, :T0])
            y_next = model(z[:, T0:T0 + 1], state)[0]
        want = twin(z)[0]
        joined = torch.cat([y_first, y_next], 1)
        if close(y_all, want) and close(joined, want[:, :T0 + 1]):
            return model, twin
    except (StudentRaised, StudentTimedOut, ProtocolBroken, TypeError, ValueError, IndexError, KeyError,
            AttributeError, RuntimeError):
        pass
    return None


def check_forecast(namespace: dict) -> None:
    check = Checker("forecast", namespace)
    forecast = check.student_function()
    cases = [dict(zip(("label", "cell", "D", "H", "L", "B", "T0", "steps", "training"), row),
                  dtype=torch.float64, device="cpu", probe=False) for row in FORECAST_CASES]
    cases.append(dict(cases[0], label=cases[0]["label"] + ", float32", dtype=torch.float32))
    cases += [dict(cases[0], label=cases[0]["label"] + f", on {d}", device=d) for d in extra_devices()]
    cases += [dict(zip(("label", "cell", "D", "H", "B", "T0", "steps", "training"), row), L=1,
                   dtype=torch.float64, device="cpu", probe=True) for row in FORECAST_PROBE_CASES]
    for seed, case in enumerate(cases):
        label = case["label"]
        built = None if case["probe"] else _student_forecast_model(check, case, seed)
        if built is None and not case["probe"]:
            label += " (on a stand-in model: SequencePredictor could not build this one correctly)"
        with check.case(label):
            _check_forecast_case(check, forecast, case, seed, label, built)
    check.finish()


def _check_forecast_case(check: Checker, forecast, case: dict, seed: int, label: str, built) -> None:
    D, B, T0, steps = case["D"], case["B"], case["T0"], case["steps"]
    dtype, device = case["dtype"], case["device"]
    if built is not None:
        model, twin = built
    else:
        probe_seed = 3800 + seed
        model, optimizer = check.student.helper("make_probe", case["cell"], D, case["H"], D, probe_seed, dtype,
                                                device)
        twin = _ProbeTwin(case["cell"], D, case["H"], probe_seed)
    check.call(_method(model, "train"), case["training"], label=label)
    context = randn(seeded(3900 + seed), B, T0, D).to(dtype=dtype, device=device)
    before = context.clone()
    result = check.call(forecast, model, context, steps, label=label)
    check.expect_unchanged([before], [context], ["context"], label)
    training = check.student.helper("describe", model)["training"]
    if training != case["training"]:
        found, left = ("training", "eval") if case["training"] else ("eval", "training")
        check.fail(f"forecast left the model in {left} mode, but it was in {found} mode: if you switch to "
                   f"model.eval() for the forecast, restore the mode afterwards (was_training = model.training "
                   f"... model.train(was_training)).", label)
    if isinstance(result, torch.Tensor) and (result.requires_grad or result.grad_fn is not None):
        check.fail("The predictions require grad: forecast is inference, run the model under torch.no_grad() "
                   "(autograd would otherwise keep the graph of every step).", label)
    want = reference_forecast(twin, context, steps)
    check.expect_tensor(result, want.to(dtype=dtype, device=device), "predictions", label,
                        mistakes=_forecast_mistakes(twin, context, steps),
                        shape_hint="It is (B, steps, D): one prediction per future step, the first being the "
                                   "output at the last context step.")
    if case["probe"]:
        recorded = check.student.helper("recordings", model, optimizer)
        if recorded.get("calls") or isinstance(result, torch.Tensor):
            _check_forecast_calls(check, recorded.get("calls"), T0, steps, label)


def _check_forecast_calls(check: Checker, calls, T0: int, steps: int, label: str) -> None:
    """How forecast used the probe: the time steps it ran, the state it passed on, the inputs it fed."""
    if isinstance(calls, list) and not calls:
        check.fail("forecast never called the model it was given: call it as model(x, state).", label)
        return
    if not (isinstance(calls, list) and all(_is_call_record(c) for c in calls)):
        check.fail("The model's recordings came back malformed: forecast must call the model it is given, as "
                   "model(x, state), and leave it as it is.", label)
        return
    seen = sum(c["x"].shape[1] for c in calls)
    if seen > 2 * (T0 + steps):
        check.fail("forecast re-reads the history: it ran the model over far more time steps than the context plus "
                   "one step per prediction. Read the context once, then call the model on one step at a time, "
                   "x of shape (B, 1, D), with the state it returned: the state carries the history, so each "
                   "prediction costs one step (O(steps), not O(steps²)).", label)
        return
    for previous, call in zip(calls, calls[1:]):
        entering = call["state"]
        if entering is None or not any(t.any() for t in entering):
            check.fail("After the context, forecast starts a step from the zero state: pass the state the model "
                       "returned for the previous step (it holds everything read so far).", label)
            return
        if len(entering) != len(previous["state_out"]) or not all(
                close(t, w) for t, w in zip(entering, previous["state_out"])):
            check.fail("Each call of the model should continue from the state the previous call returned.", label)
            return
    inputs = torch.cat([c["x"] for c in calls], 1)
    outputs = torch.cat([c["y"] for c in calls], 1)
    fed = inputs[:, T0:]
    if fed.shape[1] and not close(fed, outputs[:, T0 - 1:T0 - 1 + fed.shape[1]]):
        check.fail("After the context, the model must be fed its own previous prediction (the output of the step "
                   "before, shape (B, 1, D)), not observed values.", label)


# -- checkpoints -------------------------------------------------------------------------------------------------
# save_checkpoint writes into a scratch file in the kernel; the grader reads the bytes back and opens them with its
# own torch.load(..., weights_only=True), which never runs code from the file. load_checkpoint is given checkpoints
# the grader made itself (torch.save of the documented dict, from a model the student's class built), so a wrong
# save_checkpoint cannot cost load_checkpoint's points. Both need models; save_checkpoint's are built by the student's
# SequencePredictor when it builds one nn.RNN/GRU/LSTM and a head (else a probe of the same form stands in), and
# load_checkpoint's must be (it rebuilds SequencePredictor(**config)).
CONFIG_KEYS = ("input_size", "hidden_size", "output_size", "num_layers", "cell")
CELL_NAME = {nn.RNN: "rnn", nn.GRU: "gru", nn.LSTM: "lstm"}
CHECKPOINT_CASES = [  # (label, cell, D, H, O, num_layers)
    ("cell='lstm', D=3, H=5, output_size=2", "lstm", 3, 5, 2, 1),
    ("cell='gru' with num_layers=2", "gru", 2, 4, 3, 2),
    ("cell='rnn', D=1, H=6, output_size=1", "rnn", 1, 6, 1, 1),
    ("cell='lstm' with num_layers=2", "lstm", 2, 3, 2, 2),
]


def _config(case: dict) -> dict:
    return {"input_size": case["D"], "hidden_size": case["H"], "output_size": case["O"], "num_layers": case["L"],
            "cell": case["cell"]}


def _build_student_model(check: Checker, config: dict, seed: int):
    """SequencePredictor(**config) built in the kernel (seeded); raises StudentError/ProtocolBroken when it cannot."""
    predictor_class = check.student["SequencePredictor"]
    with check.student.calling(seed=seed):
        return predictor_class(**config)


def _torch_bytes(obj) -> torch.Tensor:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return torch.frombuffer(bytearray(buffer.getvalue()), dtype=torch.uint8).clone()


# Reading a file the student's code wrote costs the grader what the file says: weights_only keeps code out, not cost.
# A 16 MB zip of deflated zeros inflates to 16 GB, a pickle of tuples that share their halves hashes for 2**n steps
# as a dict key, and torch's C++ reader is one more parser of hostile bytes. So the file is opened in a child process
# forked for it, with limits on its memory, CPU and wall time, and only wire data (rnncourse.kernels.wire: plain
# values and tensors, bounded and strictly decoded) comes back; whatever the file does, the grader goes on grading.
CHECKPOINT_READ_LIMIT_S = 5.0
CHECKPOINT_READ_MEMORY_BYTES = 1 << 30  # beyond what the grader already holds; a real checkpoint here is kilobytes
CHECKPOINT_ANSWER_BYTES = 48 << 20  # the wire's own bound is 16 MiB per tensor; base64 adds a third


class CheckpointUnreadable(Exception):
    """The grader could not open a student's checkpoint; `why` is one of "code" (weights_only refused it: a pickled
    object), "format" (not a file torch.load reads), "data" (it holds values other than plain data and tensors, or
    deep nesting), "large" (a tensor over the wire's 16 MiB), "cost" (opening it took too much memory or time)."""

    def __init__(self, why: str):
        super().__init__(why)
        self.why = why


def _read_in_child(raw: bytes, write_fd: int) -> None:
    """In the forked child: torch.load the bytes and write the answer as JSON to write_fd. Never returns."""
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # the grader's own handlers are not this process's
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        data_limit = _vm_data_bytes() + CHECKPOINT_READ_MEMORY_BYTES
        resource.setrlimit(resource.RLIMIT_DATA, (data_limit, data_limit))
        cpu = int(CHECKPOINT_READ_LIMIT_S) + 1
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        torch.set_num_threads(1)  # no thread pool in a forked child
        try:
            value = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:  # weights_only refused a global; bytes that are no zip end here too
            answer = {"why": "code" if zipfile.is_zipfile(io.BytesIO(raw)) else "format"}
        except MemoryError:
            answer = {"why": "cost"}
        except Exception as exc:  # noqa: BLE001 - whatever torch makes of bytes that are not its format
            answer = {"why": "cost" if "allocate" in str(exc) else "format"}
        else:
            try:
                answer = {"result": wire.encode(value)}
            except MemoryError:
                answer = {"why": "cost"}
            except wire.WireError as exc:  # sets, bytes, complex or sparse tensors, deep nesting, huge tensors
                answer = {"why": "large" if "MiB" in str(exc) else "data"}
            except Exception:  # noqa: BLE001 - whatever else a tensor from the file cannot do
                answer = {"why": "data"}
        payload = json.dumps(answer).encode()
        with os.fdopen(write_fd, "wb") as out:
            out.write(payload)
    except BaseException:  # noqa: BLE001 - nothing may escape into a copy of the grader
        pass
    finally:
        os._exit(0)


def _vm_data_bytes() -> int:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmData:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 4 << 30


def _open_checkpoint(data: torch.Tensor):
    """The grader's own safe loader for a file the student's code wrote: torch.load(..., weights_only=True) in a
    limited child process (see CHECKPOINT_READ_LIMIT_S); the file's content as plain values and tensors, or
    CheckpointUnreadable."""
    raw = data.numpy().tobytes()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        _read_in_child(raw, write_fd)
    os.close(write_fd)
    chunks, size, deadline, finished = [], 0, time.monotonic() + CHECKPOINT_READ_LIMIT_S, False
    try:
        while size <= CHECKPOINT_ANSWER_BYTES:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([read_fd], [], [], remaining)[0]:
                break
            chunk = os.read(read_fd, 1 << 20)
            if not chunk:
                finished = True
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(read_fd)
        if not finished:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    if not finished or not chunks:  # out of time, over its memory (killed), or an answer too large
        raise CheckpointUnreadable("cost")
    try:
        answer = json.loads(b"".join(chunks))
        if "result" in answer:
            return wire.decode(answer["result"])
        why = answer["why"]
    except (ValueError, TypeError, KeyError, RecursionError):
        why = "data"
    raise CheckpointUnreadable(why if why in UNREADABLE else "format")


def _configured_from(described: dict) -> dict | None:
    """The config save_checkpoint should read off a model that has one nn.RNN/GRU/LSTM and one nn.Linear head."""
    units, heads = described["units"], described["heads"]
    if described["other_units"] or len(units) != 1 or len(heads) != 1 or not isinstance(units[0], nn.RNNBase):
        return None
    rnn, head = units[0], heads[0]
    cell = next((name for layer, name in CELL_NAME.items() if isinstance(rnn, layer)), None)
    return {"input_size": rnn.input_size, "hidden_size": rnn.hidden_size, "output_size": head.out_features,
            "num_layers": rnn.num_layers, "cell": cell}


def check_save_checkpoint(namespace: dict) -> None:
    check = Checker("save_checkpoint", namespace)
    save = check.student_function()
    cases = [dict(zip(("label", "cell", "D", "H", "O", "L"), row), dtype=torch.float32, device="cpu")
             for row in CHECKPOINT_CASES]
    cases.append(dict(cases[1], label=cases[1]["label"] + ", float64", dtype=torch.float64))
    cases += [dict(cases[0], label=cases[0]["label"] + f", on {d}", device=d) for d in extra_devices()]
    for seed, case in enumerate(cases):
        model, expected = _save_case_model(check, case, seed)
        label = case["label"] if expected["from_class"] else (
            case["label"] + " (on a stand-in model: SequencePredictor did not build one nn.RNN/GRU/LSTM and a head)")
        with check.case(label):
            _check_save_case(check, save, model, expected["config"], label)
        if UNREADABLE["cost"] in check.problems:  # each such file costs the grader its time limit: one is enough
            break
    check.finish()


def _save_case_model(check: Checker, case: dict, seed: int):
    """The model to save (the student's class when it builds the documented form, else a probe) and the config
    that model's modules say."""
    try:
        if "SequencePredictor" in check.student and check.student.lookup("SequencePredictor").get("callable"):
            model = _build_student_model(check, _config(case), 4000 + seed)
            model = model.method("to", case["dtype"]).method("to", case["device"])
            config = _configured_from(check.student.helper("describe", model))
            if config is not None:
                return model, {"config": config, "from_class": True}
    except (StudentRaised, StudentTimedOut, ProtocolBroken, TypeError, ValueError, AttributeError, KeyError):
        pass
    model, _ = check.student.helper("make_probe", case["cell"], case["D"], case["H"], case["O"], 4100 + seed,
                                    case["dtype"], case["device"])
    config = dict(_config(case), num_layers=1)
    return model, {"config": config, "from_class": False}


def _check_save_case(check: Checker, save, model, config: dict, label: str) -> None:
    path = check.student.helper("scratch_path", "model.pt")
    check.call(save, model, path, label=label, hint_on_error=(
        "If it cannot pickle a class, the whole model (a pickled model or object) is being saved: save only the dict "
        '{"config": {...}, "state_dict": model.state_dict()} of plain values and tensors.'))
    try:
        data = check.student.helper("read_bytes", path)
    except StudentRaised as exc:
        check.fail({
            "NotARegularFile": "save_checkpoint left something other than a file at the path it was given (a "
                               "folder, a link to a device, a pipe): write the checkpoint file itself, "
                               "torch.save(checkpoint, path).",
            "FileTooLarge": "save_checkpoint wrote a file larger than the grader reads (16 MiB): save only "
                            '{"config": {...}, "state_dict": model.state_dict()}, whose file is a few kilobytes.',
        }.get("NotARegularFile" if exc.type_name == "IsADirectoryError" else exc.type_name,
              "save_checkpoint wrote no file at the path it was given: torch.save(checkpoint, "
                             "path)."), label)
        raise StudentCallFailed() from None
    if not isinstance(data, torch.Tensor) or data.dtype != torch.uint8:
        raise ProtocolBroken("the file's bytes did not come back")
    try:
        checkpoint = _open_checkpoint(data)
    except CheckpointUnreadable as unreadable:
        check.fail(UNREADABLE[unreadable.why], label)
        raise StudentCallFailed() from None
    if not isinstance(checkpoint, dict):
        check.fail('The file should hold a dict {"config": ..., "state_dict": ...}, but it holds a '
                   f"{type(checkpoint).__name__}.", label)
        raise StudentCallFailed()
    if "config" not in checkpoint:
        check.fail('The checkpoint has no "config": a state_dict alone holds weights, not the model\'s sizes, '
                   'layers and cell. Save {"config": {...the constructor\'s arguments...}, "state_dict": '
                   "model.state_dict()}.", label)
    else:
        _check_saved_config(check, checkpoint["config"], config, label)
    if "state_dict" not in checkpoint:
        check.fail('The checkpoint has no "state_dict": save the weights as model.state_dict() under that key.',
                   label)
    else:
        _check_saved_weights(check, checkpoint["state_dict"], check.student.helper("state_dict", model), label)


UNREADABLE = {  # CheckpointUnreadable.why -> what the student reads
    "code": "torch.load(path, weights_only=True) refuses the file: it holds a pickled model or object, which only "
            "weights_only=False (running code from the file) could load. Save only the dict "
            '{"config": {...}, "state_dict": model.state_dict()} of plain values and tensors, not the model.',
    "format": "The file is not a checkpoint torch.load can read: write it with torch.save.",
    "data": 'The file holds values other than plain ones (dicts with str keys, lists, tuples, ints, floats, str, '
            'bool, None) and tensors of the usual dtypes: save {"config": {...}, "state_dict": model.state_dict()} '
            "and nothing else.",
    "large": "The file holds a tensor larger than the grader reads (16 MiB): save only "
             '{"config": {...}, "state_dict": model.state_dict()}, whose file is a few kilobytes.',
    "cost": "The file could not be opened within the grader's limits on time and memory: save only "
            '{"config": {...}, "state_dict": model.state_dict()}, whose file is a few kilobytes.',
}


def _check_saved_config(check: Checker, saved, config: dict, label: str) -> None:
    if not isinstance(saved, dict):
        check.fail(f'"config" should be a dict of the constructor\'s arguments, not a {type(saved).__name__}.',
                   label)
        return
    missing, extra = [k for k in CONFIG_KEYS if k not in saved], [k for k in saved if k not in CONFIG_KEYS]
    if missing or extra:
        parts = ([f"it lacks {', '.join(missing)}"] if missing else []) + (
            [f"it has keys SequencePredictor's constructor does not take ({', '.join(map(str, extra))})"]
            if extra else [])
        check.fail(f'"config" should hold exactly {", ".join(CONFIG_KEYS)}: {"; ".join(parts)}. '
                   "SequencePredictor(**config) must rebuild the model.", label)
    for key in CONFIG_KEYS:
        if key not in saved:
            continue
        value, want = saved[key], config[key]
        if key == "cell":
            if value != want:
                check.fail('config["cell"] should be "rnn", "gru" or "lstm", named after the class of the model\'s '
                           'recurrent layer (an nn.GRU is "gru").', label)
        elif isinstance(value, bool) or not isinstance(value, int):
            check.fail(f'config["{key}"] should be a plain int, not a {type(value).__name__}.', label)
        elif value != want:
            where = ("the head's out_features" if key == "output_size"
                     else f"the recurrent layer's {key} (e.g. model.rnn.{key})")
            check.fail(f'config["{key}"] does not describe the model: read it off {where}, not off the inputs of '
                       f"an earlier call or a default.", label)


def _check_saved_weights(check: Checker, saved, weights: dict, label: str) -> None:
    if not isinstance(saved, dict) or list(map(str, saved)) != list(weights):
        check.fail('"state_dict" should be model.state_dict() itself: the same keys, in the same order, each '
                   "with its tensor.", label)
        return
    for name, tensor in weights.items():
        got = saved[name]
        if not (isinstance(got, torch.Tensor) and got.shape == tensor.shape and got.dtype == tensor.dtype
                and torch.equal(got.cpu(), tensor.cpu())):
            check.fail("The saved tensors are not the model's: save model.state_dict() as it is (same values and "
                       "dtype, nothing re-initialised, converted or trained).", label)
            return


# -- load_checkpoint ---------------------------------------------------------------------------------------------
class _RunsCode:
    """Pickled as a call of torch.full: only an unpickler that runs code from the file can load it."""

    def __init__(self, shape):
        self.shape = tuple(shape)

    def __reduce__(self):
        return torch.full, (self.shape, 0.25)


def retagged(data: torch.Tensor, location: str) -> torch.Tensor:
    """A torch.save file whose tensors say they were saved on `location` (e.g. "cuda:7"): its data.pkl names the
    storage location of each tensor; only map_location can load them elsewhere."""
    source = zipfile.ZipFile(io.BytesIO(data.numpy().tobytes()))
    out = io.BytesIO()
    old, new = b"X\x03\x00\x00\x00cpu", b"X" + len(location).to_bytes(4, "little") + location.encode()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as target:
        for info in source.infolist():
            body = source.read(info.filename)
            if info.filename.endswith("/data.pkl"):
                if body.count(old) != 1:
                    raise AssertionError("the checkpoint's pickle does not name its location once")
                body = body.replace(old, new)
            target.writestr(info.filename, body)
    return torch.frombuffer(bytearray(out.getvalue()), dtype=torch.uint8).clone()


LOAD_MISMATCHES = [  # (label, what the checkpoint does, how to make it from (config, state_dict))
    ("a checkpoint whose config has another hidden size than its weights", "has a config whose hidden size differs "
     "from its weights'", lambda c, sd: ({"config": dict(c, hidden_size=c["hidden_size"] + 2), "state_dict": sd},
                                         dict(c, hidden_size=c["hidden_size"] + 2))),
    ("a checkpoint whose config names another cell type", "names another cell type than its weights have",
     lambda c, sd: ({"config": dict(c, cell=_other_cell(c["cell"])), "state_dict": sd},
                    dict(c, cell=_other_cell(c["cell"])))),
    ("a checkpoint with a key missing from its state_dict", "lacks a key of the model's state_dict",
     lambda c, sd: ({"config": c, "state_dict": dict(list(sd.items())[:-1])}, None)),
    ("a checkpoint with an unexpected key in its state_dict", "has a key the model does not have",
     lambda c, sd: ({"config": c, "state_dict": dict(sd, **{"extra_layer.weight": torch.zeros(2, 2)})}, None)),
    ("a checkpoint without a config", 'has no "config"', lambda c, sd: ({"state_dict": sd}, None)),
]


def _other_cell(cell: str) -> str:
    return {"lstm": "gru", "gru": "lstm", "rnn": "lstm"}[cell]


def check_load_checkpoint(namespace: dict) -> None:
    check = Checker("load_checkpoint", namespace)
    load = check.student_function()
    if "SequencePredictor" not in check.student or not check.student.lookup("SequencePredictor").get("callable"):
        raise HiddenTestFailure("load_checkpoint rebuilds SequencePredictor(**config), but SequencePredictor is not "
                                "defined: run its cell first (load_checkpoint could not be graded).")
    cases = [dict(zip(("label", "cell", "D", "H", "O", "L"), row), location=None) for row in CHECKPOINT_CASES]
    cases.append(dict(cases[1], label=cases[1]["label"] + ", saved on a GPU (tensors tagged cuda:7)",
                      location="cuda:7"))
    for seed, case in enumerate(cases):
        with check.case(case["label"]) as label:
            model, weights = _load_case_model(check, _config(case), 4200 + seed, label)
            data = _torch_bytes({"config": _config(case), "state_dict": weights})
            if case["location"]:
                data = retagged(data, case["location"])
            _check_round_trip(check, load, model, data, case, seed, label)
    with check.case("checkpoints that do not fit SequencePredictor") as label:
        config = _config(dict(zip(("label", "cell", "D", "H", "O", "L"), CHECKPOINT_CASES[0])))
        model, weights = _load_case_model(check, config, 4300, label)
        for what, does, make in LOAD_MISMATCHES:
            checkpoint, builds = make(config, weights)
            if builds is not None and not _really_mismatched(check, builds, weights):
                continue  # the student's class builds the same weights from this config: SequencePredictor's check
            _check_refused(check, load, _torch_bytes(checkpoint), what, does)
        runs_code = {"config": config, "state_dict": dict(weights)}
        last = list(weights)[-1]
        runs_code["state_dict"][last] = _RunsCode(weights[last].shape)
        _check_code_not_run(check, load, _torch_bytes(runs_code))
    check.finish()


def _load_case_model(check: Checker, config: dict, seed: int, label: str):
    """A model SequencePredictor(**config) builds in the kernel, and its weights here; ends the check if the class
    cannot build one (load_checkpoint cannot work without it)."""
    try:
        model = _build_student_model(check, config, seed)
        return model, check.student.helper("state_dict", model)
    except (StudentRaised, StudentTimedOut, ProtocolBroken) as exc:
        why = f"it raised {exc.type_name}" if isinstance(exc, StudentRaised) else "it did not answer"
        raise HiddenTestFailure(f"load_checkpoint rebuilds SequencePredictor(**config), but SequencePredictor("
                                f"**config) did not build a model here ({why}): fix SequencePredictor first; "
                                f"load_checkpoint could not be graded.") from None


def _check_round_trip(check: Checker, load, model, data, case: dict, seed: int, label: str) -> None:
    path = check.student.helper("write_bytes", check.student.helper("scratch_path", "model.pt"), data)
    try:
        loaded = load(path)
    except StudentRaised as exc:
        if case["location"] and exc.type_name != "NotImplementedError" and any(
                word in exc.message.lower() for word in ("cuda", "device", "map_location")):
            check.fail(f"load_checkpoint cannot load a checkpoint saved on a GPU (it raised {exc.type_name}): read "
                       f'it with torch.load(path, map_location="cpu", weights_only=True); without map_location, '
                       f"tensors saved on a GPU cannot load on a machine without one.", label)
            raise StudentCallFailed() from None
        loaded = check.call(load, path, label=label)  # reported as check.call reports it
    except (StudentTimedOut, ProtocolBroken):
        loaded = check.call(load, path, label=label)
    if isinstance(loaded, student_calls.RemoteObject):
        loaded.__name__ = "the loaded model"  # what its errors are reported under
    try:
        described = check.student.helper("describe", loaded)
    except StudentRaised:
        check.fail("load_checkpoint should return the model, SequencePredictor(**config) with the weights loaded.",
                   label)
        raise StudentCallFailed() from None
    if described["training"]:
        check.fail("The loaded model is in training mode: return model.eval(), ready to predict.", label)
    if described["device"] not in (None, "cpu"):
        check.fail('The loaded model is not on the CPU: torch.load(..., map_location="cpu").', label)
    x = randn(seeded(4400 + seed), 3, 6, case["D"]).float()
    with check.student.calling(no_grad=True):
        want = check.pair(check.call(model, x, label=label), "(y, state)", label)[0]
        got = check.pair(check.call(loaded, x, label=label, hint_on_error=(
            "The loaded model cannot predict: return SequencePredictor(**config) with the weights loaded.")),
            "(y, state)", label)[0]
    if not (isinstance(got, torch.Tensor) and isinstance(want, torch.Tensor) and got.shape == want.shape
            and got.dtype == want.dtype and torch.equal(got.cpu(), want.cpu())):
        check.fail("The loaded model does not predict exactly what the saved model predicted: build "
                   "SequencePredictor(**checkpoint['config']) and load checkpoint['state_dict'] into it with "
                   "load_state_dict, changing nothing.", label)


def _really_mismatched(check: Checker, config: dict, weights: dict) -> bool:
    """Whether the model the student's class builds from `config` has other keys or shapes than `weights`."""
    try:
        other = check.student.helper("state_dict", _build_student_model(check, config, 4301))
    except (StudentRaised, StudentTimedOut, ProtocolBroken):
        return True  # the class refuses this config: load_checkpoint must turn that into a ValueError too
    return list(other) != list(weights) or any(other[k].shape != weights[k].shape for k in weights)


def _check_refused(check: Checker, load, data, what: str, does: str) -> None:
    path = check.student.helper("write_bytes", check.student.helper("scratch_path", "model.pt"), data)
    try:
        load(path)
    except StudentRaised as exc:
        if exc.type_name == "NotImplementedError":
            return  # reported by the round trips
        if exc.type_name != "ValueError":
            check.fail(f"load_checkpoint raised {exc.type_name} for a checkpoint that {does}: check for it, or "
                       f"catch what torch and SequencePredictor(**config) raise, and raise ValueError with a message "
                       f"that names the mismatch.", what)
        elif not exc.message.strip():
            check.fail("load_checkpoint raised ValueError without a message: say what does not fit.", what)
        return
    except StudentTimedOut:
        check.fail(f"load_checkpoint did not return within {student_calls.CALL_TIME_LIMIT_S:g} s.", what)
        return
    except ProtocolBroken as exc:
        check.fail(f"load_checkpoint: {exc}.", what)
        return
    strict = ("; load strictly (load_state_dict with its default strict=True) so that a checkpoint that does "
              "not fit the class is refused" if "key" in what else "")
    check.fail(f"load_checkpoint accepted a checkpoint that {does}: it should raise ValueError naming the "
               f"mismatch{strict}.", what)


def _check_code_not_run(check: Checker, load, data) -> None:
    label = "a checkpoint whose pickle calls a function"
    path = check.student.helper("write_bytes", check.student.helper("scratch_path", "model.pt"), data)
    try:
        load(path)
    except (StudentRaised, StudentTimedOut, ProtocolBroken):
        return  # refused: any error will do
    check.fail("load_checkpoint ran code from the file: a checkpoint whose pickle calls a function loaded. Use "
               'torch.load(path, map_location="cpu", weights_only=True), which refuses anything but tensors and '
               "plain containers.", label)
