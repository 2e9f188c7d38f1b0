"""The data that crosses between the grader and a student's kernel: plain JSON, tensors as raw bytes, never pickle.

Both sides use this module: the grader (``rnncourse.grading.student``) and the kernel (``rnncourse.kernels.callee``,
which receives this file's source at start-up). What may cross:

* ``None``, ``bool``, ``int``, ``str`` and ``float`` (NaN and infinities included);
* lists, tuples and dicts with string keys, nested;
* ``torch.Tensor``: dtype, shape and device as text, the values as base64 of their bytes, its ``.grad`` if it has
  one, and its autograd facts (``requires_grad``, whether it has a ``grad_fn``, whether it is a view), which the
  receiving side rebuilds on a float tensor (a tensor with a ``grad_fn`` arrives as a view computed from a leaf);
* an iterator that can be read once (``model.parameters()``): its items, arriving as an ``Iterated``;
* ``torch.dtype``;
* a PyTorch module the grader built (``nn.LSTM``, ...): its class name from a short list, its constructor arguments
  and its parameters, rebuilt on the other side;
* a *handle*: the number of an object that stays in the kernel (a model the student's class built, say).

Decoding is strict: unknown tags, dtypes or classes, sizes that do not add up, and oversized or too deeply nested
data raise ``WireError``. The grader decodes everything a kernel sends with this module, so a kernel can only ever
hand it data.
"""

from __future__ import annotations

import base64
import json
import math
import types

import torch

MAX_DEPTH = 32
MAX_TENSOR_BYTES = 16 << 20
# The grader's channel refuses a longer message (the checks' messages are kilobytes; this bounds what a kernel makes
# the grader read), and the kernel refuses to send one.
MAX_MESSAGE_BYTES = 32 << 20

DTYPES = {name: getattr(torch, name) for name in (
    "float64", "float32", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool")}
DTYPE_NAMES = {dtype: name for name, dtype in DTYPES.items()}
DEVICES = ("cpu", "cuda")

# Modules the grader may send to a kernel, with the constructor arguments that describe them.
MODULE_ARGS = {
    "RNN": ("input_size", "hidden_size", "num_layers", "nonlinearity", "bias", "batch_first", "bidirectional"),
    "LSTM": ("input_size", "hidden_size", "num_layers", "bias", "batch_first", "bidirectional", "proj_size"),
    "GRU": ("input_size", "hidden_size", "num_layers", "bias", "batch_first", "bidirectional"),
    "RNNCell": ("input_size", "hidden_size", "bias", "nonlinearity"),
    "LSTMCell": ("input_size", "hidden_size", "bias"),
    "GRUCell": ("input_size", "hidden_size", "bias"),
    "Linear": ("in_features", "out_features"),
    "MSELoss": ("reduction",),
}
PARAMETERLESS = ("MSELoss",)


class WireError(ValueError):
    """Data that is not of the agreed form."""


class Iterated:
    """An iterator over items that crossed (a generator on the other side): readable once, like the original."""

    def __init__(self, items: list):
        self.items = list(items)
        self._rest = iter(self.items)

    def __iter__(self):
        return self

    def __next__(self):
        return next(self._rest)


class Handle:
    """An object that stays in the kernel, known to the grader by number."""

    def __init__(self, number: int, type_name: str = ""):
        self.number, self.type_name = number, type_name

    def __repr__(self) -> str:
        return f"<kernel object {self.number}: {self.type_name}>"


def module_kind(module) -> str | None:
    """The torch.nn class among MODULE_ARGS that `module` is (or derives from), if any."""
    for cls in type(module).__mro__:
        if cls.__name__ in MODULE_ARGS and cls.__module__.startswith("torch.nn"):
            return cls.__name__
    return None


def encode(value, unknown=None, depth: int = 0, modules: bool | None = None):
    """`value` as JSON-ready data. `unknown(obj)` turns anything else into a Handle (the kernel keeps it); without
    it, such a value is an error. PyTorch modules of the classes in MODULE_ARGS cross as data when `modules` is true
    (the default without `unknown`); otherwise they are kept like any other object."""
    if modules is None:
        modules = unknown is None
    if depth > MAX_DEPTH:
        raise WireError("data nested too deeply")
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value if abs(value) < 2 ** 53 else {"$int": str(value)}
    if isinstance(value, float):
        return value if math.isfinite(value) else {"$float": repr(value)}
    if isinstance(value, torch.Tensor):
        return {"$tensor": encode_tensor(value)}
    if isinstance(value, torch.dtype):
        return {"$dtype": DTYPE_NAMES[value]}
    if isinstance(value, Handle):
        return {"$handle": value.number}
    if isinstance(value, list):
        return {"$list": [encode(v, unknown, depth + 1, modules) for v in value]}
    if isinstance(value, tuple):
        return {"$tuple": [encode(v, unknown, depth + 1, modules) for v in value]}
    if isinstance(value, Iterated):
        return {"$iter": [encode(v, unknown, depth + 1, modules) for v in value.items]}
    if isinstance(value, types.GeneratorType):
        return encode(Iterated(value), unknown, depth, modules)
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"$dict": [[k, encode(v, unknown, depth + 1, modules)] for k, v in value.items()]}
    if modules and isinstance(value, torch.nn.Module) and module_kind(value):
        return {"$module": encode_module(value)}
    if unknown is not None:
        return encode(unknown(value), None, depth)
    raise WireError(f"a {type(value).__name__} cannot be sent")


def encode_tensor(t: torch.Tensor) -> dict:
    plain = torch.Tensor.detach(t)
    if type(plain) is not torch.Tensor:  # a subclass: send its data as a plain tensor
        plain = torch.Tensor._make_subclass(torch.Tensor, plain)
    if plain.numel() * plain.element_size() > MAX_TENSOR_BYTES:  # before .contiguous() materialises an expanded view
        raise WireError(f"a tensor of {plain.numel() * plain.element_size() / (1 << 20):.0f} MiB is over the "
                        f"{MAX_TENSOR_BYTES >> 20} MiB the grader accepts")
    cpu = plain.to("cpu").contiguous()
    if cpu.dtype not in DTYPE_NAMES:
        raise WireError(f"tensors of dtype {cpu.dtype} cannot be sent")
    raw = cpu.reshape(-1).view(torch.uint8).numpy().tobytes() if cpu.numel() else b""
    body = {"dtype": DTYPE_NAMES[cpu.dtype], "shape": list(cpu.shape), "device": plain.device.type,
            "requires_grad": bool(t.requires_grad), "has_grad_fn": t.grad_fn is not None,
            "is_view": bool(t._is_view()), "data": base64.b64encode(raw).decode("ascii")}
    grad = t.grad if t.is_leaf else None
    if isinstance(grad, torch.Tensor):
        body["grad"] = encode_tensor(grad)
    return body


def encode_module(module: torch.nn.Module) -> dict:
    kind = module_kind(module)
    kwargs = {name: getattr(module, name) for name in MODULE_ARGS[kind] if hasattr(module, name)}
    if kind == "Linear":
        kwargs["bias"] = module.bias is not None
    params = {name: encode_tensor(p) for name, p in module.state_dict().items()}
    first = next(iter(module.parameters()), None)
    dtype = DTYPE_NAMES[first.dtype] if first is not None else "float32"
    device = first.device.type if first is not None else "cpu"
    return {"class": kind, "kwargs": kwargs, "state": params, "dtype": dtype, "device": device,
            "exact": type(module).__name__ == kind, "training": module.training}


def decode(data, handle=None, device_map=None):
    """The value `data` describes. `handle(number)` resolves handles (the kernel's own objects); without it, they
    decode to Handle objects. `device_map(device)` says where tensors go (default: where they say they were).
    Anything that does not decode, however it fails, raises WireError."""
    try:
        return _decode(data, handle, 0, device_map)
    except WireError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError, RuntimeError, OverflowError, RecursionError,
            MemoryError) as exc:
        raise WireError(f"undecodable data ({type(exc).__name__})") from None


def _decode(data, handle, depth: int, device_map):
    if depth > MAX_DEPTH:
        raise WireError("data nested too deeply")
    if data is None or isinstance(data, (bool, int, float, str)):
        return data
    if not (isinstance(data, dict) and len(data) == 1):
        raise WireError(f"unexpected {type(data).__name__} in the data")
    (tag, body), = data.items()
    if tag in ("$list", "$tuple"):
        if not isinstance(body, list):
            raise WireError("a list that is not a list")
        items = [_decode(v, handle, depth + 1, device_map) for v in body]
        return items if tag == "$list" else tuple(items)
    if tag == "$iter":
        if not isinstance(body, list):
            raise WireError("an iterator that is not a list")
        return Iterated(_decode(v, handle, depth + 1, device_map) for v in body)
    if tag == "$dict":
        if not (isinstance(body, list) and all(isinstance(p, list) and len(p) == 2 and isinstance(p[0], str)
                                               for p in body)):
            raise WireError("a dict that is not a list of pairs")
        return {k: _decode(v, handle, depth + 1, device_map) for k, v in body}
    if tag == "$tensor":
        return decode_tensor(body, device_map)
    if tag == "$dtype":
        if not isinstance(body, str) or body not in DTYPES:
            raise WireError("an unknown dtype")
        return DTYPES[body]
    if tag == "$int":
        if not (isinstance(body, str) and len(body) <= 40):
            raise WireError("an integer out of range")
        return int(body)
    if tag == "$float":
        if not isinstance(body, str) or body not in ("nan", "inf", "-inf"):
            raise WireError("an unknown float")
        return float(body)
    if tag == "$handle":
        if not isinstance(body, int):
            raise WireError("a handle that is not a number")
        return handle(body) if handle is not None else Handle(body)
    if tag == "$module":
        return decode_module(body, device_map)
    raise WireError(f"unknown tag {tag!r}")


def decode_tensor(body: dict, device_map=None, depth: int = 0) -> torch.Tensor:
    try:
        dtype = DTYPES[body["dtype"]]
        shape = [int(n) for n in body["shape"]]
        raw = base64.b64decode(body["data"], validate=True)
        device = str(body["device"])
    except (KeyError, TypeError, ValueError) as exc:
        raise WireError(f"a malformed tensor ({type(exc).__name__})") from None
    if device not in DEVICES:
        raise WireError("a tensor on an unknown device")
    if any(n < 0 for n in shape) or len(shape) > 16:
        raise WireError("a tensor with an impossible shape")
    numel = math.prod(shape)
    itemsize = torch.empty((), dtype=dtype).element_size()
    if numel * itemsize != len(raw) or len(raw) > MAX_TENSOR_BYTES:
        raise WireError("a tensor whose size does not match its shape")
    if numel:
        t = torch.frombuffer(bytearray(raw), dtype=torch.uint8).view(dtype).reshape(shape).clone()
    else:
        t = torch.empty(shape, dtype=dtype)
    target = device_map(device) if device_map is not None else device
    if target != "cpu":
        t = t.to(target)
    if t.is_floating_point() and body.get("has_grad_fn"):
        base = t.unsqueeze(0).requires_grad_()
        t = (base * 1.0)[0] if body.get("is_view") else base[0] * 1.0  # a tensor with a graph, a view if it was one
    elif t.is_floating_point() and body.get("requires_grad"):
        t.requires_grad_()
    if isinstance(body.get("grad"), dict) and depth == 0:
        grad = decode_tensor(body["grad"], device_map, depth + 1)
        if t.is_leaf and grad.shape == t.shape and grad.dtype == t.dtype:
            t.grad = grad.detach()
        else:
            raise WireError("a tensor whose .grad does not fit it")
    return t


def decode_module(body: dict, device_map=None) -> torch.nn.Module:
    """The module `body` describes. It is built on the meta device and given the parameters that came with it, so
    its constructor arguments alone allocate nothing, and parameters that do not fit them raise."""
    kind = body.get("class") if isinstance(body, dict) else None
    if kind not in MODULE_ARGS:
        raise WireError(f"a module of an unknown class {kind!r}")
    kwargs = body.get("kwargs", {})
    if not isinstance(kwargs, dict):
        raise WireError("module arguments that are not a dict")
    kwargs = {k: v for k, v in kwargs.items() if k in MODULE_ARGS[kind] + ("bias",)}
    state = body.get("state", {})
    if not isinstance(state, dict):
        raise WireError("module parameters that are not a dict")
    state = {str(name): decode_tensor(t, device_map) for name, t in state.items()}
    with torch.random.fork_rng(devices=[]):  # construction draws from the global RNG: leave it as it was
        module = getattr(torch.nn, kind)(**kwargs, **({} if kind in PARAMETERLESS else {"device": "meta"}))
    module.load_state_dict(state, assign=True)  # strict: every parameter given, with its shape
    dtype = DTYPES.get(body.get("dtype"), torch.float32)
    device = str(body.get("device", "cpu"))
    if device not in DEVICES:
        raise WireError("a module on an unknown device")
    module = module.to(dtype=dtype, device=device_map(device) if device_map is not None else device)
    module.train(bool(body.get("training", True)))
    module.wire_exact = bool(body.get("exact", True))  # False: the other side's was a subclass of this class
    return module


def write_back(args, after) -> None:
    """Make the caller's arguments what the other side's code left them: values and ``.grad`` of tensors (in place,
    only where they changed, so an unchanged tensor keeps its autograd history intact), parameters of modules, items
    of an iterator. A tensor that changed shape or dtype, or a module that no longer fits, is marked
    ``wire_changed``."""
    with torch.no_grad():
        for arg, back in zip(args, after):
            if isinstance(arg, Iterated) and isinstance(back, Iterated):
                write_back(arg.items, back.items)
            elif isinstance(arg, (list, tuple)) and isinstance(back, (list, tuple)) and len(arg) == len(back):
                write_back(arg, back)
            elif isinstance(arg, torch.Tensor) and isinstance(back, torch.Tensor):
                if back.shape != arg.shape or back.dtype != arg.dtype:
                    arg.wire_changed = True
                    continue
                grad = back.grad if back.is_leaf else None
                values = back.detach().to(arg.device)
                if not torch.equal(arg.detach(), values):
                    arg.copy_(values)
                if arg.is_leaf:
                    arg.grad = None if grad is None else grad.detach().to(arg.device).clone()
            elif isinstance(arg, torch.nn.Module) and isinstance(back, torch.nn.Module):
                try:
                    arg.load_state_dict(back.state_dict())
                except (RuntimeError, KeyError):
                    arg.wire_changed = True


def too_large(message: dict) -> bool:
    """Whether `message`, as JSON, is longer than the grader reads."""
    try:
        return len(json.dumps(message)) > MAX_MESSAGE_BYTES
    except (TypeError, ValueError, RecursionError):
        return False  # not JSON at all: the sender's own error says so
