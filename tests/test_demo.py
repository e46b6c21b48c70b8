"""The demo class through real nbgrader: reference full marks, untouched release zero, planted bugs
costing points on their own exercise only, and feedback that shows messages but no hidden test."""

import contextlib
import html
import io
import re

import pytest

from autograder import cli
from autograder.host import report
from autograder.host.course import copy_course
from autograder.host.demo import PLANTED
from autograder.host.submissions import read


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    course = copy_course(tmp_path_factory.mktemp("demo"))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = cli.demo(course)
    return course, status, out.getvalue(), report.scores(course)


def _by(rows, student):
    return [r for r in rows if r.student == student]


def test_demo_finishes_and_prints_the_table(demo):
    course, status, printed, rows = demo
    assert status == 0, printed
    for student in ("reference", "untouched", "planted_bug"):
        assert student in printed
    for assignment in course.assignments:
        assert f"{assignment}:" in printed
    assert re.search(r"^total\s+\S+/\S+", printed, re.M)
    assert (course.root / "grades.csv").read_text().count("\n") == len(rows) + 1


def test_reference_gets_full_marks(demo):
    course, _, _, rows = demo
    mine = _by(rows, "reference")
    assert {r.assignment for r in mine} == set(course.assignments)
    auto = [r for r in mine if not _manual(course, r)]
    assert auto and all(r.score == r.max_score for r in auto), [r for r in auto if r.score != r.max_score]


def test_untouched_release_fails_every_grading_cell(demo):
    course, _, _, rows = demo
    mine = _by(rows, "untouched")
    assert mine and all(r.score == 0 for r in mine), [r for r in mine if r.score]


def test_planted_bug_costs_points_only_on_its_exercise(demo):
    course, _, _, rows = demo
    for assignment, mutation in PLANTED.items():
        totals = report.by_exercise([r for r in rows if r.assignment == assignment])
        for (student, _, exercise), (score, top) in totals.items():
            if student != "planted_bug":
                continue
            if exercise == mutation.cell:
                assert score < top, f"{mutation.name} was not caught on {assignment}:{exercise}"
            elif not any(_manual(course, r) for r in rows if r.exercise == exercise):
                assert score == top, f"{mutation.name} also cost points on {assignment}:{exercise}"


def _feedback_text(course, student, assignment):
    page = (course.dir("feedback") / student / assignment / f"{assignment}.html").read_text()
    return html.unescape(re.sub(r"<[^>]+>", "", page))


def test_feedback_names_the_bug_and_hides_the_tests(demo):
    course, _, _, _ = demo
    text = _feedback_text(course, "planted_bug", "01_lstm_cell")
    assert "h_t = o_t * tanh(c_t)" in text and "GradingFailure" in text
    for assignment in course.assignments:
        for student in ("reference", "untouched", "planted_bug"):
            text = _feedback_text(course, student, assignment)
            assert "BEGIN HIDDEN TESTS" not in text
            assert "autograder.checks" not in text
            assert not re.search(r"hidden\.[a-z_]+\(", text)


def _manual(course, row) -> bool:
    nb = read(course.notebook("source", row.assignment))
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade_id") == row.grade_id:
            return bool(meta.get("solution"))
    return False
