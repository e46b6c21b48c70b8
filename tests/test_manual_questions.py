"""Every answer graded by hand is asked for: in the release, each manually graded cell (nbgrader
`solution` and `grade`, markdown) follows a cell that asks a question. Without it a student sees only
"YOUR ANSWER HERE", with the question left in the instructor's copy."""

import re

import nbformat
import pytest

from autograder.host.course import ROOT, Course
from autograder.host.submissions import nbgrader_meta, read

ASSIGNMENTS = Course().assignments
ASKS = re.compile(r"\?|\*\*Question\b")


def manually_graded(cell) -> bool:
    meta = nbgrader_meta(cell)
    return cell.cell_type == "markdown" and bool(meta.get("solution")) and bool(meta.get("grade"))


def unasked(nb) -> list[str]:
    """grade_ids of the manually graded cells that no question precedes."""
    return [nbgrader_meta(cell)["grade_id"] for k, cell in enumerate(nb.cells)
            if manually_graded(cell) and not (k > 0 and ASKS.search(nb.cells[k - 1].source))]


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_every_hand_graded_answer_follows_its_question(assignment):
    nb = read(ROOT / "notebooks" / assignment / f"{assignment}.ipynb")
    assert not unasked(nb), f"notebooks/{assignment}: no question before {unasked(nb)}"


def test_the_course_has_a_hand_graded_answer():
    """Otherwise the test above checks nothing."""
    assert any(manually_graded(cell) for a in ASSIGNMENTS
               for cell in read(ROOT / "notebooks" / a / f"{a}.ipynb").cells)


def test_a_missing_question_is_found():
    answer = nbformat.v4.new_markdown_cell("YOUR ANSWER HERE", metadata={
        "nbgrader": {"grade_id": "discussion", "grade": True, "solution": True, "points": 2}})
    silent = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("Look at the plots before you answer."),
                                             answer])
    asked = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("**Question.** Why?"), answer])
    first = nbformat.v4.new_notebook(cells=[answer])
    assert unasked(silent) == ["discussion"]
    assert unasked(first) == ["discussion"]
    assert unasked(asked) == []
