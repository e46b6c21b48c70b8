"""Name the bug: when a student's cell differs from the oracle, try the usual mistakes and see which fits.

Each suspect is the course equations with one mistake made on purpose (``suspects``). If the student's
output matches a suspect to float64 precision, the message names that mistake instead of only saying
"differs".
"""

from . import suspects

SUSPECTS = {
    "f_i_swapped": "it matches an LSTM with the forget and input gates swapped: check which parameters "
    "each gate uses (and, when loading PyTorch's weights, that its rows are i, f, g, o).",
    "c_o_swapped": "it matches an LSTM with the candidate and output gates swapped: PyTorch's rows are "
    "i, f, g, o — g (the candidate) is the third block, o the fourth.",
    "input_gate_uses_W_f": "it matches an LSTM whose input gate uses W_f, the forget gate's recurrent "
    "weight: the input gate needs W_i.",
    "W_not_transposed": "it matches an LSTM that computes h @ W instead of h @ W.T: with row-major batches "
    "W h becomes h @ W.T — the transpose is needed.",
    "no_bias": "it matches an LSTM without biases: add b_f, b_i, b_o, b_c inside each gate.",
    "ignore_h": "it matches an LSTM that ignores the given h: the gates must use h (W_* @ h) from the "
    "arguments, not zeros.",
    "ignore_c": "it matches an LSTM that ignores the given c: c_next = f * c + i * c~ must use the c you "
    "were given.",
    "candidate_sigmoid": "it matches an LSTM whose candidate c~ uses sigmoid: the candidate uses tanh.",
    "no_tanh_on_c": "h_next matches o * c_next: the equation is h_t = o_t * tanh(c_t).",
    "sigmoid_on_c": "h_next matches o * sigmoid(c_next): the equation is h_t = o_t * tanh(c_t).",
    "c_uses_o_gate": "it matches an LSTM that writes the candidate through the output gate: "
    "c_t = f_t * c_{t-1} + i_t * c~_t.",
}


def name_cell_bug(params, x, h, c, got_h, got_c) -> tuple[str, str] | None:
    """(bug id, sentence) of the mistake that explains the student's (h, c), or None if none fits."""
    return suspects.name_bug({}, SUSPECTS, params, x, h, c, got_h, got_c, h_only=("no_tanh_on_c", "sigmoid_on_c"))
