"""Feedback students can act on: a results table at the top of each feedback notebook.

nbgrader's feedback HTML shows the autograded notebook, hidden tests included (its issues #917, #1363);
nbgrader_config.py strips those with ClearHiddenTests. `ResultsSummary` then adds, above the first cell, what a
student looks for first: each test by name, passed or not, its points, and the message a failed check gave (the
checks' messages are written for students and never contain hidden inputs or the solution).
"""

from __future__ import annotations

from nbformat.v4 import new_markdown_cell
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Int

from . import notebooks

_NOT_RUN = "not run"


def _message(cell, limit: int) -> str:
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            first = (output.get("evalue") or "").strip().splitlines()
            text = f"{output.get('ename', 'Error')}: {first[0]}" if first else output.get("ename", "Error")
            return text if len(text) <= limit else text[:limit - 1] + "…"
    return "" if cell.get("execution_count") else _NOT_RUN


def _cell_text(text: str) -> str:
    """Safe inside a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ").replace("<", "&lt;")


class ResultsSummary(NbGraderPreprocessor):
    """Insert a Markdown table of the notebook's tests (name, result, points, message) at the top. Runs after
    nbgrader's GetGrades, which puts each test cell's score into its metadata."""

    message_limit = Int(240, help="Longest failure message shown in the table, in characters.").tag(config=True)

    def preprocess(self, nb, resources):
        rows = []
        for cell in nb.cells:
            if not notebooks.is_test_cell(cell):
                continue
            meta = notebooks.nbgrader_meta(cell)
            score, points = meta.get("score") or 0, meta.get("points") or 0
            passed = points > 0 and score >= points
            message = "" if passed else _message(cell, self.message_limit)
            rows.append(f"| `{meta.get('grade_id', '?')}` | {'passed' if passed else 'failed'} | {score:g} / "
                        f"{points:g} | {_cell_text(message)} |")
        if not rows:
            return nb, resources
        info = resources.get("nbgrader", {})
        total = f"**{info['score']:g} / {info['max_score']:g} points**" if "score" in info else ""
        late = info.get("late_penalty") or 0
        header = ["## Your results", "",
                  " ".join(filter(None, [total, f"(after a late penalty of {late:g} points)" if late else ""])), "",
                  "| test | result | points | message |", "|---|---|---|---|"]
        footer = ["", "Each test appears again below, where it ran, with its full message. Hidden tests are not "
                      "shown; their messages say what to fix."]
        nb.cells.insert(0, new_markdown_cell("\n".join(header + rows + footer)))
        return nb, resources
