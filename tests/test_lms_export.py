"""`make grades FORMAT=canvas|moodle`: the grade-import CSVs of Canvas and Moodle, on a real SQLite gradebook.

The gradebook is filled through nbgrader's own API (the release's grade cells, then submissions with scores),
so nothing is graded here. The documented forms the CSVs must have:

- Canvas, "How do I import grades in the Gradebook?" (Instructor Guide): columns Student, ID, SIS User ID,
  SIS Login ID, Section, then one column per assignment; an optional second row "Points Possible".
- Moodle, "Grade import" (docs.moodle.org/en/Grade_import): the CSV export's form, First name, Last name,
  ID number, Institution, Department, Email address, then one column per grade item; "ID number" maps to
  useridnumber on upload.
"""

import csv
import os
import subprocess

import pytest
from nbgrader.api import Gradebook

from autograder import cli
from autograder.host import report
from autograder.host.course import ROOT

A = "01_lstm_cell"
STUDENTS = {"ada": ("Ada", "Lovelace", "ada@example.org", 1.0), "alan": ("Alan", "Turing", None, 0.5),
            "grace": (None, None, None, 0.0)}  # id -> first, last, email, share of each cell's points


@pytest.fixture(scope="module")
def course(tmp_path_factory, released):
    course = released(tmp_path_factory.mktemp("lms"), A)
    with Gradebook(course.db) as gb:
        for student, (first, last, email, share) in STUDENTS.items():
            gb.update_or_create_student(student, first_name=first, last_name=last, email=email)
            if student == "grace":
                continue  # nothing submitted: 0 in the LMS
            for notebook in gb.add_submission(A, student).notebooks:
                for grade in notebook.grades:
                    grade.auto_score = share * grade.max_score
                    grade.needs_manual_grade = False
        gb.db.commit()
        top = gb.find_assignment(A).max_score
    return course, top


def _read(path):
    with open(path, newline="") as fh:
        return list(csv.reader(fh))


def test_canvas_csv_has_the_documented_header_points_possible_and_a_row_per_student(course, tmp_path):
    course, top = course
    report.write_lms_csv(course, "canvas", tmp_path / "canvas.csv")
    header, points, *rows = _read(tmp_path / "canvas.csv")
    assert header == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", A]
    assert points == ["Points Possible", "", "", "", "", f"{top:g}"]
    assert ["Lovelace, Ada", "", "ada", "ada", "", f"{top:g}"] in rows
    assert ["Turing, Alan", "", "alan", "alan", "", f"{top / 2:g}"] in rows
    assert ["grace", "", "grace", "grace", "", "0"] in rows
    assert len(rows) == len(STUDENTS)


def test_moodle_csv_has_the_documented_header_and_a_row_per_student(course, tmp_path):
    course, top = course
    report.write_lms_csv(course, "moodle", tmp_path / "moodle.csv")
    header, *rows = _read(tmp_path / "moodle.csv")
    assert header == ["First name", "Last name", "ID number", "Institution", "Department", "Email address", A]
    assert ["Ada", "Lovelace", "ada", "", "", "ada@example.org", f"{top:g}"] in rows
    assert ["Alan", "Turing", "alan", "", "", "", f"{top / 2:g}"] in rows
    assert len(rows) == len(STUDENTS)


def test_the_lms_totals_are_the_default_csvs(course, tmp_path):
    course, _ = course
    cli.grades(course)
    per_grade = _read(course.root / "grades.csv")[1:]
    report.write_lms_csv(course, "moodle", tmp_path / "moodle.csv")
    for row in _read(tmp_path / "moodle.csv")[1:]:
        assert float(row[-1]) == pytest.approx(sum(float(r[4]) for r in per_grade if r[0] == row[2]))


def test_make_grades_format_writes_the_lms_csv_and_rejects_an_unknown_one(course, monkeypatch, capsys):
    course, _ = course
    env = {k: v for k, v in os.environ.items() if k not in ("DB_URL", "MAKEFLAGS", "MFLAGS")}
    done = subprocess.run(["make", "-s", "grades", "FORMAT=canvas", f"COURSE_ROOT={course.root}"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"grades-canvas.csv: {course.root / 'grades-canvas.csv'}" in done.stdout
    assert _read(course.root / "grades-canvas.csv")[0][:5] == report.CANVAS_HEADER
    monkeypatch.setenv("COURSE_ROOT", str(course.root))
    with pytest.raises(SystemExit):
        cli.main(["grades", "--format", "blackboard"])
    assert "blackboard" in capsys.readouterr().err
