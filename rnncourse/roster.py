"""Reads roster.csv, the class list that hub accounts, the gradebook's students and canvas.csv all come from.

Columns: nbgrader's student columns (id, first_name, last_name, email, lms_user_id) and the LMS's (sis_user_id,
sis_login_id, section). `id` is the nbgrader student id (and the student's account on the course hub).
"""

from __future__ import annotations

import csv
from pathlib import Path

COLUMNS = ("id", "first_name", "last_name", "email", "lms_user_id", "sis_user_id", "sis_login_id", "section")


class RosterError(ValueError):
    """roster.csv cannot be read as a roster: whatever reads it stops rather than act on the wrong people."""


def read_rows(path: Path, required: tuple[str, ...] = ("id",)) -> list[dict]:
    """The roster's rows, values stripped, each with a unique non-empty id; refuses a file lacking `required`."""
    with open(path, newline="", encoding="utf-8-sig") as f:  # -sig: a roster saved by Excel starts with a BOM
        reader = csv.DictReader(f)
        lacking = [c for c in required if c not in (reader.fieldnames or [])]
        if lacking:
            raise RosterError(f"{path} lacks the columns {', '.join(lacking)} (its header: "
                              f"{','.join(reader.fieldnames or [])})")
        rows, seen = [], set()
        for line, row in enumerate(reader, start=2):
            row = {key: (value or "").strip() for key, value in row.items() if key is not None}
            if not row["id"]:
                raise RosterError(f"{path}, line {line}: no id")
            if row["id"] in seen:
                raise RosterError(f"{path}, line {line}: the id {row['id']!r} is there twice")
            seen.add(row["id"])
            rows.append(row)
    return rows
