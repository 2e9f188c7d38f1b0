"""nbgrader configuration for Section 9: Recurrent Neural Networks & LSTMs.

This file makes the repository root an nbgrader course directory: `source/`, `release/`, `submitted/`,
`autograded/` and `feedback/` live beside it, and the gradebook is `gradebook.db` here. Run nbgrader from this
directory with the project's environment first on PATH (nbgrader shells out to `alembic`): `make <step>` does that.
"""

c = get_config()  # noqa: F821 -- injected by traitlets when nbgrader loads this file

# The course id appears in the gradebook and in exchange paths.
c.CourseDirectory.course_id = "section9-rnn"

# Per-cell time limit in seconds, for autograde *and* for the students' Validate. The slowest legitimate cell of
# the section runs in a few seconds on a laptop; 60 s leaves room for a busy grading machine while an infinite loop
# costs one minute of its own cell and nothing else (nbgrader interrupts the kernel and moves on).
c.Execute.timeout = 60
c.Execute.interrupt_on_timeout = True

# A student who deletes a test cell must not escape its points: re-add missing test cells from the gradebook
# (nbgrader leaves this off by default).
c.OverwriteCells.add_missing_cells = True

# A submission that floods its output must not bloat the autograded notebooks or feedback: keep at most 200 lines
# of stream output per cell and 60 traceback lines.
c.LimitOutput.max_lines = 200
c.LimitOutput.max_traceback = 60

# nbgrader scores a test cell 0 if it wrote *anything* to stderr, and a warning is not an error. PyTorch warns on
# stderr in two forms: C++ warnings "[W<date> <time> <file>:<line>] ..." (e.g. NNPACK on unsupported CPUs) and Python
# warnings "<file>:<line>: UserWarning: ..." (which name the student's cell when raised from torch's C++ core).
# IgnorePattern (disabled by default) drops stderr outputs matching either form, so a warning cannot zero a correct
# answer. Real failures are error outputs, not stderr, and still score 0.
c.IgnorePattern.enabled = True
c.IgnorePattern.pattern = r"(?m)^\[W\d{4} [^\]]*\]|:\d+: \w*Warning: "

# Feedback HTML shows the autograded notebook, hidden tests included (nbgrader issues #917, #1363). Strip the
# hidden-test code from feedback; the failure messages the checks print stay, so students see what is wrong. A
# results table on top lists each test: passed or failed, points, the message (rnncourse/feedback.py).
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "nbgrader.preprocessors.ClearHiddenTests",
    "rnncourse.feedback.ResultsSummary",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]

# A hand-in is regular files only: before nbgrader reads or copies a hand-in (as the instructor, following links),
# symlinks, hard links, devices, FIFOs and sockets in it are moved to refused/<student>/ and noted on the student's
# row; a refused notebook counts as not handed in (rnncourse/handins.py).
c.Autograde.pre_convert_hook = "rnncourse.handins.before_autograde"

# Autograde runs every kernel in a sandbox (rnncourse/kernels/): no access to source/, the gradebook, other
# students or the network; memory, CPU-time, process and file-size limits. Hidden tests run here, in the grader, and
# call the student's functions in the kernel. A notebook whose kernel dies or hangs costs only its own points. Students' Validate is unchanged: only
# Autograde's list names SandboxedExecute. Limits: c.SandboxedExecute.memory_limit_mb, .cpu_time_limit_s,
# .process_limit, .file_size_limit_mb, .tmp_limit_mb, .notebook_time_limit_s, .max_output_bytes (see `nbgrader
# autograde --help-all`).
c.Autograde.sanitize_preprocessors = [  # nbgrader's, but a duplicated or made-up test cell cannot crash autograde
    "nbgrader.preprocessors.ClearOutput",
    "nbgrader.preprocessors.DeduplicateIds",
    "nbgrader.preprocessors.OverwriteKernelspec",
    "rnncourse.sanitize.OverwriteKnownCells",
    "nbgrader.preprocessors.CheckCellMetadata",
]
c.Autograde.autograde_preprocessors = [
    "rnncourse.kernels.executor.SandboxedExecute",
    "nbgrader.preprocessors.IgnorePattern",
    "nbconvert.preprocessors.ClearMetadataPreprocessor",
    "nbgrader.preprocessors.LimitOutput",
    "nbgrader.preprocessors.SaveAutoGrades",
    "nbgrader.preprocessors.AssignLatePenalties",
    "nbgrader.preprocessors.CheckCellMetadata",
]

# Late work (the homework policy): each started day late costs 10% of the score, and work more than 3 days late
# scores 0 (rnncourse/latepenalty.py; nbgrader itself offers only "none" and "zero"). The due date lives in the
# gradebook: `nbgrader db assignment add section09 --duedate="2026-11-20 17:00:00 UTC"` (the demo sets it).
c.AssignLatePenalties.plugin_class = "rnncourse.latepenalty.LatePenalty"
c.LatePenalty.unit = "day"
c.LatePenalty.penalty_per_unit = 0.10
c.LatePenalty.cutoff_units = 3

# Before any kernel starts, `make autograde` checks every hand-in and prints one table of problems
# (rnncourse/preflight.py); each student is then graded from a copy holding only the assignment's notebooks, deleted
# exercises restored from release/, and timestamp.txt. A kind listed here stops that student's grading (no_due_date:
# the whole class's) until it is fixed; any other kind only warns, as its comment says (uncomment one to block it).
c.Preflight.block = [
    "invalid_json",  # a notebook file that is not JSON; warned: graded as not submitted (0 points)
    "not_a_notebook",  # JSON that nbformat cannot read as a notebook (`[]`, no "cells"); warned: as not submitted
    "bad_id",  # an id nbgrader reads as a glob (*?[]), too long for the gradebook, or odd; warned: nothing graded
    "timestamp_missing",  # no or an empty timestamp.txt; warned: graded as on time
    "timestamp_unparseable",  # not ISO 8601 with an offset nor "2026-11-20 17:00:00.000000 UTC"; warned: on time
    "timestamp_no_offset",  # an ISO date and time without an offset ("2026-11-20T17:00:00"); warned: read as UTC
    "timestamp_future",  # later than now (c.Preflight.future_tolerance_s = 300 s of clock skew); warned: taken as is
    "no_due_date",  # a late policy but no due date in the gradebook; warned: graded without late penalties
    # "empty_notebook",  # no cells, or none of the exercises; warned: graded as the release would be (0 points)
    # "missing_exercises",  # solution or test cells deleted; warned: restored from release/ (nbgrader would fail)
    # "unknown_file",  # a file or folder that is not part of the assignment; warned: ignored, not copied for grading
    # "refused_entry",  # a link or special file set aside before grading (rnncourse/handins.py); warned: rest graded
    # "no_notebooks",  # none of the assignment's notebooks handed in; warned: every notebook scores 0
    # "metadata_changed",  # a graded cell's nbgrader metadata changed (a solution marked as a test, points raised);
    #                      # warned: the release's metadata restored for grading (nbgrader would drop the notebook)
]
# A hand-in that cannot be read at all ("unreadable": section09 is a file, say) always blocks its student only.

# `nbgrader export` writes nbgrader's grades CSV plus one column per test cell and a notes column (late, not graded,
# timed out, ...): rnncourse/classreport.py.
c.ExportApp.plugin_class = "rnncourse.classreport.GradesWithTestsExport"

# On a shared exchange (the course hub), collect only what the filesystem vouches for: a submission counts for the
# student whose account owns it, its time is the later of the claimed one and the kernel's change time, links are
# copied as links and special files not at all (rnncourse/trustedcollect.py). Formgrader's Collect uses it too.
c.ExchangeFactory.collect = "rnncourse.trustedcollect.TrustedCollect"

# Grading on submission (the course hub's section09-grader service, rnncourse/onsubmit/): each submission is collected,
# graded (sandboxed, on warm workers) and its feedback released as it arrives, so a student presses Fetch Feedback a
# minute after Submit. Read when the service starts: restart the hub after changing these.
c.OnSubmit.enabled = True  # False: the service grades nothing; grade after the deadline (make autograde) as before
# What on-submit feedback shows: "tests" = the score, each test's passed/failed and its message (hidden-test code and
# inputs are always stripped); "score" = the score only. Feedback the instructor generates later is unchanged.
c.OnSubmit.feedback = "tests"
# Per-test messages on demand would make the grader an oracle for the hidden tests: at most 3 of a student's
# submissions are graded per 60 minutes. A submission over the limit is kept and graded when the oldest of those 3
# leaves the window, or at the due date if that is sooner; the student's Fetch Feedback says so, with the time. Only a
# student's newest submission is graded, and one received after the late policy's cutoff never is: the grade stays
# on the last submission before it. per_minutes = 0 turns the limit off.
c.OnSubmit.max_graded = 3
c.OnSubmit.per_minutes = 60
# A lone submission's notebooks graded at the same time while workers stand idle: lower latency, but three kernels
# then share the cores and a busy machine risks cell time limits, so it stays off.
c.OnSubmit.side_by_side = False
