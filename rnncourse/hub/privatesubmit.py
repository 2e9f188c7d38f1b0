"""nbgrader's submit, leaving the submission readable by the course's staff only.

Stock submit (nbgrader 0.9.6) makes each submission folder in the exchange world-writable and its files
world-readable, "hidden from other users by the timestamp": anyone who learns a folder's name could read or replace a
classmate's work. On the course hub the exchange's inbound/ belongs to the staff group and passes it on (setgid) to
each submission folder, so here the folder becomes 0750: the student and the staff may enter it, nobody else (the
files inside keep nbgrader's modes; they cannot be reached without entering). Where inbound/ does not hand its group
on (a stock exchange), the folder keeps nbgrader's modes, or the instructor could not collect it.

This file is installed on its own into the shared course environment (it imports only nbgrader; the course package
with its grading code is not there) and chosen in that environment's nbgrader config: rnncourse/hub/envconfig.py.
"""

import os

from nbgrader.exchange.default.submit import ExchangeSubmit


class PrivateSubmit(ExchangeSubmit):

    def copy_files(self):
        super().copy_files()
        submission = os.path.join(self.inbound_path, self.assignment_filename)
        staff = os.stat(self.inbound_path).st_gid
        if os.stat(submission).st_gid == staff != os.getgid():
            os.chmod(submission, 0o750)
