"""The exchange on the hub: a student's submission readable by the grader account and its author only
(``PrivateSubmit``, in every student's server), and collected only from its author, as data (``CheckedCollect``,
in the course service).

nbgrader's own submit leaves the submission's folder world-writable and its files world-readable, hidden only
by a name nobody else can list (the inbound folder is not listable). ``PrivateSubmit`` (set for every server
by ``make_class``'s Jupyter config) keeps that layout and closes it: the folder 0770, its folders 0750 and its
files 0640, all in the group of the inbound folder (the grader account's), which a new entry there inherits
(setgid). The author keeps his own copy in his private home; the grader account collects it.

The inbound folder is world-writable, so a folder there may be named for someone else: nbgrader's collect only
warns, and takes the newest folder by its name, so a classmate's folder with a later date would replace a
student's work. ``CheckedCollect`` takes, for each student, the newest folder that student made, and copies it
as data (``autograder.host.datafiles``: regular files and folders only, never a link or a FIFO, which would
block nbgrader's copy and so every student's collect), so one student's folder costs no other anything.
"""

import os
import pwd
import secrets
import stat
from datetime import datetime

from nbgrader.exchange.default.collect import ExchangeCollect
from nbgrader.exchange.default.submit import ExchangeSubmit

from ..host.datafiles import copy_data

FOLDER, SUBFOLDER, FILE = 0o770, 0o750, 0o640
OLDEST = datetime(1970, 1, 1)


class PrivateSubmit(ExchangeSubmit):
    """nbgrader's submit, with the submission in the grader's group and closed to everyone else."""

    def do_copy(self, src, dest, log=None):
        """Into inbound: the folder made first, so that it and everything written into it (the notebooks, then
        nbgrader's timestamp and secret) get inbound's group; nbgrader's copy would reset the folder's mode."""
        if os.path.dirname(dest) != self.inbound_path:  # the student's own cached copy
            return super().do_copy(src, dest, log)
        os.mkdir(dest)
        staging = os.path.join(dest, f".copy-{secrets.token_hex(8)}")
        super().do_copy(src, staging, log)  # nbgrader's size limits and ignore patterns
        for name in os.listdir(staging):
            os.rename(os.path.join(staging, name), os.path.join(dest, name))
        os.rmdir(staging)

    def copy_files(self):
        super().copy_files()
        dest = os.path.join(self.inbound_path, self.assignment_filename)
        for folder, dirs, files in os.walk(dest):
            for name in files:
                os.chmod(os.path.join(folder, name), FILE)
            for name in dirs:
                os.chmod(os.path.join(folder, name), SUBFOLDER)
        os.chmod(dest, FOLDER)


def made_by(path, student: str) -> bool:
    """``path`` is a folder (not a link) that ``student``'s own Unix user made."""
    try:
        st = os.lstat(path)
        return stat.S_ISDIR(st.st_mode) and st.st_uid == pwd.getpwnam(student).pw_uid
    except (OSError, KeyError):
        return False


class CheckedCollect(ExchangeCollect):
    """nbgrader's collect over the submissions their students made, each copied as data."""

    def _path_to_record(self, path):
        """nbgrader's record of a folder; one its student did not make, or whose name nbgrader cannot read (which
        would fail the whole collect), as the oldest of all, marked, so that it is never chosen."""
        name = os.path.basename(path)
        try:
            record = super()._path_to_record(path)
        except Exception:  # ExchangeError, or a date dateutil cannot parse
            record = {"username": name.split("+", 1)[0], "filename": name}
        record["own"] = "timestamp" in record and made_by(path, record["username"])
        if not record["own"]:
            record["timestamp"] = OLDEST
            self.log.warning("%s was not made by the student it names: it is not collected", name)
        return record

    def init_src(self):
        super().init_src()  # nbgrader's checks, due date and choice
        self.src_records = [record for record in self.src_records if record["own"]]

    def do_copy(self, src, dest, log=None):
        _, notes = copy_data(src, dest)
        for note in notes:
            self.log.warning("%s: %s", os.path.basename(src), note)
