"""Mutation catalog for notebook 01 (RNN unrolling): wrong implementations and valid alternatives of each function."""

from dataclasses import replace

from .entry import VALID, WRONG, Entry
from .entry import fn as _fn

NOTEBOOK = "01_rnn_unrolling"

STEP = "rnn_step(x_t, h_prev, W, b)"
UNROLL = "rnn_unroll(xs, h0, W, b)"
PARAMS = "rnn_params_from_torch(module)"
MASKED = "rnn_unroll_masked(xs, lengths, h0, W, b)"
EMBED = "embed(token_ids, E)"
BACKWARD = "rnn_backward(xs, h0, W, b, dhs)"

# The body of a correct rnn_backward that the wrong entries below change in one place.
_BPTT = """
H = h0.shape[1]
states = [h0]
for x_t in xs:
    states.append(torch.tanh(torch.cat([states[-1], x_t], dim=1) @ W.T + b))
dxs, dW, db, dh_next = torch.zeros_like(xs), torch.zeros_like(W), torch.zeros_like(b), torch.zeros_like(h0)
for t in reversed(range(len(xs))):
    h_prev, h_t = states[t], states[t + 1]
    da = (dhs[t] + dh_next) * (1 - h_t ** 2)
    dW += da.T @ torch.cat([h_prev, xs[t]], dim=1)
    db += da.sum(dim=0)
    d_in = da @ W
    dh_next, dxs[t] = d_in[:, :H], d_in[:, H:]
return dxs, dh_next, dW, db"""


def _bptt(*edits):
    """rnn_backward with (old, new) text replacements applied to the correct body (each must apply once)."""
    body = _BPTT
    for old, new in edits:
        assert body.count(old) == 1, old
        body = body.replace(old, new)
    return _fn(BACKWARD, body)


_ENTRIES = [
    # ---- rnn_step -----------------------------------------------------------------------------------------------
    Entry("step_x_h_order", "rnn_step", WRONG, _fn(STEP, "return torch.tanh(torch.cat([x_t, h_prev], dim=1) @ W.T + b)"),
          "[x_t, h_prev]"),
    Entry("step_no_tanh", "rnn_step", WRONG, _fn(STEP, "return torch.cat([h_prev, x_t], dim=1) @ W.T + b"),
          "tanh is missing"),
    Entry("step_sigmoid", "rnn_step", WRONG, _fn(STEP, "return torch.sigmoid(torch.cat([h_prev, x_t], 1) @ W.T + b)"),
          "sigmoid"),
    Entry("step_relu", "rnn_step", WRONG, _fn(STEP, "return torch.relu(torch.cat([h_prev, x_t], 1) @ W.T + b)"),
          "ReLU"),
    Entry("step_no_bias", "rnn_step", WRONG, _fn(STEP, "return torch.tanh(torch.cat([h_prev, x_t], 1) @ W.T)"),
          "bias b is missing"),
    Entry("step_bias_outside", "rnn_step", WRONG, _fn(STEP, "return torch.tanh(torch.cat([h_prev, x_t], 1) @ W.T) + b"),
          "after tanh"),
    Entry("step_ignores_h", "rnn_step", WRONG, _fn(STEP, "H = h_prev.shape[1]\nreturn torch.tanh(x_t @ W[:, H:].T + b)"),
          "h_prev is ignored"),
    Entry("step_no_transpose", "rnn_step", WRONG, _fn(STEP, "return torch.tanh(torch.cat([h_prev, x_t], 1) @ W + b)"),
          "raised RuntimeError", also_costs=("rnn_unroll", "rnn_unroll_masked")),
    Entry("step_always_float32", "rnn_step", WRONG,
          _fn(STEP, "return torch.tanh(torch.cat([h_prev, x_t], 1).float() @ W.T.float() + b.float())"), "dtype"),
    Entry("step_inplace_h_prev", "rnn_step", WRONG,
          _fn(STEP, "h_prev.copy_(torch.tanh(torch.cat([h_prev, x_t], 1) @ W.T + b))\nreturn h_prev"), "in place",
          also_costs=("rnn_unroll", "rnn_unroll_masked")),
    Entry("step_valid_linear", "rnn_step", VALID,
          _fn(STEP, "return torch.tanh(torch.nn.functional.linear(torch.cat([h_prev, x_t], 1), W, b))")),
    Entry("step_valid_split_blocks", "rnn_step", VALID,
          _fn(STEP, "H = h_prev.shape[1]\nreturn torch.tanh(h_prev @ W[:, :H].T + x_t @ W[:, H:].T + b)")),
    Entry("step_valid_addmm_inplace_tanh", "rnn_step", VALID,
          _fn(STEP, "out = torch.addmm(b, torch.cat([h_prev, x_t], 1), W.t())\nreturn out.tanh_()")),
    Entry("step_valid_column_major", "rnn_step", VALID,
          _fn(STEP, "return torch.tanh(W @ torch.cat([h_prev, x_t], 1).T + b[:, None]).T")),
    Entry("step_valid_numpy_round_trip", "rnn_step", VALID, _fn(STEP, """
hx = np.concatenate([h_prev.detach().cpu().numpy(), x_t.detach().cpu().numpy()], axis=1)
out = np.tanh(hx @ W.detach().cpu().numpy().T + b.detach().cpu().numpy())
return torch.from_numpy(out).to(x_t.device)""")),
    # ---- rnn_unroll ---------------------------------------------------------------------------------------------
    Entry("unroll_includes_h0", "rnn_unroll", WRONG, _fn(UNROLL, """
states = [h0]
for x_t in xs:
    states.append(rnn_step(x_t, states[-1], W, b))
return torch.stack(states), states[-1]"""), "shape"),
    Entry("unroll_state_before_step", "rnn_unroll", WRONG, _fn(UNROLL, """
h, states = h0, []
for x_t in xs:
    states.append(h)
    h = rnn_step(x_t, h, W, b)
return torch.stack(states), h"""), "before"),
    Entry("unroll_returns_h0", "rnn_unroll", WRONG, _fn(UNROLL, """
h, states = h0, []
for x_t in xs:
    h = rnn_step(x_t, h, W, b)
    states.append(h)
return torch.stack(states), h0"""), "initial state h0"),
    Entry("unroll_no_carry", "rnn_unroll", WRONG, _fn(UNROLL, """
states = [rnn_step(x_t, h0, W, b) for x_t in xs]
return torch.stack(states), states[-1]"""), "starts again from h0"),
    Entry("unroll_batch_first", "rnn_unroll", WRONG, _fn(UNROLL, """
h, states = h0, []
for t in range(xs.shape[1]):
    h = rnn_step(xs[:, t], h, W, b)
    states.append(h)
return torch.stack(states), h"""), ""),
    Entry("unroll_stack_dim1", "rnn_unroll", WRONG, _fn(UNROLL, """
h, states = h0, []
for x_t in xs:
    h = rnn_step(x_t, h, W, b)
    states.append(h)
return torch.stack(states, dim=1), h"""), "(T, B, H)"),
    Entry("unroll_float32_buffer", "rnn_unroll", WRONG, _fn(UNROLL, """
hs = torch.zeros(xs.shape[0], h0.shape[0], h0.shape[1])
h = h0
for t in range(xs.shape[0]):
    h = rnn_step(xs[t], h, W, b)
    hs[t] = h
return hs, h"""), "dtype"),
    Entry("unroll_inplace_h0", "rnn_unroll", WRONG, _fn(UNROLL, """
h, states = h0, []
for x_t in xs:
    h[:] = rnn_step(x_t, h, W, b)
    states.append(h.clone())
return torch.stack(states), h.clone()"""), "in place"),
    Entry("unroll_valid_preallocated", "rnn_unroll", VALID, _fn(UNROLL, """
hs = xs.new_zeros(xs.shape[0], h0.shape[0], h0.shape[1])
h = h0
for t in range(xs.shape[0]):
    h = rnn_step(xs[t], h, W, b)
    hs[t] = h
return hs, h""")),
    Entry("unroll_valid_inline_formula", "rnn_unroll", VALID, _fn(UNROLL, """
h, states = h0, []
for t in range(len(xs)):
    h = torch.tanh(torch.cat([h, xs[t]], dim=1) @ W.T + b)
    states.append(h)
hs = torch.stack(states)
return hs, hs[-1]""")),
    Entry("unroll_valid_torch_rnn", "rnn_unroll", VALID, _fn(UNROLL, """
H, D = W.shape[0], W.shape[1] - W.shape[0]
rnn = nn.RNN(D, H).to(dtype=xs.dtype, device=xs.device)
with torch.no_grad():
    rnn.weight_hh_l0.copy_(W[:, :H]); rnn.weight_ih_l0.copy_(W[:, H:])
    rnn.bias_ih_l0.copy_(b); rnn.bias_hh_l0.zero_()
    hs, h_n = rnn(xs, h0.unsqueeze(0))
return hs, h_n[0]""")),
    # ---- rnn_backward -------------------------------------------------------------------------------------------
    Entry("bwd_wrong_sign", "rnn_backward", WRONG, _bptt(("return dxs, dh_next, dW, db",
                                                          "return -dxs, -dh_next, -dW, -db")), "wrong sign"),
    Entry("bwd_no_tanh_derivative", "rnn_backward", WRONG, _bptt(("(dhs[t] + dh_next) * (1 - h_t ** 2)",
                                                                  "(dhs[t] + dh_next)")),
          "tanh derivative is missing"),
    Entry("bwd_tanh_derivative_of_h_prev", "rnn_backward", WRONG, _bptt(("* (1 - h_t ** 2)", "* (1 - h_prev ** 2)")),
          "previous state"),
    Entry("bwd_swapped_blocks", "rnn_backward", WRONG, _bptt(
        ("dW += da.T @ torch.cat([h_prev, xs[t]], dim=1)", "dW += da.T @ torch.cat([xs[t], h_prev], dim=1)"),
        ("dh_next, dxs[t] = d_in[:, :H], d_in[:, H:]",
         "dxs[t], dh_next = d_in[:, :xs.shape[2]], d_in[:, xs.shape[2]:]")), "blocks are swapped"),
    Entry("bwd_only_last_step", "rnn_backward", WRONG, _bptt(
        ("da = (dhs[t] + dh_next)", "da = ((dhs[t] if t == len(xs) - 1 else 0) + dh_next)")), "only the last step"),
    Entry("bwd_not_through_time", "rnn_backward", WRONG, _bptt(("da = (dhs[t] + dh_next)", "da = dhs[t]")),
          "not carried back through time"),
    Entry("bwd_dW_from_h_t", "rnn_backward", WRONG, _bptt(("torch.cat([h_prev, xs[t]], dim=1)",
                                                           "torch.cat([h_t, xs[t]], dim=1)")),
          "h_t instead of h_{t-1}"),
    Entry("bwd_db_not_summed_over_batch", "rnn_backward", WRONG, _bptt(
        ("torch.zeros_like(b), torch.zeros_like(h0)", "0, torch.zeros_like(h0)"), ("db += da.sum(dim=0)", "db += da")),
          "db has shape"),
    Entry("bwd_overwrites_dW_db", "rnn_backward", WRONG, _bptt(("dW += da.T", "dW = da.T"), ("db += da", "db = da")),
          "summed over all time steps"),
    Entry("bwd_dh0_zero", "rnn_backward", WRONG, _bptt(("return dxs, dh_next, dW, db",
                                                        "return dxs, torch.zeros_like(h0), dW, db")), "dh0 is zero"),
    Entry("bwd_dh0_is_grad_of_first_state", "rnn_backward", WRONG, _bptt(
        ("    dh_next, dxs[t] = d_in[:, :H], d_in[:, H:]",
         "    dh_next, dxs[t] = d_in[:, :H], d_in[:, H:]"
         "\n    dh_first = dhs[t] + (dh_first_carry if t < len(xs) - 1 else 0)"
         "\n    dh_first_carry = dh_next"),
        ("return dxs, dh_next, dW, db", "return dxs, dh_first, dW, db")), "gradient of hs[0]"),
    Entry("bwd_uses_autograd", "rnn_backward", WRONG, _fn(BACKWARD, """
leaves = [t.detach().clone().requires_grad_() for t in (xs, h0, W, b)]
hs, _ = rnn_unroll(*leaves)
return torch.autograd.grad((hs * dhs).sum(), leaves)"""), "inference_mode"),
    Entry("bwd_always_float32", "rnn_backward", WRONG, _bptt(
        ("return dxs, dh_next, dW, db", "return dxs.float(), dh_next.float(), dW.float(), db.float()")), "dtype"),
    Entry("bwd_dhs_accumulated_in_place", "rnn_backward", WRONG, _fn(BACKWARD, """
H = h0.shape[1]
hs, _ = rnn_unroll(xs, h0, W, b)
prev = torch.cat([h0.unsqueeze(0), hs[:-1]])
dxs, dW, db = torch.zeros_like(xs), torch.zeros_like(W), torch.zeros_like(b)
for t in reversed(range(len(xs))):
    da = dhs[t] * (1 - hs[t] ** 2)
    dW += da.T @ torch.cat([prev[t], xs[t]], dim=1)
    db += da.sum(dim=0)
    d_in = da @ W
    dxs[t] = d_in[:, H:]
    if t > 0:
        dhs[t - 1] += d_in[:, :H]   # uses the caller's dhs as the accumulator
    else:
        dh0 = d_in[:, :H]
return dxs, dh0, dW, db"""), "in place"),
    Entry("bwd_returns_three", "rnn_backward", WRONG, _bptt(("return dxs, dh_next, dW, db", "return dxs, dW, db")),
          "four gradients"),
    Entry("bwd_dW_transposed", "rnn_backward", WRONG, _bptt(("dW += da.T @ torch.cat([h_prev, xs[t]], dim=1)",
                                                             "dW = dW + (da.T @ torch.cat([h_prev, xs[t]], dim=1)).T"),
                                                            ("torch.zeros_like(W), torch.zeros_like(b)",
                                                             "torch.zeros_like(W.T), torch.zeros_like(b)")),
          "dW has shape"),
    Entry("bwd_valid_loop", "rnn_backward", VALID, _bptt()),
    Entry("bwd_valid_split_blocks", "rnn_backward", VALID, _fn(BACKWARD, """
H = h0.shape[1]
W_hh, W_ih = W[:, :H], W[:, H:]
hs, h = [], h0
for x_t in xs:
    h = torch.tanh(h @ W_hh.T + x_t @ W_ih.T + b)
    hs.append(h)
dxs, dW_hh, dW_ih = [], torch.zeros_like(W_hh), torch.zeros_like(W_ih)
db, dh = torch.zeros_like(b), torch.zeros_like(h0)
for t in range(len(xs) - 1, -1, -1):
    h_prev = hs[t - 1] if t > 0 else h0
    da = (dh + dhs[t]) * (1 - hs[t] * hs[t])
    dW_hh = dW_hh + da.T @ h_prev
    dW_ih = dW_ih + da.T @ xs[t]
    db = db + da.sum(0)
    dxs.insert(0, da @ W_ih)
    dh = da @ W_hh
return torch.stack(dxs), dh, torch.cat([dW_hh, dW_ih], dim=1), db""")),
    Entry("bwd_valid_einsum_after_loop", "rnn_backward", VALID, _fn(BACKWARD, """
H = h0.shape[1]
hs, _ = rnn_unroll(xs, h0, W, b)
prev = torch.cat([h0.unsqueeze(0), hs[:-1]])
das = torch.empty_like(hs)
dh = torch.zeros_like(h0)
for t in reversed(range(xs.shape[0])):
    das[t] = (dhs[t] + dh) * (1 - hs[t] ** 2)
    dh = das[t] @ W[:, :H]
dW = torch.einsum("tbh,tbk->hk", das, torch.cat([prev, xs], dim=2))
return torch.einsum("tbh,hd->tbd", das, W[:, H:]), dh, dW, das.sum(dim=(0, 1))""")),
    Entry("bwd_valid_calls_rnn_step", "rnn_backward", VALID, _fn(BACKWARD, """
H = h0.shape[1]
states = [h0]
for x_t in xs:
    states.append(rnn_step(x_t, states[-1], W, b))
grads = [torch.zeros_like(xs), None, torch.zeros_like(W), torch.zeros_like(b)]
dh = torch.zeros_like(h0)
for t in reversed(range(len(xs))):
    da = (dhs[t] + dh) * (1 - states[t + 1].pow(2))
    grads[2] = grads[2] + da.t().mm(torch.cat([states[t], xs[t]], 1))
    grads[3] = grads[3] + da.sum(0)
    d_in = da.mm(W)
    grads[0][t] = d_in[:, H:]
    dh = d_in[:, :H]
grads[1] = dh
return tuple(grads)""")),
    Entry("bwd_valid_float64_inside", "rnn_backward", VALID, _fn(BACKWARD, """
# computes in float64 whatever the inputs, then returns the inputs' dtype (more precise for float32 inputs)
dtype = xs.dtype
xs64, h064, W64, b64, dhs64 = (t.double() for t in (xs, h0, W, b, dhs))
H = h0.shape[1]
states = [h064]
for x_t in xs64:
    states.append(torch.tanh(torch.cat([states[-1], x_t], 1) @ W64.T + b64))
dxs, dW, db, dh = torch.zeros_like(xs64), torch.zeros_like(W64), torch.zeros_like(b64), torch.zeros_like(h064)
for t in reversed(range(len(xs))):
    da = (dhs64[t] + dh) * (1 - states[t + 1] ** 2)
    dW += da.T @ torch.cat([states[t], xs64[t]], 1)
    db += da.sum(0)
    dh, dxs[t] = (da @ W64).split([H, xs.shape[2]], dim=1)
return dxs.to(dtype), dh.to(dtype), dW.to(dtype), db.to(dtype)""")),
    Entry("bwd_valid_pre_activations", "rnn_backward", VALID, _fn(BACKWARD, """
# keeps the pre-activations a_t and differentiates tanh as 1 / cosh(a)**2
H = h0.shape[1]
h, hx_all, a_all = h0, [], []
for x_t in xs:
    hx = torch.cat([h, x_t], 1)
    a = torch.addmm(b, hx, W.T)
    h = torch.tanh(a)
    hx_all.append(hx)
    a_all.append(a)
dxs = xs.new_zeros(xs.shape)
dW, db, dh = W.new_zeros(W.shape), b.new_zeros(b.shape), h0.new_zeros(h0.shape)
for t in reversed(range(len(xs))):
    da = (dhs[t] + dh) / torch.cosh(a_all[t]) ** 2
    dW = dW + da.T @ hx_all[t]
    db = db + da.sum(0)
    dh, dxs[t] = (da @ W)[:, :H], (da @ W)[:, H:]
return dxs, dh, dW, db""")),
    # ---- rnn_params_from_torch ----------------------------------------------------------------------------------
    Entry("params_swapped_blocks", "rnn_params_from_torch", WRONG, _fn(PARAMS, """
s = "" if isinstance(module, nn.RNNCell) else "_l0"
W = torch.cat([getattr(module, "weight_ih" + s), getattr(module, "weight_hh" + s)], dim=1)
return W.detach(), (getattr(module, "bias_ih" + s) + getattr(module, "bias_hh" + s)).detach()"""), "wrong order"),
    Entry("params_only_bias_ih", "rnn_params_from_torch", WRONG, _fn(PARAMS, """
s = "" if isinstance(module, nn.RNNCell) else "_l0"
W = torch.cat([getattr(module, "weight_hh" + s), getattr(module, "weight_ih" + s)], dim=1)
return W.detach(), getattr(module, "bias_ih" + s).detach()"""), "two biases"),
    Entry("params_only_bias_hh", "rnn_params_from_torch", WRONG, _fn(PARAMS, """
s = "" if isinstance(module, nn.RNNCell) else "_l0"
W = torch.cat([getattr(module, "weight_hh" + s), getattr(module, "weight_ih" + s)], dim=1)
return W.detach(), getattr(module, "bias_hh" + s).detach()"""), "two biases"),
    Entry("params_stacked_biases", "rnn_params_from_torch", WRONG, _fn(PARAMS, """
s = "" if isinstance(module, nn.RNNCell) else "_l0"
W = torch.cat([getattr(module, "weight_hh" + s), getattr(module, "weight_ih" + s)], dim=1)
return W.detach(), torch.cat([getattr(module, "bias_ih" + s), getattr(module, "bias_hh" + s)]).detach()"""),
          "added, not stacked"),
    Entry("params_rnn_only", "rnn_params_from_torch", WRONG, _fn(PARAMS, """
W = torch.cat([module.weight_hh_l0, module.weight_ih_l0], dim=1)
return W.detach(), (module.bias_ih_l0 + module.bias_hh_l0).detach()"""), "AttributeError"),
    Entry("params_inplace_bias", "rnn_params_from_torch", WRONG, _fn(PARAMS, """
s = "" if isinstance(module, nn.RNNCell) else "_l0"
W = torch.cat([getattr(module, "weight_hh" + s), getattr(module, "weight_ih" + s)], dim=1)
b = getattr(module, "bias_ih" + s).data
b += getattr(module, "bias_hh" + s).data
return W.detach(), b"""), "changed the module"),
    Entry("params_transposed", "rnn_params_from_torch", WRONG, _fn(PARAMS, """
s = "" if isinstance(module, nn.RNNCell) else "_l0"
W = torch.cat([getattr(module, "weight_hh" + s).T, getattr(module, "weight_ih" + s).T], dim=0)
return W.detach(), (getattr(module, "bias_ih" + s) + getattr(module, "bias_hh" + s)).detach()"""), "shape"),
    Entry("params_valid_state_dict", "rnn_params_from_torch", VALID, _fn(PARAMS, """
sd = module.state_dict()
get = lambda prefix: next(v for k, v in sd.items() if k.startswith(prefix))
return torch.cat([get("weight_hh"), get("weight_ih")], 1), get("bias_ih") + get("bias_hh")""")),
    Entry("params_valid_keep_grad", "rnn_params_from_torch", VALID, _fn(PARAMS, """
p = {name.split("_l")[0]: value for name, value in module.named_parameters()}
return torch.cat([p["weight_hh"], p["weight_ih"]], dim=1), p["bias_ih"] + p["bias_hh"]""")),
    Entry("params_valid_hasattr", "rnn_params_from_torch", VALID, _fn(PARAMS, """
if hasattr(module, "weight_ih_l0"):
    w_ih, w_hh, b_ih, b_hh = module.weight_ih_l0, module.weight_hh_l0, module.bias_ih_l0, module.bias_hh_l0
else:
    w_ih, w_hh, b_ih, b_hh = module.weight_ih, module.weight_hh, module.bias_ih, module.bias_hh
with torch.no_grad():
    return torch.hstack([w_hh, w_ih]).clone(), b_ih.add(b_hh)""")),
    # ---- rnn_unroll_masked --------------------------------------------------------------------------------------
    Entry("masked_no_masking", "rnn_unroll_masked", WRONG, _fn(MASKED, "return rnn_unroll(xs, h0, W, b)"),
          "not zero at padded steps"),
    Entry("masked_h_last_from_hs", "rnn_unroll_masked", WRONG, _fn(MASKED, """
hs, _ = rnn_unroll(xs, h0, W, b)
mask = (torch.arange(xs.shape[0])[:, None] < lengths[None, :]).to(hs.dtype).to(hs.device)
hs = hs * mask[:, :, None]
return hs, hs[-1]"""), "hs[-1]"),
    Entry("masked_state_keeps_running", "rnn_unroll_masked", WRONG, _fn(MASKED, """
hs, h_T = rnn_unroll(xs, h0, W, b)
mask = (torch.arange(xs.shape[0])[:, None] < lengths[None, :]).to(hs.dtype).to(hs.device)
return hs * mask[:, :, None], h_T"""), "after the last time step"),
    Entry("masked_off_by_one", "rnn_unroll_masked", WRONG, _fn(MASKED, """
h, hs = h0, []
for t, x_t in enumerate(xs):
    running = (t <= lengths).to(xs.device).unsqueeze(1)
    h = torch.where(running, rnn_step(x_t, h, W, b), h)
    hs.append(torch.where(running, h, torch.zeros_like(h)))
return torch.stack(hs), h"""), ""),
    Entry("masked_assumes_sorted", "rnn_unroll_masked", WRONG, _fn(MASKED, """
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
H, D = W.shape[0], W.shape[1] - W.shape[0]
rnn = nn.RNN(D, H).to(dtype=xs.dtype, device=xs.device)
with torch.no_grad():
    rnn.weight_hh_l0.copy_(W[:, :H]); rnn.weight_ih_l0.copy_(W[:, H:])
    rnn.bias_ih_l0.copy_(b); rnn.bias_hh_l0.zero_()
    out, h_n = rnn(pack_padded_sequence(xs, lengths), h0.unsqueeze(0))
hs, _ = pad_packed_sequence(out, total_length=xs.shape[0])
return hs, h_n[0]"""), "raised RuntimeError"),
    Entry("masked_inplace_h0", "rnn_unroll_masked", WRONG, _fn(MASKED, """
h, hs = h0, []
for t, x_t in enumerate(xs):
    running = t < lengths
    h[running] = rnn_step(x_t, h, W, b)[running]
    hs.append(torch.where(running.unsqueeze(1), h, torch.zeros_like(h)))
return torch.stack(hs), h.clone()"""), "in place"),
    Entry("masked_valid_packed", "rnn_unroll_masked", VALID, _fn(MASKED, """
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
H, D = W.shape[0], W.shape[1] - W.shape[0]
rnn = nn.RNN(D, H).to(dtype=xs.dtype, device=xs.device)
with torch.no_grad():
    rnn.weight_hh_l0.copy_(W[:, :H]); rnn.weight_ih_l0.copy_(W[:, H:])
    rnn.bias_ih_l0.copy_(b); rnn.bias_hh_l0.zero_()
    out, h_n = rnn(pack_padded_sequence(xs, lengths, enforce_sorted=False), h0.unsqueeze(0))
hs, _ = pad_packed_sequence(out, total_length=xs.shape[0])
return hs, h_n[0]""")),
    Entry("masked_valid_gather_after_full_unroll", "rnn_unroll_masked", VALID, _fn(MASKED, """
hs_full = []
h = h0
for t in range(xs.shape[0]):
    h = rnn_step(xs[t], h, W, b)
    hs_full.append(h)
hs_full = torch.stack(hs_full)
mask = (torch.arange(xs.shape[0])[:, None] < lengths[None, :]).to(xs.device)
h_last = hs_full[lengths.to(xs.device) - 1, torch.arange(xs.shape[1], device=xs.device)]
return hs_full * mask[:, :, None], h_last""")),
    Entry("masked_valid_per_sequence", "rnn_unroll_masked", VALID, _fn(MASKED, """
T, B = xs.shape[:2]
hs = xs.new_zeros(T, B, h0.shape[1])
h_last = []
for i in range(B):
    n = int(lengths[i])
    states, h_i = rnn_unroll(xs[:n, i:i + 1], h0[i:i + 1], W, b)
    hs[:n, i] = states[:, 0]
    h_last.append(h_i[0])
return hs, torch.stack(h_last)""")),
    Entry("masked_valid_float_mask_blend", "rnn_unroll_masked", VALID, _fn(MASKED, """
h, hs = h0, []
for t in range(xs.shape[0]):
    m = (t < lengths).to(dtype=xs.dtype, device=xs.device).unsqueeze(1)
    h = m * rnn_step(xs[t], h, W, b) + (1 - m) * h
    hs.append(m * h)
return torch.stack(hs), h""")),
    # ---- embed --------------------------------------------------------------------------------------------------
    Entry("embed_batch_first", "embed", WRONG, _fn(EMBED, "return E[token_ids.T]"), "(T, B, D)"),
    Entry("embed_one_hot_inferred_classes", "embed", WRONG,
          _fn(EMBED, "return torch.nn.functional.one_hot(token_ids).to(E.dtype) @ E"), "num_classes"),
    Entry("embed_shifted_ids", "embed", WRONG, _fn(EMBED, "return E[token_ids - 1]"), "shifted by one"),
    Entry("embed_always_float32", "embed", WRONG,
          _fn(EMBED, "return torch.nn.functional.one_hot(token_ids, E.shape[0]).float() @ E.float()"), "dtype"),
    Entry("embed_transposed_table", "embed", WRONG, _fn(EMBED, "return E.T[token_ids]"), ""),
    Entry("embed_valid_functional", "embed", VALID, _fn(EMBED, "return torch.nn.functional.embedding(token_ids, E)")),
    Entry("embed_valid_one_hot", "embed", VALID,
          _fn(EMBED, "return torch.nn.functional.one_hot(token_ids, num_classes=E.shape[0]).to(E.dtype) @ E")),
    Entry("embed_valid_index_select", "embed", VALID,
          _fn(EMBED, "return E.index_select(0, token_ids.reshape(-1)).reshape(*token_ids.shape, E.shape[1])")),
    # Warns on stderr (torch's "To copy construct from a tensor" UserWarning): proves IgnorePattern keeps the points.
    Entry("embed_valid_warns_on_stderr", "embed", VALID, _fn(EMBED, "return torch.tensor(E)[token_ids]")),
    Entry("embed_valid_nn_embedding", "embed", VALID,
          _fn(EMBED, "return nn.Embedding.from_pretrained(E)(token_ids)")),
    # ---- TASK_ALIGNMENT -----------------------------------------------------------------------------------------
    Entry("task_all_swapped", "task_alignment", WRONG, """
TASK_ALIGNMENT = {"machine_translation": "aligned", "summarization": "aligned", "pos_tagging": "unaligned",
                  "named_entity_recognition": "unaligned", "slot_filling": "unaligned"}""", "5 of the 5"),
    Entry("task_translation_aligned", "task_alignment", WRONG, """
TASK_ALIGNMENT = {"machine_translation": "aligned", "summarization": "unaligned", "pos_tagging": "aligned",
                  "named_entity_recognition": "aligned", "slot_filling": "aligned"}""", "1 of the 5"),
    Entry("task_missing_key", "task_alignment", WRONG, """
TASK_ALIGNMENT = {"machine_translation": "unaligned", "summarization": "unaligned", "pos_tagging": "aligned",
                  "named_entity_recognition": "aligned"}""", "slot_filling"),
    Entry("task_booleans", "task_alignment", WRONG, """
TASK_ALIGNMENT = {"machine_translation": False, "summarization": False, "pos_tagging": True,
                  "named_entity_recognition": True, "slot_filling": True}""", "exactly 'aligned' or 'unaligned'"),
    Entry("task_capitalised", "task_alignment", WRONG, """
TASK_ALIGNMENT = {"machine_translation": "Unaligned", "summarization": "Unaligned", "pos_tagging": "Aligned",
                  "named_entity_recognition": "Aligned", "slot_filling": "Aligned"}""", "exactly 'aligned'"),
    Entry("task_valid_extra_keys", "task_alignment", VALID, """
TASK_ALIGNMENT = {"machine_translation": "unaligned", "summarization": "unaligned", "pos_tagging": "aligned",
                  "named_entity_recognition": "aligned", "slot_filling": "aligned",
                  "speech_recognition": "unaligned", "chunking": "aligned"}"""),
    Entry("task_valid_built_from_sets", "task_alignment", VALID, """
aligned = ["pos_tagging", "named_entity_recognition", "slot_filling"]
unaligned = ["machine_translation", "summarization"]
TASK_ALIGNMENT = {**{t: "aligned" for t in aligned}, **{t: "unaligned" for t in unaligned}}"""),
]

CATALOG = [replace(entry, notebook=NOTEBOOK, id="nb01_" + entry.id) for entry in _ENTRIES]
