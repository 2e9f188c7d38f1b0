"""PyTorch recurrent modules built for the hidden tests: from the slides' parameters, or with seeded random ones."""

from __future__ import annotations

import math

import torch
from torch import nn

from .compare import extra_devices, uniform

# kind of recurrence -> (its cell class, its layer class)
RECURRENT = {"rnn": (nn.RNNCell, nn.RNN), "lstm": (nn.LSTMCell, nn.LSTM)}


def module_from_slide_params(kind: str, W: torch.Tensor, b: torch.Tensor, hidden_size: int,
                             cell: bool = False) -> nn.Module:
    """A one-layer nn.RNN/nn.LSTM (or its cell) that computes the recurrence with the slides' parameters.

    W = [W_hh | W_ih] acts on [h, x] and b is the whole bias; for an LSTM their rows are the gate blocks stacked in
    PyTorch's order. b goes into bias_ih and bias_hh is zero.
    """
    H = hidden_size
    D = W.shape[1] - H
    cell_class, layer_class = RECURRENT[kind]
    with torch.random.fork_rng(devices=[]):  # module construction draws from the global RNG: leave it untouched
        module = (cell_class(D, H) if cell else layer_class(D, H)).to(dtype=W.dtype, device=W.device)
    suffix = "" if cell else "_l0"
    with torch.no_grad():
        getattr(module, "weight_hh" + suffix).copy_(W[:, :H])
        getattr(module, "weight_ih" + suffix).copy_(W[:, H:])
        getattr(module, "bias_ih" + suffix).copy_(b)
        getattr(module, "bias_hh" + suffix).zero_()
    return module


def random_module(kind: str, D: int, H: int, gen: torch.Generator, dtype: torch.dtype, device: str,
                  shape: str = "cell") -> nn.Module:
    """An nn.RNN/nn.LSTM ('layer', 'layer_batch_first') or its cell ('cell') with parameters from `gen`, in
    PyTorch's own initialisation range, so the module depends on the seed alone."""
    cell_class, layer_class = RECURRENT[kind]
    with torch.random.fork_rng(devices=[]):
        module = cell_class(D, H) if shape == "cell" else layer_class(D, H, batch_first=(shape == "layer_batch_first"))
    module = module.to(dtype=dtype, device=device)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(uniform(gen, *p.shape, bound=1 / math.sqrt(H)).to(dtype))
    return module


def conversion_cases(rows, seed0: int) -> list[dict]:
    """Cases for a check of a *_params_from_torch function: one per (label, shape, D, H) row in float64 on the CPU,
    the first again in float32, and the second on each extra device."""
    cases = [dict(label=label, shape=shape, D=D, H=H, seed=seed0 + i, dtype=torch.float64, device="cpu")
             for i, (label, shape, D, H) in enumerate(rows)]
    cases.append(dict(cases[0], label=cases[0]["label"] + " in float32", dtype=torch.float32))
    for device in extra_devices():
        cases.append(dict(cases[1], label=cases[1]["label"] + f" on {device}", device=device))
    return cases


def states_over_time(module: nn.Module, xs: torch.Tensor, state) -> torch.Tensor:
    """The hidden states (T, B, H) that the module itself computes over time-major xs from `state` (h0, or the pair
    (h0, c0) for an LSTM): a cell is stepped, a layer called once (batch-first layers get their layout)."""
    with torch.no_grad():
        if isinstance(module, (nn.RNNCell, nn.LSTMCell)):
            hs = []
            for x in xs:
                state = module(x, state)
                hs.append(state[0] if isinstance(state, tuple) else state)
            return torch.stack(hs)
        layer_state = tuple(s.unsqueeze(0) for s in state) if isinstance(state, tuple) else state.unsqueeze(0)
        if module.batch_first:
            return module(xs.transpose(0, 1), layer_state)[0].transpose(0, 1)
        return module(xs, layer_state)[0]
