"""The on-submit grading policy (c.OnSubmit in nbgrader_config.py) and what it means for one student's submissions.

`plan` is the whole decision, from plain data (the student's submissions, the ledger's rows, the clock, the due date
and cutoff), so the service keeps nothing in memory that a restart would lose, and the rules can be tested alone:

- a folder changed in the last `settle_s` seconds is still being written: the student is looked at again later;
- a submission received after the cutoff (the late policy's "scores 0" point) is never graded: the student's grade
  stays on their last submission before it, and they are told so;
- of the rest, only the newest is graded; older ones not yet graded are superseded (and told so);
- the newest is graded now unless the student already had `max_graded` submissions graded in the last `per_minutes`
  minutes; then it waits until the oldest of those leaves the window, or until the due date if that is sooner (the
  cutoff, after the due date), and the student is told when.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from traitlets import Bool, Enum, Float, Int
from traitlets.config import Configurable

from . import ledger
from .inbox import Submission


class OnSubmit(Configurable):
    """Grading each submission as it arrives (the course hub's section09-grader service)."""

    enabled = Bool(True, help="Grade each submission as it arrives and release its feedback. False: the service "
                              "grades nothing; the instructor grades after the deadline (make autograde).").tag(config=True)
    feedback = Enum(("tests", "score"), default_value="tests",
                    help="What on-submit feedback shows: 'tests' = the score and each test's result and message "
                         "(hidden-test code and inputs are always stripped), 'score' = the score only.").tag(config=True)
    max_graded = Int(3, min=1, help="At most this many of a student's submissions graded per window "
                                    "(per_minutes); later ones wait.").tag(config=True)
    per_minutes = Float(60.0, min=0.0, help="The rate limit's window in minutes; 0 = no limit.").tag(config=True)
    workers = Int(0, min=0, help="Grading processes kept warm (0 = one per core).").tag(config=True)
    side_by_side = Bool(False, help="Grade a lone submission's notebooks at the same time while workers stand idle "
                                    "(lower latency; three kernels share the cores, so a busy machine risks cell "
                                    "time limits).").tag(config=True)
    poll_s = Float(1.0, min=0.1, help="How often the exchange is looked at, in seconds.").tag(config=True)
    settle_s = Float(1.0, min=0.0, help="A submission folder changed this recently is still being written: "
                                        "wait.").tag(config=True)


@dataclass(frozen=True)
class Action:
    kind: str  # "grade", or a ledger state to record and tell the student: waiting, superseded, after_cutoff
    submission: Submission
    eligible_at: dt.datetime | None = None


def plan(submissions: list[Submission], rows: dict, now: dt.datetime, policy: OnSubmit,
         due: dt.datetime | None, cutoff: dt.datetime | None) -> list[Action]:
    """What to do now with one student's submissions (oldest first); rows: the ledger, (submission, version) -> Row.
    Times are naive UTC."""
    if any((now - s.changed).total_seconds() < policy.settle_s for s in submissions):
        return []

    def state(s: Submission) -> str | None:
        row = rows.get((s.name, s.version))
        return row.state if row else None

    actions = [Action(ledger.AFTER_CUTOFF, s) for s in submissions
               if cutoff is not None and s.time > cutoff and state(s) is None]
    in_time = [s for s in submissions if cutoff is None or s.time <= cutoff]
    if not in_time:
        return actions
    newest = in_time[-1]
    actions += [Action(ledger.SUPERSEDED, s) for s in in_time[:-1] if state(s) in (None, ledger.WAITING)]
    if state(newest) in ledger.FINAL:
        return actions
    eligible = next_slot(submissions[0].student, rows, now, policy, due, cutoff)
    if eligible is None or eligible <= now:
        return actions + [Action("grade", newest)]
    row = rows.get((newest.name, newest.version))
    if row is None or row.eligible_at != eligible:
        actions.append(Action(ledger.WAITING, newest, eligible))
    return actions


def next_slot(student: str, rows: dict, now: dt.datetime, policy: OnSubmit, due: dt.datetime | None,
              cutoff: dt.datetime | None) -> dt.datetime | None:
    """When the student's next submission may be graded: None or a time not after now = at once."""
    if policy.per_minutes <= 0:
        return None
    window = dt.timedelta(minutes=policy.per_minutes)
    recent = sorted(r.graded_at for r in rows.values()
                    if r.student == student and r.state == ledger.GRADED and r.graded_at and r.graded_at > now - window)
    if len(recent) < policy.max_graded:
        return None
    slot = recent[-policy.max_graded] + window
    deadline = due if due is not None and now < due else cutoff
    return min(slot, deadline) if deadline is not None else slot  # a past deadline: at once
