"""nbgrader's OverwriteCells for autograde, made safe for graded cells the gradebook does not know."""

from __future__ import annotations

from nbgrader.preprocessors import OverwriteCells


class OverwriteKnownCells(OverwriteCells):
    """nbgrader's OverwriteCells (locked and test cells restored from the gradebook, deleted ones re-added), with a
    graded cell that has no known grade id turned into an ordinary cell first: one a student made or pasted in, or
    a duplicate that nbgrader's DeduplicateIds emptied. nbgrader itself removes only the unknown id and leaves the
    cell marked graded, on which re-adding missing cells fails (KeyError: 'grade_id') and nbgrader drops the
    student's whole notebook."""

    def preprocess_cell(self, cell, resources, index):
        cell, resources = super().preprocess_cell(cell, resources, index)
        meta = cell.metadata.get("nbgrader")
        if meta is not None and "grade_id" not in meta:
            del cell.metadata["nbgrader"]
        return cell, resources
