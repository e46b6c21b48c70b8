"""Scores out of the gradebook, per student and per exercise, as a table and a CSV.

An exercise is a solution cell together with the grading cells that follow it, so the table
reads like the notebook: ``01_lstm_cell:sigmoid 2/2``.
"""

import csv
from dataclasses import dataclass
from pathlib import Path

from nbgrader.api import Gradebook, MissingEntry

from .course import Course
from .submissions import is_solution, nbgrader_meta, read


@dataclass(frozen=True)
class Score:
    student: str
    assignment: str
    exercise: str
    grade_id: str
    score: float
    max_score: float


def exercises(source_nb) -> dict[str, str]:
    """grade cell id -> the solution cell it grades (the nearest solution cell above it)."""
    owner, current = {}, "setup"
    for cell in source_nb.cells:
        meta = nbgrader_meta(cell)
        if is_solution(cell):
            current = meta["grade_id"]
        elif meta.get("grade"):
            owner[meta["grade_id"]] = meta["grade_id"] if meta.get("solution") else current
    return owner


def scores(course: Course, students: list[str] | None = None) -> list[Score]:
    rows = []
    with Gradebook(course.db) as gb:
        for assignment in course.assignments:
            owner = exercises(read(course.notebook("source", assignment)))
            for student in students or course.students():
                try:
                    nb = gb.find_submission_notebook(assignment, assignment, student)
                except MissingEntry:
                    continue
                for grade in nb.grades:
                    rows.append(Score(student, assignment, owner.get(grade.name, grade.name), grade.name,
                                      float(grade.score), float(grade.max_score)))
    return rows


def by_exercise(rows: list[Score]) -> dict[tuple[str, str, str], tuple[float, float]]:
    """(student, assignment, exercise) -> (score, max)."""
    totals: dict[tuple[str, str, str], tuple[float, float]] = {}
    for r in rows:
        s, m = totals.get((r.student, r.assignment, r.exercise), (0.0, 0.0))
        totals[(r.student, r.assignment, r.exercise)] = (s + r.score, m + r.max_score)
    return totals


def table(rows: list[Score]) -> str:
    totals = by_exercise(rows)
    students = sorted({k[0] for k in totals})
    columns = sorted({(k[1], k[2]) for k in totals}, key=lambda c: (c[0], _first_seen(rows, c)))
    width = max([len(s) for s in students] + [7])
    lines = []
    header = f"{'exercise':<44}" + "".join(f"{s:>{width + 2}}" for s in students)
    lines.append(header)
    lines.append("-" * len(header))
    for assignment, exercise in columns:
        cells = []
        for s in students:
            score, top = totals.get((s, assignment, exercise), (0.0, 0.0))
            cells.append(f"{_fmt(score)}/{_fmt(top)}")
        bonus = any("bonus" in r.grade_id for r in rows if (r.assignment, r.exercise) == (assignment, exercise))
        label = f"{assignment}:{exercise}" + (" (bonus)" if bonus else "")
        lines.append(f"{label:<44}" + "".join(f"{c:>{width + 2}}" for c in cells))
    lines.append("-" * len(header))
    grand = []
    for s in students:
        score = sum(v[0] for k, v in totals.items() if k[0] == s)
        top = sum(v[1] for k, v in totals.items() if k[0] == s)
        grand.append(f"{_fmt(score)}/{_fmt(top)}")
    lines.append(f"{'total':<44}" + "".join(f"{c:>{width + 2}}" for c in grand))
    return "\n".join(lines)


def write_csv(rows: list[Score], path: Path) -> None:
    with open(path, "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["student", "assignment", "exercise", "grade_id", "score", "max_score"])
        for r in rows:
            out.writerow([r.student, r.assignment, r.exercise, r.grade_id, r.score, r.max_score])


def _first_seen(rows, column):
    for k, r in enumerate(rows):
        if (r.assignment, r.exercise) == column:
            return k
    return len(rows)


def _fmt(x: float) -> str:
    return f"{x:g}"
