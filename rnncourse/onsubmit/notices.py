"""What a student reads, through nbgrader's own "Fetch Feedback", about a submission the service has not graded.

nbgrader releases feedback under md5(submission secret + notebook id) in the exchange's feedback/ folder, and a
student's fetch_feedback looks there for each notebook of each submission they made. A notice is a small page put
there under the same name: the submission's real feedback, when it is graded, replaces it.
"""

from __future__ import annotations

import datetime as dt
import html
import os
import tempfile

from nbgrader.utils import notebook_hash

from . import ledger


def when(moment: dt.datetime, rounded_up: bool = False) -> str:
    """The time to the minute; rounded_up for a promise ("graded at"), so it is never earlier than the truth."""
    if rounded_up and (moment.second or moment.microsecond):
        moment = moment.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def text(kind: str, received: dt.datetime, eligible_at: dt.datetime | None = None, *, limit: str = "",
         due: dt.datetime | None = None, cutoff: dt.datetime | None = None, reason: str = "") -> str:
    """The notice's words."""
    got = f"Your submission of {when(received)} was received."
    if kind == ledger.WAITING:
        at = (f"at the due date, {when(due)}" if due is not None and eligible_at == due
              else f"at {when(eligible_at, rounded_up=True)}")
        return (f"{got} It is not graded yet: {limit}. It will be graded {at}, and its feedback will appear here "
                f"(press Fetch Feedback again then). If you submit again before then, only your newest submission "
                f"is graded.")
    if kind == ledger.SUPERSEDED:
        return f"{got} You submitted again before it was graded, so only your newer submission is graded."
    if kind == ledger.AFTER_CUTOFF:
        return (f"{got} It came after the late-work cutoff ({when(cutoff)}), so it is not graded: your grade stays on "
                f"your last submission before the cutoff.")
    if kind == ledger.FAILED:
        return f"{got} It could not be graded: {reason}. Fix this and submit again, or ask your instructor."
    raise ValueError(kind)


def page(words: str) -> str:
    return ("<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>Submission status</title></head>\n"
            "<body style='font-family: sans-serif; max-width: 45em; margin: 2em'>\n<h2>Submission status</h2>\n"
            f"<p>{html.escape(words)}</p>\n</body></html>\n")


def post(feedback_dir: str, secret: str, notebooks: list[str], words: str) -> None:
    """Put the notice where fetch_feedback finds it for each of the submission's notebooks (one rename each, so a
    student never fetches half a page)."""
    os.makedirs(feedback_dir, exist_ok=True)
    for notebook in notebooks:
        target = os.path.join(feedback_dir, f"{notebook_hash(secret=secret, notebook_id=notebook)}.html")
        fd, staged = tempfile.mkstemp(dir=feedback_dir, prefix=".notice-", suffix=".html")
        with os.fdopen(fd, "w") as handle:
            handle.write(page(words))
        os.chmod(staged, 0o644)
        os.replace(staged, target)
