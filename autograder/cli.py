"""``python -m autograder COMMAND``: the steps behind the Makefile's targets."""

import argparse
import sys
from pathlib import Path

from .host import report
from .host.course import Course
from .settings import load as load_settings


def _say(text: str) -> None:
    print(text, flush=True)


def autograde(course: Course, assignments: list[str]) -> int:
    """Grade every submission as nbgrader's own autograde does in this course (autograder/host/nbgrader_route.py):
    parallel nbgrader processes, each notebook in its own sandboxed kernel, GRADING_JOBS at a time (the Makefile
    passes JOBS; default one per core); with CLUSTER set, on the Dask workers of autograder/host/cluster.py."""
    from .host import nbgrader_route

    if not load_settings().cluster:  # cluster workers check their own GPUs
        why = nbgrader_route.device_problem()
        if why:
            raise SystemExit(f"{why}. Grade with DEVICE=cpu, or run on a machine with CUDA.")
    result = nbgrader_route.grade(course, assignments, say=_say)
    for outcome in result.outcomes:
        if outcome.status == "failed":
            _say(f"could not grade {outcome.assignment} for {outcome.student} (zeros recorded):\n"
                 f"{outcome.detail[-3000:]}")
    return result.failed


def feedback(course: Course, assignments: list[str]) -> int:
    """Feedback for each assignment on its own, with a time limit: one that fails does not stop the
    others. The number of assignments with a problem (0: all feedback written)."""
    if not course.dir("autograded").exists():
        return 0
    timeout = load_settings().feedback_timeout
    failed = 0
    for assignment in assignments:
        written, said = course.feedback(assignment, timeout=timeout)
        failed += not written
        for line in said:
            _say(f"feedback for {assignment}: {line}")
    return failed


def grades(course: Course, fmt: str = "") -> str:
    """The table; grades.csv, or with ``fmt`` the grade-import CSV of that LMS (grades-canvas.csv, ...)."""
    rows = report.scores(course)
    if fmt:
        report.write_lms_csv(course, fmt, course.root / f"grades-{fmt}.csv", rows)
    else:
        report.write_csv(rows, course.root / "grades.csv")
    return report.table(rows)


def class_report(course: Course) -> str:
    """Write the class report (``autograder/host/class_report.py``); returns where."""
    from .host import class_report as page

    return page.write(course).written


def demo(course: Course) -> int:
    from .demo import make_class, make_submissions

    course.clean_scratch()
    _say("building the release from source/ ...")
    course.release()
    make_submissions(course)
    make_class(course)
    _say(f"submitted: {', '.join(course.students())}")
    failed = autograde(course, course.assignments)
    _say("writing feedback ...")
    failed += feedback(course, course.assignments)
    _say("")
    _say(grades(course))
    _say("")
    _say(f"grades.csv: {course.root / 'grades.csv'}")
    _say(f"report:     {class_report(course)}  (what the class got wrong; open it in a browser)")
    _say(f"feedback:   {course.dir('feedback')}/<student>/<assignment>/<assignment>.html, e.g.")
    _say(f"            {course.dir('feedback') / 'planted_bug' / course.assignments[0] / course.assignments[0]}.html")
    return 1 if failed else 0


def zoo(assignments: list[str]) -> int:
    """Grade the bug zoo and the correct styles in a throwaway copy of the course; print the table."""
    import tempfile
    from pathlib import Path

    from . import zoo as bugs
    from .host.course import copy_course

    outcomes = []
    with tempfile.TemporaryDirectory(prefix="lstm-zoo-") as tmp:
        course = copy_course(Path(tmp))
        for assignment in assignments:
            if not bugs.mutants(assignment) and not bugs.styles(assignment):
                continue
            _say(f"grading the zoo of {assignment} ...")
            course.nbgrader("generate_assignment", assignment, "--force")
            outcomes += bugs.run(course, assignment)
    _say(bugs.table(outcomes))
    return 0 if all(o.ok for o in outcomes) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder", description=__doc__)
    parser.add_argument("command", choices=["release", "solutions", "assign", "autograde", "feedback", "grades",
                                            "report", "demo", "zoo"])
    parser.add_argument("assignments", nargs="*", help="default: all of them")
    parser.add_argument("--format", default="", choices=["", *report.LMS_FORMATS],
                        help="grades: write the grade-import CSV of this LMS instead of grades.csv")
    args = parser.parse_args(argv)
    # COURSE_ROOT: work on a course directory other than this repository (the tests use throwaway copies)
    root = load_settings().course_root
    course = Course(root=Path(root).resolve()) if root else Course()
    unknown = [a for a in args.assignments if a not in course.assignments]
    if unknown:
        parser.error(f"no assignment {', '.join(unknown)} in {course.dir('source')} "
                     f"(there are: {', '.join(course.assignments)})")
    chosen = args.assignments or course.assignments
    if args.command in ("release", "assign"):
        course.release()
        _say(f"release written to {course.dir('notebooks')}")
    if args.command in ("solutions", "assign"):
        course.solutions()
        _say(f"executed solutions written to {course.dir('solutions')}")
    if args.command == "autograde":
        return 1 if autograde(course, chosen) else 0
    if args.command == "feedback":
        failed = feedback(course, chosen)
        _say(f"feedback written to {course.dir('feedback')}" + (f"; {failed} assignment(s) failed" if failed else ""))
        return 1 if failed else 0
    if args.command == "grades":
        _say(grades(course, args.format))
        _say(f"{'grades-' + args.format if args.format else 'grades'}.csv: "
             f"{course.root / ('grades-' + args.format if args.format else 'grades')}.csv")
    if args.command == "report":
        _say(f"report: {class_report(course)}")
    if args.command == "demo":
        return demo(course)
    if args.command == "zoo":
        return zoo(chosen)
    return 0


if __name__ == "__main__":
    sys.exit(main())
