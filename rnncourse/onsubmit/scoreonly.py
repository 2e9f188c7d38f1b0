"""On-submit feedback that shows the score only (c.OnSubmit.feedback = "score"): no test results or messages, which
students could otherwise mine, submission by submission, for what the hidden tests check."""

from __future__ import annotations

from nbformat.v4 import new_markdown_cell
from nbgrader.preprocessors import NbGraderPreprocessor


class ScoreOnly(NbGraderPreprocessor):
    """Replace the feedback notebook with its score (after GetGrades, which puts the score into resources)."""

    def preprocess(self, nb, resources):
        info = resources.get("nbgrader", {})
        late = info.get("late_penalty") or 0
        lines = ["## Your results", "",
                 f"**{info.get('score', 0):g} / {info.get('max_score', 0):g} points**"
                 + (f" (after a late penalty of {late:g} points)" if late else ""), "",
                 "This course shows only the score when you submit; each test's result comes with the feedback "
                 "after the deadline."]
        nb.cells = [new_markdown_cell("\n".join(lines))]
        return nb, resources
