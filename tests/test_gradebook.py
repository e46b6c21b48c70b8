"""A new gradebook is stamped with the newest revision of nbgrader's schema. nbgrader finds it by starting
`alembic heads` (two CPU seconds, and only where `alembic` is on PATH); every nbgrader process of the course
reads it from the migration scripts instead (autograder/host/gradebook.py), and gets the same revision."""

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from nbgrader.dbutil import _temp_alembic_ini

from autograder.host import gradebook
from autograder.host.course import ROOT, copy_course


def test_the_revision_read_in_process_is_the_one_alembic_names():
    with _temp_alembic_ini("sqlite:////tmp/gradebook.db") as ini:
        out = subprocess.check_output([str(Path(sys.executable).parent / "alembic"), "-c", ini, "heads"], text=True)
    assert gradebook.alembic_head() == out.split("\n")[0].split(" ")[0]


def test_nbgrader_stamps_a_new_gradebook_without_starting_alembic(tmp_path):
    course = copy_course(tmp_path / "course")
    done = subprocess.run([sys.executable, "-m", "nbgrader", "db", "student", "add", "s1",
                           f"--CourseDirectory.root={course.root}", f"--CourseDirectory.db_url={course.db}"],
                          cwd=ROOT, env={**os.environ, "PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    with sqlite3.connect(course.root / "gradebook.db") as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [(gradebook.alembic_head(),)]
        assert db.execute("SELECT id FROM student").fetchall() == [("s1",)]
