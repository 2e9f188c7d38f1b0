"""One mutation-catalog entry: a replacement for one solution cell of an otherwise fully solved notebook.

A WRONG entry must score 0 in its function's test cell and full marks everywhere else (except the cells named in
`also_costs`); a VALID entry must score full marks everywhere. The suite checks both in-process (fast, with the
hidden checks' messages) and through real `nbgrader autograde`, grading each entry only on the notebook it targets.
"""

from dataclasses import dataclass

WRONG, VALID = "wrong", "valid"


@dataclass(frozen=True)
class Entry:
    id: str  # unique across notebooks (each notebook's module prefixes it): it is the student id when autograded
    cell: str  # grade id of the solution cell it replaces; its test cell is "test_" + cell
    kind: str
    code: str
    says: str = ""  # for WRONG entries: words the hidden test's message must contain
    # Other test cells it may cost, and only these: a crashing or input-mutating function makes the *visible* tests
    # of the functions that call it fail too (their hidden tests use references and still pass).
    also_costs: tuple = ()
    notebook: str = ""  # set by each notebook's catalog module

    @property
    def test_cell(self) -> str:
        return "test_" + self.cell


def fn(signature: str, body: str) -> str:
    """Source of a function with this signature and body (the body is indented for you)."""
    return f"def {signature}:\n" + "\n".join("    " + line for line in body.strip("\n").splitlines()) + "\n"
