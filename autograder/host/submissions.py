"""Submissions made from answers: the release notebook with code placed in its solution cells.

This is how the demo, the bug zoo and the correct-style corpus produce notebooks that nbgrader
grades exactly as it grades a student's.
"""

import copy
from dataclasses import dataclass
from pathlib import Path

import nbformat

from ..cells import is_solution, nbgrader_meta
from .course import Course

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"


def reference_answers(source_nb) -> dict[str, str]:
    """The solution cells of a source notebook with the solution markers removed, by grade_id."""
    return {
        nbgrader_meta(cell)["grade_id"]: "\n".join(
            line for line in cell.source.splitlines() if line.strip() not in (BEGIN, END)
        )
        for cell in source_nb.cells
        if is_solution(cell)
    }


def fill(release_nb, answers: dict[str, str]):
    """A copy of the release notebook with ``answers`` in the solution cells they name."""
    nb = copy.deepcopy(release_nb)
    unknown = set(answers) - {nbgrader_meta(c).get("grade_id") for c in nb.cells if is_solution(c)}
    if unknown:
        raise KeyError(f"no solution cell named {sorted(unknown)}")
    for cell in nb.cells:
        gid = nbgrader_meta(cell).get("grade_id")
        if is_solution(cell) and gid in answers:
            cell.source = answers[gid]
    return nb


@dataclass(frozen=True)
class Mutation:
    """A realistic mistake: ``old`` replaced by ``new`` in one solution cell of the reference answers.

    ``message`` is a regular expression the student's feedback must match to count as naming the bug;
    ``bug_id`` the stable bug id the hidden tests must give it (the first failing grading cell of ``cell``'s
    exercise, or grading cell ``at``).
    """

    name: str
    assignment: str
    cell: str
    old: str
    new: str
    description: str = ""
    message: str = ""
    bug_id: str = ""
    at: str = ""

    def apply(self, answers: dict[str, str]) -> dict[str, str]:
        code = answers[self.cell]
        if code.count(self.old) != 1:
            raise ValueError(f"{self.name}: {self.old!r} occurs {code.count(self.old)} times in {self.cell}")
        return {**answers, self.cell: code.replace(self.old, self.new)}


def read(path: Path):
    return nbformat.read(path, as_version=4)


def submit(course: Course, student: str, assignment: str, nb) -> Path:
    path = course.notebook("submitted", assignment, student)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def reference_submission(course: Course, assignment: str, mutation: Mutation | None = None):
    answers = reference_answers(read(course.notebook("source", assignment)))
    if mutation is not None:
        answers = mutation.apply(answers)
    return fill(read(course.notebook("notebooks", assignment)), answers)
