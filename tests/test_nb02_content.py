"""What notebook 02's demos show agrees with what its text says (issue 16).

Each test runs the solution notebook's code (test cells skipped) in this process, CPU only, with fixed seeds.
"""

from __future__ import annotations

import re

import pytest
import torch

from rnncourse import notebooks
from rnncourse.course import repo_root, source_notebook
from notebook_run import run_source_notebook

NOTEBOOK = "02_lstm_gates"
PARAMETERS = {"RNN": 2545, "GRU": 2539, "LSTM": 2713}  # the counts the notebook's prose states


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    # The notebook sets one thread for its tiny models; give the rest of the test session its own setting back.
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _markdown() -> str:
    source = notebooks.read(source_notebook(repo_root(), NOTEBOOK))
    return "\n".join(cell.source for cell in source.cells if cell.cell_type == "markdown")


def test_gate_demo_input_gate_opens_at_each_spike_only_and_each_cell_holds_its_write():
    ns = run_source_notebook(NOTEBOOK, until="xs_demo")
    gates, spikes, T = ns["gates"], ns["SPIKES"], ns["T"]
    i_t, cell = gates["i"], gates["C"]
    assert i_t.shape == cell.shape == (T, ns["H"])
    spike_rows = torch.zeros(T, dtype=torch.bool)
    spike_rows[list(spikes)] = True
    assert (i_t[spike_rows] > 0.9).all(), f"input gate at the spikes: {i_t[spike_rows]}"
    assert (i_t[~spike_rows] < 0.1).all(), f"input gate elsewhere reaches {i_t[~spike_rows].max():.3f}"
    assert cell[: spikes[0]].abs().max() < 1e-12, "the cell should be empty before the first spike"
    for start, end in zip(spikes, spikes[1:] + (T,)):
        written = cell[start]
        assert (written.abs() > 0.1).all(), f"every unit should write something at step {start}: {written}"
        held = cell[start:end]
        drift = ((held - written).abs() / written.abs()).max().item()
        assert drift <= 0.10, f"a cell drifts {drift:.1%} between step {start} and step {end - 1}"
    # Same-sign spikes: the second write adds to the first, so every cell grows in size at the second spike.
    assert (cell[spikes[1]].abs() > 1.5 * cell[spikes[1] - 1].abs()).all()


def test_adding_models_have_the_parameter_counts_the_text_states():
    ns = run_source_notebook(NOTEBOOK, until="HIDDEN = ")
    counts = {name: sum(p.numel() for p in ns["LastStepRegressor"](name, ns["HIDDEN"][name]).parameters())
              for name in PARAMETERS}
    assert counts == PARAMETERS
    text = _markdown()
    for count in PARAMETERS.values():
        assert f"{count:,}" in text, f"the prose should state {count:,}"
    assert "about 2,500" not in text


def test_adding_problem_gated_models_learn_and_the_plain_rnn_does_not():
    ns = run_source_notebook(NOTEBOOK, until='results["GRU"] = train_adding', autograde=False)
    results, baseline = ns["results"], ((ns["test_y"] - 1.0) ** 2).mean().item()
    assert results["RNN"]["steps"] == ns["MAX_STEPS"] == 600, "the plain RNN should use its whole budget"
    assert results["RNN"]["test_mse"] > 0.9 * baseline
    for name in ("LSTM", "GRU"):
        assert results[name]["steps"] < ns["MAX_STEPS"], f"{name} should stop early"
        assert results[name]["test_mse"] < baseline / 30, f"{name}: test MSE {results[name]['test_mse']:.4f}"


def test_grading_runs_the_adding_demo_on_a_tenth():
    ns = run_source_notebook(NOTEBOOK, until="HIDDEN = ", autograde=True)
    assert ns["GRADING"] and ns["MAX_STEPS"] == 60


def test_stated_student_time_and_the_warnings_students_need():
    text = _markdown()
    assert re.search(r"Estimated time: about \d+ hours", text)
    assert "diagonal" in text and "one weight per" in text  # Gers & Schmidhuber's peepholes
    assert "the slides swap it" in text  # the GRU's z convention, before gru_step
    gru = next(cell.source for cell in notebooks.read(source_notebook(repo_root(), NOTEBOOK)).cells
               if notebooks.nbgrader_meta(cell).get("grade_id") == "gru_step")
    assert "The slides'" in gru
