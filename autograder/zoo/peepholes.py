"""Notebook 4: the mistakes the hidden tests catch without naming them (those they name are in
``autograder.checks.mistakes.peepholes``, with their mutants), and correct answers in other styles."""

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
    bug("peephole_detached", CELL, THREE, THREE.replace("+ c @", "+ c.detach() @"),
        "the peepholes read c.detach()", r"detach", "peepholes.peephole_gradients"),
    bug("stack_of_plain_cells", "peephole_lstm", "cell_class = PeepholeLSTMCell", "cell_class = LSTMCell",
        "PeepholeLSTM keeps cell_class = LSTMCell", r"cell_class", "peepholes.peephole_lstm_structure"),
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
