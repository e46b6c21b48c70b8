"""The bug zoo and the correct-style corpus, graded through real nbgrader.

Each mutant is the reference solution with one realistic student mistake (``Mutation``); it must lose
points on its own exercise, with the bug id it expects, and the message the student sees should name the mistake.
The mutants of the mistakes a hidden test names come from their records (``autograder.checks.mistakes``); those
of failures with no specific diagnosis, and the correct styles, from the notebook's module here. Each style is
an independently written correct answer; it must get full marks. Both are placed into the release
notebook's solution cells and graded exactly as a student's submission.
"""

import importlib
import re
from dataclasses import dataclass, field

from .. import gradelog, registry
from ..checks.mistakes import cell as cell_mistakes
from ..checks.mistakes import harness as harness_mistakes
from ..host import report
from ..host.batch import grade, log_file
from ..host.course import Course
from ..host.submissions import Mutation, fill, read, reference_answers, submit


def _module(assignment):
    """The assignment's zoo module (``registry.NOTEBOOKS``), or None."""
    nb = registry.NOTEBOOKS.get(assignment)
    return importlib.import_module(f"autograder.zoo.{nb.zoo}") if nb and nb.zoo else None


def recorded(assignment: str) -> list[Mutation]:
    """The mutants of the assignment's mistakes, as submissions to grade: its own, and those of the shared cell tests
    and of the harness that are graded in this notebook."""
    nb = registry.NOTEBOOKS.get(assignment)
    if nb is None:
        return []
    found = []
    for records in (registry.mistakes(nb.checks), cell_mistakes.MISTAKES, harness_mistakes.MISTAKES):
        for mistake in records.values():
            for m in mistake.mutants:
                if (m.assignment or assignment) == assignment:
                    found.append(Mutation(m.name or mistake.bug, assignment, m.cell, m.old, m.new, m.description,
                                          m.message, f"{nb.checks}.{m.bug or mistake.bug}", m.at))
    return found


def mutants(assignment: str) -> list[Mutation]:
    """The assignment's mistakes' mutants, then the zoo's own (those whose failure is the check's own id)."""
    module = _module(assignment)
    return recorded(assignment) + list(getattr(module, "MUTANTS", []))


def mutant(assignment: str, name: str) -> Mutation:
    """The assignment's mutant called ``name``."""
    return next(m for m in mutants(assignment) if m.name == name)


def styles(assignment: str) -> dict[str, dict[str, str]]:
    module = _module(assignment)
    return dict(getattr(module, "STYLES", {}))


@dataclass
class Outcome:
    kind: str  # "mutant" or "style"
    name: str
    assignment: str
    exercise: str  # where a mutant must lose points; "" for a style
    lost: dict[str, float] = field(default_factory=dict)  # exercise -> points lost
    message: str = ""
    named: bool = False
    bug: str = ""  # the bug id of the first failing grading cell of the exercise (from the grading log)
    expected_bug: str = ""

    @property
    def ok(self) -> bool:
        if self.kind == "style":
            return not any(self.lost.values())
        return self.lost.get(self.exercise, 0) > 0


def _messages(course: Course, student: str, assignment: str, grade_ids: set[str]) -> list[str]:
    path = course.notebook("autograded", assignment, student)
    if not path.exists():
        return []
    found = []
    for cell in read(path).cells:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") in grade_ids:
            for out in cell.get("outputs", []):
                if out.get("output_type") == "error":
                    found.append(f"{out.get('ename')}: {out.get('evalue')}")
    return found


def run(course: Course, assignment: str) -> list[Outcome]:
    """Submit every mutant and style of one assignment, grade them in one nbgrader run, report."""
    answers = reference_answers(read(course.notebook("source", assignment)))
    release = read(course.notebook("notebooks", assignment))
    students = {}
    for m in mutants(assignment):
        students[f"bug-{m.name}"] = ("mutant", m.name, m.cell, m)
        submit(course, f"bug-{m.name}", assignment, fill(release, m.apply(answers)))
    for name, style in styles(assignment).items():
        students[f"style-{name}"] = ("style", name, "", None)
        submit(course, f"style-{name}", assignment, fill(release, {**answers, **style}))
    grade(course, assignment)
    rows = [r for r in report.scores(course, list(students)) if r.assignment == assignment]
    in_order = list(report.exercises(read(course.notebook("source", assignment))))  # grade ids, notebook order
    outcomes = []
    for student, (kind, name, exercise, mutation) in students.items():
        mine = [r for r in rows if r.student == student]
        lost = {}
        for (_, _, ex), (score, top) in report.by_exercise(mine).items():
            lost[ex] = top - score
        failing = {r.grade_id for r in mine if r.score < r.max_score}
        own = {r.grade_id for r in mine if r.exercise == exercise and r.score < r.max_score}
        messages = _messages(course, student, assignment, own or failing)
        outcome = Outcome(kind, name, assignment, exercise, lost, messages[0] if messages else "",
                          expected_bug=mutation.bug_id if mutation is not None else "")
        verdicts = gradelog.verdicts(log_file(course, assignment, student))
        lost_ids = {r.grade_id for r in mine if r.score < r.max_score and (not exercise or r.exercise == exercise)}
        at = [mutation.at] if mutation is not None and mutation.at else in_order
        outcome.bug = next((str(verdicts[g].get("bug", "")) for g in at if g in lost_ids and g in verdicts), "")
        if mutation is not None and mutation.message:
            outcome.named = any(re.search(mutation.message, m) for m in messages)
        if not mine:
            outcome.message = "not graded (no scores in the gradebook)"
            outcome.lost = {exercise or "all": float("nan")}
        outcomes.append(outcome)
    return outcomes


def table(outcomes: list[Outcome]) -> str:
    lines = [f"{'':2}{'mutant / style':<36}{'must lose on':<26}{'points lost per exercise':<44}named  "
             f"{'bug id':<40}message"]
    for o in outcomes:
        lost = ", ".join(f"{ex} -{v:g}" for ex, v in o.lost.items() if v) or "none"
        mark = "ok" if o.ok else "!!"
        named = "" if o.kind == "style" else ("yes" if o.named else "no")
        lines.append(f"{mark:2}{o.kind[0] + ' ' + o.name:<36}{o.exercise or '(full marks)':<26}{lost:<44}"
                     f"{named:<7}{o.bug:<40}{o.message[:160]}")
    mutants_ = [o for o in outcomes if o.kind == "mutant"]
    styles_ = [o for o in outcomes if o.kind == "style"]
    if mutants_:
        caught = sum(o.ok for o in mutants_)
        named = sum(o.named for o in mutants_)
        lines.append(f"mutants caught on their exercise: {caught}/{len(mutants_)}; "
                     f"message names the bug: {named}/{len(mutants_)} ({100 * named / len(mutants_):.0f}%)")
    if styles_:
        lines.append(f"correct styles at full marks: {sum(o.ok for o in styles_)}/{len(styles_)}")
    return "\n".join(lines)
