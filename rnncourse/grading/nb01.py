"""Hidden tests of notebook 01 (RNN unrolling). One ``check_*`` per graded function; each hidden test cell is

    from rnncourse.grading.nb01 import check_rnn_step
    check_rnn_step(globals())

References are PyTorch's own modules (nn.RNNCell, nn.RNN, pack_padded_sequence, nn.Embedding) in float64; the
gradients of rnn_backward come from autograd through nn.RNN. Each function is graded on its own: while a function
runs, the earlier graded functions it may call are replaced by references, so one wrong function costs only its own
points.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .compare import (
    Checker,
    HiddenTestFailure,
    StudentCallFailed,
    clones,
    close,
    randn,
    seeded,
    substituted,
    to,
    uniform,
    variants,
)
from .modules import conversion_cases, module_from_slide_params, random_module, states_over_time

# (label, B, D, H) for the single-step and whole-sequence checks: a batch of one, D < H, D == H (where swapping the
# halves of [h, x] keeps every shape), D > H, and T = 1 for the unroll.
STEP_SHAPES = [
    ("B=3, D=4, H=5", 3, 4, 5),
    ("a batch of one (B=1), D=2, H=3", 1, 2, 3),
    ("D = H = 6", 4, 6, 6),
    ("D=7 > H=2", 2, 7, 2),
]


# -- references ---------------------------------------------------------------------------------------------------
def reference_rnn_module(W: torch.Tensor, b: torch.Tensor, cell: bool = False) -> nn.Module:
    """An nn.RNN (or nn.RNNCell) that computes tanh(W·[h, x] + b)."""
    return module_from_slide_params("rnn", W, b, hidden_size=W.shape[0], cell=cell)


def reference_rnn_step(x_t, h_prev, W, b):
    with torch.no_grad():
        return reference_rnn_module(W, b, cell=True)(x_t, h_prev)


def reference_rnn_unroll(xs, h0, W, b):
    with torch.no_grad():
        hs, h_n = reference_rnn_module(W, b)(xs, h0.unsqueeze(0))
    return hs, h_n[0]


def reference_rnn_unroll_masked(xs, lengths, h0, W, b):
    packed = pack_padded_sequence(xs, lengths.cpu(), enforce_sorted=False)
    with torch.no_grad():
        out, h_n = reference_rnn_module(W, b)(packed, h0.unsqueeze(0))
    hs, _ = pad_packed_sequence(out, total_length=xs.shape[0])
    return hs, h_n[0]


def reference_embed(token_ids, E):
    with torch.no_grad():
        return nn.Embedding.from_pretrained(E)(token_ids)


def _rnn_params(gen, D, H):
    bound = 1 / math.sqrt(H)  # PyTorch's initialisation range: keeps tanh out of saturation
    return uniform(gen, H, H + D, bound=bound * 2), uniform(gen, H, bound=bound)


# -- rnn_step -----------------------------------------------------------------------------------------------------
def check_rnn_step(namespace: dict) -> None:
    check = Checker("rnn_step", namespace)
    rnn_step = check.student_function()
    base = []
    for seed, (label, B, D, H) in enumerate(STEP_SHAPES):
        gen = seeded(100 + seed)
        W, b = _rnn_params(gen, D, H)
        base.append(dict(label=label, args=[randn(gen, B, D), randn(gen, B, H), W, b]))
    for case in variants(base):
        with check.case(case["label"]) as label:
            x_t, h_prev, W, b = args = to(case["args"], case["dtype"], case["device"])
            before = clones(args)
            got = check.call(rnn_step, *args, label=label, hint_on_error=(
                "Check the shapes: W is (H, H + D) and acts on torch.cat([h_prev, x_t], dim=1), which is (B, H + D)."))
            check.expect_unchanged(before, args, ["x_t", "h_prev", "W", "b"], label)
            ref = lambda *a: reference_rnn_step(*to(a, torch.float64, "cpu"))
            H = W.shape[0]
            hx = torch.cat([h_prev, x_t], 1)
            check.expect_tensor(got, ref(x_t, h_prev, W, b).to(case["dtype"]).to(case["device"]), "h_t", label,
                                mistakes=[
                ("the concatenation is [x_t, h_prev]; the slides' W acts on [h_{t-1}, x_t]",
                 lambda: torch.tanh(torch.cat([x_t, h_prev], 1) @ W.T + b)),
                ("tanh is missing", lambda: hx @ W.T + b),
                ("sigmoid is used instead of tanh", lambda: torch.sigmoid(hx @ W.T + b)),
                ("ReLU is used instead of tanh", lambda: torch.relu(hx @ W.T + b)),
                ("the bias b is missing", lambda: torch.tanh(hx @ W.T)),
                ("b is added after tanh instead of inside it", lambda: torch.tanh(hx @ W.T) + b),
                ("h_prev is ignored: the new state must depend on the previous one",
                 lambda: torch.tanh(x_t @ W[:, H:].T + b)),
            ], shape_hint="h_t has one row per sequence and one column per hidden unit: (B, H).")
    check.finish()


# -- rnn_unroll ---------------------------------------------------------------------------------------------------
UNROLL_SHAPES = [  # (label, T, B, D, H)
    ("T=7, B=3, D=4, H=5", 7, 3, 4, 5),
    ("a single time step (T=1)", 1, 2, 3, 4),
    ("a batch of one (B=1), T=5", 5, 1, 2, 3),
    ("D = H = 4, T=6", 6, 2, 4, 4),
]


def _unroll_cases(seed0: int):
    base = []
    for seed, (label, T, B, D, H) in enumerate(UNROLL_SHAPES):
        gen = seeded(seed0 + seed)
        W, b = _rnn_params(gen, D, H)
        args = [randn(gen, T, B, D), randn(gen, B, H), W, b]
        base.append(dict(label=label, args=args))
    return base


def check_rnn_unroll(namespace: dict) -> None:
    check = Checker("rnn_unroll", namespace)
    rnn_unroll = check.student_function()
    for case in variants(_unroll_cases(200)):
        with check.case(case["label"]) as label, substituted_dependencies(rnn_unroll):
            xs, h0, W, b = args = to(case["args"], case["dtype"], case["device"])
            before = clones(args)
            result = check.call(rnn_unroll, *args, label=label)
            check.expect_unchanged(before, args, ["xs", "h0", "W", "b"], label)
            hs, h_T = check.pair(result, "(hs, h_T)", label)
            want_hs, want_h_T = (t.to(case["dtype"]).to(case["device"])
                                 for t in reference_rnn_unroll(*to(args, torch.float64, "cpu")))
            step = lambda x, h: reference_rnn_step(x, h, W, b)
            check.expect_tensor(hs, want_hs, "hs", label, mistakes=[
                ("hs[t] holds the state *before* step t; it should hold the state after step t",
                 lambda: torch.cat([h0.unsqueeze(0), want_hs[:-1]])),
                ("every step starts again from h0 instead of from the previous step's state",
                 lambda: torch.stack([step(x, h0) for x in xs])),
            ], shape_hint="hs holds one state per time step, time first: (T, B, H), without h0.")
            check.expect_tensor(h_T, want_h_T, "h_T", label, mistakes=[
                ("h_T is the initial state h0; it should be the state after the last step", lambda: h0),
                ("h_T is the state after the first step; it should be the state after the last step",
                 lambda: want_hs[0]),
            ])
    check.finish()


_REFERENCES = {
    "rnn_step": reference_rnn_step,
    "rnn_unroll": reference_rnn_unroll,
}


def substituted_dependencies(fn):
    """Earlier graded functions that `fn` may call are replaced by references while it is graded."""
    names = [n for n in _REFERENCES if n != getattr(fn, "__name__", None)]
    return substituted(fn, **{n: _REFERENCES[n] for n in names})


# -- rnn_backward -------------------------------------------------------------------------------------------------
def reference_rnn_backward(xs, h0, W, b, dhs):
    """(dxs, dh0, dW, db) of L = sum_t <dhs[t], hs[t]> by autograd through nn.RNN, in float64 on the CPU."""
    xs, h0, W, b, dhs = to([xs, h0, W, b, dhs], torch.float64, "cpu")
    module = reference_rnn_module(W, b)
    xs, h0 = xs.detach().clone().requires_grad_(), h0.detach().clone().requires_grad_()
    with torch.enable_grad():
        hs, _ = module(xs, h0.unsqueeze(0))
        dxs, dh0, dW_hh, dW_ih, db = torch.autograd.grad(
            (hs * dhs).sum(), [xs, h0, module.weight_hh_l0, module.weight_ih_l0, module.bias_ih_l0])
    return dxs, dh0, torch.cat([dW_hh, dW_ih], dim=1), db


def _bptt_by_hand(xs, h0, W, b, dhs, *, sign=1.0, tanh_grad="h_t", blocks="hx", forward_blocks="hx", carry=True,
                  last_only=False, dW_state="h_prev", accumulate=True, dh0="carried"):
    """BPTT written out, with switches that reproduce the known mistakes (float64, CPU). Used only to name the
    mistake a wrong answer matches; the expected values come from reference_rnn_backward."""
    xs, h0, W, b, dhs = to([xs, h0, W, b, dhs], torch.float64, "cpu")
    H, D = W.shape[0], xs.shape[2]
    hx = lambda h, x, order: torch.cat([h, x] if order == "hx" else [x, h], dim=1)
    states = [h0]
    for x_t in xs:
        states.append(torch.tanh(hx(states[-1], x_t, forward_blocks) @ W.T + b))
    if last_only:
        dhs = torch.cat([torch.zeros_like(dhs[:-1]), dhs[-1:]])
    dxs, dW, db = torch.zeros_like(xs), torch.zeros_like(W), torch.zeros_like(b)
    carried, dh_first = torch.zeros_like(h0), torch.zeros_like(h0)
    for t in reversed(range(xs.shape[0])):
        h_prev, h_t = states[t], states[t + 1]
        dh = dhs[t] + carried if carry else dhs[t]
        derivative = {"h_t": 1 - h_t ** 2, "h_prev": 1 - h_prev ** 2, "none": torch.ones_like(h_t)}[tanh_grad]
        da = dh * derivative
        step_dW = da.T @ hx(h_prev if dW_state == "h_prev" else h_t, xs[t], blocks)
        dW, db = (dW + step_dW, db + da.sum(0)) if accumulate else (step_dW, da.sum(0))
        d_in = da @ W
        dxs[t], carried = (d_in[:, H:], d_in[:, :H]) if blocks == "hx" else (d_in[:, :D], d_in[:, D:])
        dh_first = dh
    dh0_value = {"carried": carried, "zero": torch.zeros_like(h0), "hs0": dh_first}[dh0]
    return tuple(sign * g for g in (dxs, dh0_value, dW, db))


# (description, switches of _bptt_by_hand): each a mistake students make, named when a wrong answer matches it.
BACKWARD_MISTAKES = [
    ("every gradient has the wrong sign: look for a minus that should not be there (the derivative of tanh is "
     "+(1 - h_t**2))", dict(sign=-1.0)),
    ("the tanh derivative is missing: the gradient must be multiplied by tanh'(a_t) = 1 - h_t**2 on its way "
     "back through each step", dict(tanh_grad="none")),
    ("the tanh derivative uses the previous state h_{t-1}; it is 1 - h_t**2, with h_t = tanh(a_t) the state that "
     "this step produced", dict(tanh_grad="h_prev")),
    ("W's two blocks are swapped: W acts on [h_{t-1}, x_t], so its first H columns belong to h_{t-1} and its last "
     "D columns to x_t", dict(blocks="xh")),
    ("W's two blocks are swapped (in the forward pass too): W acts on [h_{t-1}, x_t], hidden state first",
     dict(blocks="xh", forward_blocks="xh")),
    ("only the last step's gradient dhs[-1] is used: every dhs[t] adds to the gradient of hs[t]",
     dict(last_only=True)),
    ("the gradient is not carried back through time: the gradient of hs[t] is dhs[t] plus what flows back from "
     "step t + 1 through W_hh", dict(carry=False)),
    ("dW is computed from h_t instead of h_{t-1}: step t multiplies W by [h_{t-1}, x_t], so its share of dW is "
     "da_t^T [h_{t-1}, x_t]", dict(dW_state="h_t")),
    ("dW and db hold only one step's share: W and b are used at every step, so their gradients are summed over all "
     "time steps (+=)", dict(accumulate=False)),
    ("dh0 is zero: h0 feeds the first step, so dh0 is the gradient that flows back out of it",
     dict(dh0="zero")),
    ("dh0 is the gradient of hs[0], the state after the first step; pass it back through the first step (tanh "
     "derivative, then W's hidden block) to reach h0", dict(dh0="hs0")),
]

BACKWARD_SHAPES = [  # (label, T, B, D, H)
    ("T=7, B=3, D=4, H=5", 7, 3, 4, 5),
    ("a single time step (T=1)", 1, 2, 3, 4),
    ("a batch of one (B=1), T=12", 12, 1, 2, 3),
    ("D = H = 4, T=20", 20, 2, 4, 4),
    ("D=6 > H=2, T=9", 9, 3, 6, 2),
    ("a long sequence: T=50, B=4, D=3, H=8", 50, 4, 3, 8),
]

_GRADIENTS = [  # (name, index in the result, shape hint)
    ("dxs", 0, "dxs has the shape of xs: (T, B, D)."),
    ("dh0", 1, "dh0 has the shape of h0: (B, H)."),
    ("dW", 2, "dW has the shape of W: (H, H + D)."),
    ("db", 3, "db has the shape of b: (H,), summed over the batch and over the time steps."),
]


def check_rnn_backward(namespace: dict) -> None:
    check = Checker("rnn_backward", namespace)
    backward = check.student_function()
    base = []
    for seed, (label, T, B, D, H) in enumerate(BACKWARD_SHAPES):
        gen = seeded(600 + seed)
        W, b = _rnn_params(gen, D, H)
        base.append(dict(label=label, args=[randn(gen, T, B, D), randn(gen, B, H), W, b, randn(gen, T, B, H)]))
    for case in variants(base):
        # Under inference_mode autograd records nothing: the gradients must be computed by hand.
        with check.case(case["label"]) as label, substituted_dependencies(backward), \
                check.student.calling(inference_mode=True):
            args = to(case["args"], case["dtype"], case["device"])
            before = clones(args)
            result = check.call(backward, *args, label=label, hint_on_error=(
                "The hidden tests call rnn_backward under torch.inference_mode(), where autograd records nothing: "
                "compute every gradient by hand (no .backward(), no torch.autograd.grad). Shapes: W is (H, H + D) "
                "and acts on [h_{t-1}, x_t]; dhs is (T, B, H)."))
            check.expect_unchanged(before, args, ["xs", "h0", "W", "b", "dhs"], label)
            if not (isinstance(result, (tuple, list)) and len(result) == 4):
                length = f" of length {len(result)}" if isinstance(result, (tuple, list)) else ""
                check.fail(f"rnn_backward should return the four gradients (dxs, dh0, dW, db), but it returned "
                           f"{type(result).__name__}{length}.", label)
                continue
            exact = to(args, torch.float64, "cpu")  # the inputs as the student got them (float32 rounding included)
            want = [g.to(case["dtype"]).to(case["device"]) for g in reference_rnn_backward(*exact)]
            mistakes = _mistakes_explaining(list(result), want, exact)
            for name, i, hint in _GRADIENTS:
                check.expect_tensor(result[i], want[i], name, label, shape_hint=hint,
                                    mistakes=[(text, lambda i=i, wrong=wrong: wrong()[i]) for text, wrong in mistakes])
    check.finish()


def _mistakes_explaining(got: list, want: list, exact: list) -> list:
    """BACKWARD_MISTAKES as (text, thunk of the four wrong gradients), the one that explains all four results first.
    One output alone can fit two mistakes (over 50 steps the last step's gradient has vanished before it reaches
    h0, so "only the last step's dhs" and "dh0 is zero" give the same dh0); the whole answer tells them apart."""
    def once(switches):
        cache = []

        def wrong():
            if not cache:
                cache.append(_bptt_by_hand(*exact, **switches))
            return cache[0]
        return wrong
    thunks = [(text, once(switches)) for text, switches in BACKWARD_MISTAKES]
    fits = lambda g, w: isinstance(g, torch.Tensor) and tuple(g.shape) == tuple(w.shape) and close(g, w.to(g.dtype))
    if all(fits(g, w) for g, w in zip(got, want)):
        return thunks
    whole = [m for m in thunks if all(fits(g, w) for g, w in zip(got, m[1]()))]
    return whole[:1] + [m for m in thunks if m not in whole[:1]]


# -- rnn_params_from_torch ---------------------------------------------------------------------------------------
PARAMS_MODULES = [  # (label, shape for modules.random_module, D, H)
    ("an nn.RNNCell with D=3, H=4", "cell", 3, 4),
    ("an nn.RNN with D=5, H=2", "layer", 5, 2),
    ("an nn.RNN with D = H = 3", "layer", 3, 3),
    ("an nn.RNNCell with D = H = 2", "cell", 2, 2),
    ("an nn.RNN(batch_first=True) with D=2, H=3", "layer_batch_first", 2, 3),
]


def check_rnn_params_from_torch(namespace: dict) -> None:
    check = Checker("rnn_params_from_torch", namespace)
    convert = check.student_function()
    for case in conversion_cases(PARAMS_MODULES, seed0=300):
        with check.case(case["label"]) as label:
            gen = seeded(case["seed"])
            D, H = case["D"], case["H"]
            module = random_module("rnn", D, H, gen, case["dtype"], case["device"], shape=case["shape"])
            before = {n: p.detach().clone() for n, p in module.named_parameters()}
            result = check.call(convert, module, label=label, hint_on_error=(
                "nn.RNNCell names its parameters weight_ih, weight_hh, bias_ih, bias_hh; nn.RNN adds the layer "
                "suffix _l0 (weight_ih_l0, ...). Handle both."))
            after = dict(module.named_parameters())
            if any(not torch.equal(before[n], after[n]) for n in before):
                check.fail("rnn_params_from_torch changed the module's parameters: read them, never write into "
                           "them (e.g. bias_ih += bias_hh edits the module in place).", label)
                raise StudentCallFailed()
            W, b = check.pair(result, "(W, b)", label)
            if not (isinstance(W, torch.Tensor) and tuple(W.shape) == (H, H + D)):
                check.fail(f"W should be a tensor of shape (H, H + D) = {(H, H + D)}, got "
                           f"{tuple(W.shape) if isinstance(W, torch.Tensor) else type(W).__name__}.", label)
                continue
            if not (isinstance(b, torch.Tensor) and tuple(b.shape) == (H,)):
                check.fail(f"b should be a tensor of shape (H,) = {(H,)}, got "
                           f"{tuple(b.shape) if isinstance(b, torch.Tensor) else type(b).__name__}: "
                           f"PyTorch's two biases are added, not stacked.", label)
                continue
            # Behaviour is what is graded: the converted parameters must reproduce the module's states.
            xs, h0 = randn(gen, 6, 2, D).to(case["dtype"]).to(case["device"]), randn(gen, 2, H).to(
                case["dtype"]).to(case["device"])
            want = states_over_time(module, xs, h0)
            got = reference_rnn_unroll(xs, h0, W.detach(), b.detach())[0]
            if not check.expect_tensor(got, want, "the hidden states that your (W, b) produce", label):
                sfx = "" if case["shape"] == "cell" else "_l0"
                p = {n: getattr(module, n + sfx).detach() for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
                if close(W.detach(), torch.cat([p["weight_ih"], p["weight_hh"]], 1)):
                    check.fail("W's two blocks are in the wrong order: W acts on [h_{t-1}, x_t], so the "
                               "hidden-to-hidden weights come first, then the input-to-hidden ones.")
                if close(b.detach(), p["bias_ih"]) or close(b.detach(), p["bias_hh"]):
                    check.fail("b is only one of PyTorch's two biases: the module adds bias_ih and bias_hh, so b "
                               "must include both.")
    check.finish()


# -- rnn_unroll_masked -------------------------------------------------------------------------------------------
MASKED_SHAPES = [  # (label, T, B, D, H, lengths or None for random in [1, T] with both ends present)
    ("T=6, B=4, unsorted lengths", 6, 4, 3, 5, [3, 6, 1, 4]),
    ("every sequence full length", 4, 3, 2, 3, [4, 4, 4]),
    ("every sequence of length 1", 5, 2, 3, 2, [1, 1]),
    ("a batch of one shorter than T", 5, 1, 2, 3, [2]),
    ("T=8, B=6, D = H = 4, lengths increasing", 8, 6, 4, 4, [1, 2, 4, 5, 7, 8]),
]


def check_rnn_unroll_masked(namespace: dict) -> None:
    check = Checker("rnn_unroll_masked", namespace)
    masked = check.student_function()
    base = []
    for seed, (label, T, B, D, H, lengths) in enumerate(MASKED_SHAPES):
        gen = seeded(400 + seed)
        W, b = _rnn_params(gen, D, H)
        # Padded positions hold random values, not zeros: a correct implementation never looks at them.
        base.append(dict(label=label, args=[randn(gen, T, B, D), torch.tensor(lengths, dtype=torch.int64),
                                            randn(gen, B, H), W, b]))
    for case in variants(base):
        with check.case(case["label"]) as label, substituted_dependencies(masked):
            xs, lengths, h0, W, b = args = to(case["args"], case["dtype"], case["device"])
            lengths = args[1] = lengths.cpu()  # lengths stay on the CPU, as pack_padded_sequence requires
            before = clones(args)
            result = check.call(masked, *args, label=label)
            check.expect_unchanged(before, args, ["xs", "lengths", "h0", "W", "b"], label)
            hs, h_last = check.pair(result, "(hs, h_last)", label)
            want_hs, want_last = (t.to(case["dtype"]).to(case["device"])
                                  for t in reference_rnn_unroll_masked(*to(args, torch.float64, "cpu")))
            if not isinstance(hs, torch.Tensor) or hs.shape != want_hs.shape:
                check.expect_tensor(hs, want_hs, "hs", label, shape_hint="hs is time first: (T, B, H).")
            else:
                T = xs.shape[0]
                real = (torch.arange(T).unsqueeze(1) < lengths.unsqueeze(0)).to(hs.device)  # (T, B)
                real = real.unsqueeze(2).expand_as(hs)
                if hs.dtype != want_hs.dtype or hs.device != want_hs.device:
                    check.expect_tensor(hs, want_hs, "hs", label)
                else:
                    check.expect_tensor(hs[real], want_hs[real], "hs at real (unpadded) steps", label)
                    if (hs[~real] != 0).any():
                        check.fail("hs is not zero at padded steps: hs[t, i] must be 0 for t >= lengths[i], as "
                                   "pad_packed_sequence returns.", label)
            check.expect_tensor(h_last, want_last, "h_last", label, mistakes=[
                ("h_last is the state after the last time step T - 1 for every sequence; it should be the state "
                 "after step lengths[i] - 1 of each sequence i",
                 lambda: reference_rnn_unroll(xs, h0, W, b)[1]),
                ("h_last is taken from hs[-1], which is zero for sequences shorter than T",
                 lambda: want_hs[-1]),
            ], shape_hint="h_last has one state per sequence: (B, H).")
    check.finish()


# -- embed --------------------------------------------------------------------------------------------------------
EMBED_SHAPES = [  # (label, T, B, V, D, largest id allowed)
    ("T=5, B=3, V=10, D=4", 5, 3, 10, 4, None),
    ("a single token (T = B = 1)", 1, 1, 7, 3, None),
    ("a batch that does not use the last token id", 4, 2, 9, 5, "below_last"),
    ("V = D = 6", 6, 2, 6, 6, None),
]


def check_embed(namespace: dict) -> None:
    check = Checker("embed", namespace)
    embed = check.student_function()
    base = []
    for seed, (label, T, B, V, D, limit) in enumerate(EMBED_SHAPES):
        gen = seeded(500 + seed)
        high = V - 1 if limit == "below_last" else V
        ids = torch.randint(0, high, (T, B), generator=gen)
        if limit is None and ids.numel() >= 2:
            ids.view(-1)[0], ids.view(-1)[-1] = 0, V - 1  # both ends of the vocabulary appear
        base.append(dict(label=label, args=[ids, randn(gen, V, D)]))
    for case in variants(base):
        with check.case(case["label"]) as label:
            token_ids, E = args = to(case["args"], case["dtype"], case["device"])
            before = clones(args)
            got = check.call(embed, *args, label=label, hint_on_error=(
                "token_ids holds row numbers of E, which is (V, D); if you use one_hot, give it num_classes=V, since a "
                "batch need not contain the last word of the vocabulary."))
            check.expect_unchanged(before, args, ["token_ids", "E"], label)
            want = reference_embed(*to(args, torch.float64, "cpu")).to(case["dtype"]).to(case["device"])
            check.expect_tensor(got, want, "the embedded sequence", label, mistakes=[
                ("token ids are shifted by one: id k selects row k of E, counting from 0",
                 lambda: E[(token_ids - 1) % E.shape[0]]),
            ], shape_hint="embed keeps the (T, B) layout of token_ids and adds the embedding dimension: (T, B, D).")
    check.finish()


# -- TASK_ALIGNMENT ----------------------------------------------------------------------------------------------
REQUIRED_TASKS = ("machine_translation", "summarization", "pos_tagging", "named_entity_recognition", "slot_filling")
_ALIGNED = {"pos_tagging", "named_entity_recognition", "slot_filling"}


def check_task_alignment(namespace: dict) -> None:
    check = Checker("TASK_ALIGNMENT", namespace)
    table = check.student_object()
    if not isinstance(table, dict):
        raise HiddenTestFailure(f"TASK_ALIGNMENT should be a dict, but it is a {type(table).__name__}.")
    missing = [task for task in REQUIRED_TASKS if task not in table]
    if missing:
        check.fail("TASK_ALIGNMENT is missing these keys (spelled exactly so): " + ", ".join(missing) + ".")
    bad = sorted(str(k) for k, v in table.items() if v not in ("aligned", "unaligned"))
    if bad:
        check.fail(f"Every value must be exactly 'aligned' or 'unaligned'; {len(bad)} entr"
                   f"{'y is' if len(bad) == 1 else 'ies are'} not.")
    wrong = [task for task in REQUIRED_TASKS if task in table and table[task] in ("aligned", "unaligned")
             and (table[task] == "aligned") != (task in _ALIGNED)]
    if wrong:
        check.fail(f"{len(wrong)} of the {len(REQUIRED_TASKS)} required tasks are classified wrongly. For each "
                   f"task ask: does every input token get exactly one output, in the same order (aligned), or "
                   f"can the output have its own length and order (unaligned)?")
    check.cases_run, check.cases_failed = 1, int(bool(check.problems))
    check.finish()
