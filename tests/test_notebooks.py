"""Source, release and solutions: the source passes its own grading cells, the release gives nothing
away, and both generated folders are what `make assign` makes from source/."""

import json
import os

import nbformat
import pytest
from nbgrader.validator import Validator
from traitlets.config import Config

from autograder.host.course import ROOT, Course
from autograder.host.nbgrader_ext import HIDDEN_BEGIN
from autograder.host.submissions import BEGIN, is_solution, nbgrader_meta, read, reference_answers

ASSIGNMENTS = Course().assignments


def test_every_notebook_of_the_series_is_there():
    assert ASSIGNMENTS[:4] == ["01_lstm_cell", "02_stacked_lstm", "03_coupled_gate", "04_peepholes"]


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_source_is_committed_clean_and_alone(assignment):
    folder = ROOT / "source" / assignment
    assert sorted(p.name for p in folder.iterdir()) == [f"{assignment}.ipynb"], (
        "nbgrader copies every file in source/<assignment>/ to students: keep test code in autograder/"
    )
    nb = read(folder / f"{assignment}.ipynb")
    assert nb.metadata.kernelspec.name == "lstm-course"
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, cell.source[:80]
    for cell in nb.cells:
        if nbgrader_meta(cell).get("grade") and cell.cell_type == "code":
            assert HIDDEN_BEGIN in cell.source, f"grading cell without hidden tests: {cell.source[:80]}"
            assert "autograder.checks" in cell.source


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_source_passes_every_grading_cell(assignment):
    """nbgrader's validator executes the source; `nbgrader validate` exits 0 even on failure, so read it."""
    folder = ROOT / "source" / assignment
    cwd = os.getcwd()
    try:
        # The course kernel and a generous cell timeout (notebook 6 compiles), as nbgrader_config.py sets them.
        config = Config({"Execute": {"timeout": 600, "kernel_name": "lstm-course"}})
        result = Validator(config=config).validate(str(folder / f"{assignment}.ipynb"))
    finally:
        os.chdir(cwd)
    assert result == {}, json.dumps(
        {k: [{kk: vv for kk, vv in v.items() if kk != "error"} for v in vs] for k, vs in result.items()},
        indent=1)[:4000]


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_given_code_is_the_earlier_reference(assignment):
    """A later notebook ships earlier exercises as locked given cells equal to their reference answers."""
    nb = read(ROOT / "source" / assignment / f"{assignment}.ipynb")
    earlier = {}
    for other in ASSIGNMENTS[: ASSIGNMENTS.index(assignment)]:
        earlier.update(reference_answers(read(ROOT / "source" / other / f"{other}.ipynb")))
    for cell in nb.cells:
        gid = nbgrader_meta(cell).get("grade_id", "")
        if gid.startswith("given_") and cell.cell_type == "code":
            assert nbgrader_meta(cell)["locked"]
            pieces = [p for p in cell.source.split("\n\n\n") if p.strip()]
            for piece in pieces:
                assert piece in earlier.values(), f"{assignment}:{gid} is not a reference answer of an earlier notebook"


def _cells(nb):
    return [(c.cell_type, c.source, nbgrader_meta(c).get("grade_id")) for c in nb.cells]


def test_release_is_what_generate_assignment_makes(released_course):
    for assignment in ASSIGNMENTS:
        fresh = read(released_course.notebook("notebooks", assignment))
        committed = read(ROOT / "notebooks" / assignment / f"{assignment}.ipynb")
        assert _cells(committed) == _cells(fresh), f"notebooks/{assignment} is stale: run `make assign`"
        assert committed.metadata == fresh.metadata
    generated = sorted(p.relative_to(released_course.dir("notebooks")) for p in
                       released_course.dir("notebooks").rglob("*") if p.is_file())
    committed = sorted(p.relative_to(ROOT / "notebooks") for p in (ROOT / "notebooks").rglob("*")
                       if p.is_file() and ".ipynb_checkpoints" not in p.parts)
    assert committed == generated


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_release_gives_no_solution_and_no_hidden_test(assignment):
    nb = read(ROOT / "notebooks" / assignment / f"{assignment}.ipynb")
    text = nbformat.writes(nb)
    assert BEGIN not in text and "### END SOLUTION" not in text
    assert HIDDEN_BEGIN not in text and "autograder" not in text
    source = read(ROOT / "source" / assignment / f"{assignment}.ipynb")
    answers = reference_answers(source)
    for cell in nb.cells:
        if is_solution(cell):
            gid = nbgrader_meta(cell)["grade_id"]
            assert cell.source != answers[gid]
            assert "raise NotImplementedError()" in cell.source or "YOUR ANSWER HERE" in cell.source


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_solutions_are_the_executed_source(assignment):
    """solutions/ holds the source's cells, executed by `make assign`, with their figures, without errors."""
    solved = read(ROOT / "solutions" / assignment / f"{assignment}.ipynb")
    source = read(ROOT / "source" / assignment / f"{assignment}.ipynb")
    assert [(c.cell_type, c.source) for c in solved.cells] == [(c.cell_type, c.source) for c in source.cells], (
        f"solutions/{assignment} is stale: run `make assign`"
    )
    code = [c for c in solved.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code), "every code cell of a solution is executed"
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors, errors[0]["evalue"]
    images = [o for c in code for o in c.outputs if "image/png" in o.get("data", {})]
    assert images, "the executed solution keeps its figures"
