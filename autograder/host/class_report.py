"""What the class got wrong: one self-contained HTML page an instructor reads before the next lecture.

Per assignment and exercise: the score distribution (a matplotlib plot, embedded), then the misconceptions
ranked by how many students hold them, each a stable bug id with its count, share of the class, students
and one example message. Then the students stuck on several exercises, late and missing submissions and
the slowest notebooks to grade, and the submissions *for review*: where the grader's scan of the source
(``autograder.checks.scan``) withheld points for a ready-made LSTM, evasion or a forbidden call, with the cell
and line and what each hidden test said on its own, so that an instructor can look and overrule it in the
Formgrader. Nothing is graded again: scores come from the gradebook, bug ids from the ``verdict`` records
the executor wrote to the grading log (``autograder/gradelog.py``), the withheld cells from its ``withheld``
records, timings from the same log. No HTML from a student's notebook is copied in; every string on the
page is escaped, and the page has no script.

A student's misconceptions on an exercise are the bug ids of the grading cells there that lost points:
the named ones (a specific mistake the check diagnosed) if any, else the first cell's generic id (which
check failed), so a named mistake is not counted a second time under the checks it also breaks.
"""

import base64
import html
import io
import time
from dataclasses import dataclass, field
from pathlib import Path

from nbgrader.api import Assignment, Gradebook, Student, SubmittedAssignment

from .. import gradelog, registry
from . import report
from .batch import log_file
from .course import Course
from .submissions import nbgrader_meta, read

STUCK_AT = 2  # a student who lost points on this many exercises of an assignment is stuck there
SLOWEST = 10  # notebooks listed under "slowest to grade"
TOP = 8  # misconceptions in the table at the top of the page


@dataclass
class Misconception:
    bug: str
    assignment: str
    exercise: str
    named: bool
    students: list[str] = field(default_factory=list)
    example: str = ""


@dataclass
class Review:
    """One finding of the source scan that withheld points of one submission."""

    student: str
    assignment: str
    finding: str  # cell, line and code
    what: str
    rule: str  # "ready-made", "evasion" or "forbidden"
    cells: list[tuple[str, bool]]  # (grade_id, did the hidden test pass on its own?)
    score: float  # those cells' points in the gradebook now: an instructor's override shows here
    max_score: float


@dataclass
class ClassReport:
    assignments: list[str]
    rows: list[report.Score]
    submitted: dict[str, list[str]]  # assignment -> students with a submission
    misconceptions: list[Misconception]  # ranked within each (assignment, exercise)
    stuck: list[tuple[str, str, list[str]]]  # (student, assignment, exercises with points lost)
    late: list[tuple[str, str, float]]  # (student, assignment, seconds late)
    missing: dict[str, list[str]]  # assignment -> students without a submission
    slowest: list[tuple[float, str, str]]  # (seconds, assignment, student)
    review: list[Review] = field(default_factory=list)
    written: str = ""

    def of(self, assignment: str, exercise: str | None = None) -> list[Misconception]:
        return [m for m in self.misconceptions if m.assignment == assignment
                and (exercise is None or m.exercise == exercise)]


def _module(assignment: str) -> str:
    nb = registry.NOTEBOOKS.get(assignment)
    return nb.checks if nb else "grader"


def collect(course: Course) -> ClassReport:
    rows = report.scores(course)
    assignments = [a for a in course.assignments if any(r.assignment == a for r in rows)]
    grouped: dict[tuple[str, str], list[report.Score]] = {}
    for r in rows:
        grouped.setdefault((r.assignment, r.student), []).append(r)
    submitted = {a: sorted(s for b, s in grouped if b == a) for a in assignments}
    found: dict[tuple[str, str, str], Misconception] = {}
    stuck, slowest, review = [], [], []
    for assignment in assignments:
        source = read(course.notebook("source", assignment))
        order = list(report.exercises(source))  # grade ids, notebook order
        by_hand = {nbgrader_meta(c)["grade_id"] for c in source.cells
                   if nbgrader_meta(c).get("grade") and nbgrader_meta(c).get("solution")}  # no check to name a bug
        for student in submitted[assignment]:
            path = log_file(course, assignment, student)
            verdicts, records = gradelog.verdicts(path), gradelog.read(path)
            times = [r["time"] for r in records if isinstance(r.get("time"), (int, float))]
            if len(times) > 1:
                slowest.append((max(times) - min(times), assignment, student))
            mine = grouped[(assignment, student)]
            review += _for_review(assignment, student, records, mine)
            lost = {r.grade_id: r for r in mine if r.score < r.max_score and r.grade_id not in by_hand}
            by_exercise: dict[str, list[dict]] = {}
            for grade_id in sorted(lost, key=lambda g: order.index(g) if g in order else len(order)):
                record = verdicts.get(grade_id) or {  # the cell did not run (a kernel that died, a time budget)
                    "bug": f"{_module(assignment)}.{grade_id}", "named": False,
                    "message": "no verdict in the grading log: the cell did not run to the end"}
                if record.get("passed") is True:  # passed, then marked down in the Formgrader
                    continue
                by_exercise.setdefault(lost[grade_id].exercise, []).append(record)
            for exercise, records in by_exercise.items():
                named = [r for r in records if r.get("named")]
                for record in named or records[:1]:
                    bug = str(record.get("bug"))
                    key = (assignment, exercise, bug)
                    item = found.setdefault(key, Misconception(bug, assignment, exercise, bool(record.get("named")),
                                                               example=str(record.get("message", ""))))
                    if student not in item.students:
                        item.students.append(student)
            failed = [ex for ex in dict.fromkeys(r.exercise for r in mine)
                      if sum(r.score for r in mine if r.exercise == ex) < sum(r.max_score for r in mine
                                                                               if r.exercise == ex)]
            if len(failed) >= STUCK_AT:
                stuck.append((student, assignment, failed))
    first_row: dict[tuple[str, str], int] = {}
    for k, r in enumerate(rows):
        first_row.setdefault((r.assignment, r.exercise), k)
    ranked = sorted(found.values(), key=lambda m: (
        assignments.index(m.assignment), first_row[(m.assignment, m.exercise)], -len(m.students), not m.named, m.bug))
    late, everyone = _late_and_students(course)
    missing = {a: [s for s in everyone if s not in submitted[a]] for a in assignments}
    slowest.sort(reverse=True)
    return ClassReport(assignments, rows, submitted, ranked, stuck, late, missing, slowest[:SLOWEST], review)


def _for_review(assignment: str, student: str, records: list[dict], mine: list[report.Score]) -> list[Review]:
    """The findings that withheld points in the last grading run (``withheld`` records, the executor's own)."""
    withheld: dict[tuple[str, str, str], list] = {}
    for r in records:
        if "from" in r:
            continue
        if r.get("kind") == "grading":
            withheld = {}
        elif r.get("kind") == "withheld" and isinstance(r.get("cell"), str):
            key = (str(r.get("finding", "?")), str(r.get("what", "?")), str(r.get("rule", "?")))
            withheld.setdefault(key, []).append((r["cell"], r.get("passed") is True))
    grades = {r.grade_id: r for r in mine}
    out = []
    for (finding, what, rule), cells in withheld.items():
        cells = list(dict.fromkeys(cells))
        scored = [grades[g] for g, _ in cells if g in grades]
        out.append(Review(student, assignment, finding, what, rule, cells, sum(r.score for r in scored),
                          sum(r.max_score for r in scored)))
    return out


def _late_and_students(course: Course):
    with Gradebook(course.db) as gb:
        everyone = [s.id for s in gb.db.query(Student).order_by(Student.id)]
        late = []
        query = gb.db.query(SubmittedAssignment, Assignment).join(
            Assignment, SubmittedAssignment.assignment_id == Assignment.id)
        for sub, assignment in query:
            seconds = sub.total_seconds_late or 0
            if seconds > 0:
                late.append((sub.student_id, assignment.name, float(seconds)))
    return sorted(late), everyone


# --------------------------------------------------------------------------- the page


def _plot(rows: list[report.Score], assignment: str) -> str:
    """Score distributions of one assignment's exercises, one panel each, as an embedded PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    totals = report.by_exercise([r for r in rows if r.assignment == assignment])
    exercises = list(dict.fromkeys(r.exercise for r in rows if r.assignment == assignment))
    fig, axes = plt.subplots(1, len(exercises), figsize=(2.6 * len(exercises) + 0.6, 2.3), squeeze=False)
    for ax, exercise in zip(axes[0], exercises, strict=True):
        marks = [v for k, v in totals.items() if k[2] == exercise]
        top = max((m for _, m in marks), default=0)
        values = sorted({s for s, _ in marks} | {0.0, top})
        counts = [sum(1 for s, _ in marks if s == v) for v in values]
        colours = ["#2e7d32" if v == top and top else "#c62828" if v == 0 else "#f9a825" for v in values]
        ax.bar([report._fmt(v) for v in values], counts, color=colours)
        ax.set_title(exercise, fontsize=9)
        ax.set_xlabel(f"points of {report._fmt(top)}", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.yaxis.get_major_locator().set_params(integer=True)
    axes[0][0].set_ylabel("students", fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5em auto; max-width: 72em; color: #222; padding: 0 1em; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ccc; }
h3 { font-size: 1.05em; margin: 1em 0 0.3em; }
table { border-collapse: collapse; margin: 0.3em 0 1em; } td, th { padding: 0.25em 0.6em; vertical-align: top; }
th { text-align: left; background: #f3f3f3; } tr + tr td { border-top: 1px solid #eee; }
code { background: #f5f5f5; padding: 0 0.2em; } .generic code { color: #666; }
.share { font-variant-numeric: tabular-nums; } .example { color: #555; font-size: 0.92em; max-width: 40em; }
.summary { display: flex; gap: 1.5em; flex-wrap: wrap; } .summary div { background: #f6f8fa; padding: 0.5em 1em; }
.summary b { display: block; font-size: 1.4em; } img { max-width: 100%; }
"""


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _students(names: list[str], shown: int = 12) -> str:
    listed = ", ".join(_e(n) for n in names[:shown])
    return listed + (f" and {len(names) - shown} more" if len(names) > shown else "")


def render(data: ClassReport, title: str = "What the class got wrong") -> str:
    out = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{_e(title)}</title>",
           f"<style>{STYLE}</style></head><body>", f"<h1>{_e(title)}</h1>",
           f"<p>Written {_e(time.strftime('%Y-%m-%d %H:%M'))} from the gradebook and the grading log. A bug id "
           "names the check's diagnosis; <span class='generic'><code>grey</code></span> ids only name the check "
           "that failed (no specific mistake recognised).</p>"]
    named = [m for m in data.misconceptions if m.named]
    top = max(named or data.misconceptions, key=lambda m: len(m.students), default=None)
    out.append("<div class='summary'>")
    out.append(f"<div><b>{len({s for v in data.submitted.values() for s in v})}</b>students</div>")
    out.append(f"<div><b>{len(data.assignments)}</b>assignments graded</div>")
    out.append(f"<div><b>{len({m.bug for m in named})}</b>distinct named misconceptions</div>")
    if top is not None:
        out.append(f"<div><b><code>{_e(top.bug)}</code></b>most common: {len(top.students)} students</div>")
    out.append("</div>")
    if named:
        out.append("<h2 id='top'>Most common misconceptions</h2><table class='top'><tr><th>bug id</th>"
                   "<th>exercise</th><th>students</th><th>share</th></tr>")
        for m in sorted(named, key=lambda m: -len(m.students))[:TOP]:
            n = len(data.submitted[m.assignment])
            out.append(f"<tr><td><code>{_e(m.bug)}</code></td><td><a href='#{_e(m.assignment)}'>{_e(m.assignment)}"
                       f"</a>: {_e(m.exercise)}</td><td>{len(m.students)}</td>"
                       f"<td class='share'>{100 * len(m.students) / max(n, 1):.0f}%</td></tr>")
        out.append("</table>")
    for assignment in data.assignments:
        n = len(data.submitted[assignment])
        out.append(f"<h2 id='{_e(assignment)}'>{_e(assignment)} <small>({n} submissions)</small></h2>")
        out.append(f"<img alt='score distribution per exercise of {_e(assignment)}' "
                   f"src='data:image/png;base64,{_plot(data.rows, assignment)}'>")
        exercises = list(dict.fromkeys(r.exercise for r in data.rows if r.assignment == assignment))
        for exercise in exercises:
            items = data.of(assignment, exercise)
            if not items:
                continue
            out.append(f"<h3>{_e(exercise)}</h3><table class='misconceptions'><tr><th>bug id</th>"
                       "<th>students</th><th>share</th><th>who</th><th>example message</th></tr>")
            for m in items:
                css = "" if m.named else " class='generic'"
                out.append(f"<tr data-bug='{_e(m.bug)}'{css}><td><code>{_e(m.bug)}</code></td>"
                           f"<td>{len(m.students)}</td><td class='share'>{100 * len(m.students) / max(n, 1):.0f}%</td>"
                           f"<td class='who'>{_students(m.students)}</td>"
                           f"<td class='example'>{_e(m.example[:400])}</td></tr>")
            out.append("</table>")
    out.append(_review_section(data.review))
    out.append(f"<h2 id='stuck'>Stuck on several exercises</h2><p>Points lost on {STUCK_AT} or more exercises "
               "of one assignment.</p>")
    out.append(_table(["student", "assignment", "exercises"], [
        (s, a, ", ".join(ex)) for s, a, ex in sorted(data.stuck, key=lambda t: (-len(t[2]), t[0]))], "stuck"))
    out.append("<h2 id='late'>Late and missing submissions</h2>")
    out.append(_table(["student", "assignment", "late by"], [
        (s, a, _duration(sec)) for s, a, sec in data.late], "late", empty="No late submissions."))
    missing = [(a, f"{len(names)}", _students(names, 30)) for a, names in data.missing.items() if names]
    out.append(_table(["assignment", "missing", "students"], missing, "missing", empty="Nobody is missing."))
    out.append("<h2 id='slowest'>Slowest notebooks to grade</h2>")
    out.append(_table(["seconds", "assignment", "student"], [
        (f"{sec:.1f}", a, s) for sec, a, s in data.slowest], "slowest"))
    out.append("</body></html>")
    return "\n".join(out)


OVERRULE = ("To give points back: in the Formgrader (<code>jupyter lab</code> in the course directory, "
            "<i>Nbgrader → Formgrader → Manual Grading</i>, the assignment, the notebook, the student), type the "
            "points into the score box of each grading cell listed. nbgrader keeps them as the cell's manual "
            "score, which takes precedence over the autograder's; <code>make grades</code> and this page read it.")


def _review_section(review: list[Review]) -> str:
    """The submissions whose points the source scan withheld, with what to look at."""
    head = ("<h2 id='review'>For review: points withheld by the source scan</h2><p>The grader reads the code of "
            "every cell a student wrote and withholds the points of code that uses PyTorch's ready-made LSTM, "
            "reaches around the rules (evasion: torch's C layer, code run from strings, a module's attributes by "
            "a built name, ...) or calls what an exercise forbids. The hidden tests still ran: <i>passed on its "
            f"own</i> says what a test gave before the points were withheld. {OVERRULE}</p>")
    rows = [(r.student, r.assignment, r.rule, r.finding, r.what,
             ", ".join(f"{g} ({'passed' if ok else 'failed'} on its own)" for g, ok in r.cells),
             f"{report._fmt(r.score)} / {report._fmt(r.max_score)}")
            for r in sorted(review, key=lambda r: (r.assignment, r.student))]
    return head + _table(["student", "assignment", "rule", "where", "what", "grading cells withheld", "points now"],
                         rows, "review", empty="No points were withheld.")


def _duration(seconds: float) -> str:
    if seconds >= 86400:
        return f"{seconds / 86400:.1f} days"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} hours"
    return f"{seconds / 60:.0f} minutes"


def _table(header, rows, css, empty="None.") -> str:
    if not rows:
        return f"<p class='{_e(css)}'>{_e(empty)}</p>"
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell if k == 2 and css == 'missing' else _e(cell)}</td>"
                                    for k, cell in enumerate(row)) + "</tr>" for row in rows)
    return f"<table class='{_e(css)}'><tr>{head}</tr>{body}</table>"


def write(course: Course, path: Path | None = None) -> ClassReport:
    """Collect the class's results and write the page (default ``class-report.html`` in the course root)."""
    path = path or course.root / "class-report.html"
    data = collect(course)
    path.write_text(render(data))
    data.written = str(path)
    return data
