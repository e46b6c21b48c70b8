"""Grade export of a large class: seconds to write grades.csv and the Canvas and Moodle CSVs of N students.

    .venv/bin/python benchmarks/lms_export.py --out bench-results [--students 1000]

A throwaway course gets the release's grade cells of every assignment (nbgrader generate_assignment), then N
students, each with a submission of every assignment and a score in every grade cell, written straight into
the SQLite gradebook through nbgrader's ORM (grading them would take hours). Then each export runs as
`make grades` does it. Results are printed and written to OUT/lms_export.json.
"""

import argparse
import csv
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nbgrader.api import Grade, Gradebook, Student, SubmittedAssignment, SubmittedNotebook  # noqa: E402

from autograder import cli  # noqa: E402
from autograder.host import report  # noqa: E402
from autograder.host.course import copy_course  # noqa: E402


def fill(course, students: int, seed: int = 0) -> int:
    """``students`` students with a scored submission of every assignment; returns the number of grades."""
    rng = random.Random(seed)
    grades = 0
    with Gradebook(course.db) as gb, gb.db.no_autoflush:
        assignments = gb.assignments
        for k in range(students):
            student = Student(id=f"s{k:05d}", first_name=f"First{k}", last_name=f"Last{k}",
                              email=f"s{k:05d}@example.org")
            gb.db.add(student)
            for assignment in assignments:
                submitted = SubmittedAssignment(assignment=assignment, student=student)
                gb.db.add(submitted)
                for notebook in assignment.notebooks:
                    nb = SubmittedNotebook(assignment=submitted, notebook=notebook)
                    gb.db.add(nb)
                    for cell in notebook.grade_cells:
                        gb.db.add(Grade(cell=cell, notebook=nb, needs_manual_grade=False,
                                        auto_score=rng.choice([0.0, cell.max_score / 2, cell.max_score])))
                        grades += 1
            if k % 200 == 199:
                gb.db.commit()
        gb.db.commit()
    return grades


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="bench-results")
    parser.add_argument("--students", type=int, default=1000)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="lstm-export-") as tmp:
        course = copy_course(Path(tmp))
        for assignment in course.assignments:
            course.nbgrader("generate_assignment", assignment, "--force")
        start = time.perf_counter()
        grades = fill(course, args.students)
        print(f"gradebook: {args.students} students x {len(course.assignments)} assignments, {grades} grades "
              f"(filled in {time.perf_counter() - start:.1f} s)")
        results = {"students": args.students, "assignments": len(course.assignments), "grades": grades}
        for name, export in (("grades.csv", lambda: cli.grades(course)),
                             ("canvas", lambda: report.write_lms_csv(course, "canvas", course.root / "c.csv")),
                             ("moodle", lambda: report.write_lms_csv(course, "moodle", course.root / "m.csv"))):
            start = time.perf_counter()
            export()
            seconds = time.perf_counter() - start
            results[name] = round(seconds, 2)
            print(f"export {name:<10} {args.students} students: {seconds:.2f} s")
        with open(course.root / "c.csv", newline="") as fh:
            rows = list(csv.reader(fh))[2:]  # below the header and Points Possible
        assert len(rows) == args.students and any(float(r[-1]) for r in rows), "the export lost students or scores"
    (out / "lms_export.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
