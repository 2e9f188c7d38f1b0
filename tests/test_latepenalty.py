"""The late-submission policy on both sides of every boundary: on time, each unit step, and the hard cutoff.
(test_classgrade.py checks the same policy through real nbgrader, from timestamp.txt and the gradebook's due date.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

from rnncourse.latepenalty import LatePenalty

ROOT = Path(__file__).resolve().parents[1]
HOUR, DAY = 3600, 86400


def policy(**settings) -> LatePenalty:
    return LatePenalty(config=Config({"LatePenalty": settings}))


def course_policy() -> LatePenalty:
    """The plugin exactly as nbgrader_config.py configures it."""
    return LatePenalty(config=PyFileConfigLoader("nbgrader_config.py", path=str(ROOT)).load_config())


@pytest.mark.parametrize("seconds_late, fraction", [
    (0, 0.0),                 # on time: exactly at the due date
    (1, 0.1),                 # one second late starts the first day
    (DAY - 1, 0.1),
    (DAY, 0.1),               # a full day late is still the first day
    (DAY + 1, 0.2),           # ... one second more starts the second
    (2 * DAY, 0.2),
    (2 * DAY + 1, 0.3),
    (3 * DAY, 0.3),           # the last second before the cutoff
    (3 * DAY + 1, 1.0),       # past the cutoff: score 0
    (30 * DAY, 1.0),
])
def test_course_policy_per_started_day_with_cutoff(seconds_late, fraction):
    assert course_policy().fraction_lost(seconds_late) == pytest.approx(fraction)


@pytest.mark.parametrize("seconds_late, fraction", [
    (1, 0.05), (HOUR, 0.05), (HOUR + 1, 0.10), (10 * HOUR, 0.50), (10 * HOUR + 1, 1.0),
])
def test_hourly_policy(seconds_late, fraction):
    assert policy(unit="hour", penalty_per_unit=0.05, cutoff_units=10).fraction_lost(seconds_late) \
        == pytest.approx(fraction)


def test_penalty_never_exceeds_the_score_before_the_cutoff():
    steep = policy(unit="day", penalty_per_unit=0.4, cutoff_units=5)
    assert steep.fraction_lost(3 * DAY) == 1.0


def test_penalty_is_a_fraction_of_each_notebooks_score_so_the_assignment_loses_the_stated_share():
    """nbgrader calls the plugin once per notebook; 20% of each notebook is 20% of the assignment."""
    plugin = course_policy()
    notebook_scores = [12, 16, 9.5]
    penalties = [plugin.late_submission_penalty("s", score, DAY + 5) for score in notebook_scores]
    assert sum(penalties) == pytest.approx(0.2 * sum(notebook_scores))


def test_per_assignment_override_applies_only_to_that_assignment():
    plugin = policy(assignments={"hw10": {"unit": "hour", "penalty_per_unit": 0.02, "cutoff_units": 48}})
    assert plugin.fraction_lost(2 * HOUR, "hw10") == pytest.approx(0.04)
    assert plugin.fraction_lost(2 * HOUR, "section09") == pytest.approx(0.1)
    assert plugin.fraction_lost(48 * HOUR + 1, "hw10") == 1.0


def test_bad_policy_settings_are_refused_with_the_reason():
    with pytest.raises(Exception, match="unknown settings"):
        policy(assignments={"hw10": {"penalty": 0.1}})
    with pytest.raises(Exception, match="hour' or 'day"):
        policy(assignments={"hw10": {"unit": "week"}})
    with pytest.raises(Exception):
        policy(penalty_per_unit=1.5)


def test_policy_reads_as_a_syllabus_sentence():
    assert course_policy().describe() == "10% of the score per started day late; more than 3 days late scores 0"
