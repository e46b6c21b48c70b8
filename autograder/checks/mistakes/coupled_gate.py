"""Notebook 3's mistakes: the coupled input and forget gate (the suspects of ``checks.coupled_gate``)."""

from . import Mutant, mistake, suspect, table

FORWARD_HEAD = (
    "        del self.W_i, self.U_i, self.b_i\n\n    def forward(self, x, h=None, c=None):\n"
    "        if h is None:\n            h = x.new_zeros(*x.shape[:-1], self.hidden_size)\n"
    "        if c is None:\n            c = x.new_zeros(*x.shape[:-1], self.hidden_size)\n"
    '        f = sigmoid(self.preactivation("f", x, h))\n'
    '        o = sigmoid(self.preactivation("o", x, h))\n'
    '        c_tilde = torch.tanh(self.preactivation("c", x, h))\n'
)
STANDARD_OLD = FORWARD_HEAD + "        c_next = f * c + (1 - f) * c_tilde"
STANDARD_NEW = (FORWARD_HEAD.replace("        del self.W_i, self.U_i, self.b_i\n", "        pass\n")
                + '        c_next = f * c + sigmoid(self.preactivation("i", x, h)) * c_tilde')

MISTAKES = table(
    suspect('returns_c_h',
        "it returns (c_next, h_next): return them in the order (h_next, c_next).",
        Mutant("coupled_lstm_cell",
            "return h_next, c_next",
            "return c_next, h_next",
            name='returns_c_then_h',
            description="returns (c_next, h_next)",
            message="order \\(h_next, c_next\\)")),
    suspect('coupled_to_o',
        ("it matches c_t = f_t * c_{t-1} + (1 - o_t) * c~_t: the input gate is coupled to the output gate. "
         "Couple it to the forget gate: i_t = 1 - f_t."),
        Mutant("coupled_lstm_cell",
            "c_next = f * c + (1 - f) * c_tilde",
            "c_next = f * c + (1 - o) * c_tilde",
            name='coupled_to_output_gate',
            description="i_t = 1 - o_t: the input gate coupled to the output gate instead of the forget gate",
            message="coupled to the output gate")),
    suspect('coupled_weights_swapped',
        ("it matches c_t = (1 - f_t) * c_{t-1} + f_t * c~_t: the two weights are swapped. f_t keeps the old "
         "cell c_{t-1}; (1 - f_t) scales the candidate c~_t."),
        Mutant("coupled_lstm_cell",
            "c_next = f * c + (1 - f) * c_tilde",
            "c_next = (1 - f) * c + f * c_tilde",
            name='weights_swapped',
            description="(1 - f) keeps the old cell and f writes the candidate",
            message="weights are swapped")),
    suspect('i_equals_f',
        ("it matches c_t = f_t * c_{t-1} + f_t * c~_t: the candidate is scaled by f_t, but the coupled input "
         "gate is 1 - f_t."),
        Mutant("coupled_lstm_cell",
            "c_next = f * c + (1 - f) * c_tilde",
            "c_next = f * c + f * c_tilde",
            name='input_gate_is_f',
            description="the candidate scaled by f instead of 1 - f",
            message="scaled by f_t")),
    suspect('no_input_gate',
        "it matches c_t = f_t * c_{t-1} + c~_t: the candidate is written without a gate. Scale it by i_t = 1 - f_t.",
        Mutant("coupled_lstm_cell",
            "c_next = f * c + (1 - f) * c_tilde",
            "c_next = f * c + c_tilde",
            name='ungated_candidate',
            description="the candidate written without a gate",
            message="without a gate")),
    suspect('precedence',
        "it matches f * c + 1 - f * c_tilde: operator precedence. Write (1 - f) * c_tilde, with parentheses.",
        Mutant("coupled_lstm_cell",
            "c_next = f * c + (1 - f) * c_tilde",
            "c_next = f * c + 1 - f * c_tilde",
            name='missing_parentheses',
            description="f * c + 1 - f * c_tilde: operator precedence",
            message="precedence")),
    suspect('uncoupled',
        ("it matches a standard LSTM with its own input gate sigma(W_i h + U_i x + b_i): a coupled cell has no "
         "input-gate parameters and computes i_t = 1 - f_t."),
        Mutant("coupled_lstm_cell", STANDARD_OLD, STANDARD_NEW, name="standard_lstm",
            description="W_i, U_i, b_i kept and used: a standard LSTM cell",
            message=r"no input-gate parameters|standard LSTM", at="coupled_cell_forward")),
    suspect('ignore_h',
        "it matches a coupled cell that ignores the given h: the gates must use the h passed in (W_* h), not zeros.",
        Mutant("coupled_lstm_cell", "        if h is None:\n", "        if True:\n", name="given_h_ignored",
            description="the h passed in is replaced by zeros", message=r"ignores the given h")),
    suspect('ignore_c',
        ("it matches a coupled cell that ignores the given c: c_t = f_t * c_{t-1} + (1 - f_t) * c~_t must use "
         "the c passed in."),
        Mutant("coupled_lstm_cell", "        if c is None:\n", "        if True:\n", name="given_c_ignored",
            description="the c passed in is replaced by zeros", message=r"ignores the given c")),
    suspect('candidate_sigmoid',
        "it matches a coupled cell whose candidate c~ uses sigmoid: the candidate uses tanh.",
        Mutant("coupled_lstm_cell", 'c_tilde = torch.tanh(self.preactivation("c", x, h))',
            'c_tilde = sigmoid(self.preactivation("c", x, h))', description="sigmoid instead of tanh for the candidate",
            message=r"candidate c~ uses sigmoid")),
    suspect('no_tanh_on_c',
        "h_next matches o * c_next: the equation is h_t = o_t * tanh(c_t).",
        Mutant("coupled_lstm_cell",
            "h_next = o * torch.tanh(c_next)",
            "h_next = o * c_next",
            description="h_t = o_t * c_t: tanh missing on the cell state",
            message="tanh\\(c_t\\)")),
    mistake('asks_for_input_gate',
        "",
        Mutant("coupled_lstm_cell",
            "c_next = f * c + (1 - f) * c_tilde",
            'c_next = f * c + sigmoid(self.preactivation("i", x, h)) * c_tilde',
            description="forward still computes an input gate from the deleted W_i",
            message="input-gate parameter")),
)
