"""Tooling for Section 9 (RNNs & LSTMs): hidden-test checks, demo submissions and the grading pipeline."""
