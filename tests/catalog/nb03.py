"""Mutation catalog for notebook 03 (PyTorch walkthrough): wrong implementations and valid alternatives of each
graded cell — the model, detaching, clipping, the truncated-BPTT loop, the trained predictor, forecasting and
checkpoints."""

from dataclasses import replace

from rnncourse import notebooks
from rnncourse.course import repo_root, source_notebook

from .entry import VALID, WRONG, Entry
from .entry import fn as _fn

NOTEBOOK = "03_pytorch_walkthrough"

DETACH = "detach_state(state)"
CLIP = "clip_grad_norm(parameters, max_norm)"
FORECAST = "forecast(model, context, steps)"
SAVE = "save_checkpoint(model, path)"
LOAD = "load_checkpoint(path)"
TBPTT = "train_tbptt(model, inputs, targets, chunk_len, optimizer, loss_fn, max_grad_norm=None, carry_state=True)"

# -- SequencePredictor: one template, one piece replaced per entry ------------------------------------------------
_LAYER = ('{"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[cell](input_size, hidden_size, num_layers=num_layers, '
          'batch_first=True)')
_FORWARD = """
outputs, state = self.rnn(x, state)
return self.head(outputs), state"""
_INIT = """
w = self.head.weight
h = torch.zeros(self.num_layers, batch_size, self.hidden_size, dtype=w.dtype, device=w.device)
return (h, torch.zeros_like(h)) if self.cell == "lstm" else h"""


def _indent(body: str, spaces: int = 8) -> str:
    return "\n".join(" " * spaces + line for line in body.strip("\n").splitlines())


def _predictor(layer: str = _LAYER, forward: str = _FORWARD, init: str = _INIT, head_in: str = "hidden_size") -> str:
    return f"""class SequencePredictor(nn.Module):
    def __init__(self, input_size, hidden_size, output_size, num_layers=1, cell="lstm"):
        super().__init__()
        self.cell, self.hidden_size, self.num_layers = cell, hidden_size, num_layers
        self.rnn = {layer}
        self.head = nn.Linear({head_in}, output_size)

    def forward(self, x, state=None):
{_indent(forward)}

    def init_state(self, batch_size):
{_indent(init)}
"""


_PREDICTOR_WITH_CELLS = '''class SequencePredictor(nn.Module):
    def __init__(self, input_size, hidden_size, output_size, num_layers=1, cell="lstm"):
        super().__init__()
        cell_class = {"rnn": nn.RNNCell, "gru": nn.GRUCell, "lstm": nn.LSTMCell}[cell]
        self.cell, self.hidden_size, self.num_layers = cell, hidden_size, num_layers
        self.cells = nn.ModuleList(cell_class(input_size if layer == 0 else hidden_size, hidden_size)
                                   for layer in range(num_layers))
        self.head = nn.Linear(hidden_size, output_size)

    def forward(self, x, state=None):
        if state is None:
            state = self.init_state(x.shape[0])
        lstm = self.cell == "lstm"
        hs = list(state[0]) if lstm else list(state)
        cs = list(state[1]) if lstm else None
        outputs = []
        for t in range(x.shape[1]):
            inp = x[:, t]
            for layer, cell in enumerate(self.cells):
                if lstm:
                    hs[layer], cs[layer] = cell(inp, (hs[layer], cs[layer]))
                else:
                    hs[layer] = cell(inp, hs[layer])
                inp = hs[layer]
            outputs.append(inp)
        h = torch.stack(hs)
        return self.head(torch.stack(outputs, dim=1)), ((h, torch.stack(cs)) if lstm else h)

    def init_state(self, batch_size):
        w = self.head.weight
        h = torch.zeros(self.num_layers, batch_size, self.hidden_size, dtype=w.dtype, device=w.device)
        return (h, torch.zeros_like(h)) if self.cell == "lstm" else h
'''

# -- train_tbptt: the source notebook's solution, some of its lines changed per entry --------------------------
_TBPTT_SOLUTION = notebooks.solutions(notebooks.read(source_notebook(repo_root(), NOTEBOOK)))["train_tbptt"]


def _in_function(text: str) -> str:
    """Lines written as a function body (loop level 0) indented as they stand in the solution (inside its def)."""
    lines = text.split("\n")
    return "\n".join("    " + line if line and (i or line[0].isspace()) else line for i, line in enumerate(lines))


def _tbptt(**changes: str) -> str:
    """The solution of train_tbptt with some of its lines replaced ({old lines: new lines}, written as body lines)."""
    code = _TBPTT_SOLUTION
    for old, new in changes.items():
        assert _in_function(old) in code, old
        code = code.replace(_in_function(old), _in_function(new))
    return code


_DETACH = "    state = detach_state(state)"
_CLIP = "        clip_grad_norm(model.parameters(), max_grad_norm)"

# -- the predictor cell ------------------------------------------------------------------------------------------
_TRAIN = """torch.manual_seed(0)
predictor = SequencePredictor(1, {hidden}, 1, num_layers={layers}, cell="{cell}").to(device)
optimizer = torch.optim.Adam(predictor.parameters(), lr={lr})
history = fit(predictor, {loader}, optimizer, epochs={epochs}, chunk_len=32, max_grad_norm=1.0)
"""


def _train(hidden=32, layers=1, cell="lstm", lr=0.01, epochs=20, loader="train_loader") -> str:
    return _TRAIN.format(hidden=hidden, layers=layers, cell=cell, lr=lr, epochs=epochs, loader=loader)


# -- forecast: the source notebook's solution with one piece changed per entry -------------------------------------
def _forecast(context="context", first="prediction = y[:, -1:]", feed="prediction", state="state", no_grad=True,
              restore="model.train(was_training)", stack="torch.cat(predictions, dim=1)") -> str:
    loop = f"""y, state = model({context})
{first}
predictions = [prediction]
for _ in range(steps - 1):
    prediction, state = model({feed}, {state})
    predictions.append(prediction)"""
    body = ("with torch.no_grad():\n" + _indent(loop, 4)) if no_grad else loop
    return _fn(FORECAST, f"""was_training = model.training
model.eval()
{body}
{restore}
return {stack}""")


# -- checkpoints: the source notebook's solutions with one piece changed per entry --------------------------------
_SOLUTIONS = notebooks.solutions(notebooks.read(source_notebook(repo_root(), NOTEBOOK)))


def _changed(grade_id: str, **changes: str) -> str:
    """The solution of grade_id with some of its lines replaced ({old text: new text}, exactly as in the solution)."""
    code = _SOLUTIONS[grade_id]
    for old, new in changes.items():
        assert old in code, old
        code = code.replace(old, new)
    return code


_SAVE_CONFIG = '"num_layers": rnn.num_layers,'
_SAVE_CALL = 'torch.save({"config": config, "state_dict": model.state_dict()}, path)'
_LOAD_CALL = 'torch.load(path, map_location="cpu", weights_only=True)'
_LOAD_STRICT = "model.load_state_dict(checkpoint[\"state_dict\"])"


_ENTRIES = [
    # ---- SequencePredictor -------------------------------------------------------------------------------------
    Entry("model_time_major", "sequence_predictor", WRONG,
          _predictor(layer=_LAYER.replace(", batch_first=True", "")), "batch_first=True"),
    Entry("model_ignores_cell", "sequence_predictor", WRONG,
          _predictor(layer="nn.LSTM(input_size, hidden_size, num_layers=num_layers, batch_first=True)"),
          "that `cell` names"),
    Entry("model_ignores_num_layers", "sequence_predictor", WRONG,
          _predictor(layer=_LAYER.replace("num_layers=num_layers, ", "")), "num_layers"),
    Entry("model_ignores_given_state", "sequence_predictor", WRONG,
          _predictor(forward="outputs, state = self.rnn(x)\nreturn self.head(outputs), state"),
          # The trained predictor is run one step at a time (causal by construction), so it fails there too.
          "forward must start from the state it is given", also_costs=("predictor",)),
    Entry("model_state_without_layer_axis", "sequence_predictor", WRONG,
          _predictor(init=_INIT.replace("torch.zeros(self.num_layers, batch_size", "torch.zeros(batch_size")),
          "init_state(batch_size): Each state tensor"),
    Entry("model_init_state_default_dtype", "sequence_predictor", WRONG,
          _predictor(init=_INIT.replace(", dtype=w.dtype, device=w.device", "")), "the model's dtype and device"),
    Entry("model_lstm_state_one_tensor", "sequence_predictor", WRONG,
          _predictor(init=_INIT.replace('(h, torch.zeros_like(h)) if self.cell == "lstm" else h', "h")),
          "the state is the pair (h, c)"),
    Entry("model_head_on_last_step_only", "sequence_predictor", WRONG,
          _predictor(forward="outputs, state = self.rnn(x, state)\nreturn self.head(outputs[:, -1]), state"),
          "predicts at every time step", also_costs=("predictor",)),
    Entry("model_tanh_on_the_output", "sequence_predictor", WRONG,
          _predictor(forward="outputs, state = self.rnn(x, state)\nreturn torch.tanh(self.head(outputs)), state"),
          "no activation on top"),
    Entry("model_relu_rnn", "sequence_predictor", WRONG,
          _predictor(layer='(nn.RNN(input_size, hidden_size, num_layers=num_layers, nonlinearity="relu", '
                           'batch_first=True) if cell == "rnn" else ' + _LAYER + ")"), "default nonlinearity"),
    Entry("model_returns_outputs_as_state", "sequence_predictor", WRONG,
          _predictor(forward="outputs, _ = self.rnn(x, state)\nreturn self.head(outputs), outputs[:, -1]"),
          "The state returned by forward", also_costs=("predictor",)),
    Entry("model_random_initial_state", "sequence_predictor", WRONG,
          _predictor(init=_INIT.replace("torch.zeros(", "torch.randn(")), "should return zeros"),
    Entry("model_bidirectional", "sequence_predictor", WRONG,
          _predictor(layer=_LAYER.replace("batch_first=True", "batch_first=True, bidirectional=True"),
                     head_in="2 * hidden_size"), "one direction", also_costs=("predictor",)),
    Entry("model_valid_cells_stepped", "sequence_predictor", VALID, _PREDICTOR_WITH_CELLS),
    Entry("model_valid_time_major_transposed", "sequence_predictor", VALID,
          _predictor(layer=_LAYER.replace(", batch_first=True", ""),
                     forward="outputs, state = self.rnn(x.transpose(0, 1), state)\n"
                             "return self.head(outputs.transpose(0, 1)), state")),
    Entry("model_valid_new_zeros_and_getattr", "sequence_predictor", VALID, _predictor(
        layer="getattr(nn, cell.upper())(input_size, hidden_size, num_layers, batch_first=True)",
        init="""
p = next(self.parameters())
shape = (self.num_layers, batch_size, self.hidden_size)
return (p.new_zeros(shape), p.new_zeros(shape)) if self.cell == "lstm" else p.new_zeros(shape)""")),
    Entry("model_valid_zero_state_made_in_forward", "sequence_predictor", VALID, _predictor(forward="""
if state is None:
    state = self.init_state(x.shape[0])
outputs, new_state = self.rnn(x, state)
return self.head(outputs), new_state""")),

    # ---- detach_state -----------------------------------------------------------------------------------------
    Entry("detach_zeros_instead", "detach_state", WRONG, _fn(DETACH, """
if state is None:
    return None
if isinstance(state, torch.Tensor):
    return torch.zeros_like(state)
return type(state)(detach_state(s) for s in state)"""), "different values (all zeros)"),
    Entry("detach_only_h", "detach_state", WRONG, _fn(DETACH, """
if state is None:
    return None
if isinstance(state, torch.Tensor):
    return state.detach()
if isinstance(state, tuple) and len(state) == 2:
    return (detach_state(state[0]), state[1])
return type(state)(detach_state(s) for s in state)"""), "both h and c", also_costs=("train_tbptt", "predictor")),
    Entry("detach_clone_keeps_graph", "detach_state", WRONG, _fn(DETACH, """
if state is None:
    return None
if isinstance(state, torch.Tensor):
    return state.clone()
return type(state)(detach_state(s) for s in state)"""), "still belongs to the graph",
          also_costs=("train_tbptt", "predictor")),
    Entry("detach_in_place", "detach_state", WRONG, _fn(DETACH, """
if state is None:
    return None
if isinstance(state, torch.Tensor):
    return state.detach_()
return type(state)(detach_state(s) for s in state)"""), "raised RuntimeError"),
    Entry("detach_always_a_list", "detach_state", WRONG, _fn(DETACH, """
if state is None:
    return None
if isinstance(state, torch.Tensor):
    return state.detach()
return [detach_state(s) for s in state]"""), "same structure"),
    Entry("detach_one_level_only", "detach_state", WRONG, _fn(DETACH, """
if state is None:
    return None
if isinstance(state, torch.Tensor):
    return state.detach()
return tuple(s.detach() for s in state)"""), "raised AttributeError"),
    Entry("detach_crashes_on_none", "detach_state", WRONG, _fn(DETACH, """
if isinstance(state, torch.Tensor):
    return state.detach()
return type(state)(detach_state(s) for s in state)"""), "raised TypeError"),
    Entry("detach_requires_grad_flag", "detach_state", WRONG, _fn(DETACH, """
if state is None:
    return None
if isinstance(state, torch.Tensor):
    return state.requires_grad_(False)
return type(state)(detach_state(s) for s in state)"""), "raised RuntimeError",
          also_costs=("train_tbptt", "predictor")),
    Entry("detach_valid_detach_clone", "detach_state", VALID, _fn(DETACH, """
if isinstance(state, torch.Tensor):
    return state.detach().clone()
if isinstance(state, (tuple, list)):
    return type(state)(detach_state(s) for s in state)
return state""")),
    Entry("detach_valid_data", "detach_state", VALID, _fn(DETACH, """
if state is None:
    return None
if isinstance(state, torch.Tensor):
    return state.data
return type(state)(map(detach_state, state))""")),
    Entry("detach_valid_tree_map", "detach_state", VALID, _fn(DETACH, """
from torch.utils._pytree import tree_map
return tree_map(lambda t: t.detach() if isinstance(t, torch.Tensor) else t, state)""")),
    Entry("detach_valid_branches", "detach_state", VALID, _fn(DETACH, """
if isinstance(state, tuple):
    return tuple(detach_state(s) for s in state)
if isinstance(state, list):
    return [detach_state(s) for s in state]
return None if state is None else state.detach()""")),

    # ---- clip_grad_norm ---------------------------------------------------------------------------------------
    Entry("clip_each_parameter", "clip_grad_norm", WRONG, _fn(CLIP, """
params = [p for p in parameters if p.grad is not None]
total = torch.sqrt(sum((p.grad ** 2).sum() for p in params))
for p in params:
    norm = p.grad.norm()
    if norm > max_norm:
        p.grad.mul_(max_norm / norm)
return total"""), "its own norm"),
    Entry("clip_by_value", "clip_grad_norm", WRONG, _fn(CLIP, """
params = [p for p in parameters if p.grad is not None]
total = torch.sqrt(sum((p.grad ** 2).sum() for p in params))
torch.nn.utils.clip_grad_value_(params, max_norm)
return total"""), "entry by entry"),
    Entry("clip_always_rescales", "clip_grad_norm", WRONG, _fn(CLIP, """
params = [p for p in parameters if p.grad is not None]
total = torch.sqrt(sum((p.grad ** 2).sum() for p in params))
for p in params:
    p.grad.mul_(max_norm / total)
return total"""), "below max_norm"),
    Entry("clip_returns_norm_after", "clip_grad_norm", WRONG, _fn(CLIP, """
params = [p for p in parameters if p.grad is not None]
total = torch.sqrt(sum((p.grad ** 2).sum() for p in params))
if total > max_norm:
    for p in params:
        p.grad.mul_(max_norm / total)
return min(total.item(), max_norm)"""), "*after* clipping"),
    Entry("clip_without_sqrt", "clip_grad_norm", WRONG, _fn(CLIP, """
params = [p for p in parameters if p.grad is not None]
total = sum((p.grad ** 2).sum() for p in params)
if total > max_norm:
    for p in params:
        p.grad.mul_(max_norm / total)
return total"""), "square root is missing"),
    Entry("clip_reads_generator_twice", "clip_grad_norm", WRONG, _fn(CLIP, """
total = torch.sqrt(sum((p.grad ** 2).sum() for p in parameters if p.grad is not None))
if total > max_norm:
    for p in parameters:
        if p.grad is not None:
            p.grad.mul_(max_norm / total)
return total"""), "generator"),
    Entry("clip_scales_copies", "clip_grad_norm", WRONG, _fn(CLIP, """
grads = [p.grad.clone() for p in parameters if p.grad is not None]
total = torch.sqrt(sum((g ** 2).sum() for g in grads))
if total > max_norm:
    for g in grads:
        g.mul_(max_norm / total)
return total"""), "were not scaled"),
    Entry("clip_crashes_on_missing_grad", "clip_grad_norm", WRONG, _fn(CLIP, """
params = list(parameters)
total = torch.sqrt(sum((p.grad ** 2).sum() for p in params))
if total > max_norm:
    for p in params:
        p.grad.mul_(max_norm / total)
return total"""), "raised TypeError"),
    Entry("clip_adds_norms", "clip_grad_norm", WRONG, _fn(CLIP, """
params = [p for p in parameters if p.grad is not None]
total = sum(p.grad.norm() for p in params)
if total > max_norm:
    for p in params:
        p.grad.mul_(max_norm / total)
return total"""), "norms are added"),
    Entry("clip_valid_torch_builtin", "clip_grad_norm", VALID,
          _fn(CLIP, "return torch.nn.utils.clip_grad_norm_(parameters, max_norm)")),
    Entry("clip_valid_vector_norm_with_eps", "clip_grad_norm", VALID, _fn(CLIP, """
grads = [p.grad for p in parameters if p.grad is not None]
total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
for g in grads:
    g.mul_(coef)
return total""")),
    Entry("clip_valid_new_grad_tensors", "clip_grad_norm", VALID, _fn(CLIP, """
params = [p for p in parameters if p.grad is not None]
total = math.sqrt(sum(float((p.grad.double() ** 2).sum()) for p in params))
if total > max_norm:
    for p in params:
        p.grad = p.grad * (max_norm / total)
return total""")),

    # ---- train_tbptt ----------------------------------------------------------------------------------------
    Entry("tbptt_no_detach", "train_tbptt", WRONG, _tbptt(**{_DETACH: "    pass"}),
          "backward through the graph a second time", also_costs=("predictor",)),
    Entry("tbptt_reset_instead_of_detach", "train_tbptt", WRONG, _tbptt(**{_DETACH: "    state = None"}),
          "the state entering a chunk is zero"),
    Entry("tbptt_detach_only_h", "train_tbptt", WRONG, _tbptt(**{
        _DETACH: "    state = (state[0].detach(), state[1]) if isinstance(state, tuple) else state.detach()"}),
        "raised RuntimeError", also_costs=("predictor",)),
    Entry("tbptt_retain_graph_instead", "train_tbptt", WRONG, _tbptt(**{
        _DETACH: "    pass", "    loss.backward()": "    loss.backward(retain_graph=True)"}),
        "raised RuntimeError", also_costs=("predictor",)),
    Entry("tbptt_clip_after_step", "train_tbptt", WRONG, _tbptt(**{
        _CLIP: "        pass", "    optimizer.step()": "    optimizer.step()\n    if max_grad_norm is not None:\n"
                                                       "        clip_grad_norm(model.parameters(), max_grad_norm)"}),
        "above max_grad_norm"),
    Entry("tbptt_clip_by_value", "train_tbptt", WRONG, _tbptt(**{
        _CLIP: "        torch.nn.utils.clip_grad_value_(model.parameters(), max_grad_norm)"}), "above max_grad_norm"),
    Entry("tbptt_ignores_max_grad_norm", "train_tbptt", WRONG, _tbptt(**{_CLIP: "        pass"}),
          "above max_grad_norm"),
    Entry("tbptt_no_zero_grad", "train_tbptt", WRONG, _tbptt(**{"    optimizer.zero_grad()\n": ""}), "accumulate"),
    Entry("tbptt_one_step_per_batch", "train_tbptt", WRONG, _fn(TBPTT, """
losses, state, total = [], None, 0
for start in range(0, inputs.shape[1], chunk_len):
    if not carry_state:
        state = None
    predictions, state = model(inputs[:, start:start + chunk_len], state)
    state = detach_state(state)
    loss = loss_fn(predictions, targets[:, start:start + chunk_len])
    total = total + loss
    losses.append(loss.item())
optimizer.zero_grad()
total.backward()
if max_grad_norm is not None:
    clip_grad_norm(model.parameters(), max_grad_norm)
optimizer.step()
return losses"""), "one optimizer.step() per chunk"),
    Entry("tbptt_always_carries", "train_tbptt", WRONG,
          _tbptt(**{"    if not carry_state:\n        state = None\n": ""}), "carry_state=False"),
    Entry("tbptt_returns_tensors", "train_tbptt", WRONG,
          _tbptt(**{"losses.append(loss.item())": "losses.append(loss)"}), "plain floats"),
    Entry("tbptt_drops_the_last_chunk", "train_tbptt", WRONG, _tbptt(**{
        "range(0, inputs.shape[1], chunk_len)": "range(0, inputs.shape[1] - chunk_len + 1, chunk_len)"}),
        "once per chunk"),
    Entry("tbptt_valid_init_state_and_split", "train_tbptt", VALID, _fn(TBPTT, """
losses = []
state = model.init_state(inputs.shape[0])
for x, y in zip(inputs.split(chunk_len, dim=1), targets.split(chunk_len, dim=1)):
    if not carry_state:
        state = model.init_state(inputs.shape[0])
    predictions, state = model(x, state)
    loss = loss_fn(predictions, y)
    model.zero_grad()
    loss.backward()
    if max_grad_norm:
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    state = detach_state(state)
    losses.append(float(loss))
return losses""")),
    Entry("tbptt_valid_detach_inline_zero_grad_last", "train_tbptt", VALID, _fn(TBPTT, """
losses, state = [], None
optimizer.zero_grad()
for start in range(0, inputs.shape[1], chunk_len):
    predictions, state = model(inputs[:, start:start + chunk_len], state if carry_state else None)
    state = tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()
    loss = loss_fn(predictions, targets[:, start:start + chunk_len])
    loss.backward()
    if max_grad_norm is not None:
        clip_grad_norm(model.parameters(), max_grad_norm)
    optimizer.step()
    optimizer.zero_grad()
    losses.append(loss.item())
return losses""")),

    # ---- forecast ---------------------------------------------------------------------------------------------
    Entry("forecast_rereads_history", "forecast", WRONG, _fn(FORECAST, """
was_training = model.training
model.eval()
with torch.no_grad():
    history, predictions = context, []
    for _ in range(steps):
        y, _ = model(history)
        predictions.append(y[:, -1:])
        history = torch.cat([history, y[:, -1:]], dim=1)
model.train(was_training)
return torch.cat(predictions, dim=1)"""), "re-reads the history"),
    Entry("forecast_feeds_last_observed", "forecast", WRONG, _forecast(feed="context[:, -1:]"),
          "last observed value is fed back"),
    Entry("forecast_teacher_forced", "forecast", WRONG, _fn(FORECAST, """
with torch.no_grad():
    y, _ = model(context)
return y[:, -steps:]"""), "one-step predictions over the context"),
    Entry("forecast_one_step_late", "forecast", WRONG, _forecast(first="prediction, state = model(y[:, -1:], state)"),
          "one step too late"),
    Entry("forecast_one_step_early", "forecast", WRONG, _forecast(context="context[:, :-1]"), "one step too early"),
    Entry("forecast_resets_state", "forecast", WRONG, _forecast(state="None"), "reset to zero"),
    Entry("forecast_tracks_gradients", "forecast", WRONG, _forecast(no_grad=False), "require grad"),
    Entry("forecast_leaves_eval_mode", "forecast", WRONG, _forecast(restore="pass"), "left the model in eval mode"),
    Entry("forecast_always_back_to_train", "forecast", WRONG, _forecast(restore="model.train()"),
          "left the model in training mode"),
    Entry("forecast_drops_feature_axis", "forecast", WRONG, _forecast(stack="torch.cat(predictions, dim=1)[..., 0]"),
          "shape"),
    Entry("forecast_valid_context_step_by_step", "forecast", VALID, _fn(FORECAST, """
was_training = model.training
model.eval()
with torch.no_grad():
    state = None
    for t in range(context.shape[1]):
        y, state = model(context[:, t:t + 1], state)
    predictions = [y]
    for _ in range(steps - 1):
        y, state = model(y, state)
        predictions.append(y)
model.train(was_training)
return torch.cat(predictions, dim=1)""")),
    Entry("forecast_valid_inference_mode_preallocated", "forecast", VALID, """@torch.inference_mode()
def forecast(model, context, steps):
    mode = model.training
    model.train(False)
    predictions = context.new_empty(context.shape[0], steps, context.shape[2])
    y, state = model(context)
    predictions[:, 0] = y[:, -1]
    for k in range(1, steps):
        y, state = model(predictions[:, k - 1:k], state)
        predictions[:, k] = y[:, 0]
    model.train(mode)
    return predictions
"""),
    Entry("forecast_valid_no_mode_switch_last_value_first", "forecast", VALID, _fn(FORECAST, """
with torch.no_grad():
    state = model(context[:, :-1])[1] if context.shape[1] > 1 else None
    x, predictions = context[:, -1:], []
    for _ in range(steps):
        x, state = model(x, state)
        predictions.append(x)
    return torch.cat(predictions, dim=1)""")),

    # ---- save_checkpoint --------------------------------------------------------------------------------------
    Entry("save_state_dict_only", "save_checkpoint", WRONG,
          _changed("save_checkpoint", **{_SAVE_CALL: "torch.save(model.state_dict(), path)"}), 'has no "config"'),
    Entry("save_whole_model", "save_checkpoint", WRONG,
          _changed("save_checkpoint", **{_SAVE_CALL: "torch.save(model, path)"}), "a pickled model or object"),
    Entry("save_config_object", "save_checkpoint", WRONG, _changed("save_checkpoint", **{
        _SAVE_CALL: 'torch.save({"config": types.SimpleNamespace(**config), "state_dict": model.state_dict()}, '
                    'path)', "    cells =": "    import types\n    cells ="}), "pickled model or object"),
    Entry("save_num_layers_fixed", "save_checkpoint", WRONG,
          _changed("save_checkpoint", **{_SAVE_CONFIG: '"num_layers": 1,'}), 'config["num_layers"]'),
    Entry("save_cell_class_name", "save_checkpoint", WRONG, _changed("save_checkpoint", **{
        '"cell": next(name for layer, name in cells.items() if isinstance(rnn, layer))': '"cell": type(rnn).__name__'}),
        'config["cell"]'),
    Entry("save_output_size_from_in_features", "save_checkpoint", WRONG, _changed("save_checkpoint", **{
        '"output_size": head.out_features': '"output_size": head.in_features'}), 'config["output_size"]'),
    Entry("save_sizes_as_tensors", "save_checkpoint", WRONG, _changed("save_checkpoint", **{
        '"hidden_size": rnn.hidden_size': '"hidden_size": torch.tensor(rnn.hidden_size)'}), "plain int"),
    Entry("save_extra_config_key", "save_checkpoint", WRONG, _changed("save_checkpoint", **{
        _SAVE_CONFIG: _SAVE_CONFIG + ' "batch_first": rnn.batch_first,'}), "does not take"),
    Entry("save_converted_weights", "save_checkpoint", WRONG, _changed("save_checkpoint", **{
        "model.state_dict()}": "{k: v.half() for k, v in model.state_dict().items()}}"}), "not the model's"),
    Entry("save_rnn_weights_only", "save_checkpoint", WRONG, _changed("save_checkpoint", **{
        "model.state_dict()}": "rnn.state_dict()}"}), "same keys"),
    Entry("save_weights_under_another_key", "save_checkpoint", WRONG, _changed("save_checkpoint", **{
        '"state_dict": model.state_dict()}': '"weights": model.state_dict()}'}), 'no "state_dict"'),
    Entry("save_valid_mode_names_cpu_copies", "save_checkpoint", VALID, _fn(SAVE, """
rnn = [m for m in model.modules() if isinstance(m, nn.RNNBase)][0]
head = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
cell = {"RNN_TANH": "rnn", "RNN_RELU": "rnn", "GRU": "gru", "LSTM": "lstm"}[rnn.mode]
config = dict(input_size=rnn.input_size, hidden_size=rnn.hidden_size, output_size=head.out_features,
              num_layers=rnn.num_layers, cell=cell)
weights = {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()}
with open(path, "wb") as f:
    torch.save({"config": config, "state_dict": weights}, f)""")),
    Entry("save_valid_children_loop", "save_checkpoint", VALID, _fn(SAVE, """
config = {}
for module in model.children():
    if isinstance(module, (nn.RNN, nn.GRU, nn.LSTM)):
        config.update(input_size=module.input_size, hidden_size=module.hidden_size, num_layers=module.num_layers,
                      cell="lstm" if isinstance(module, nn.LSTM) else "gru" if isinstance(module, nn.GRU) else "rnn")
    elif isinstance(module, nn.Linear):
        config["output_size"] = module.out_features
torch.save({"state_dict": model.state_dict(), "config": config}, os.fspath(path))""")),

    # ---- load_checkpoint --------------------------------------------------------------------------------------
    Entry("load_weights_only_false", "load_checkpoint", WRONG, _changed("load_checkpoint", **{
        _LOAD_CALL: 'torch.load(path, map_location="cpu", weights_only=False)'}), "ran code from the file"),
    Entry("load_without_map_location", "load_checkpoint", WRONG, _changed("load_checkpoint", **{
        _LOAD_CALL: "torch.load(path, weights_only=True)"}), "map_location"),
    Entry("load_not_strict", "load_checkpoint", WRONG, _changed("load_checkpoint", **{
        _LOAD_STRICT: _LOAD_STRICT[:-1] + ", strict=False)"}), "load strictly"),
    Entry("load_torch_errors_escape", "load_checkpoint", WRONG, _fn(LOAD, """
checkpoint = torch.load(path, map_location="cpu", weights_only=True)
model = SequencePredictor(**checkpoint["config"])
model.load_state_dict(checkpoint["state_dict"])
return model.eval()"""), "raise ValueError with a message"),
    Entry("load_left_in_train_mode", "load_checkpoint", WRONG,
          _changed("load_checkpoint", **{"return model.eval()": "return model"}), "training mode"),
    Entry("load_default_sizes", "load_checkpoint", WRONG, _changed("load_checkpoint", **{
        'SequencePredictor(**checkpoint["config"])': "SequencePredictor(1, 32, 1)"}), "raised ValueError"),
    Entry("load_returns_the_weights", "load_checkpoint", WRONG,
          _changed("load_checkpoint", **{"return model.eval()": 'return checkpoint["state_dict"]'}),
          "should return the model"),
    Entry("load_fresh_weights", "load_checkpoint", WRONG, _changed("load_checkpoint", **{
        "return model.eval()": "return SequencePredictor(**checkpoint['config']).eval()"}), "predict exactly"),
    Entry("load_valid_catch_everything", "load_checkpoint", VALID, _fn(LOAD, """
try:
    checkpoint = torch.load(path, map_location=torch.device("cpu"), weights_only=True)
    model = SequencePredictor(**checkpoint["config"])
    model.load_state_dict(checkpoint["state_dict"], strict=True)
except Exception as error:
    raise ValueError(f"{path} is not a checkpoint of this SequencePredictor: {error}") from error
model.train(False)
return model""")),
    Entry("load_valid_keys_compared_first", "load_checkpoint", VALID, _fn(LOAD, """
checkpoint = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
for key in ("config", "state_dict"):
    if key not in checkpoint:
        raise ValueError(f"the checkpoint has no {key!r}")
try:
    model = SequencePredictor(**checkpoint["config"])
except Exception as error:
    raise ValueError(f"SequencePredictor(**config) failed: {error}") from None
wanted, given = model.state_dict(), checkpoint["state_dict"]
missing, unexpected = set(wanted) - set(given), set(given) - set(wanted)
if missing or unexpected:
    raise ValueError(f"missing keys {sorted(missing)}, unexpected keys {sorted(unexpected)}")
for name, tensor in wanted.items():
    if given[name].shape != tensor.shape:
        raise ValueError(f"{name}: the checkpoint has shape {tuple(given[name].shape)}, the model {tuple(tensor.shape)}")
model.load_state_dict(given)
return model.eval()""")),

    # ---- the trained predictor --------------------------------------------------------------------------------
    Entry("predictor_untrained", "predictor", WRONG,
          "predictor = SequencePredictor(1, 32, 1).to(device)\nhistory = []", "times that of the persistence"),
    Entry("predictor_one_epoch", "predictor", WRONG, _train(epochs=1), "times that of the persistence"),
    Entry("predictor_learns_the_current_value", "predictor", WRONG,
          _train(loader="[(x, x) for x, _ in train_loader]"), "times that of the persistence"),
    Entry("predictor_learning_rate_too_small", "predictor", WRONG, _train(lr=1e-5),
          "times that of the persistence"),
    Entry("predictor_valid_gru", "predictor", VALID, _train(cell="gru")),
    Entry("predictor_valid_two_small_layers", "predictor", VALID, _train(hidden=16, layers=2, epochs=30)),
    Entry("predictor_valid_own_loop_mse", "predictor", VALID, """torch.manual_seed(1)
predictor = SequencePredictor(1, 24, 1, cell="lstm").to(device)
optimizer = torch.optim.Adam(predictor.parameters(), lr=0.005)
history = []
for epoch in range(25):
    epoch_losses = []
    for inputs, targets in train_loader:
        epoch_losses += train_tbptt(predictor, inputs.to(device), targets.to(device), 16, optimizer, nn.MSELoss(),
                                    max_grad_norm=0.5)
    history.append(sum(epoch_losses) / len(epoch_losses))
"""),
]

CATALOG = [replace(entry, notebook=NOTEBOOK, id="nb03_" + entry.id) for entry in _ENTRIES]
