"""Grading on submission: a JupyterHub service that grades each hand-in as it arrives and releases its feedback.

    policy.py     the instructor's settings (c.OnSubmit in nbgrader_config.py) and what to do with each submission
    ledger.py     what the service did with each submission, kept in the gradebook (its only state besides the exchange)
    inbox.py      the exchange's submissions, each with the time the filesystem vouches for
    notices.py    the words a student fetches as feedback while a submission waits, or when it will not be graded
    scoreonly.py  the preprocessor that cuts on-submit feedback down to the score
    task.py       what a warm worker does for one student: grade (the course's runner) and generate feedback
    service.py    the loop: scan, decide, collect, grade on warm workers, release, record
"""
