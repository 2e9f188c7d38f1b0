"""The on-submit grading service: watch the exchange, grade each new submission on warm workers, release feedback.

Each round (every OnSubmit.poll_s seconds) it lists the exchange's submissions (inbox), reads the ledger and the due
date from the gradebook, and for each student not being graded right now asks the policy what to do (policy.plan):
post a notice, or collect the submission into submitted/ (the course's trusted collect, one rename) and queue the
student on the pool. Workers stay up between submissions (interpreter, torch, the sandbox's zygote and the hidden
checks loaded once). When a worker is done the student's feedback is released to the exchange and the ledger row
written, with one log line. Nothing is kept in memory that a restart needs: see ledger.py.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import sys
import time
import warnings
from pathlib import Path

from .. import classgrade, gradestatus, workerpool
from ..course import ASSIGNMENT, NOTEBOOKS, course_config, tool_env
from . import inbox, ledger, notices, policy, task

log = logging.getLogger("rnncourse.onsubmit")


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class Service:
    def __init__(self, course_dir: Path):
        from nbgrader.auth import Authenticator
        from nbgrader.coursedir import CourseDirectory

        self.course_dir = Path(course_dir).resolve()
        os.environ.update(tool_env())
        warnings.filterwarnings("ignore", module="nbgrader")
        self.config = course_config(self.course_dir)
        self.policy = policy.OnSubmit(config=self.config)
        self.coursedir = CourseDirectory(config=self.config)
        self.coursedir.assignment_id = ASSIGNMENT
        self.authenticator = Authenticator(config=self.config)
        self.collector = inbox.collector(self.coursedir, self.authenticator, self.config)
        self.feedback_dir = os.path.join(self.collector.course_path, "feedback")
        course = classgrade._course(str(self.course_dir), None)
        self.engine, self.course_id = course.engine, course.course_id
        ledger.ensure_table(self.engine)
        with self.engine.begin() as connection:
            gradestatus.ensure_table(connection)  # the runner's table, made by its own runs otherwise
        self.pool: workerpool.LocalPool | None = None
        self.grading: dict[str, inbox.Submission] = {}  # student -> the submission on a worker
        self.said_no_due_date = False
        self.run_id = f"on-submit-{classgrade.new_run_id()}"
        self.log_file = self.course_dir / "logs" / "on-submit.log"
        self.log_file.parent.mkdir(exist_ok=True)

    # ---- the loop -----------------------------------------------------------------------------------------------

    def serve(self, stop_when_idle: bool = False) -> None:
        """Run until SIGTERM / SIGINT (the hub stops its services so); stop_when_idle: until nothing is left to do."""
        self.say(f"on-submit grading {'on' if self.policy.enabled else 'OFF'} for {self.course_id}/{ASSIGNMENT}: "
                 f"feedback shows {self.policy.feedback}; "
                 + (f"at most {self.policy.max_graded} graded per {self.policy.per_minutes:g} min per student"
                    if self.policy.per_minutes else "no rate limit")
                 + f"; exchange {self.collector.inbound_path}")
        if not self.policy.enabled:
            while not stop_when_idle:
                time.sleep(60)  # stay up (the hub restarts a service that exits); nothing to grade
            return
        self.hold_the_lock()
        self.pool = classgrade.pool_for(self.course_dir, self.policy.workers or None)
        self.pool.open()
        try:
            while True:
                queued = self.round()
                if not self.pool.busy:
                    if stop_when_idle and not queued:
                        return
                    time.sleep(self.policy.poll_s)
                    continue
                for event in self.pool.poll(self.policy.poll_s):
                    self.finish(event)
        finally:
            self.pool.stop()

    def hold_the_lock(self) -> None:
        """One service per course: a second one (a hub killed without stopping its services, then started again)
        waits here until the first is gone. The kernel releases the lock when its holder dies."""
        import fcntl

        self._lock = open(self.course_dir / "logs" / ".on-submit.lock", "w")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.say("another on-submit service grades this course; waiting until it stops")
            fcntl.flock(self._lock, fcntl.LOCK_EX)

    def round(self) -> int:
        """Look at the exchange once; return how many students were queued."""
        moment = now()
        due, cutoff_after = self.deadlines()
        if due is None and cutoff_after is not None:  # the late policy grades nothing without a due date
            if not self.said_no_due_date:
                self.say("not grading: the assignment has no due date, which the late policy needs; set one "
                         "(Formgrader's Edit, or `nbgrader db assignment add section09 --duedate=...`)")
                self.said_no_due_date = True
            return 0
        self.said_no_due_date = False
        rows = ledger.read(self.engine, self.course_id, ASSIGNMENT)
        by_student: dict[str, dict] = {}
        for key, row in rows.items():
            by_student.setdefault(row.student, {})[key] = row
        to_grade = []
        for student, submissions in sorted(inbox.scan(self.collector, ASSIGNMENT).items()):
            if student in self.grading:
                continue
            try:
                cutoff = None if due is None or cutoff_after is None else due + self.extension(student) + cutoff_after
                for action in policy.plan(submissions, by_student.get(student, {}), moment, self.policy, due, cutoff):
                    if action.kind == "grade":
                        to_grade.append(action.submission)
                    else:
                        self.notify(action, due, cutoff)
            except Exception:  # this student's submissions only: the class goes on
                log.exception("on-submit: %s's submissions could not be looked at", student)
        # A lone submission while workers stand idle has its notebooks graded side by side (lower latency); when
        # students queue, one worker each (the most throughput).
        side_by_side = self.policy.side_by_side and len(self.grading) + len(to_grade) < self.pool.size
        return sum(self.start(submission, side_by_side) for submission in to_grade)

    def start(self, submission: inbox.Submission, side_by_side: bool = False) -> int:
        """Collect the submission into submitted/ and queue its student."""
        if inbox.read_secret(submission) is None:  # its feedback could be neither released nor found
            self.fail(submission, "it has no submission secret (submission_secret.txt, which Submit writes): "
                                  "submit again from the Assignments list")
            return 0
        try:
            self.collector.collect_one(submission.record)
        except Exception as problem:  # this student's folder only
            self.fail(submission, f"it could not be collected ({problem})")
            return 0
        self.grading[submission.student] = submission
        self.pool.submit(workerpool.Task(submission.student, task.grade_with_feedback,
                                         (str(self.course_dir), submission.student, self.run_id,
                                          self.policy.feedback, side_by_side)))
        return 1

    def finish(self, event: workerpool.Event) -> None:
        submission = self.grading.pop(event.key)
        try:
            self.conclude(submission, event)
        except Exception as problem:  # this submission only; the service goes on with the class
            log.exception("on-submit: %s's submission %s could not be concluded", submission.student, submission.name)
            try:
                self.fail(submission, f"its feedback could not be released ({type(problem).__name__}); your "
                                      f"instructor will look at it")
            except Exception:
                log.exception("on-submit: and it could not be recorded as failed")

    def conclude(self, submission: inbox.Submission, event: workerpool.Event) -> None:
        """Release the feedback of a graded submission and record it, or record why it was not graded."""
        if event.kind != "done":
            self.fail(submission, "the grader failed on it; your instructor will look at it")
            log.error("grading %s failed: %s", event.key, event.reason)
            return
        outcome: classgrade.StudentOutcome = event.result
        if not outcome.graded:
            self.fail(submission, "; ".join(outcome.problems).split(" (log:")[0])
            return
        self.release(submission.student)
        done = now()
        score, max_score = self.gradebook_score(submission.student)
        ledger.record(self.engine, self.course_id, ASSIGNMENT, ledger.Row(
            submission.student, submission.name, submission.version, ledger.GRADED, submission.time,
            graded_at=done, score=score, max_score=max_score, seconds=(done - submission.changed).total_seconds()))
        self.say(f"graded   {submission.student:20s} received {submission.time:%H:%M:%S} graded {done:%H:%M:%S} "
                 f"score {score:g}/{max_score:g}  {(done - submission.changed).total_seconds():.1f} s from submit "
                 f"({outcome.seconds:.1f} s grading)")

    # ---- pieces -------------------------------------------------------------------------------------------------

    def release(self, student: str) -> None:
        """nbgrader's release_feedback for one student, in this process."""
        from nbgrader.exchange.default.release_feedback import ExchangeReleaseFeedback

        self.coursedir.student_id = student
        try:
            app = ExchangeReleaseFeedback(coursedir=self.coursedir, authenticator=self.authenticator,
                                          config=self.config)
            app.start()
        finally:
            self.coursedir.student_id = ""

    def gradebook_score(self, student: str) -> tuple[float, float]:
        """The student's score after the late penalty, and the maximum, as the gradebook has them now."""
        from nbgrader.api import Gradebook

        with Gradebook(self.coursedir.db_url, self.course_id) as gb:
            submission = gb.find_submission(ASSIGNMENT, student)
            return max(0.0, submission.score - (submission.late_submission_penalty or 0.0)), submission.max_score

    def deadlines(self) -> tuple[dt.datetime | None, dt.timedelta | None]:
        """The due date (gradebook) and how long after it the late policy's cutoff comes (None: no cutoff)."""
        from nbgrader.api import Gradebook, MissingEntry

        from ..latepenalty import SECONDS, LatePenalty

        with Gradebook(self.coursedir.db_url, self.course_id) as gb:
            try:
                due = gb.find_assignment(ASSIGNMENT).duedate
            except MissingEntry:
                due = None
        if not str(self.config.AssignLatePenalties.get("plugin_class", "")).endswith("LatePenalty"):
            return due, None
        rules = LatePenalty(config=self.config).policy(ASSIGNMENT)
        return due, dt.timedelta(seconds=rules["cutoff_units"] * SECONDS[rules["unit"]])

    def extension(self, student: str) -> dt.timedelta:
        from ..handinkey import extension_of

        with self.engine.connect() as connection:
            return extension_of(connection, self.course_id, student) or dt.timedelta(0)

    def notify(self, action: policy.Action, due, cutoff, reason: str = "") -> None:
        submission = action.submission
        limit = (f"you have had {self.policy.max_graded} submissions graded in the last "
                 f"{self.policy.per_minutes:g} minutes, the course's limit")
        words = notices.text(action.kind, submission.time, action.eligible_at, limit=limit, due=due, cutoff=cutoff,
                             reason=reason)
        secret = inbox.read_secret(submission)
        if secret:
            notices.post(self.feedback_dir, secret, inbox.notebook_ids(submission, NOTEBOOKS), words)
        ledger.record(self.engine, self.course_id, ASSIGNMENT, ledger.Row(
            submission.student, submission.name, submission.version, action.kind, submission.time,
            eligible_at=action.eligible_at, note=words))
        self.say(f"{action.kind:8s} {submission.student:20s} received {submission.time:%H:%M:%S}"
                 + (f" graded at {action.eligible_at:%Y-%m-%d %H:%M:%S}" if action.eligible_at else "")
                 + (f": {reason}" if reason else ""))

    def fail(self, submission: inbox.Submission, reason: str) -> None:
        self.notify(policy.Action(ledger.FAILED, submission), None, None, reason)

    def say(self, line: str) -> None:
        stamped = f"[{now():%Y-%m-%d %H:%M:%S} UTC] {line}"
        print(stamped, flush=True)
        with open(self.log_file, "a") as handle:
            handle.write(stamped + "\n")


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m rnncourse.onsubmit", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--course-dir", type=Path, default=Path.cwd())
    parser.add_argument("--until-idle", action="store_true", help="stop when nothing is left to grade")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s %(name)s] %(message)s")
    classgrade.stop_on_signals()
    try:
        Service(args.course_dir).serve(stop_when_idle=args.until_idle)
    except KeyboardInterrupt:  # the hub's stop (SIGTERM) or Ctrl-C: workers were stopped and cleaned up
        return 0
    return 0
