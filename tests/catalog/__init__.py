"""The mutation catalog of every notebook: CATALOG lists all entries, each tagged with the notebook it targets."""

from . import nb01, nb02, nb03
from .entry import VALID, WRONG, Entry

CATALOG = nb01.CATALOG + nb02.CATALOG + nb03.CATALOG

__all__ = ["CATALOG", "VALID", "WRONG", "Entry"]
