"""Mutation catalog for notebook 02 (LSTM gates): wrong implementations and valid alternatives of each function."""

from dataclasses import replace

from .entry import VALID, WRONG, Entry
from .entry import fn as _fn

NOTEBOOK = "02_lstm_gates"

FORGET = "forget_gate(x_t, h_prev, W_f, b_f)"
INPUT = "input_gate(x_t, h_prev, W_i, b_i)"
CANDIDATE = "candidate_cell(x_t, h_prev, W_C, b_C)"
OUTPUT = "output_gate(x_t, h_prev, W_o, b_o)"
CELL = "cell_update(f_t, i_t, c_tilde, c_prev)"
HIDDEN = "hidden_state(o_t, c_t)"
STEP = "lstm_step(x_t, h_prev, c_prev, params)"
UNROLL = "lstm_unroll(xs, h0, c0, params)"
PARAMS = "lstm_params_from_torch(module)"
GRU = "gru_step(x_t, h_prev, weight_ih, weight_hh, bias_ih, bias_hh)"
BIAS = "set_forget_gate_bias(lstm, value=1.0)"

_GATE_STEPS = """
f_t = forget_gate(x_t, h_prev, params["W_f"], params["b_f"])
i_t = input_gate(x_t, h_prev, params["W_i"], params["b_i"])
c_tilde = candidate_cell(x_t, h_prev, params["W_C"], params["b_C"])
o_t = output_gate(x_t, h_prev, params["W_o"], params["b_o"])
"""
_TORCH_NAMES = """
s = "" if isinstance(module, nn.LSTMCell) else "_l0"
w_ih, w_hh = getattr(module, "weight_ih" + s).detach(), getattr(module, "weight_hh" + s).detach()
b_ih, b_hh = getattr(module, "bias_ih" + s).detach(), getattr(module, "bias_hh" + s).detach()
"""


def _params_from(blocks: str, bias: str) -> str:
    """A conversion that reads blocks with `blocks` (an expression of k) and biases with `bias` (of k)."""
    return _fn(PARAMS, _TORCH_NAMES + f"""
H = w_hh.shape[1]
names = {{"i": 0, "f": 1, "C": 2, "o": 3}}
params = {{}}
for gate, k in names.items():
    params["W_" + gate] = {blocks}
    params["b_" + gate] = {bias}
return params""")


_STANDARD_BLOCK = "torch.cat([w_hh[k * H:(k + 1) * H], w_ih[k * H:(k + 1) * H]], dim=1)"
_STANDARD_BIAS = "(b_ih + b_hh)[k * H:(k + 1) * H]"

_ENTRIES = [
    # ---- the four gates -------------------------------------------------------------------------------------------
    Entry("forget_tanh", "forget_gate", WRONG,
          _fn(FORGET, "return torch.tanh(torch.cat([h_prev, x_t], 1) @ W_f.T + b_f)"), "tanh is used"),
    Entry("forget_x_h_order", "forget_gate", WRONG,
          _fn(FORGET, "return torch.sigmoid(torch.cat([x_t, h_prev], 1) @ W_f.T + b_f)"), "[x_t, h_prev]"),
    Entry("forget_no_bias", "forget_gate", WRONG,
          _fn(FORGET, "return torch.sigmoid(torch.cat([h_prev, x_t], 1) @ W_f.T)"), "bias b_f is missing"),
    Entry("input_tanh", "input_gate", WRONG,
          _fn(INPUT, "return torch.tanh(torch.cat([h_prev, x_t], 1) @ W_i.T + b_i)"), "tanh is used"),
    Entry("input_ignores_h", "input_gate", WRONG,
          _fn(INPUT, "H = h_prev.shape[1]\nreturn torch.sigmoid(x_t @ W_i[:, H:].T + b_i)"), "h_prev is ignored"),
    Entry("candidate_sigmoid", "candidate_cell", WRONG,
          _fn(CANDIDATE, "return torch.sigmoid(torch.cat([h_prev, x_t], 1) @ W_C.T + b_C)"), "sigmoid is used"),
    Entry("candidate_no_bias", "candidate_cell", WRONG,
          _fn(CANDIDATE, "return torch.tanh(torch.cat([h_prev, x_t], 1) @ W_C.T)"), "bias b_C is missing"),
    Entry("output_x_h_order", "output_gate", WRONG,
          _fn(OUTPUT, "return torch.sigmoid(torch.cat([x_t, h_prev], 1) @ W_o.T + b_o)"), "[x_t, h_prev]"),
    Entry("output_no_activation", "output_gate", WRONG,
          _fn(OUTPUT, "return torch.cat([h_prev, x_t], 1) @ W_o.T + b_o"), "sigmoid is missing"),
    Entry("forget_valid_split_matmuls", "forget_gate", VALID,
          _fn(FORGET, "H = h_prev.shape[1]\nreturn torch.sigmoid(h_prev @ W_f[:, :H].T + x_t @ W_f[:, H:].T + b_f)")),
    Entry("forget_valid_manual_sigmoid", "forget_gate", VALID,
          _fn(FORGET, "z = torch.cat([h_prev, x_t], 1) @ W_f.T + b_f\nreturn 1 / (1 + torch.exp(-z))")),
    Entry("input_valid_linear", "input_gate", VALID,
          _fn(INPUT, "return torch.nn.functional.linear(torch.cat([h_prev, x_t], 1), W_i, b_i).sigmoid()")),
    Entry("candidate_valid_numpy_round_trip", "candidate_cell", VALID, _fn(CANDIDATE, """
hx = np.concatenate([h_prev.detach().cpu().numpy(), x_t.detach().cpu().numpy()], axis=1)
out = np.tanh(hx @ W_C.detach().cpu().numpy().T + b_C.detach().cpu().numpy())
return torch.from_numpy(out).to(x_t.device)""")),
    Entry("output_valid_addmm", "output_gate", VALID,
          _fn(OUTPUT, "return torch.addmm(b_o, torch.cat([h_prev, x_t], 1), W_o.t()).sigmoid_()")),
    # ---- cell_update ----------------------------------------------------------------------------------------------
    Entry("cell_without_forget_term", "cell_update", WRONG, _fn(CELL, "return i_t * c_tilde"), "f_t * c_prev is missing"),
    Entry("cell_gates_swapped", "cell_update", WRONG, _fn(CELL, "return f_t * c_tilde + i_t * c_prev"), "swapped"),
    Entry("cell_no_input_gate", "cell_update", WRONG, _fn(CELL, "return f_t * c_prev + c_tilde"), "without the input"),
    Entry("cell_inplace_c_prev", "cell_update", WRONG, _fn(CELL, "return c_prev.mul_(f_t).add_(i_t * c_tilde)"),
          "in place", also_costs=("lstm_step", "lstm_unroll")),
    Entry("cell_valid_addcmul", "cell_update", VALID, _fn(CELL, "return torch.addcmul(f_t * c_prev, i_t, c_tilde)")),
    Entry("cell_valid_inplace_on_own_tensor", "cell_update", VALID,
          _fn(CELL, "c_t = f_t * c_prev\nc_t += i_t * c_tilde\nreturn c_t")),
    # ---- hidden_state ---------------------------------------------------------------------------------------------
    Entry("hidden_without_tanh", "hidden_state", WRONG, _fn(HIDDEN, "return o_t * c_t"), "tanh is missing"),
    Entry("hidden_tanh_of_product", "hidden_state", WRONG, _fn(HIDDEN, "return torch.tanh(o_t * c_t)"),
          "applied to the product"),
    Entry("hidden_inplace_c_t", "hidden_state", WRONG, _fn(HIDDEN, "return c_t.tanh_().mul_(o_t)"), "in place"),
    Entry("hidden_valid_sigmoid_identity", "hidden_state", VALID,
          _fn(HIDDEN, "return o_t * (2 * torch.sigmoid(2 * c_t) - 1)  # tanh(c) = 2 sigmoid(2c) - 1")),
    Entry("hidden_valid_mul", "hidden_state", VALID, _fn(HIDDEN, "return torch.mul(o_t, c_t.tanh())")),
    # ---- lstm_step ------------------------------------------------------------------------------------------------
    Entry("step_returns_c_then_h", "lstm_step", WRONG, _fn(STEP, _GATE_STEPS + """
c_t = cell_update(f_t, i_t, c_tilde, c_prev)
return c_t, hidden_state(o_t, c_t)"""), "wrong order"),
    Entry("step_output_from_old_cell", "lstm_step", WRONG, _fn(STEP, _GATE_STEPS + """
c_t = cell_update(f_t, i_t, c_tilde, c_prev)
return hidden_state(o_t, c_prev), c_t"""), "old cell c_prev"),
    Entry("step_forget_uses_input_params", "lstm_step", WRONG, _fn(STEP, _GATE_STEPS.replace(
        'forget_gate(x_t, h_prev, params["W_f"], params["b_f"])', 'forget_gate(x_t, h_prev, params["W_i"], params["b_i"])')
        .replace('input_gate(x_t, h_prev, params["W_i"], params["b_i"])', 'input_gate(x_t, h_prev, params["W_f"], params["b_f"])')
        + """
c_t = cell_update(f_t, i_t, c_tilde, c_prev)
return hidden_state(o_t, c_t), c_t"""), "each other's parameters"),
    Entry("step_cell_without_forget", "lstm_step", WRONG, _fn(STEP, _GATE_STEPS + """
c_t = i_t * c_tilde
return hidden_state(o_t, c_t), c_t"""), "ignores c_prev"),
    Entry("step_h_without_tanh", "lstm_step", WRONG, _fn(STEP, _GATE_STEPS + """
c_t = cell_update(f_t, i_t, c_tilde, c_prev)
return o_t * c_t, c_t"""), "without tanh"),
    Entry("step_valid_fused_matmul", "lstm_step", VALID, _fn(STEP, """
W = torch.cat([params["W_f"], params["W_i"], params["W_C"], params["W_o"]])       # one (4H, H + D) matrix
b = torch.cat([params["b_f"], params["b_i"], params["b_C"], params["b_o"]])
z_f, z_i, z_c, z_o = (torch.cat([h_prev, x_t], 1) @ W.T + b).chunk(4, dim=1)
c_t = torch.sigmoid(z_f) * c_prev + torch.sigmoid(z_i) * torch.tanh(z_c)
return torch.sigmoid(z_o) * torch.tanh(c_t), c_t""")),
    Entry("step_valid_separate_matmuls", "lstm_step", VALID, _fn(STEP, """
H = h_prev.shape[1]
z = {g: h_prev @ params["W_" + g][:, :H].T + x_t @ params["W_" + g][:, H:].T + params["b_" + g] for g in "fiCo"}
c_t = torch.sigmoid(z["f"]) * c_prev + torch.sigmoid(z["i"]) * torch.tanh(z["C"])
return torch.sigmoid(z["o"]) * torch.tanh(c_t), c_t""")),
    Entry("step_valid_numpy_round_trip", "lstm_step", VALID, _fn(STEP, """
to_np = lambda t: t.detach().cpu().numpy()
sig = lambda z: 1 / (1 + np.exp(-z))
hx = np.concatenate([to_np(h_prev), to_np(x_t)], axis=1)
z = {g: hx @ to_np(params["W_" + g]).T + to_np(params["b_" + g]) for g in "fiCo"}
c = sig(z["f"]) * to_np(c_prev) + sig(z["i"]) * np.tanh(z["C"])
h = sig(z["o"]) * np.tanh(c)
return torch.from_numpy(h).to(x_t.device), torch.from_numpy(c).to(x_t.device)""")),
    # ---- lstm_unroll ----------------------------------------------------------------------------------------------
    Entry("unroll_cell_not_carried", "lstm_unroll", WRONG, _fn(UNROLL, """
h, hs = h0, []
for x_t in xs:
    h, c = lstm_step(x_t, h, c0, params)
    hs.append(h)
return torch.stack(hs), (h, c)"""), "not carried"),
    Entry("unroll_state_before_step", "lstm_unroll", WRONG, _fn(UNROLL, """
h, c, hs = h0, c0, []
for x_t in xs:
    hs.append(h)
    h, c = lstm_step(x_t, h, c, params)
return torch.stack(hs), (h, c)"""), "before"),
    Entry("unroll_returns_initial_state", "lstm_unroll", WRONG, _fn(UNROLL, """
h, c, hs = h0, c0, []
for x_t in xs:
    h, c = lstm_step(x_t, h, c, params)
    hs.append(h)
return torch.stack(hs), (h0, c0)"""), "c_T is c0"),
    Entry("unroll_stacks_cells", "lstm_unroll", WRONG, _fn(UNROLL, """
h, c, cs = h0, c0, []
for x_t in xs:
    h, c = lstm_step(x_t, h, c, params)
    cs.append(c)
return torch.stack(cs), (h, c)"""), "hs"),
    Entry("unroll_flat_result", "lstm_unroll", WRONG, _fn(UNROLL, """
h, c, hs = h0, c0, []
for x_t in xs:
    h, c = lstm_step(x_t, h, c, params)
    hs.append(h)
return torch.stack(hs), h, c"""), "pair"),
    Entry("unroll_valid_preallocated", "lstm_unroll", VALID, _fn(UNROLL, """
hs = xs.new_empty(xs.shape[0], h0.shape[0], h0.shape[1])
h, c = h0, c0
for t in range(xs.shape[0]):
    h, c = lstm_step(xs[t], h, c, params)
    hs[t] = h
return hs, (h, c)""")),
    Entry("unroll_valid_torch_lstm", "lstm_unroll", VALID, _fn(UNROLL, """
H, D = params["W_f"].shape[0], params["W_f"].shape[1] - params["W_f"].shape[0]
lstm = nn.LSTM(D, H).to(dtype=xs.dtype, device=xs.device)
W = torch.cat([params["W_" + g] for g in "ifCo"])
with torch.no_grad():
    lstm.weight_hh_l0.copy_(W[:, :H]); lstm.weight_ih_l0.copy_(W[:, H:])
    lstm.bias_ih_l0.copy_(torch.cat([params["b_" + g] for g in "ifCo"])); lstm.bias_hh_l0.zero_()
    hs, (h_n, c_n) = lstm(xs, (h0.unsqueeze(0), c0.unsqueeze(0)))
return hs, (h_n[0], c_n[0])""")),
    # ---- lstm_params_from_torch -----------------------------------------------------------------------------------
    Entry("params_ifog_order", "lstm_params_from_torch", WRONG, _fn(PARAMS, _TORCH_NAMES + """
W = torch.cat([w_hh, w_ih], dim=1)
W_i, W_f, W_o, W_C = W.chunk(4)          # stacked i, f, o, g, as in CS231n
b_i, b_f, b_o, b_C = (b_ih + b_hh).chunk(4)
return {"W_f": W_f, "b_f": b_f, "W_i": W_i, "b_i": b_i, "W_C": W_C, "b_C": b_C, "W_o": W_o, "b_o": b_o}"""),
          "i, f, o, g"),
    Entry("params_only_bias_ih", "lstm_params_from_torch", WRONG,
          _params_from(_STANDARD_BLOCK, "b_ih[k * H:(k + 1) * H]"), "two biases"),
    Entry("params_only_bias_hh", "lstm_params_from_torch", WRONG,
          _params_from(_STANDARD_BLOCK, "b_hh[k * H:(k + 1) * H]"), "two biases"),
    Entry("params_x_h_order", "lstm_params_from_torch", WRONG,
          _params_from("torch.cat([w_ih[k * H:(k + 1) * H], w_hh[k * H:(k + 1) * H]], dim=1)", _STANDARD_BIAS),
          "hidden-to-hidden weights come first"),
    Entry("params_chunk_wrong_dim", "lstm_params_from_torch", WRONG, _fn(PARAMS, _TORCH_NAMES + """
W = torch.cat([w_hh, w_ih], dim=1)
W_i, W_f, W_C, W_o = W.chunk(4, dim=1)
b_i, b_f, b_C, b_o = (b_ih + b_hh).chunk(4)
return {"W_f": W_f, "b_f": b_f, "W_i": W_i, "b_i": b_i, "W_C": W_C, "b_C": b_C, "W_o": W_o, "b_o": b_o}"""),
          "should have shape"),
    Entry("params_lstm_only", "lstm_params_from_torch", WRONG, _fn(PARAMS, """
W = torch.cat([module.weight_hh_l0, module.weight_ih_l0], dim=1).detach()
b = (module.bias_ih_l0 + module.bias_hh_l0).detach()
W_i, W_f, W_C, W_o = W.chunk(4)
b_i, b_f, b_C, b_o = b.chunk(4)
return {"W_f": W_f, "b_f": b_f, "W_i": W_i, "b_i": b_i, "W_C": W_C, "b_C": b_C, "W_o": W_o, "b_o": b_o}"""),
          "AttributeError"),
    Entry("params_inplace_bias", "lstm_params_from_torch", WRONG, _fn(PARAMS, """
s = "" if isinstance(module, nn.LSTMCell) else "_l0"
W = torch.cat([getattr(module, "weight_hh" + s), getattr(module, "weight_ih" + s)], dim=1).detach()
b = getattr(module, "bias_ih" + s).data
b += getattr(module, "bias_hh" + s).data
W_i, W_f, W_C, W_o = W.chunk(4)
b_i, b_f, b_C, b_o = b.chunk(4)
return {"W_f": W_f, "b_f": b_f, "W_i": W_i, "b_i": b_i, "W_C": W_C, "b_C": b_C, "W_o": W_o, "b_o": b_o}"""),
          "changed the module"),
    Entry("params_valid_slices", "lstm_params_from_torch", VALID, _params_from(_STANDARD_BLOCK, _STANDARD_BIAS)),
    Entry("params_valid_state_dict", "lstm_params_from_torch", VALID, _fn(PARAMS, """
sd = {k.replace("_l0", ""): v for k, v in module.state_dict().items()}
W = torch.cat([sd["weight_hh"], sd["weight_ih"]], dim=1)
b = sd["bias_ih"] + sd["bias_hh"]
return dict(zip(["W_i", "W_f", "W_C", "W_o"], W.chunk(4))) | dict(zip(["b_i", "b_f", "b_C", "b_o"], b.chunk(4)))""")),
    Entry("params_valid_keep_grad", "lstm_params_from_torch", VALID, _fn(PARAMS, """
p = {name.split("_l0")[0]: value for name, value in module.named_parameters()}
W = torch.cat([p["weight_hh"], p["weight_ih"]], dim=1)
b = p["bias_ih"] + p["bias_hh"]
keys = [("W_i", "b_i"), ("W_f", "b_f"), ("W_C", "b_C"), ("W_o", "b_o")]
return {key: part for (kw, kb), w, bb in zip(keys, W.chunk(4), b.chunk(4)) for key, part in ((kw, w), (kb, bb))}""")),
    # ---- gru_step -------------------------------------------------------------------------------------------------
    Entry("gru_reset_before_product", "gru_step", WRONG, _fn(GRU, """
H = h_prev.shape[1]
gi_r, gi_z, gi_n = (x_t @ weight_ih.T + bias_ih).chunk(3, dim=1)
gh_r, gh_z, _ = (h_prev @ weight_hh.T + bias_hh).chunk(3, dim=1)
r, z = torch.sigmoid(gi_r + gh_r), torch.sigmoid(gi_z + gh_z)
n = torch.tanh(gi_n + (r * h_prev) @ weight_hh[2 * H:].T + bias_hh[2 * H:])
return (1 - z) * n + z * h_prev"""), "before the product"),
    Entry("gru_z_swapped", "gru_step", WRONG, _fn(GRU, """
gi_r, gi_z, gi_n = (x_t @ weight_ih.T + bias_ih).chunk(3, dim=1)
gh_r, gh_z, gh_n = (h_prev @ weight_hh.T + bias_hh).chunk(3, dim=1)
r, z = torch.sigmoid(gi_r + gh_r), torch.sigmoid(gi_z + gh_z)
return z * torch.tanh(gi_n + r * gh_n) + (1 - z) * h_prev"""), "z and 1 - z are swapped"),
    Entry("gru_gate_order_zrn", "gru_step", WRONG, _fn(GRU, """
gi_z, gi_r, gi_n = (x_t @ weight_ih.T + bias_ih).chunk(3, dim=1)
gh_z, gh_r, gh_n = (h_prev @ weight_hh.T + bias_hh).chunk(3, dim=1)
r, z = torch.sigmoid(gi_r + gh_r), torch.sigmoid(gi_z + gh_z)
return (1 - z) * torch.tanh(gi_n + r * gh_n) + z * h_prev"""), "r, z, n"),
    Entry("gru_b_hn_outside_reset", "gru_step", WRONG, _fn(GRU, """
H = h_prev.shape[1]
gi_r, gi_z, gi_n = (x_t @ weight_ih.T + bias_ih).chunk(3, dim=1)
gh_r, gh_z, _ = (h_prev @ weight_hh.T + bias_hh).chunk(3, dim=1)
r, z = torch.sigmoid(gi_r + gh_r), torch.sigmoid(gi_z + gh_z)
n = torch.tanh(gi_n + r * (h_prev @ weight_hh[2 * H:].T) + bias_hh[2 * H:])
return (1 - z) * n + z * h_prev"""), "outside r"),
    Entry("gru_valid_per_gate_slices", "gru_step", VALID, _fn(GRU, """
H = h_prev.shape[1]
part = lambda k: slice(k * H, (k + 1) * H)
lin = torch.nn.functional.linear
r = torch.sigmoid(lin(x_t, weight_ih[part(0)], bias_ih[part(0)]) + lin(h_prev, weight_hh[part(0)], bias_hh[part(0)]))
z = torch.sigmoid(lin(x_t, weight_ih[part(1)], bias_ih[part(1)]) + lin(h_prev, weight_hh[part(1)], bias_hh[part(1)]))
n = torch.tanh(lin(x_t, weight_ih[part(2)], bias_ih[part(2)]) + r * lin(h_prev, weight_hh[part(2)], bias_hh[part(2)]))
return torch.lerp(n, h_prev, z)""")),
    Entry("gru_valid_torch_cell", "gru_step", VALID, _fn(GRU, """
cell = nn.GRUCell(x_t.shape[1], h_prev.shape[1]).to(dtype=x_t.dtype, device=x_t.device)
with torch.no_grad():
    for name, value in [("weight_ih", weight_ih), ("weight_hh", weight_hh), ("bias_ih", bias_ih), ("bias_hh", bias_hh)]:
        getattr(cell, name).copy_(value)
    return cell(x_t, h_prev)""")),
    # ---- set_forget_gate_bias -------------------------------------------------------------------------------------
    Entry("bias_first_layer_only", "set_forget_gate_bias", WRONG, _fn(BIAS, """
H = lstm.hidden_size
with torch.no_grad():
    lstm.bias_ih_l0[H:2 * H] = value
    lstm.bias_hh_l0[H:2 * H] = 0.0"""), "every layer"),
    Entry("bias_ignores_reverse", "set_forget_gate_bias", WRONG, _fn(BIAS, """
H = lstm.hidden_size
with torch.no_grad():
    for layer in range(lstm.num_layers):
        getattr(lstm, f"bias_ih_l{layer}")[H:2 * H] = value
        getattr(lstm, f"bias_hh_l{layer}")[H:2 * H] = 0.0"""), "_reverse"),
    Entry("bias_sets_both_biases", "set_forget_gate_bias", WRONG, _fn(BIAS, """
H = lstm.hidden_size
with torch.no_grad():
    for name, param in lstm.named_parameters():
        if name.startswith("bias"):
            param[H:2 * H] = value"""), "twice the value"),
    Entry("bias_input_gate_slice", "set_forget_gate_bias", WRONG, _fn(BIAS, """
H = lstm.hidden_size
with torch.no_grad():
    for name, param in lstm.named_parameters():
        if name.startswith("bias_ih"):
            param[:H] = value
        elif name.startswith("bias_hh"):
            param[:H] = 0.0"""), "other than the forget slices"),
    Entry("bias_without_no_grad", "set_forget_gate_bias", WRONG, _fn(BIAS, """
H = lstm.hidden_size
for name, param in lstm.named_parameters():
    if name.startswith("bias_ih"):
        param[H:2 * H] = value
    elif name.startswith("bias_hh"):
        param[H:2 * H] = 0.0"""), "torch.no_grad()"),
    Entry("bias_whole_vector", "set_forget_gate_bias", WRONG, _fn(BIAS, """
with torch.no_grad():
    for name, param in lstm.named_parameters():
        if name.startswith("bias_ih"):
            param.fill_(value)
        elif name.startswith("bias_hh"):
            param.zero_()"""), "other than the forget slices"),
    Entry("bias_valid_keep_bias_hh", "set_forget_gate_bias", VALID, _fn(BIAS, """
H = lstm.hidden_size
with torch.no_grad():
    for name, param in lstm.named_parameters():
        if name.startswith("bias_ih"):
            partner = getattr(lstm, name.replace("bias_ih", "bias_hh"))
            param[H:2 * H] = value - partner[H:2 * H]""")),
    Entry("bias_valid_data_attribute", "set_forget_gate_bias", VALID, _fn(BIAS, """
H = lstm.hidden_size
for name, param in lstm.named_parameters():
    if "bias_ih" in name:
        param.data[H:2 * H].fill_(value / 2)
    if "bias_hh" in name:
        param.data[H:2 * H].fill_(value / 2)""")),
]

CATALOG = [replace(entry, notebook=NOTEBOOK, id="nb02_" + entry.id) for entry in _ENTRIES]
