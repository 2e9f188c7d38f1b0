"""A sanitize step for nbgrader's autograde: a duplicated graded cell must not crash it."""

from __future__ import annotations

from nbgrader.preprocessors import NbGraderPreprocessor


class RemoveEmptyGradeMetadata(NbGraderPreprocessor):
    """Sanitize step after nbgrader's DeduplicateIds, which empties the nbgrader metadata of a duplicated cell but
    leaves the empty dict, on which OverwriteCells.add_missing_cells then fails and nbgrader drops the student's
    whole assignment. A duplicated graded cell thus becomes an ordinary cell, and the last copy is graded."""

    def preprocess_cell(self, cell, resources, index):
        if cell.metadata.get("nbgrader") == {}:
            del cell.metadata["nbgrader"]
        return cell, resources
