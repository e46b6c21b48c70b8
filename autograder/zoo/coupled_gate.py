"""Notebook 3: the mistakes the hidden tests catch without naming them (those they name are in
``autograder.checks.mistakes.coupled_gate``, with their mutants), and correct answers in other styles."""

from ..host.submissions import Mutation

A = "03_coupled_gate"


def bug(name, cell, old, new, description, message, bug_id):
    return Mutation(name, A, cell, old, new, description, message, bug_id)


UPDATE = "c_next = f * c + (1 - f) * c_tilde"
DELETE = "del self.W_i, self.U_i, self.b_i"

MUTANTS = [
    bug("keeps_input_gate", "coupled_lstm_cell", DELETE, "pass",
        "W_i, U_i, b_i kept (unused)", r"no input-gate parameters", "coupled_gate.coupled_cell_parameters"),
    bug("fixed_dtype_states", "coupled_lstm_cell", "h = x.new_zeros(*x.shape[:-1], self.hidden_size)",
        "h = torch.zeros(*x.shape[:-1], self.hidden_size)", "default h created as float32 on the CPU",
        r"x\.new_zeros", "coupled_gate.coupled_cell_forms"),
    bug("batched_only_states", "coupled_lstm_cell", "c = x.new_zeros(*x.shape[:-1], self.hidden_size)",
        "c = x.new_zeros(x.shape[0], self.hidden_size)", "default c always 2-D: breaks a 1-D x",
        r"1-D", "coupled_gate.coupled_cell_forms"),
    bug("cell_class_not_set", "coupled_lstm", "cell_class = CoupledLSTMCell", "pass",
        "CoupledLSTM keeps LSTM's cell_class", r"inherited from LSTM", "coupled_gate.coupled_lstm_class"),
    bug("cell_class_LSTMCell", "coupled_lstm", "cell_class = CoupledLSTMCell", "cell_class = LSTMCell",
        "CoupledLSTM built from standard cells", r"cell_class is LSTMCell", "coupled_gate.coupled_lstm_class"),
    bug("own_init_wrong_sizes", "coupled_lstm", "cell_class = CoupledLSTMCell",
        "cell_class = CoupledLSTMCell\n\n"
        "    def __init__(self, input_size, hidden_size, num_layers=2, batch_first=False):\n"
        "        super().__init__(input_size, hidden_size, num_layers, batch_first)\n"
        "        self.layers = nn.ModuleList(\n"
        "            CoupledLSTMCell(input_size, hidden_size) for _ in range(num_layers))",
        "every layer built with input_size inputs", r"layer 0 reads the input", "coupled_gate.coupled_lstm_class"),
]
FORWARD = '''        if h is None:
            h = x.new_zeros(*x.shape[:-1], self.hidden_size)
        if c is None:
            c = x.new_zeros(*x.shape[:-1], self.hidden_size)
        f = sigmoid(self.preactivation("f", x, h))
        o = sigmoid(self.preactivation("o", x, h))
        c_tilde = torch.tanh(self.preactivation("c", x, h))
        c_next = f * c + (1 - f) * c_tilde
        h_next = o * torch.tanh(c_next)
        return h_next, c_next'''

CELL_HEAD = '''class CoupledLSTMCell(LSTMCell):
    """An LSTM cell whose input gate is 1 - f."""

    def __init__(self, input_size, hidden_size):
        super().__init__(input_size, hidden_size)
'''

STYLES = {
    "params_set_to_none": {"coupled_lstm_cell": CELL_HEAD
                           + "        self.W_i = self.U_i = self.b_i = None\n\n"
                           "    def forward(self, x, h=None, c=None):\n" + FORWARD},
    "delattr_loop_and_lerp": {"coupled_lstm_cell": CELL_HEAD + '''        for name in ("W_i", "U_i", "b_i"):
            delattr(self, name)

    def forward(self, x, h=None, c=None):
        zeros = x.new_zeros(x.shape[:-1] + (self.hidden_size,))
        h = zeros if h is None else h
        c = zeros if c is None else c
        f = sigmoid(self.preactivation("f", x, h))
        c_next = torch.lerp(torch.tanh(self.preactivation("c", x, h)), c, f)
        return sigmoid(self.preactivation("o", x, h)) * torch.tanh(c_next), c_next'''},
    "sigmoid_of_minus_preactivation": {"coupled_lstm_cell": CELL_HEAD + '''        del self.W_i
        del self.U_i
        del self.b_i

    def forward(self, x, h=None, c=None):
        if h is None:
            h = torch.zeros_like(x[..., :1]).expand(*x.shape[:-1], self.hidden_size)
        if c is None:
            c = x.new_zeros(*x.shape[:-1], self.hidden_size)
        a_f = self.preactivation("f", x, h)
        f, i = sigmoid(a_f), sigmoid(-a_f)
        c_next = f * c + i * torch.tanh(self.preactivation("c", x, h))
        return sigmoid(self.preactivation("o", x, h)) * torch.tanh(c_next), c_next'''},
    "lstm_with_docstring_only": {"coupled_lstm": '''class CoupledLSTM(LSTM):
    """Coupled stack."""
    cell_class = CoupledLSTMCell

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)'''},
}
