"""What notebook 03's ungraded lessons show: the forecast horizon against the Lyapunov growth, where truncated
gradients reach, contiguous streams, and the prose numbers they rest on.

The solution notebook runs once (shortened demos, as under autograde; the trained `predictor` is the graded one, so
it is trained in full); the tests assert what each figure is built from, only what is deterministic on a CPU.
"""

from __future__ import annotations

import pytest
import torch
from notebook_run import run_source_notebook

from rnncourse import notebooks
from rnncourse.course import repo_root, source_notebook

NB03 = "03_pytorch_walkthrough"


@pytest.fixture(scope="module")
def ns():
    torch.set_num_threads(1)
    return run_source_notebook(NB03, until="def loss_input_gradients", autograde=True)


@pytest.fixture(scope="module")
def markdown():
    source = notebooks.read(source_notebook(repo_root(), NB03))
    return {cell.get("id"): cell.source for cell in source.cells if cell.cell_type == "markdown"}


# --- the forecast-horizon lesson ---------------------------------------------------------------------------------

def test_lyapunov_exponent_of_the_henon_map_is_estimated(ns):
    # The literature value for a = 1.4, b = 0.3 is about 0.42 per step.
    assert 0.35 < ns["lyapunov"] < 0.5, ns["lyapunov"]


def test_forecast_errors_are_measured_free_running_on_the_held_out_series(ns):
    l1 = ns["horizon_l1"]
    names = list(l1)
    assert len(names) == 3 and "SequencePredictor" in names and "persistence" in names
    ar = next(name for name in names if "AR" in name)
    horizon = ns["HORIZON"]
    assert all(values.shape == (horizon,) for values in l1.values())
    lstm = l1["SequencePredictor"]
    # One step ahead the LSTM is far better than both baselines ...
    assert lstm[0] < 0.5 * l1[ar][0] and lstm[0] < 0.5 * l1["persistence"][0]
    # ... its first forecast step is its one-step prediction (same model, same kind of targets) ...
    assert abs(lstm[0].item() - ns["predictor_l1"]) < 0.25 * ns["predictor_l1"]
    # ... then its error grows with the horizon, about as the Lyapunov exponent says, ...
    assert all(lstm[h + 1] > lstm[h] for h in range(5)), lstm
    ratio = lstm[:5].numpy() / ns["chaos"][:5]
    assert ((0.6 < ratio) & (ratio < 1.5)).all(), ratio
    assert lstm[-1] > 5 * lstm[0]
    # ... and far ahead it is no better than a random guess, worse than the median; AR(8) run free ends at the median.
    assert lstm[-5:].mean() > ns["median_l1"]
    assert abs(l1[ar][-5:].mean().item() - ns["median_l1"]) < 0.15 * ns["median_l1"]
    assert ns["median_l1"] < ns["unrelated_l1"]


def test_ar_forecast_runs_free_on_its_own_predictions(ns):
    # Two steps by hand: the second prediction reads the first, not the observed value.
    context = ns["observed_context"][:4]
    weights, order = ns["ar_weights"], ns["AR_ORDER"]
    ones = torch.ones(4, 1, dtype=torch.float64)
    first = torch.cat([context[:, -order:].double(), ones], dim=1) @ weights
    second = torch.cat([context[:, -order + 1:].double(), first, ones], dim=1) @ weights
    torch.testing.assert_close(ns["ar_forecast"](context, 2), torch.cat([first, second], dim=1))


# --- r2rt's point: where truncated gradients reach ---------------------------------------------------------------

def _support_of_truncation(window: int, k: int) -> torch.Tensor:
    # reach[j, i]: input i lies in loss j's chunk, at or before j (j - i <= j mod k).
    j = torch.arange(window)[:, None]
    i = torch.arange(window)[None, :]
    return (i <= j) & (i >= (j // k) * k)


def test_truncated_gradients_reach_back_j_mod_k_steps_and_full_bptt_reaches_everything(ns):
    window, k = ns["REACH_WINDOW"], ns["REACH_CHUNK"]
    grads = list(ns["reach"].values())
    assert len(grads) == 3
    full, carried, zero = grads
    causal = torch.tril(torch.ones(window, window, dtype=torch.bool))
    inside = _support_of_truncation(window, k)
    for gradients in grads:
        assert gradients.shape == (window, window)
        assert (gradients[~causal] == 0).all(), "a loss cannot depend on later inputs"
    for gradients in (carried, zero):
        assert (gradients[~inside] == 0).all(), "truncation: exactly zero before the chunk start"
        assert (gradients[inside] > 0).all(), "truncation: nonzero from the chunk start to j"
    assert (full[causal] > 0).all(), "full BPTT reaches every earlier input of the window"
    assert (full[causal & ~inside] > 0).any()
    # Carrying the state keeps the forward pass: inside the chunks its gradients are the full ones; a reset is not.
    torch.testing.assert_close(carried[inside], full[inside], rtol=1e-4, atol=1e-6)
    assert not torch.allclose(zero[inside], full[inside], rtol=1e-3, atol=1e-5)


def test_loss_input_gradients_on_another_model_and_a_ragged_last_chunk(ns):
    torch.manual_seed(0)
    model = ns["SequencePredictor"](2, 5, 2, cell="gru").double()
    inputs, targets = torch.randn(1, 17, 2, dtype=torch.float64), torch.randn(1, 17, 2, dtype=torch.float64)
    past = torch.randn(1, 3, 2, dtype=torch.float64)
    gradients = ns["loss_input_gradients"](model, inputs, targets, 5, True, past)
    inside = _support_of_truncation(17, 5)
    assert (gradients[~inside] == 0).all() and (gradients[inside] > 0).all()
    full = ns["loss_input_gradients"](model, inputs, targets, past=past)
    assert (full[torch.tril(torch.ones(17, 17, dtype=torch.bool))] > 0).all()
    # The full matrix is autograd's Jacobian of the per-step losses (after the past, which the window's state saw).
    jacobian = torch.autograd.functional.jacobian(
        lambda x: (model(torch.cat([past, x], dim=1))[0][:, 3:] - targets).abs().sum(dim=-1).view(17), inputs)
    torch.testing.assert_close(full, jacobian.abs().sum(dim=-1).view(17, 17))


# --- streaming contiguous data, prose -----------------------------------------------------------------------------

def test_batchify_cuts_the_series_into_contiguous_streams(ns):
    series = torch.arange(103.0)
    streams = ns["batchify"](series, 4)
    assert streams.shape == (4, 25)
    for b in range(4):
        assert torch.equal(streams[b], series[25 * b:25 * (b + 1)])


def test_prose_numbers(ns, markdown):
    # The reset model's cap for chunks of 5 on the echo task.
    assert round(ns["best_ce_with_reset"](5), 2) == 0.60
    assert "about 0.60" in markdown["nb03-26"] and "0.61" not in markdown["nb03-26"]
    # AR(8) is least-squares optimal on the training data only.
    assert "the best any" not in markdown["nb03-19"] and "training data" in markdown["nb03-19"]
    # The student time, on the line under the title.
    assert markdown["nb03-01"].split("\n")[2].startswith("**Estimated time: about")
    assert markdown["nb03-01"].count("Estimated time") == 1
    # Shuffled windows: the carried state stays inside a window; batchify is how to stream instead.
    assert "batchify" in markdown["nb03-stream-intro"] and "shuffles" in markdown["nb03-stream-intro"]
