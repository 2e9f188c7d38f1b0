"""A late-submission policy as students read it: "each started day (or hour) late costs X% of your score; work
handed in more than N days (hours) late scores 0".

nbgrader ships only "none" and "zero" (`LateSubmissionPlugin.penalty_method`); anything else is a plugin with
`late_submission_penalty(student_id, score, total_seconds_late)`, which nbgrader's AssignLatePenalties calls once per
notebook of a late submission with that notebook's score. The penalty here is a *fraction* of the score, so applied
notebook by notebook it adds up to the same fraction of the assignment's total: the policy reads per assignment, as
the syllabus states it, however many notebooks the assignment has.

Seconds late are nbgrader's: the submission's timestamp (`timestamp.txt`) minus the assignment's due date in the
gradebook (`nbgrader db assignment add ID --duedate=...`), extensions included; on time is exactly 0 s late.

Configure in nbgrader_config.py:

    c.AssignLatePenalties.plugin_class = "rnncourse.latepenalty.LatePenalty"
    c.LatePenalty.unit = "day"              # or "hour"
    c.LatePenalty.penalty_per_unit = 0.10   # fraction of the score lost per started unit late
    c.LatePenalty.cutoff_units = 3          # later than this many units: score 0
    c.LatePenalty.assignments = {"hw10": {"unit": "hour", "penalty_per_unit": 0.02, "cutoff_units": 48}}
"""

from __future__ import annotations

import math

from nbgrader.plugins import BasePlugin
from traitlets import Dict, Enum, Float, validate

SECONDS = {"hour": 3600, "day": 86400}
POLICY_KEYS = ("unit", "penalty_per_unit", "cutoff_units")


class LatePenalty(BasePlugin):
    """A penalty per started late hour or day, and a hard cutoff after which the score is 0."""

    unit = Enum(("hour", "day"), default_value="day",
                help="What a penalty step counts: each started hour or each started day late.").tag(config=True)
    penalty_per_unit = Float(0.10, min=0.0, max=1.0,
                             help="Fraction of the score lost per started unit late (0.10 = 10%).").tag(config=True)
    cutoff_units = Float(3, min=0.0,
                         help="Work later than this many units scores 0 (the hard cutoff).").tag(config=True)
    assignments = Dict(
        help="Per-assignment policies overriding the three settings above: {assignment id: {setting: value}}."
    ).tag(config=True)

    @validate("assignments")
    def _known_settings(self, proposal):
        for assignment, policy in proposal["value"].items():
            unknown = set(policy) - set(POLICY_KEYS)
            if unknown:
                raise ValueError(f"LatePenalty.assignments[{assignment!r}]: unknown settings {sorted(unknown)}; "
                                 f"use {list(POLICY_KEYS)}")
            if policy.get("unit", "day") not in SECONDS:
                raise ValueError(f"LatePenalty.assignments[{assignment!r}]: unit must be 'hour' or 'day'")
        return proposal["value"]

    def policy(self, assignment_id: str | None = None) -> dict:
        """The settings that apply to one assignment."""
        policy = {key: getattr(self, key) for key in POLICY_KEYS}
        policy.update(self.assignments.get(assignment_id, {}))
        return policy

    def fraction_lost(self, total_seconds_late: float, assignment_id: str | None = None) -> float:
        """0 when on time; penalty_per_unit per started unit; 1 past the cutoff."""
        if total_seconds_late <= 0:
            return 0.0
        policy = self.policy(assignment_id)
        unit_seconds = SECONDS[policy["unit"]]
        if total_seconds_late > policy["cutoff_units"] * unit_seconds:
            return 1.0
        units = math.ceil(total_seconds_late / unit_seconds)
        return min(1.0, units * policy["penalty_per_unit"])

    def describe(self, assignment_id: str | None = None) -> str:
        """The policy in the words a syllabus would use."""
        p = self.policy(assignment_id)
        return (f"{p['penalty_per_unit']:.0%} of the score per started {p['unit']} late; more than "
                f"{p['cutoff_units']:g} {p['unit']}s late scores 0")

    def late_submission_penalty(self, student_id: str, score: float, total_seconds_late: float) -> float:
        # nbgrader creates the plugin with AssignLatePenalties as parent, which knows the assignment being graded.
        assignment_id = getattr(self.parent, "assignment_id", None)
        fraction = self.fraction_lost(total_seconds_late, assignment_id)
        self.log.info("%s is %.0f s late: %s -> penalty %.0f%% of %s", student_id, total_seconds_late,
                      self.describe(assignment_id), 100 * fraction, score)
        return score * fraction
