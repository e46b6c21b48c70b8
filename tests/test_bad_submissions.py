"""Broken submissions through `make autograde`: the batch finishes, each gets what its working parts
earn and a message saying what happened, and the other students' grades are untouched.

One batch grades the whole corpus (tests/corpus/bad.py) plus two control students, two at a time, in a
throwaway course; the tests below read its gradebook, graded notebooks and grading log.
"""

import json

import nbformat
import pytest
from corpus import A, expect_case, make_autograde
from corpus.bad import CASES, CONTROLS, OTHER, other_assignment_source

from autograder.demo import PLANTED
from autograder.host import report
from autograder.host.submissions import reference_submission, submit


@pytest.fixture(scope="module")
def graded(tmp_path_factory, released):
    course = released(tmp_path_factory.mktemp("bad"), A)
    other = course.root / "source" / OTHER
    other.mkdir()
    nbformat.write(other_assignment_source(), other / f"{OTHER}.ipynb")
    course.nbgrader("generate_assignment", OTHER, "--force")
    for case in CASES:
        case.build(course, case.name)
    submit(course, "reference", A, reference_submission(course, A))
    submit(course, "planted_bug", A, reference_submission(course, A, PLANTED[A]))
    done = make_autograde(course)
    scores = report.by_exercise(report.scores(course))
    assert course.feedback(A)[0]
    return course, done, scores


def _graded_text(course, student):
    path = course.notebook("autograded", A, student)
    return path.read_text() if path.exists() else ""


def _log(course, student):
    path = course.dir("autograded") / ".grading" / "logs" / A / f"{student}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_the_batch_finishes_and_reports_every_student(graded):
    course, done, _ = graded
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "sandbox: bubblewrap" in done.stdout, done.stdout[:2000]
    assert "2 job(s) at a time" in done.stdout
    for student in [c.name for c in CASES] + list(CONTROLS):
        assert f"{A} / {student}: graded" in done.stdout, (student, done.stdout[-4000:])


def test_every_submission_has_every_grade_in_the_gradebook(graded):
    course, _, scores = graded
    exercises = {"sigmoid", "lstm_cell", "load_from_torch"}
    for student in [c.name for c in CASES] + list(CONTROLS):
        assert {k[2] for k in scores if k[0] == student} == exercises, student


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_broken_submission_gets_what_works_and_a_message(graded, case):
    course, _, scores = graded
    text = _graded_text(course, case.name)
    assert text, f"no graded notebook for {case.name}"
    expect_case(case, scores, text)
    kinds = {r.get("kind") for r in _log(course, case.name)}
    assert case.logged <= kinds, f"{case.about}: grading log has {sorted(kinds)}"
    feedback = course.dir("feedback") / case.name / A / f"{A}.html"
    assert feedback.exists(), f"no feedback for {case.name}"


def test_the_other_students_are_untouched(graded):
    _, _, scores = graded
    for student, want in CONTROLS.items():
        assert {ex: scores[(student, A, ex)][0] for ex in want} == want, student


def test_the_notes_reach_the_feedback(graded):
    course, _, _ = graded
    html = (course.dir("feedback") / "corrupt_json" / A / f"{A}.html").read_text()
    assert "Notes from the grader" in html and "is not valid JSON" in html
    html = (course.dir("feedback") / "os_abort" / A / f"{A}.html").read_text()
    assert "KernelStopped" in html


def test_submitted_files_are_left_as_they_were(graded):
    course, _, _ = graded
    corrupt = course.notebook("submitted", A, "corrupt_json").read_bytes()
    assert corrupt and not corrupt.rstrip().endswith(b"}")  # still the student's half notebook
    assert course.notebook("submitted", A, "empty_file").read_bytes() == b""
