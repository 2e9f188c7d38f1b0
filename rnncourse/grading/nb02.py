"""Hidden tests of notebook 02 (LSTM gates). One ``check_*`` per graded function, called from its test cell as

    from rnncourse.grading.nb02 import check_forget_gate
    check_forget_gate(globals())

References are PyTorch's own modules and functions (nn.LSTMCell, nn.LSTM, nn.GRUCell, F.linear) in float64. The step
and unroll checks draw random per-gate parameters and place them into nn.LSTMCell/nn.LSTM themselves
(reference_lstm_module), so a wrong student conversion cannot mask a wrong step; the conversion is graded by what its
parameters make that reference LSTM compute.
Earlier graded functions a function may call are replaced by references while it is graded.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .compare import (
    Checker,
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
from .nb01 import STEP_SHAPES, UNROLL_SHAPES

GATE_KEYS = ("W_f", "b_f", "W_i", "b_i", "W_C", "b_C", "W_o", "b_o")
# PyTorch stacks the LSTM's gates in this order; the slide names of the blocks.
TORCH_GATE_ORDER = ("i", "f", "C", "o")
# gate function -> (its weight and bias keys, its activation)
GATES = {
    "forget_gate": ("W_f", "b_f", torch.sigmoid),
    "input_gate": ("W_i", "b_i", torch.sigmoid),
    "candidate_cell": ("W_C", "b_C", torch.tanh),
    "output_gate": ("W_o", "b_o", torch.sigmoid),
}


# -- references ---------------------------------------------------------------------------------------------------
def _reference_gate(activation):
    def gate(x_t, h_prev, W, b):
        return activation(F.linear(torch.cat([h_prev, x_t], 1), W, b))
    return gate


def reference_cell_update(f_t, i_t, c_tilde, c_prev):
    return f_t * c_prev + i_t * c_tilde


def reference_hidden_state(o_t, c_t):
    return o_t * torch.tanh(c_t)


def reference_lstm_module(params: dict, cell: bool = False) -> nn.Module:
    """An nn.LSTMCell (or nn.LSTM) computing the LSTM of the slides' per-gate parameters."""
    W = torch.cat([params["W_" + g] for g in TORCH_GATE_ORDER])
    b = torch.cat([params["b_" + g] for g in TORCH_GATE_ORDER])
    return module_from_slide_params("lstm", W, b, hidden_size=params["W_f"].shape[0], cell=cell)


def reference_lstm_step(x_t, h_prev, c_prev, params):
    with torch.no_grad():
        return reference_lstm_module(params, cell=True)(x_t, (h_prev, c_prev))


def reference_lstm_unroll(xs, h0, c0, params):
    with torch.no_grad():
        hs, (h_n, c_n) = reference_lstm_module(params)(xs, (h0.unsqueeze(0), c0.unsqueeze(0)))
    return hs, (h_n[0], c_n[0])


_REFERENCES = {
    **{name: _reference_gate(act) for name, (_, _, act) in GATES.items()},
    "cell_update": reference_cell_update,
    "hidden_state": reference_hidden_state,
    "lstm_step": reference_lstm_step,
}


def substituted_dependencies(fn):
    """While `fn` is graded, the graded functions it may call are references (all but itself)."""
    name = getattr(fn, "__name__", None)
    return substituted(fn, **{n: ref for n, ref in _REFERENCES.items() if n != name})


def _random_params(gen, D, H) -> dict:
    bound = 1 / math.sqrt(H)
    return {k: (uniform(gen, H, H + D, bound=2 * bound) if k.startswith("W") else uniform(gen, H, bound=bound))
            for k in GATE_KEYS}


def _on(params: dict, dtype, device) -> dict:
    return {k: v.to(dtype=dtype, device=device) for k, v in params.items()}


# -- the four gate functions ------------------------------------------------------------------------------------
def _check_gate(namespace: dict, name: str) -> None:
    W_key, b_key, activation = GATES[name]
    check = Checker(name, namespace)
    gate = check.student_function()
    other = torch.tanh if activation is torch.sigmoid else torch.sigmoid
    act_name, other_name = ("sigmoid", "tanh") if activation is torch.sigmoid else ("tanh", "sigmoid")
    base = []
    for seed, (label, B, D, H) in enumerate(STEP_SHAPES):
        gen = seeded(1000 + 10 * list(GATES).index(name) + seed)
        params = _random_params(gen, D, H)
        base.append(dict(label=label, args=[randn(gen, B, D), randn(gen, B, H), params[W_key], params[b_key]]))
    for case in variants(base):
        with check.case(case["label"]) as label:
            x_t, h_prev, W, b = args = to(case["args"], case["dtype"], case["device"])
            before = clones(args)
            got = check.call(gate, *args, label=label, hint_on_error=(
                f"Check the shapes: {W_key} is (H, H + D) and acts on torch.cat([h_prev, x_t], dim=1), (B, H + D)."))
            check.expect_unchanged(before, args, ["x_t", "h_prev", W_key, b_key], label)
            want = _reference_gate(activation)(*to(args, torch.float64, "cpu")).to(case["dtype"]).to(case["device"])
            hx = torch.cat([h_prev, x_t], 1)
            H = h_prev.shape[1]
            check.expect_tensor(got, want, name, label, mistakes=[
                (f"{other_name} is used where this gate needs {act_name}", lambda: other(hx @ W.T + b)),
                ("the concatenation is [x_t, h_prev]; the slides' weights act on [h_{t-1}, x_t]",
                 lambda: activation(torch.cat([x_t, h_prev], 1) @ W.T + b)),
                (f"the bias {b_key} is missing", lambda: activation(hx @ W.T)),
                (f"{act_name} is missing", lambda: hx @ W.T + b),
                ("h_prev is ignored: every gate looks at [h_{t-1}, x_t]", lambda: activation(x_t @ W[:, H:].T + b)),
            ], shape_hint="A gate has one value per sequence and hidden unit: (B, H).")
    check.finish()


def check_forget_gate(namespace: dict) -> None:
    _check_gate(namespace, "forget_gate")


def check_input_gate(namespace: dict) -> None:
    _check_gate(namespace, "input_gate")


def check_candidate_cell(namespace: dict) -> None:
    _check_gate(namespace, "candidate_cell")


def check_output_gate(namespace: dict) -> None:
    _check_gate(namespace, "output_gate")


# -- cell_update and hidden_state --------------------------------------------------------------------------------
ELEMENTWISE_SHAPES = [("B=3, H=5", 3, 5), ("a batch of one (B=1), H=4", 1, 4), ("a single hidden unit (H=1)", 2, 1)]


def _elementwise_cases(seed0: int, make):
    base = []
    for seed, (label, B, H) in enumerate(ELEMENTWISE_SHAPES):
        base.append(dict(label=label, args=make(seeded(seed0 + seed), B, H)))
    return variants(base)


def check_cell_update(namespace: dict) -> None:
    check = Checker("cell_update", namespace)
    cell_update = check.student_function()
    cases = _elementwise_cases(1100, lambda g, B, H: [torch.sigmoid(randn(g, B, H, scale=2)),
                                                     torch.sigmoid(randn(g, B, H, scale=2)),
                                                     torch.tanh(randn(g, B, H, scale=2)), randn(g, B, H, scale=2)])
    for case in cases:
        with check.case(case["label"]) as label:
            f_t, i_t, c_tilde, c_prev = args = to(case["args"], case["dtype"], case["device"])
            before = clones(args)
            got = check.call(cell_update, *args, label=label)
            check.expect_unchanged(before, args, ["f_t", "i_t", "c_tilde", "c_prev"], label)
            check.expect_tensor(got, reference_cell_update(*args), "c_t", label, mistakes=[
                ("the term f_t * c_prev is missing: the old cell must be kept where the forget gate lets it through",
                 lambda: i_t * c_tilde),
                ("c_prev is added without the forget gate: it must be f_t * c_prev", lambda: c_prev + i_t * c_tilde),
                ("f_t and i_t are swapped: f_t multiplies the old cell c_prev, i_t the candidate c_tilde",
                 lambda: f_t * c_tilde + i_t * c_prev),
                ("the candidate is added without the input gate: it must be i_t * c_tilde",
                 lambda: f_t * c_prev + c_tilde),
            ])
    check.finish()


def check_hidden_state(namespace: dict) -> None:
    check = Checker("hidden_state", namespace)
    hidden_state = check.student_function()
    cases = _elementwise_cases(1200, lambda g, B, H: [torch.sigmoid(randn(g, B, H, scale=2)), randn(g, B, H, scale=2)])
    for case in cases:
        with check.case(case["label"]) as label:
            o_t, c_t = args = to(case["args"], case["dtype"], case["device"])
            before = clones(args)
            got = check.call(hidden_state, *args, label=label)
            check.expect_unchanged(before, args, ["o_t", "c_t"], label)
            check.expect_tensor(got, reference_hidden_state(*args), "h_t", label, mistakes=[
                ("tanh is missing: h_t = o_t * tanh(c_t), not o_t * c_t", lambda: o_t * c_t),
                ("tanh is applied to the product: h_t = o_t * tanh(c_t), not tanh(o_t * c_t)",
                 lambda: torch.tanh(o_t * c_t)),
                ("the output gate is missing: h_t = o_t * tanh(c_t)", lambda: torch.tanh(c_t)),
                ("sigmoid is used instead of tanh on the cell", lambda: o_t * torch.sigmoid(c_t)),
            ])
    check.finish()


# -- lstm_step and lstm_unroll -----------------------------------------------------------------------------------
def check_lstm_step(namespace: dict) -> None:
    check = Checker("lstm_step", namespace)
    lstm_step = check.student_function()
    base = []
    for seed, (label, B, D, H) in enumerate(STEP_SHAPES):
        gen = seeded(1300 + seed)
        base.append(dict(label=label, args=[randn(gen, B, D), randn(gen, B, H), randn(gen, B, H)],
                         params=_random_params(gen, D, H)))
    for case in variants(base):
        with check.case(case["label"]) as label, substituted_dependencies(lstm_step):
            x_t, h_prev, c_prev = args = to(case["args"], case["dtype"], case["device"])
            params = _on(case["params"], case["dtype"], case["device"])
            before, params_before = clones(args), {k: v.clone() for k, v in params.items()}
            result = check.call(lstm_step, x_t, h_prev, c_prev, params, label=label)
            check.expect_unchanged(before, args, ["x_t", "h_prev", "c_prev"], label)
            check.expect_unchanged(list(params_before.values()), list(params.values()), ["params"], label)
            h_t, c_t = check.pair(result, "(h_t, c_t)", label)
            want_h, want_c = (t.to(case["dtype"]).to(case["device"]) for t in reference_lstm_step(
                *to([x_t, h_prev, c_prev], torch.float64, "cpu"), _on(params, torch.float64, "cpu")))
            p = params
            gate = {g: _reference_gate(torch.tanh if g == "C" else torch.sigmoid) for g in TORCH_GATE_ORDER}
            f, i, ct, o = (gate[g](x_t, h_prev, p["W_" + g], p["b_" + g]) for g in ("f", "i", "C", "o"))
            check.expect_tensor(c_t, want_c, "c_t", label, mistakes=[
                ("(h_t, c_t) are returned in the wrong order: return h_t first, then c_t", lambda: want_h),
                ("the forget and input gates use each other's parameters (W_f/b_f belong to the forget gate)",
                 lambda: i * c_prev + f * ct),
                ("c_t ignores c_prev: step 3 is c_t = f_t * c_prev + i_t * c_tilde", lambda: i * ct),
            ])
            check.expect_tensor(h_t, want_h, "h_t", label, mistakes=[
                ("(h_t, c_t) are returned in the wrong order: return h_t first, then c_t", lambda: want_c),
                ("h_t is computed from the old cell c_prev; it must use the new cell c_t",
                 lambda: o * torch.tanh(c_prev)),
                ("h_t = o_t * c_t without tanh", lambda: o * want_c),
            ])
    check.finish()


def check_lstm_unroll(namespace: dict) -> None:
    check = Checker("lstm_unroll", namespace)
    lstm_unroll = check.student_function()
    base = []
    for seed, (label, T, B, D, H) in enumerate(UNROLL_SHAPES):
        gen = seeded(1400 + seed)
        base.append(dict(label=label, args=[randn(gen, T, B, D), randn(gen, B, H), randn(gen, B, H)],
                         params=_random_params(gen, D, H)))
    for case in variants(base):
        with check.case(case["label"]) as label, substituted_dependencies(lstm_unroll):
            xs, h0, c0 = args = to(case["args"], case["dtype"], case["device"])
            params = _on(case["params"], case["dtype"], case["device"])
            before = clones(args)
            result = check.call(lstm_unroll, xs, h0, c0, params, label=label)
            check.expect_unchanged(before, args, ["xs", "h0", "c0"], label)
            hs, final = check.pair(result, "(hs, (h_T, c_T))", label)
            if not (isinstance(final, (tuple, list)) and len(final) == 2):
                check.fail("the second part of the result should be the pair (h_T, c_T).", label)
                raise StudentCallFailed()
            h_T, c_T = final
            want_hs, (want_h, want_c) = reference_lstm_unroll(*to(args, torch.float64, "cpu"),
                                                              _on(params, torch.float64, "cpu"))
            want_hs, want_h, want_c = (t.to(case["dtype"]).to(case["device"]) for t in (want_hs, want_h, want_c))

            def cell_reset_every_step():
                h, out = h0, []
                for x in xs:
                    h, _ = reference_lstm_step(x, h, c0, params)
                    out.append(h)
                return torch.stack(out)

            check.expect_tensor(hs, want_hs, "hs", label, mistakes=[
                ("hs[t] holds h *before* step t; it should hold h after step t",
                 lambda: torch.cat([h0.unsqueeze(0), want_hs[:-1]])),
                ("the cell state is not carried from step to step (every step starts from c0)", cell_reset_every_step),
            ], shape_hint="hs holds one hidden state per time step, time first: (T, B, H), without h0.")
            check.expect_tensor(h_T, want_h, "h_T", label, mistakes=[("h_T is h0", lambda: h0)])
            check.expect_tensor(c_T, want_c, "c_T", label, mistakes=[
                ("c_T is c0; it should be the cell state after the last step", lambda: c0),
                ("c_T is the last hidden state; it should be the cell state", lambda: want_h),
            ])
    check.finish()


# -- lstm_params_from_torch -------------------------------------------------------------------------------------
LSTM_MODULES = [  # (label, shape for modules.random_module, D, H)
    ("an nn.LSTMCell with D=3, H=4", "cell", 3, 4),
    ("an nn.LSTM with D=5, H=2", "layer", 5, 2),
    ("an nn.LSTM with D = H = 3", "layer", 3, 3),
    ("an nn.LSTMCell with D = H = 2", "cell", 2, 2),
    ("an nn.LSTM(batch_first=True) with D=2, H=3", "layer_batch_first", 2, 3),
]


def _diagnose_params(check: Checker, got: dict, module) -> None:
    """Name the layout mistake whose parameters the student's match."""
    sfx = "" if isinstance(module, nn.LSTMCell) else "_l0"
    w_ih, w_hh = (getattr(module, n + sfx).detach() for n in ("weight_ih", "weight_hh"))
    b_ih, b_hh = (getattr(module, n + sfx).detach() for n in ("bias_ih", "bias_hh"))
    H = w_hh.shape[1]
    block = {g: slice(k * H, (k + 1) * H) for k, g in enumerate(TORCH_GATE_ORDER)}
    cs231n_order = {"i": "i", "f": "f", "o": "C", "C": "o"}  # i, f, o, g: the o and g blocks trade places

    def matches(key, value):
        return isinstance(got.get(key), torch.Tensor) and got[key].shape == value.shape and close(got[key].detach(), value)

    if all(matches("W_" + g, torch.cat([w_hh[block[cs231n_order[g]]], w_ih[block[cs231n_order[g]]]], 1))
           for g in TORCH_GATE_ORDER):
        check.fail("The gate blocks are read in the order i, f, o, g (as in some other courses); PyTorch stacks "
                   "them i, f, g, o: the candidate (g) is the third block, the output gate the fourth.")
    elif matches("W_f", torch.cat([w_hh[block["i"]], w_ih[block["i"]]], 1)):
        check.fail("W_f holds the first block, which is PyTorch's input gate: PyTorch stacks the gates i, f, g, o.")
    if any(matches("W_" + g, torch.cat([w_ih[block[g]], w_hh[block[g]]], 1)) for g in TORCH_GATE_ORDER):
        check.fail("The blocks of each W_* are in the wrong order: W_* acts on [h_{t-1}, x_t], so the "
                   "hidden-to-hidden weights come first, then the input-to-hidden ones.")
    if any(matches("b_" + g, b_ih[block[g]]) or matches("b_" + g, b_hh[block[g]]) for g in TORCH_GATE_ORDER):
        check.fail("A b_* holds only one of PyTorch's two biases: the module adds bias_ih and bias_hh, so each b_* "
                   "must be the sum of both slices.")


def check_lstm_params_from_torch(namespace: dict) -> None:
    check = Checker("lstm_params_from_torch", namespace)
    convert = check.student_function()
    for case in conversion_cases(LSTM_MODULES, seed0=1500):
        with check.case(case["label"]) as label:
            gen = seeded(case["seed"])
            D, H, dtype, device = case["D"], case["H"], case["dtype"], case["device"]
            module = random_module("lstm", D, H, gen, dtype, device, shape=case["shape"])
            before = {n: p.detach().clone() for n, p in module.named_parameters()}
            params = check.call(convert, module, label=label, hint_on_error=(
                "nn.LSTMCell names its parameters weight_ih, weight_hh, bias_ih, bias_hh; nn.LSTM adds the layer "
                "suffix _l0. Handle both."))
            if any(not torch.equal(before[n], p) for n, p in module.named_parameters()):
                check.fail("lstm_params_from_torch changed the module's parameters: read them, never write into "
                           "them.", label)
                raise StudentCallFailed()
            if not isinstance(params, dict):
                check.fail(f"lstm_params_from_torch should return a dict, but it returned {type(params).__name__}.",
                           label)
                continue
            missing = [k for k in GATE_KEYS if k not in params]
            if missing:
                check.fail("params is missing the keys " + ", ".join(missing) + ".", label)
                continue
            shapes_ok = True
            for k in GATE_KEYS:
                want_shape = (H, H + D) if k.startswith("W") else (H,)
                v = params[k]
                if not (isinstance(v, torch.Tensor) and tuple(v.shape) == want_shape):
                    shown = tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
                    check.fail(f"params['{k}'] should have shape {'(H, H + D)' if k.startswith('W') else '(H,)'}, "
                               f"here {want_shape}, but it is {shown}.", label)
                    shapes_ok = False
            if not shapes_ok:
                continue
            xs = randn(gen, 6, 2, D).to(dtype=dtype, device=device)
            h0, c0 = (randn(gen, 2, H).to(dtype=dtype, device=device) for _ in range(2))
            want = states_over_time(module, xs, (h0, c0))
            got = reference_lstm_unroll(xs, h0, c0, {k: v.detach() for k, v in params.items()})[0]
            if not check.expect_tensor(got, want, "the hidden states that your params produce", label):
                _diagnose_params(check, params, module)
    check.finish()


# -- gru_step ------------------------------------------------------------------------------------------------------
def check_gru_step(namespace: dict) -> None:
    check = Checker("gru_step", namespace)
    gru_step = check.student_function()
    base = []
    for seed, (label, B, D, H) in enumerate(STEP_SHAPES):
        gen = seeded(1600 + seed)
        bound = 1 / math.sqrt(H)
        base.append(dict(label=label, args=[randn(gen, B, D), randn(gen, B, H).tanh(),
                                            uniform(gen, 3 * H, D, bound=2 * bound), uniform(gen, 3 * H, H, bound=2 * bound),
                                            uniform(gen, 3 * H, bound=bound), uniform(gen, 3 * H, bound=bound)]))
    for case in variants(base):
        with check.case(case["label"]) as label:
            x_t, h_prev, w_ih, w_hh, b_ih, b_hh = args = to(case["args"], case["dtype"], case["device"])
            before = clones(args)
            got = check.call(gru_step, *args, label=label, hint_on_error=(
                "weight_ih is (3H, D) and weight_hh is (3H, H), each stacked r, z, n along dimension 0."))
            check.expect_unchanged(before, args, ["x_t", "h_prev", "weight_ih", "weight_hh", "bias_ih", "bias_hh"],
                                   label)
            with torch.random.fork_rng(devices=[]):
                cell = nn.GRUCell(x_t.shape[1], h_prev.shape[1]).to(torch.float64)
            with torch.no_grad():
                for name, value in zip(("weight_ih", "weight_hh", "bias_ih", "bias_hh"), args[2:]):
                    getattr(cell, name).copy_(value.double().cpu())
                want = cell(x_t.double().cpu(), h_prev.double().cpu()).to(case["dtype"]).to(case["device"])
            gi, gh = x_t @ w_ih.T + b_ih, h_prev @ w_hh.T + b_hh
            (i_r, i_z, i_n), (h_r, h_z, h_n) = gi.chunk(3, 1), gh.chunk(3, 1)
            r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
            H = h_prev.shape[1]
            n_ok = torch.tanh(i_n + r * h_n)
            check.expect_tensor(got, want, "h_t", label, mistakes=[
                ("r is applied to h_prev before the product (the original paper's GRU); PyTorch applies it after: "
                 "n = tanh(W_in x + b_in + r * (W_hn h + b_hn))",
                 lambda: (1 - z) * torch.tanh(i_n + (r * h_prev) @ w_hh[2 * H:].T + b_hh[2 * H:]) + z * h_prev),
                ("the bias b_hn is added outside r: PyTorch computes r * (W_hn h + b_hn)",
                 lambda: (1 - z) * torch.tanh(i_n + r * (h_prev @ w_hh[2 * H:].T) + b_hh[2 * H:]) + z * h_prev),
                ("z and 1 - z are swapped: h' = (1 - z) * n + z * h_prev", lambda: z * n_ok + (1 - z) * h_prev),
                ("the r and z blocks are swapped: PyTorch stacks the gates r, z, n",
                 lambda: (1 - r) * torch.tanh(i_n + z * h_n) + r * h_prev),
            ])
    check.finish()


# -- set_forget_gate_bias ----------------------------------------------------------------------------------------
FORGET_BIAS_CASES = [  # (label, D, H, num_layers, bidirectional, value or None for the default)
    ("a one-layer nn.LSTM, value=1.0", 3, 4, 1, False, 1.0),
    ("a 3-layer bidirectional nn.LSTM, value=2.5", 2, 3, 3, True, 2.5),
    ("a 2-layer nn.LSTM with the default value", 4, 2, 2, False, None),
    ("a one-layer bidirectional nn.LSTM, value=-1.0", 1, 5, 1, True, -1.0),
]


def check_set_forget_gate_bias(namespace: dict) -> None:
    check = Checker("set_forget_gate_bias", namespace)
    set_bias = check.student_function()
    for i, (label, D, H, layers, bidirectional, value) in enumerate(FORGET_BIAS_CASES):
        with check.case(label):
            gen = seeded(1700 + i)
            with torch.random.fork_rng(devices=[]):
                lstm = nn.LSTM(D, H, num_layers=layers, bidirectional=bidirectional).double()
            with torch.no_grad():
                for p in lstm.parameters():
                    p.copy_(uniform(gen, *p.shape, bound=1 / math.sqrt(H)))
            before = {n: p.detach().clone() for n, p in lstm.named_parameters()}
            args = (lstm,) if value is None else (lstm, value)
            check.call(set_bias, *args, label=label, hint_on_error=(
                "Edit parameters in place inside `with torch.no_grad():`, e.g. param[H:2 * H] = value."))
            want = 1.0 if value is None else value
            after = dict(lstm.named_parameters())
            forget = slice(H, 2 * H)
            wrong_layers = []
            for layer in range(layers):
                for sfx in ("", "_reverse") if bidirectional else ("",):
                    ih, hh = after[f"bias_ih_l{layer}{sfx}"], after[f"bias_hh_l{layer}{sfx}"]
                    effective = (ih + hh)[forget].detach()
                    if not close(effective, torch.full_like(effective, want)):
                        wrong_layers.append(f"l{layer}{sfx}")
            if wrong_layers:
                twice = all(close((after[f"bias_ih_{n}"] + after[f"bias_hh_{n}"])[forget].detach(),
                                  torch.full((H,), 2.0 * want, dtype=torch.float64)) for n in wrong_layers)
                hint = (" Both bias_ih and bias_hh were set to the value, so their sum is twice the value."
                        if twice else "")
                check.fail(f"the effective forget bias (bias_ih + bias_hh)[H:2H] is not the value for layer/direction "
                           f"{', '.join(wrong_layers)}: set every layer (_l0, _l1, ...) and, if bidirectional, every "
                           f"_reverse direction.{hint}", label)
            changed = []
            for name, old in before.items():
                keep = torch.ones_like(old, dtype=torch.bool)
                if name.startswith("bias"):
                    keep[forget] = False
                if not torch.equal(after[name].detach()[keep], old[keep]):
                    changed.append(name)
            if changed:
                check.fail("parameters other than the forget slices [H:2H] of the biases changed ("
                           + ", ".join(sorted(changed)[:4]) + ("..." if len(changed) > 4 else "")
                           + "): only the forget gate's bias may change.", label)
    check.finish()
