"""Notebook 4: realistic mistakes the hidden tests must catch, and correct answers in other styles."""

from ..host.submissions import Mutation

A = "04_peepholes"
CELL = "peephole_cell"


def bug(name, cell, old, new, description, message, bug_id):
    return Mutation(name, A, cell, old, new, description, message, bug_id)


THREE = ('        f = sigmoid(self.preactivation("f", x, h) + c @ self.V_f.T)\n'
         '        i = sigmoid(self.preactivation("i", x, h) + c @ self.V_i.T)\n'
         '        o = sigmoid(self.preactivation("o", x, h) + c @ self.V_o.T)\n')
O_AND_UPDATE = ('o = sigmoid(self.preactivation("o", x, h) + c @ self.V_o.T)\n'
                '        c_tilde = torch.tanh(self.preactivation("c", x, h))\n'
                '        c_next = f * c + i * c_tilde\n')

MUTANTS = [
    bug("output_gate_not_peeking", CELL, 'o = sigmoid(self.preactivation("o", x, h) + c @ self.V_o.T)',
        'o = sigmoid(self.preactivation("o", x, h))', "the output gate has no peephole",
        r"output gate has no peephole", "peepholes.peeking_fi"),
    bug("peepholes_on_h", CELL, THREE, THREE.replace("+ c @", "+ h @"), "peepholes multiply h instead of c",
        r"instead of the cell state", "peepholes.on_h_fio"),
    bug("V_transposed", CELL, THREE, THREE.replace(".T)", ")"), "c @ V instead of c @ V.T",
        r"V not transposed", "peepholes.V_not_transposed"),
    bug("output_gate_peeks_new_c", CELL, O_AND_UPDATE,
        'c_tilde = torch.tanh(self.preactivation("c", x, h))\n        c_next = f * c + i * c_tilde\n'
        '        o = sigmoid(self.preactivation("o", x, h) + c_next @ self.V_o.T)\n',
        "the output gate peeks at c_t instead of c_{t-1}", r"peeks at the new cell state", "peepholes.o_peeks_new_c"),
    bug("V_f_V_i_swapped", CELL, THREE, THREE.replace("V_f", "V_X").replace("V_i", "V_f").replace("V_X", "V_i"),
        "the forget gate uses V_i and the input gate V_f", r"forget gate uses V_i", "peepholes.peepholes_f_i_swapped"),
    bug("V_never_initialised", CELL, "        self.reset_parameters()\n", "",
        "V_* left as torch.empty: reset_parameters not called again", r"reset_parameters", "peepholes.init_not_called"),
    bug("V_plain_tensors", CELL, "nn.Parameter(torch.empty(hidden_size, hidden_size))",
        "torch.randn(hidden_size, hidden_size) * 0.1", "V_* plain tensors, not nn.Parameter",
        r"nn\.Parameter|plain tensor|missing the parameters", "peepholes.plain_tensor_parameter"),
    bug("peephole_detached", CELL, THREE, THREE.replace("+ c @", "+ c.detach() @"),
        "the peepholes read c.detach()", r"detach", "peepholes.peephole_gradients"),
    bug("stack_of_plain_cells", "peephole_lstm", "cell_class = PeepholeLSTMCell", "cell_class = LSTMCell",
        "PeepholeLSTM keeps cell_class = LSTMCell", r"cell_class", "peepholes.peephole_lstm_structure"),
    bug("diagonal_output_gate_on_old_c", "diagonal_peephole_cell", "self.v_o * c_next", "self.v_o * c",
        "the diagonal cell's output gate peeks at c_{t-1}", r"previous cell state", "peepholes.o_peeks_old_c"),
    bug("diagonal_v_as_matrix", "diagonal_peephole_cell", "nn.Parameter(torch.empty(hidden_size))",
        "nn.Parameter(torch.empty(hidden_size, hidden_size))", "diagonal peepholes stored as matrices",
        r"shape", "peepholes.parameter_shape"),
]

STYLES = {
    # F.linear for the peephole terms, a gate loop.
    "f_linear": {
        "peephole_cell": '''class PeepholeLSTMCell(LSTMCell):
    def __init__(self, input_size, hidden_size):
        super().__init__(input_size, hidden_size)
        self.V_f = nn.Parameter(torch.empty(hidden_size, hidden_size))
        self.V_i = nn.Parameter(torch.empty(hidden_size, hidden_size))
        self.V_o = nn.Parameter(torch.empty(hidden_size, hidden_size))
        self.reset_parameters()

    def forward(self, x, h=None, c=None):
        import torch.nn.functional as F
        h = x.new_zeros(*x.shape[:-1], self.hidden_size) if h is None else h
        c = x.new_zeros(*x.shape[:-1], self.hidden_size) if c is None else c
        gate = {g: sigmoid(self.preactivation(g, x, h) + F.linear(c, getattr(self, "V_" + g))) for g in "fio"}
        c_next = gate["f"] * c + gate["i"] * torch.tanh(self.preactivation("c", x, h))
        return gate["o"] * torch.tanh(c_next), c_next''',
    },
    # Column-vector matmul V @ c with an explicit trailing axis; a stack with its own __init__.
    "matvec": {
        "peephole_cell": '''class PeepholeLSTMCell(LSTMCell):
    def __init__(self, input_size, hidden_size):
        super().__init__(input_size, hidden_size)
        for g in ("f", "i", "o"):
            self.register_parameter("V_" + g, nn.Parameter(torch.zeros(hidden_size, hidden_size)))
        self.reset_parameters()

    def peek(self, g, c):
        return (getattr(self, "V_" + g) @ c.unsqueeze(-1)).squeeze(-1)

    def forward(self, x, h=None, c=None):
        if h is None:
            h = torch.zeros(*x.shape[:-1], self.hidden_size, dtype=x.dtype, device=x.device)
        if c is None:
            c = torch.zeros_like(h)
        f = sigmoid(self.preactivation("f", x, h) + self.peek("f", c))
        i = sigmoid(self.preactivation("i", x, h) + self.peek("i", c))
        o = sigmoid(self.preactivation("o", x, h) + self.peek("o", c))
        c = f * c + i * torch.tanh(self.preactivation("c", x, h))
        return o * torch.tanh(c), c''',
        "peephole_lstm": '''class PeepholeLSTM(LSTM):
    cell_class = PeepholeLSTMCell

    def __init__(self, input_size, hidden_size, num_layers=2, batch_first=False):
        super().__init__(input_size, hidden_size, num_layers=num_layers, batch_first=batch_first)''',
        "diagonal_peephole_cell": '''class DiagonalPeepholeLSTMCell(LSTMCell):
    def __init__(self, input_size, hidden_size):
        super().__init__(input_size, hidden_size)
        self.v_f, self.v_i, self.v_o = (nn.Parameter(torch.empty(hidden_size)) for _ in range(3))
        self.reset_parameters()

    def forward(self, x, h=None, c=None):
        zeros = x.new_zeros(*x.shape[:-1], self.hidden_size)
        h, c = (zeros if h is None else h), (zeros if c is None else c)
        f = sigmoid(self.preactivation("f", x, h) + torch.einsum("h,...h->...h", self.v_f, c))
        i = sigmoid(self.preactivation("i", x, h) + torch.einsum("h,...h->...h", self.v_i, c))
        c_next = torch.addcmul(f * c, i, torch.tanh(self.preactivation("c", x, h)))
        o = sigmoid(self.preactivation("o", x, h) + c_next @ torch.diag(self.v_o))
        return o * torch.tanh(c_next), c_next''',
    },
}
