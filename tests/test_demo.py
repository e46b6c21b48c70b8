"""The demo class through real nbgrader: reference full marks, untouched release zero, planted bugs
costing points on their own exercise only, feedback that shows messages but no hidden test, and the class
report: every planted mutant's bug id with the right count and students, no correct student in it."""

import contextlib
import html
import io
import re

import pytest

from autograder import cli
from autograder.demo import CLASS, CLASS_ASSIGNMENT, LATE, PLANTED, STUDENTS, class_mutations
from autograder.host import class_report, report
from autograder.host.course import copy_course
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
    for student in (*STUDENTS, *CLASS):
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


# --------------------------------------------------------------------------- the class report


@pytest.fixture(scope="module")
def report_page(demo):
    """The report the demo wrote, as the instructor reads it: {bug id: (count, [students])}, and the page."""
    course, _, printed, _ = demo
    where = re.search(r"^report:\s+(\S+)", printed, re.M)
    assert where, printed
    text = open(where.group(1)).read()
    rows = {}
    for bug, count, who in re.findall(r"<tr data-bug='([^']+)'[^>]*><td><code>[^<]*</code></td><td>(\d+)</td>"
                                      r"<td class='share'>[^<]*</td><td class='who'>([^<]*)</td>", text):
        names = [html.unescape(n) for n in who.split(", ") if n]
        counted, students = rows.get(bug, (0, []))
        rows[bug] = (counted + int(count), students + names)
    return text, rows


def _expected_bugs() -> dict[str, set[str]]:
    """bug id -> the students planted with it on notebook 1 (the class, and planted_bug)."""
    expected: dict[str, set[str]] = {}
    for student in CLASS:
        for mutation in class_mutations(student):
            expected.setdefault(mutation.bug_id, set()).add(student)
    expected.setdefault(PLANTED[CLASS_ASSIGNMENT].bug_id, set()).add("planted_bug")
    return expected


def test_the_report_lists_each_planted_mutant_with_its_count_and_students(report_page):
    text, rows = report_page
    expected = _expected_bugs()
    assert len(expected) >= 5 and max(len(s) for s in expected.values()) >= 4
    for bug, students in expected.items():
        assert bug in rows, f"{bug} is not in the report: {sorted(rows)}"
        count, listed = rows[bug]
        assert count == len(students) and sorted(listed) == sorted(students), (bug, rows[bug], students)
    for assignment, mutation in PLANTED.items():
        if mutation.bug_id:
            assert "planted_bug" in rows[mutation.bug_id][1], (assignment, mutation.bug_id)


def test_a_correct_student_never_appears_in_the_report(demo, report_page):
    course, _, _, _ = demo
    text, rows = report_page
    correct = ["reference"] + [s for s, answers in CLASS.items() if all(a.startswith("style:") for a in answers)]
    data = class_report.collect(course)
    for student in correct:
        assert not [b for b, (_, who) in rows.items() if student in who], student
        assert student not in {s for s, _, _ in data.stuck} | {s for s, _, _ in data.late}


def test_the_report_names_the_stuck_the_late_and_the_missing(demo, report_page):
    course, _, _, _ = demo
    text, _ = report_page
    data = class_report.collect(course)
    stuck = {(s, a) for s, a, _ in data.stuck}
    assert ("lena", CLASS_ASSIGNMENT) in stuck  # two mistakes, on two exercises
    several = [a for a in course.assignments
               if len(set(report.exercises(read(course.notebook("source", a))).values())) >= class_report.STUCK_AT]
    assert len(several) >= 4 and {("untouched", a) for a in several} <= stuck
    assert {(s, a) for s, a, _ in data.late} == {(s, CLASS_ASSIGNMENT) for s in LATE}
    for assignment in course.assignments:
        assert set(data.missing[assignment]) == (set() if assignment == CLASS_ASSIGNMENT else set(CLASS))
    assert data.slowest and all(seconds > 0 for seconds, _, _ in data.slowest)
    assert "<script" not in text and "data:image/png;base64," in text
    assert "BEGIN HIDDEN TESTS" not in text and "jp-Cell" not in text and "class=\"cell" not in text
