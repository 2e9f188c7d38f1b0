"""Recording stand-ins for the objects a training loop is given, so the grader can judge the loop from what it did.

``train_tbptt`` is graded by observing it: it trains a ``ProbeModel`` (a PyTorch nn.GRU or nn.LSTM predictor that
records every chunk it is given and the state that comes with it) with a ``RecordingSGD`` (torch.optim.SGD that
records the gradients at every step). The kernel makes them on the grader's request and hands back their recordings
as data; the grader runs the reference loop on an identical probe of its own and compares. They hold no reference
and no expected value: a notebook that tampers with them only changes the data the grader judges.
"""

from __future__ import annotations

import torch
from torch import nn

LAYER_OF = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


def tensors_of(state) -> list:
    """The tensors of a (possibly nested) state, in order."""
    if state is None:
        return []
    if isinstance(state, torch.Tensor):
        return [state]
    return [t for s in state for t in tensors_of(s)]


class ProbeModel(nn.Module):
    """A small nn.GRU/nn.LSTM predictor that records what every forward call is given."""

    def __init__(self, cell: str, D: int, H: int, out: int):
        super().__init__()
        self.cell, self.hidden_size = cell, H
        self.rnn = LAYER_OF[cell](D, H, batch_first=True)
        self.head = nn.Linear(H, out)
        self.calls: list[dict] = []

    def forward(self, x, state=None):
        tensors = tensors_of(state)
        self.calls.append(dict(
            x=x.detach().clone(),
            state=None if state is None else [t.detach().clone() for t in tensors],
            state_has_graph=any(t.grad_fn is not None or t.requires_grad for t in tensors),
        ))
        out, state = self.rnn(x, state)
        y = self.head(out)
        self.calls[-1].update(state_out=[t.detach().clone() for t in tensors_of(state)], y=y.detach().clone())
        return y, state

    def init_state(self, batch_size):
        w = self.head.weight
        h = torch.zeros(1, batch_size, self.hidden_size, dtype=w.dtype, device=w.device)
        return (h, torch.zeros_like(h)) if self.cell == "lstm" else h


class RecordingSGD(torch.optim.SGD):
    """torch.optim.SGD that records the gradients it is asked to apply."""

    def __init__(self, params, lr):
        super().__init__(params, lr=lr)
        self.steps: list[list] = []

    @torch.no_grad()
    def step(self, closure=None):
        self.steps.append([None if p.grad is None else p.grad.detach().clone()
                           for group in self.param_groups for p in group["params"]])
        return super().step(closure)


def make_probe(cell: str, D: int, H: int, out: int, seed: int, dtype: torch.dtype, device: str):
    """A probe whose initial parameters depend on `seed` alone (the same in the kernel and in the grader), and its
    recording optimizer."""
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        probe = ProbeModel(cell, D, H, out).to(dtype=dtype, device=device)
    return probe, RecordingSGD(probe.parameters(), lr=0.5)


def recordings(probe: ProbeModel, optimizer: RecordingSGD) -> dict:
    """What the probe and its optimizer saw, as data."""
    return {"calls": probe.calls, "steps": optimizer.steps}
