"""The demo class: three sample students on every notebook, and a class of eighteen more on notebook 1.

``reference`` submits the reference solutions, ``untouched`` the release as handed out, and
``planted_bug`` the reference with one realistic mistake per notebook (listed in ``PLANTED``, from the zoo). The class
(``CLASS``) is drawn from notebook 1's bug zoo and correct styles: some students share a mistake, one makes
two, two hand in after the deadline (``LATE``), so the class report has something to say.
"""

import datetime

from nbgrader.api import Gradebook

from . import zoo
from .host.course import Course
from .host.submissions import Mutation, fill, read, reference_answers, reference_submission, submit

PLANTED = {
    "01_lstm_cell": zoo.mutant("01_lstm_cell", "no_tanh_on_c"),
    "02_stacked_lstm": zoo.mutant("02_stacked_lstm", "c_passed_up"),
    "03_coupled_gate": zoo.mutant("03_coupled_gate", "coupled_to_output_gate"),
    "04_peepholes": zoo.mutant("04_peepholes", "output_gate_not_peeking"),
    "05_training_lab": Mutation(  # the check names no mistake: its own id
        "generator_not_passed", "05_training_lab", "adding_problem",
        "first = torch.randint(0, half, (batch,), generator=generator)", "first = torch.randint(0, half, (batch,))",
        "the first marker's position ignores the generator: the same seed gives different batches",
        bug_id="training_lab.adding_generator",
    ),
    "06_speed_ladder": zoo.mutant("06_speed_ladder", "gate_order_fi_swapped"),
    "07_real_data": zoo.mutant("07_real_data", "confusion_transposed"),
}

STUDENTS = ("reference", "untouched", "planted_bug")

CLASS_ASSIGNMENT = "01_lstm_cell"
# student -> what they hand in: notebook 1's zoo mutants (one or more, by name) or a correct style ("style:<name>")
CLASS = {
    "amara": ("style:column_vectors",), "bilal": ("f_i_swapped",), "chen": ("no_tanh_on_c",),
    "dana": ("sigmoid_naive",), "emeka": ("bias_dropped",), "farah": ("load_gate_order",),
    "goran": ("init_plus_minus_one",), "hana": ("no_tanh_on_c",), "ivan": ("f_i_swapped",),
    "jia": ("style:f_linear",), "kofi": ("sigmoid_naive",), "lena": ("sigmoid_naive", "no_tanh_on_c"),
    "mateo": ("load_gate_order",), "nadia": ("style:fused_chunk",), "omar": ("no_tanh_on_c",),
    "priya": ("bias_dropped",), "quinn": ("style:einsum",), "rosa": ("f_i_swapped",),
}
DUE = datetime.datetime(2026, 10, 5, 23, 59)  # notebook 1's deadline in the demo
LATE = {"goran": datetime.timedelta(days=2, hours=3), "rosa": datetime.timedelta(hours=5)}


def class_mutations(student: str) -> list[Mutation]:
    """The zoo mutants a class student's notebook carries (none for a correct style)."""
    by_name = {m.name: m for m in zoo.mutants(CLASS_ASSIGNMENT)}
    return [by_name[name] for name in CLASS[student] if not name.startswith("style:")]


def class_submission(course: Course, student: str):
    answers = reference_answers(read(course.notebook("source", CLASS_ASSIGNMENT)))
    for name in CLASS[student]:
        if name.startswith("style:"):
            answers = {**answers, **zoo.styles(CLASS_ASSIGNMENT)[name.removeprefix("style:")]}
    for mutation in class_mutations(student):
        answers = mutation.apply(answers)
    return fill(read(course.notebook("notebooks", CLASS_ASSIGNMENT)), answers)


def make_submissions(course: Course, assignments: list[str] | None = None) -> None:
    """Submit the three students' notebooks for ``assignments`` (default: every one)."""
    for assignment in assignments or course.assignments:
        submit(course, "reference", assignment, reference_submission(course, assignment))
        submit(course, "untouched", assignment, read(course.notebook("notebooks", assignment)))
        planted = PLANTED.get(assignment)
        submit(course, "planted_bug", assignment, reference_submission(course, assignment, planted))


def make_class(course: Course) -> None:
    """The class's notebook-1 submissions, with nbgrader's timestamp.txt beside each; the deadline in the
    gradebook, so nbgrader marks the late ones."""
    with Gradebook(course.db) as gb:
        gb.update_or_create_assignment(CLASS_ASSIGNMENT, duedate=DUE)
    for student in CLASS:
        path = submit(course, student, CLASS_ASSIGNMENT, class_submission(course, student))
        handed_in = DUE + LATE.get(student, -datetime.timedelta(hours=1))
        (path.parent / "timestamp.txt").write_text(handed_in.strftime("%Y-%m-%d %H:%M:%S.%f UTC"))
