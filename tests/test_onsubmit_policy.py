"""The on-submit service's decisions (rnncourse/onsubmit/policy.py), from plain data: which submission is graded,
when one over the rate limit is graded, what is superseded or past the cutoff. The service itself, through a hub:
tests/test_onsubmit.py and tests/test_hub_browser.py."""

import datetime as dt

import pytest
from traitlets.config import Config

from rnncourse.onsubmit import ledger, notices
from rnncourse.onsubmit.inbox import Submission
from rnncourse.onsubmit.policy import OnSubmit, plan

NOW = dt.datetime(2026, 12, 1, 12, 0, 0)
DUE = dt.datetime(2026, 12, 4, 17, 0, 0)
CUTOFF = DUE + dt.timedelta(days=3)


def policy(**settings) -> OnSubmit:
    config = Config()
    for name, value in {"max_graded": 2, "per_minutes": 60, "settle_s": 1.0, **settings}.items():
        setattr(config.OnSubmit, name, value)
    return OnSubmit(config=config)


def submission(minutes_ago: float, name: str = "", student: str = "ann") -> Submission:
    at = NOW - dt.timedelta(minutes=minutes_ago)
    return Submission(student, name or f"{student}+section09+{at}+x", "/nowhere", at, at, {})


def graded(sub: Submission, minutes_ago: float) -> dict:
    return {(sub.name, sub.version): ledger.Row(sub.student, sub.name, sub.version, ledger.GRADED, sub.time,
                                                graded_at=NOW - dt.timedelta(minutes=minutes_ago))}


def kinds(actions) -> list:
    return [(a.kind, a.submission.name) for a in actions]


def test_a_new_submission_is_graded_at_once():
    new = submission(0.5)
    assert kinds(plan([new], {}, NOW, policy(), DUE, CUTOFF)) == [("grade", new.name)]


def test_a_folder_still_being_written_waits_for_the_next_round():
    assert plan([submission(0.001)], {}, NOW, policy(), DUE, CUTOFF) == []


def test_a_graded_submission_is_not_graded_again():
    done = submission(10)
    assert plan([done], graded(done, 9), NOW, policy(), DUE, CUTOFF) == []


def test_only_the_newest_is_graded_and_older_ungraded_ones_are_superseded():
    old, new = submission(5), submission(2)
    assert kinds(plan([old, new], {}, NOW, policy(), DUE, CUTOFF)) == [("superseded", old.name), ("grade", new.name)]


def test_over_the_limit_waits_until_the_oldest_grade_leaves_the_window():
    first, second, third = submission(50), submission(20), submission(1)
    rows = {**graded(first, 49), **graded(second, 19)}
    actions = plan([first, second, third], rows, NOW, policy(), DUE, CUTOFF)
    assert kinds(actions) == [("waiting", third.name)]
    assert actions[0].eligible_at == NOW - dt.timedelta(minutes=49) + dt.timedelta(minutes=60)
    words = notices.text(ledger.WAITING, third.time, actions[0].eligible_at, limit="2 graded in 60 minutes", due=DUE)
    assert "will be graded at 2026-12-01 12:11 UTC" in words and "2 graded in 60 minutes" in words
    # told once; graded when the slot comes
    rows[(third.name, third.version)] = ledger.Row("ann", third.name, third.version, ledger.WAITING, third.time,
                                                   eligible_at=actions[0].eligible_at)
    assert plan([first, second, third], rows, NOW, policy(), DUE, CUTOFF) == []
    later = NOW + dt.timedelta(minutes=11, seconds=1)
    assert kinds(plan([first, second, third], rows, later, policy(), DUE, CUTOFF)) == [("grade", third.name)]


def test_the_due_date_comes_before_the_window_frees():
    first, second, third = submission(50), submission(20), submission(1)
    rows = {**graded(first, 49), **graded(second, 19)}
    due = NOW + dt.timedelta(minutes=5)
    actions = plan([first, second, third], rows, NOW, policy(), due, due + dt.timedelta(days=3))
    assert actions[0].eligible_at == due
    assert f"It will be graded at the due date, {notices.when(due)}" in notices.text(ledger.WAITING, third.time, due,
                                                                                    limit="", due=due)


def test_no_limit_when_the_window_is_zero():
    subs = [submission(50), submission(20), submission(1)]
    rows = {**graded(subs[0], 49), **graded(subs[1], 19)}
    assert kinds(plan(subs, rows, NOW, policy(per_minutes=0), DUE, CUTOFF)) == [("grade", subs[2].name)]


def test_after_the_cutoff_nothing_is_graded_and_the_grade_stays_on_the_last_one_before():
    before = submission(60)
    after = submission(1)
    cutoff = NOW - dt.timedelta(minutes=30)
    actions = plan([before, after], graded(before, 59), NOW, policy(), cutoff - dt.timedelta(days=3), cutoff)
    assert kinds(actions) == [("after_cutoff", after.name)]
    assert "your grade stays on your last submission before the cutoff" in notices.text(
        ledger.AFTER_CUTOFF, after.time, cutoff=cutoff)


@pytest.mark.parametrize("state", [ledger.FAILED, ledger.SUPERSEDED])
def test_a_final_state_is_left_alone(state):
    sub = submission(5)
    rows = {(sub.name, sub.version): ledger.Row("ann", sub.name, sub.version, state, sub.time)}
    assert plan([sub], rows, NOW, policy(), DUE, CUTOFF) == []


def test_a_changed_folder_is_a_new_version_and_graded_again():
    sub = submission(10)
    rows = graded(sub, 9)
    touched = Submission(sub.student, sub.name, sub.path, sub.time, NOW - dt.timedelta(seconds=5), {})
    assert kinds(plan([touched], rows, NOW, policy(), DUE, CUTOFF)) == [("grade", sub.name)]
