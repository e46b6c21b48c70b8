"""nbgrader's own routes grade as ``make autograde`` does: ``nbgrader autograde`` (the CLI), the API behind the
Formgrader's Autograde button, and ``nbgrader generate_feedback``; where grading cannot be done right, they
refuse, exit non-zero and leave the gradebook as it was."""

import json
import os
import subprocess
import sys

import pytest
from corpus import FULL, A

from autograder.demo import PLANTED
from autograder.host import report
from autograder.host.batch import grade
from autograder.host.course import ROOT
from autograder.host.sandbox import BWRAP_ENV
from autograder.host.submissions import reference_submission, submit

SEED = {"LSTM_GRADER_SEED": "20261206"}
STUDENTS = ("reference", "planted_bug")


@pytest.fixture(scope="module")
def course(tmp_path_factory, released):
    course = released(tmp_path_factory.mktemp("route"), A)
    submit(course, "reference", A, reference_submission(course, A))
    submit(course, "planted_bug", A, reference_submission(course, A, PLANTED[A]))
    return course


def nbgrader(course, *args, env=None):
    return course.nbgrader(*args, check=False, env={**SEED, **(env or {})}, timeout=900)


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else value


def verdicts(course, student):
    """The graded notebook's grading cells: grade_id -> the text of their outputs."""
    nb = json.loads(course.notebook("autograded", A, student).read_text())
    out = {}
    for cell in nb["cells"]:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("grade") and cell["cell_type"] == "code":
            out[meta["grade_id"]] = "".join(_text(o.get("text", "")) + str(o.get("evalue", ""))
                                            for o in cell["outputs"])
    return out


def graded(course):
    scores = report.by_exercise(report.scores(course))
    return ({(s, ex): v[0] for (s, a, ex), v in scores.items() if a == A},
            {s: verdicts(course, s) for s in STUDENTS})


@pytest.fixture(scope="module")
def by_make(course):
    os.environ.update(SEED)
    try:
        done = grade(course, A)
    finally:
        for k in SEED:
            os.environ.pop(k)
    assert done.returncode == 0, done.stdout
    return graded(course)


def test_the_cli_grades_as_make_autograde(course, by_make):
    scores, messages = by_make
    assert {ex: scores[("reference", ex)] for ex in FULL} == FULL
    assert scores[("planted_bug", "lstm_cell")] < FULL["lstm_cell"]
    done = nbgrader(course, "autograde", A, "--force")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "sandbox: bubblewrap" in done.stderr  # the batch's report, in nbgrader's log
    assert graded(course) == by_make
    assert "the grader got no answer from your kernel" not in json.dumps(messages)
    log = course.dir("autograded") / ".grading" / "logs" / A / "planted_bug.jsonl"
    assert any(json.loads(line).get("kind") == "verdict" for line in log.read_text().splitlines())


def test_the_cli_skips_what_is_graded_unless_forced(course, by_make):
    done = nbgrader(course, "autograde", A)
    assert done.returncode == 0, done.stderr
    for student in STUDENTS:
        assert f"Skipping existing submission of {student}" in done.stderr
    assert "No submissions to grade" in done.stderr
    assert "sandbox:" not in done.stderr


def test_the_formgrader_api_grades_one_student_as_make_autograde(course, by_make):
    """The Formgrader's Autograde button calls NbGraderAPI.autograde in the server's process."""
    script = ("import json, sys; from traitlets.config import Config; from nbgrader.apps import NbGraderAPI; "
              "from nbgrader.coursedir import CourseDirectory; from nbgrader.apps.baseapp import NbGrader; "
              "app = NbGrader(); app.load_config_file(); "
              f"app.config.CourseDirectory.root = {str(course.root)!r}; "
              f"app.config.CourseDirectory.db_url = {course.db!r}; "
              "api = NbGraderAPI(CourseDirectory(config=app.config), config=app.config); "
              f"r = api.autograde({A!r}, 'planted_bug'); print(json.dumps(r))")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=900,
                          env={**os.environ, **SEED})
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["success"], result
    assert "sandbox: bubblewrap" in result["log"]
    assert graded(course) == by_make


def test_without_a_sandbox_nothing_is_graded_and_the_gradebook_is_unchanged(course, by_make):
    before = graded(course)
    done = nbgrader(course, "autograde", A, "--force", env={BWRAP_ENV: "/nonexistent/bwrap"})
    assert done.returncode == 1
    assert "Not grading: no working bubblewrap sandbox" in done.stderr
    assert "Nothing was written into the gradebook" in done.stderr
    assert graded(course) == before


def test_generate_feedback_shows_the_batch_verdicts_and_hides_the_tests(course, by_make):
    stray = course.dir("autograded") / "planted_bug" / A / "elsewhere"
    stray.symlink_to("/etc")
    done = nbgrader(course, "generate_feedback", A, "--force")
    assert done.returncode == 0, done.stderr
    assert not stray.is_symlink()  # removed before nbgrader copied the folder
    page = (course.dir("feedback") / "planted_bug" / A / f"{A}.html").read_text()
    assert "GradingFailure" in page
    assert "### BEGIN HIDDEN TESTS" not in page
    assert not (course.dir("feedback") / "planted_bug" / A / "elsewhere").exists()
