"""What notebook 01's demos show (each figure says what its prose says), and that the visible tests of rnn_backward
depend on no other answer, so a wrong rnn_step or rnn_unroll cannot cost its points under autograde either."""

from __future__ import annotations

import re
import warnings

import matplotlib
import matplotlib.pyplot as plt
import pytest
import torch
from catalog import CATALOG, VALID, WRONG
from notebook_run import run_source_notebook

from rnncourse import notebooks
from rnncourse.course import NOTEBOOKS, repo_root, source_notebook
from rnncourse.kernels.callee import _CallTimedOut, time_limit

matplotlib.use("Agg")

NB01 = NOTEBOOKS[0]


@pytest.fixture(scope="module")
def demo():
    return run_source_notebook(NB01)


@pytest.fixture(scope="module")
def source():
    return notebooks.read(source_notebook(repo_root(), NB01))


def _cell(source, cell_id: str):
    return next(c for c in source.cells if c.id == cell_id)


def _radius(W: torch.Tensor) -> float:
    H = W.shape[0]
    return torch.linalg.eigvals(W[:, :H]).abs().max().item()


def test_spike_trace_fades_only_below_spectral_radius_one(demo):
    assert _radius(demo["W_fading"]) < 1 < _radius(demo["W_lasting"])
    fading = demo["hs_fading"][:, 0].norm(dim=1)
    lasting = demo["hs_lasting"][:, 0].norm(dim=1)
    assert fading[-1] < 0.01 * fading.max(), "the fading panel's state must be below 1% of its peak at the end"
    assert lasting[-1] >= 0.01 * lasting.max(), "the other panel's state must not fade"
    # The prose: "ten steps later the state is about 1 % of its peak" (the spike is at t = 5).
    assert 0.005 < fading[15] / fading.max() < 0.02


def test_spike_demo_is_fixed_and_states_each_radius(demo, source):
    code = _cell(source, "nb01-09").source
    assert "torch.Generator().manual_seed(" in code, "the demo must not depend on the notebook's global random stream"
    assert r"\rho(W_{{hh}})" in code and "spectral_radius(W_spike" in code, "each panel's title states its radius"
    again = run_source_notebook(NB01, until="hs_lasting, _ = rnn_unroll")
    assert torch.equal(again["W_fading"], demo["W_fading"]) and torch.equal(again["W_lasting"], demo["W_lasting"])


def test_gradient_figure_shows_what_its_prose_says(demo):
    norms = {key: torch.tensor(values) for key, values in demo["gradient_norms"].items()}
    T = len(demo["xs_spike"])
    assert all(len(n) == T + 1 for n in norms.values())
    # At rest every factor is W_hh: about five orders of magnitude down (rho = 0.7) or up (rho = 1.5) over 30 steps.
    assert norms["rest", "fading"][0] / norms["rest", "fading"][-1] < 1e-4
    assert norms["rest", "lasting"][0] / norms["rest", "lasting"][-1] > 1e4
    # Along the spike: vanished where the spike enters (h_6) for 0.7, within a factor of ten of the end for 1.5.
    assert norms["spike", "fading"][6] / norms["spike", "fading"][-1] < 1e-3
    ratio = norms["spike", "lasting"] / norms["spike", "lasting"][-1]
    assert (ratio > 0.1).all() and (ratio < 10).all()


def test_gradient_figure_agrees_with_autograd(demo):
    """The figure's norms (dh0 of the rest of the sequence) are the true dL/dh_t for L = <1, h_T>."""
    unroll = demo["rnn_unroll"]
    for setting, xs in (("rest", torch.zeros_like(demo["xs_spike"])), ("spike", demo["xs_spike"])):
        for net, W in (("fading", demo["W_fading"]), ("lasting", demo["W_lasting"])):
            h0 = torch.zeros(1, W.shape[0], dtype=W.dtype, requires_grad=True)
            states = [h0]
            for x_t in xs:
                states.append(unroll(x_t.unsqueeze(0), states[-1], W, demo["b_spike"])[1])
            grads = torch.autograd.grad(states[-1].sum(), states[:-1])
            want = [g.norm().item() for g in grads] + [W.shape[0] ** 0.5]
            torch.testing.assert_close(torch.tensor(demo["gradient_norms"][setting, net]), torch.tensor(want))


def test_padding_has_its_own_id_and_padding_idx(demo):
    vocab, token_ids, lengths = demo["vocab"], demo["token_ids"], demo["lengths_apple"]
    assert vocab[0] == "<pad>" and demo["PAD"] == 0
    real = torch.arange(token_ids.shape[0]).unsqueeze(1) < lengths.unsqueeze(0)
    assert (token_ids[~real] == 0).all() and (token_ids[real] != 0).all(), "id 0 is padding and only padding"
    assert (~real).any(), "the demo batch must contain padding"
    embedding = demo["embedding"]
    assert embedding.padding_idx == 0
    assert (embedding.weight[0] == 0).all() and (embedding.weight.grad[0] == 0).all()


GRADED_TASK_WORDS = re.compile(r"translat|summari[sz]|tagg|\bPOS\b|part.of.speech|named entit|\bNER\b|slot", re.I)


def test_alignment_is_taught_on_other_tasks_than_the_graded_ones(source):
    """TASK_ALIGNMENT cannot be copied from the cells that teach the distinction (or from the summary below it)."""
    for cell_id in ("nb01-19", "nb01-20", "nb01-22"):
        found = GRADED_TASK_WORDS.findall(_cell(source, cell_id).source)
        assert not found, f"cell {cell_id} mentions graded tasks: {found}"
    exercise = _cell(source, "nb01-21").source
    assert all(f'"{task}"' in exercise for task in ("machine_translation", "summarization", "pos_tagging",
                                                     "named_entity_recognition", "slot_filling"))


def test_header_table_lists_every_graded_function_with_its_points(source):
    header = source.cells[0].source
    points = notebooks.points(source)
    assert "about 2 hours" in header.lower()
    for grade_id, value in points.items():
        name = grade_id.removeprefix("test_")
        name = "TASK_ALIGNMENT" if name == "task_alignment" else name
        assert re.search(rf"`{name}`[^|]*\| {value:g} \|", header), name
    assert f"**{sum(points.values()):g}**" in header and sum(points.values()) == 15


def _namespace_before_backward_test(source, replacements: dict) -> dict:
    """The notebook's code up to the rnn_backward test cell, some answers replaced, run as autograde runs it:
    a broken cell raises (and is skipped), the next cells run all the same."""
    answers = dict(notebooks.solutions(source), **replacements)
    namespace: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for cell in source.cells:
            meta = notebooks.nbgrader_meta(cell)
            if meta.get("grade_id") == "test_rnn_backward":
                break
            if cell.cell_type != "code" or meta.get("grade"):
                continue
            try:
                with time_limit(10):
                    exec(answers.get(meta.get("grade_id"), cell.source), namespace)
            except (Exception, _CallTimedOut):
                pass
            plt.close("all")
    return namespace


def _visible_backward_test(source) -> str:
    return _cell(source, "test-rnn-backward").source.split("### BEGIN HIDDEN TESTS")[0]


@pytest.mark.parametrize("entry", [e for e in CATALOG if e.notebook == NB01 and e.cell in ("rnn_step", "rnn_unroll")
                                   and e.kind == WRONG], ids=lambda e: e.id)
def test_backward_visible_tests_do_not_depend_on_earlier_answers(entry, source):
    namespace = _namespace_before_backward_test(source, {entry.cell: entry.code})
    exec(_visible_backward_test(source), namespace)  # raises if a wrong rnn_step / rnn_unroll broke the cell


@pytest.mark.parametrize("entry", [e for e in CATALOG if e.notebook == NB01 and e.cell == "rnn_backward"],
                         ids=lambda e: e.id)
def test_backward_visible_tests_catch_wrong_answers(entry, source):
    """The visible tests are a real help: every wrong catalog answer already fails them, every valid one passes."""
    namespace = _namespace_before_backward_test(source, {entry.cell: entry.code})
    if entry.kind == VALID:
        exec(_visible_backward_test(source), namespace)
    else:
        with pytest.raises(Exception):
            exec(_visible_backward_test(source), namespace)
