"""The demo class: three sample students graded through real nbgrader.

``reference`` submits the reference solutions, ``untouched`` the release as handed out, and
``planted_bug`` the reference with one realistic mistake per notebook (listed in ``PLANTED``).
"""

from .course import Course
from .submissions import Mutation, read, reference_submission, submit

PLANTED = {
    "01_lstm_cell": Mutation(
        "no_tanh_on_c", "01_lstm_cell", "lstm_cell",
        "h_next = o * torch.tanh(c_next)", "h_next = o * c_next",
        "h_t = o_t * c_t: tanh missing on the cell state",
    ),
    "02_stacked_lstm": Mutation(
        "c_passed_up", "02_stacked_lstm", "lstm", "x_t = hs[k]\n", "x_t = cs[k]\n",
        "layer 1's cell state is handed up to layer 2 instead of its h",
    ),
    "03_coupled_gate": Mutation(
        "coupled_to_output_gate", "03_coupled_gate", "coupled_lstm_cell",
        "c_next = f * c + (1 - f) * c_tilde", "c_next = f * c + (1 - o) * c_tilde",
        "i_t = 1 - o_t: the input gate coupled to the output gate instead of the forget gate",
    ),
    "04_peepholes": Mutation(
        "output_gate_not_peeking", "04_peepholes", "peephole_cell",
        'o = sigmoid(self.preactivation("o", x, h) + c @ self.V_o.T)', 'o = sigmoid(self.preactivation("o", x, h))',
        "the output gate has no peephole: o_t ignores V_o c_{t-1}",
    ),
    "05_training_lab": Mutation(
        "generator_not_passed", "05_training_lab", "adding_problem",
        "first = torch.randint(0, half, (batch,), generator=generator)", "first = torch.randint(0, half, (batch,))",
        "the first marker's position ignores the generator: the same seed gives different batches",
    ),
    "06_speed_ladder": Mutation(
        "gate_order_fi_swapped", "06_speed_ladder", "fused_cell",
        "i, f, g, o = gates.chunk(4, dim=-1)", "f, i, g, o = gates.chunk(4, dim=-1)",
        "reads PyTorch's row blocks as f, i, g, o instead of i, f, g, o",
    ),
    "07_real_data": Mutation(
        "confusion_transposed", "07_real_data", "evaluation",
        "labels.long() * num_classes + predicted.long()", "predicted.long() * num_classes + labels.long()",
        "the confusion matrix has the predicted classes as rows instead of the true ones",
    ),
}

STUDENTS = ("reference", "untouched", "planted_bug")


def make_submissions(course: Course, assignments: list[str] | None = None) -> None:
    """Submit the three students' notebooks for ``assignments`` (default: every one)."""
    for assignment in assignments or course.assignments:
        submit(course, "reference", assignment, reference_submission(course, assignment))
        submit(course, "untouched", assignment, read(course.notebook("notebooks", assignment)))
        planted = PLANTED.get(assignment)
        submit(course, "planted_bug", assignment, reference_submission(course, assignment, planted))
