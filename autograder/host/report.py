"""Scores out of the gradebook, per student and per exercise, as a table and CSVs.

An exercise is a solution cell together with the grading cells that follow it, so the table
reads like the notebook: ``01_lstm_cell:sigmoid 2/2``. ``grades.csv`` has one row per grade; ``write_lms_csv``
writes one row per student, one column per assignment, in a learning-management system's grade-import format
(``LMS_FORMATS``). Scores come out of the gradebook in one query, so a class of a thousand exports in seconds.
"""

import csv
from dataclasses import dataclass
from pathlib import Path

from nbgrader.api import Assignment, Grade, Gradebook, GradeCell, Student, SubmittedAssignment, SubmittedNotebook

from ..cells import exercises
from .course import Course
from .submissions import read


@dataclass(frozen=True)
class Score:
    student: str
    assignment: str
    exercise: str
    grade_id: str
    score: float
    max_score: float


def scores(course: Course, students: list[str] | None = None) -> list[Score]:
    """Every grade of every submission in the gradebook (of ``students``, default all), in notebook order."""
    owners = {a: exercises(read(course.notebook("source", a))) for a in course.assignments}
    wanted = set(students) if students else None
    rows = []
    with Gradebook(course.db) as gb:
        query = (gb.db.query(SubmittedAssignment.student_id, Assignment.name, GradeCell.name, Grade.score,
                             GradeCell.max_score)
                 .join(SubmittedNotebook, Grade.notebook_id == SubmittedNotebook.id)
                 .join(SubmittedAssignment, SubmittedNotebook.assignment_id == SubmittedAssignment.id)
                 .join(Assignment, SubmittedAssignment.assignment_id == Assignment.id)
                 .join(GradeCell, Grade.cell_id == GradeCell.id))
        for student, assignment, name, score, top in query:
            if assignment in owners and (wanted is None or student in wanted):
                owner = owners[assignment]
                rows.append(Score(student, assignment, owner.get(name, name), name, float(score or 0),
                                  float(top or 0)))
    order = {a: {g: k for k, g in enumerate(owners[a])} for a in owners}
    rank = {a: k for k, a in enumerate(course.assignments)}
    first = {s: k for k, s in enumerate(students or [])}
    rows.sort(key=lambda r: (rank[r.assignment], first.get(r.student, -1), r.student,
                             order[r.assignment].get(r.grade_id, len(order[r.assignment]))))
    return rows


def by_exercise(rows: list[Score]) -> dict[tuple[str, str, str], tuple[float, float]]:
    """(student, assignment, exercise) -> (score, max)."""
    totals: dict[tuple[str, str, str], tuple[float, float]] = {}
    for r in rows:
        s, m = totals.get((r.student, r.assignment, r.exercise), (0.0, 0.0))
        totals[(r.student, r.assignment, r.exercise)] = (s + r.score, m + r.max_score)
    return totals


def table(rows: list[Score]) -> str:
    """Exercises down, students across: score/max, or "-" for an assignment the student never handed in
    (which counts as 0 of its max in the total, so every total is out of the same points)."""
    totals = by_exercise(rows)
    students = sorted({k[0] for k in totals})
    first_seen: dict[tuple[str, str], int] = {}
    tops: dict[tuple[str, str], float] = {}
    for k, r in enumerate(rows):
        first_seen.setdefault((r.assignment, r.exercise), k)
    for (_, assignment, exercise), (_, top) in totals.items():
        tops[(assignment, exercise)] = max(top, tops.get((assignment, exercise), 0.0))
    columns = sorted(tops, key=lambda c: (c[0], first_seen[c]))
    bonuses = {(r.assignment, r.exercise) for r in rows if "bonus" in r.grade_id}
    width = max([len(s) for s in students] + [7])
    lines = []
    header = f"{'exercise':<44}" + "".join(f"{s:>{width + 2}}" for s in students)
    lines.append(header)
    lines.append("-" * len(header))
    sums = {s: (0.0, 0.0) for s in students}
    for assignment, exercise in columns:
        cells = []
        for s in students:
            got = totals.get((s, assignment, exercise))
            score, top = got if got else (0.0, tops[(assignment, exercise)])
            cells.append(f"{_fmt(score)}/{_fmt(top)}" if got else "-")
            sums[s] = (sums[s][0] + score, sums[s][1] + top)
        bonus = (assignment, exercise) in bonuses
        label = f"{assignment}:{exercise}" + (" (bonus)" if bonus else "")
        lines.append(f"{label:<44}" + "".join(f"{c:>{width + 2}}" for c in cells))
    lines.append("-" * len(header))
    grand = [f"{_fmt(sums[s][0])}/{_fmt(sums[s][1])}" for s in students]
    lines.append(f"{'total':<44}" + "".join(f"{c:>{width + 2}}" for c in grand))
    if any(c for c in columns for s in students if (s, *c) not in totals):
        lines.append('("-": not handed in; it counts as 0 in the total)')
    return "\n".join(lines)


def write_csv(rows: list[Score], path: Path) -> None:
    with open(path, "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["student", "assignment", "exercise", "grade_id", "score", "max_score"])
        for r in rows:
            out.writerow([r.student, r.assignment, r.exercise, r.grade_id, r.score, r.max_score])


# --------------------------------------------------------------------------- LMS grade import

# Canvas, "How do I import grades in the Gradebook?" (community.canvaslms.com, Instructor Guide): the CSV has the
# columns Student, ID, SIS User ID, SIS Login ID and Section, then one column per assignment (a name Canvas does
# not know becomes a new assignment); a student is matched by ID, SIS User ID or SIS Login ID; an optional second
# row "Points Possible" gives each assignment's maximum. We know no Canvas ID, so ID stays blank and the
# nbgrader student id is the SIS User ID and SIS Login ID.
CANVAS_HEADER = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
# Moodle, "Grade import" (docs.moodle.org/en/Grade_import): the import format is the CSV export's: First name,
# Last name, ID number, Institution, Department, Email address, then one column per grade item; on upload the
# teacher maps "ID number" to useridnumber (or "Email address" to useremail) and each column to a grade item.
MOODLE_HEADER = ["First name", "Last name", "ID number", "Institution", "Department", "Email address"]
LMS_FORMATS = ("canvas", "moodle")


def students_of(course: Course) -> list[dict]:
    """Every student in the gradebook: id, first and last name, email (None where unknown)."""
    with Gradebook(course.db) as gb:
        return [{"id": s.id, "first_name": s.first_name, "last_name": s.last_name, "email": s.email}
                for s in gb.db.query(Student).order_by(Student.id)]


def assignment_totals(rows: list[Score]) -> tuple[dict[tuple[str, str], float], dict[str, float]]:
    """((student, assignment) -> points, assignment -> maximum) over the rows."""
    points: dict[tuple[str, str], float] = {}
    top: dict[str, dict[str, float]] = {}
    for r in rows:
        points[(r.student, r.assignment)] = points.get((r.student, r.assignment), 0.0) + r.score
        top.setdefault(r.assignment, {})[r.grade_id] = r.max_score
    return points, {a: sum(cells.values()) for a, cells in top.items()}


def write_lms_csv(course: Course, fmt: str, path: Path, rows: list[Score] | None = None) -> None:
    """One row per student, one column per assignment (its points; 0 where nothing was submitted), in the
    grade-import CSV of ``fmt`` (``LMS_FORMATS``)."""
    if fmt not in LMS_FORMATS:
        raise ValueError(f"no grade-import format {fmt!r}: there are {', '.join(LMS_FORMATS)} (and the default CSV)")
    rows = scores(course) if rows is None else rows
    points, top = assignment_totals(rows)
    assignments = [a for a in course.assignments if a in top]
    with open(path, "w", newline="") as fh:
        out = csv.writer(fh)
        if fmt == "canvas":
            out.writerow(CANVAS_HEADER + assignments)
            out.writerow(["Points Possible", "", "", "", ""] + [_fmt(top[a]) for a in assignments])
        else:
            out.writerow(MOODLE_HEADER + assignments)
        for s in students_of(course):
            marks = [_fmt(points.get((s["id"], a), 0.0)) for a in assignments]
            if fmt == "canvas":
                name = ", ".join(n for n in (s["last_name"], s["first_name"]) if n) or s["id"]
                out.writerow([name, "", s["id"], s["id"], ""] + marks)
            else:
                out.writerow([s["first_name"] or "", s["last_name"] or "", s["id"], "", "", s["email"] or ""] + marks)


def _fmt(x: float) -> str:
    return f"{x:g}"
