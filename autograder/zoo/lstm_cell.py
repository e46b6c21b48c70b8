"""Notebook 1: the mistakes the hidden tests catch without naming them (those they name are in
``autograder.checks.mistakes.lstm_cell``, with their mutants), and correct answers in other styles."""

from ..host.submissions import Mutation

A = "01_lstm_cell"


def bug(name, cell, old, new, description, message, bug_id):
    return Mutation(name, A, cell, old, new, description, message, bug_id)


STABLE = (
    "    z = torch.exp(-torch.where(x >= 0, x, -x))  # exp(-|x|), with slope -1 (not 0) at x = 0\n"
    "    return torch.where(x >= 0, 1 / (1 + z), z / (1 + z))"
)
GATES = (
    '        f = sigmoid(self.preactivation("f", x, h))\n'
    '        i = sigmoid(self.preactivation("i", x, h))\n'
)
GATE_BLOCK = (
    '        f = sigmoid(self.preactivation("f", x, h))\n'
    '        i = sigmoid(self.preactivation("i", x, h))\n'
    '        o = sigmoid(self.preactivation("o", x, h))\n'
    '        c_tilde = torch.tanh(self.preactivation("c", x, h))\n'
    "        c_next = f * c + i * c_tilde\n"
    "        h_next = o * torch.tanh(c_next)\n"
)

MUTANTS = [
    bug("W_U_swapped", "lstm_cell", "return h @ W.T + x @ U.T + b", "return h @ U.T + x @ W.T + b",
        "W and U swapped", r"W_\* .*multiplies h", "lstm_cell.cell_forward"),
    bug("default_state_hardcoded_dtype", "lstm_cell",
        "            h = x.new_zeros(*x.shape[:-1], self.hidden_size)\n",
        "            h = torch.zeros(*x.shape[:-1], self.hidden_size)\n",
        "default h created as float32 on the CPU", r"new_zeros|like the input", "lstm_cell.cell_forward_forms"),
    bug("load_ih_hh_swapped", "load_from_torch",
        'getattr(cell, f"U_{gate}").copy_(torch_cell.weight_ih[rows])\n'
        '            getattr(cell, f"W_{gate}").copy_(torch_cell.weight_hh[rows])',
        'getattr(cell, f"U_{gate}").copy_(torch_cell.weight_hh[rows])\n'
        '            getattr(cell, f"W_{gate}").copy_(torch_cell.weight_ih[rows])',
        "weight_ih and weight_hh swapped", r"weight_ih .*weight_hh|U_\* come from weight_ih", "lstm_cell.load_from_torch_stripes"),
]


CELL_HEAD = '''class LSTMCell(nn.Module):
    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
'''

STYLES = {
    # The equations exactly as written, on column vectors; a batch is handled one example at a time.
    "column_vectors": {
        "sigmoid": '''def sigmoid(x):
    pos = x >= 0
    e_neg = torch.exp(x.clamp(max=0))
    return torch.where(pos, 1 / (1 + torch.exp(-x.clamp(min=0))), e_neg / (1 + e_neg))''',
        "lstm_cell": CELL_HEAD + '''        H, I = hidden_size, input_size
        self.W_f, self.W_i, self.W_o, self.W_c = (nn.Parameter(torch.zeros(H, H)) for _ in range(4))
        self.U_f, self.U_i, self.U_o, self.U_c = (nn.Parameter(torch.zeros(H, I)) for _ in range(4))
        self.b_f, self.b_i, self.b_o, self.b_c = (nn.Parameter(torch.zeros(H)) for _ in range(4))
        self.reset_parameters()

    def reset_parameters(self):
        bound = self.hidden_size ** -0.5
        with torch.no_grad():
            for p in self.parameters():
                p.uniform_(-bound, bound)

    def step(self, x, h, c):
        """One example: x (I,), h and c (H,), the equations as written (W h is a matrix-vector product)."""
        f = sigmoid(self.W_f @ h + self.U_f @ x + self.b_f)
        i = sigmoid(self.W_i @ h + self.U_i @ x + self.b_i)
        o = sigmoid(self.W_o @ h + self.U_o @ x + self.b_o)
        g = torch.tanh(self.W_c @ h + self.U_c @ x + self.b_c)
        c = f * c + i * g
        return o * torch.tanh(c), c

    def forward(self, x, h=None, c=None):
        zeros = x.new_zeros(*x.shape[:-1], self.hidden_size)
        h = zeros if h is None else h
        c = zeros if c is None else c
        if x.dim() == 1:
            return self.step(x, h, c)
        pairs = [self.step(x[b], h[b], c[b]) for b in range(x.shape[0])]
        return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])''',
    },
    # F.linear per gate, explicit attributes, no helper loops.
    "f_linear": {
        "sigmoid": '''def sigmoid(x):
    return torch.exp(-torch.logaddexp(torch.zeros_like(x), -x))''',
        "lstm_cell": CELL_HEAD + '''        self.W_f = nn.Parameter(torch.empty(hidden_size, hidden_size))
        self.W_i = nn.Parameter(torch.empty(hidden_size, hidden_size))
        self.W_o = nn.Parameter(torch.empty(hidden_size, hidden_size))
        self.W_c = nn.Parameter(torch.empty(hidden_size, hidden_size))
        self.U_f = nn.Parameter(torch.empty(hidden_size, input_size))
        self.U_i = nn.Parameter(torch.empty(hidden_size, input_size))
        self.U_o = nn.Parameter(torch.empty(hidden_size, input_size))
        self.U_c = nn.Parameter(torch.empty(hidden_size, input_size))
        self.b_f = nn.Parameter(torch.empty(hidden_size))
        self.b_i = nn.Parameter(torch.empty(hidden_size))
        self.b_o = nn.Parameter(torch.empty(hidden_size))
        self.b_c = nn.Parameter(torch.empty(hidden_size))
        self.reset_parameters()

    def reset_parameters(self):
        for p in self.parameters():
            nn.init.uniform_(p, -1 / math.sqrt(self.hidden_size), 1 / math.sqrt(self.hidden_size))

    def preactivation(self, gate, x, h):
        import torch.nn.functional as F
        return F.linear(h, getattr(self, "W_" + gate)) + F.linear(x, getattr(self, "U_" + gate), getattr(self, "b_" + gate))

    def forward(self, x, h=None, c=None):
        if h is None:
            h = torch.zeros(x.shape[:-1] + (self.hidden_size,), dtype=x.dtype, device=x.device)
        if c is None:
            c = torch.zeros_like(h)
        f = sigmoid(self.preactivation("f", x, h))
        i = sigmoid(self.preactivation("i", x, h))
        o = sigmoid(self.preactivation("o", x, h))
        c_next = f * c + i * torch.tanh(self.preactivation("c", x, h))
        return o * torch.tanh(c_next), c_next''',
    },
    # One fused matmul for the four gates, then chunk; load_from_torch with chunk as well.
    "fused_chunk": {
        "lstm_cell": CELL_HEAD + '''        for name, cols in (("W", hidden_size), ("U", input_size)):
            for g in "fioc":
                self.register_parameter(f"{name}_{g}", nn.Parameter(torch.empty(hidden_size, cols)))
        for g in "fioc":
            self.register_parameter(f"b_{g}", nn.Parameter(torch.empty(hidden_size)))
        self.reset_parameters()

    def reset_parameters(self):
        k = 1.0 / self.hidden_size ** 0.5
        for p in self.parameters():
            nn.init.uniform_(p, -k, k)

    def forward(self, x, h=None, c=None):
        if h is None:
            h = x.new_zeros(x.shape[:-1] + (self.hidden_size,))
        if c is None:
            c = x.new_zeros(x.shape[:-1] + (self.hidden_size,))
        W = torch.cat([self.W_f, self.W_i, self.W_o, self.W_c])
        U = torch.cat([self.U_f, self.U_i, self.U_o, self.U_c])
        b = torch.cat([self.b_f, self.b_i, self.b_o, self.b_c])
        f, i, o, g = (h @ W.T + x @ U.T + b).chunk(4, dim=-1)
        c = sigmoid(f) * c + sigmoid(i) * torch.tanh(g)
        return sigmoid(o) * torch.tanh(c), c''',
        "load_from_torch": '''def load_from_torch(cell, torch_cell):
    chunks = zip("ifco", torch_cell.weight_ih.chunk(4), torch_cell.weight_hh.chunk(4),
                 torch_cell.bias_ih.chunk(4), torch_cell.bias_hh.chunk(4))
    with torch.no_grad():
        for g, u, w, b1, b2 in chunks:
            getattr(cell, "U_" + g).copy_(u)
            getattr(cell, "W_" + g).copy_(w)
            getattr(cell, "b_" + g).copy_(b1 + b2)
    return cell''',
    },
    # einsum everywhere, a dict of gate activations.
    "einsum": {
        "lstm_cell": CELL_HEAD + '''        self.gates = "fioc"
        for g in self.gates:
            setattr(self, "W_" + g, nn.Parameter(torch.empty(hidden_size, hidden_size)))
            setattr(self, "U_" + g, nn.Parameter(torch.empty(hidden_size, input_size)))
            setattr(self, "b_" + g, nn.Parameter(torch.empty(hidden_size)))
        self.reset_parameters()

    def reset_parameters(self):
        k = math.sqrt(1 / self.hidden_size)
        for name, p in self.named_parameters():
            p.data.uniform_(-k, k)

    def forward(self, x, h=None, c=None):
        h = x.new_zeros((*x.shape[:-1], self.hidden_size)) if h is None else h
        c = x.new_zeros((*x.shape[:-1], self.hidden_size)) if c is None else c
        a = {g: torch.einsum("...j,ij->...i", h, getattr(self, "W_" + g))
                + torch.einsum("...j,ij->...i", x, getattr(self, "U_" + g)) + getattr(self, "b_" + g)
             for g in self.gates}
        c_new = sigmoid(a["f"]) * c + sigmoid(a["i"]) * torch.tanh(a["c"])
        h_new = sigmoid(a["o"]) * torch.tanh(c_new)
        return h_new, c_new''',
    },
    # Row-major matmuls written out with torch.matmul and addmm-like sums, copies via .data.
    "matmul_rows": {
        "sigmoid": '''def sigmoid(x):
    neg = x < 0
    z = torch.exp(torch.where(neg, x, -x))
    return torch.where(neg, z, torch.ones_like(z)) / (1 + z)''',
        "lstm_cell": CELL_HEAD + '''        def p(*shape):
            return nn.Parameter(torch.empty(*shape))
        self.W_f, self.W_i, self.W_o, self.W_c = p(hidden_size, hidden_size), p(hidden_size, hidden_size), p(hidden_size, hidden_size), p(hidden_size, hidden_size)
        self.U_f, self.U_i, self.U_o, self.U_c = p(hidden_size, input_size), p(hidden_size, input_size), p(hidden_size, input_size), p(hidden_size, input_size)
        self.b_f, self.b_i, self.b_o, self.b_c = p(hidden_size), p(hidden_size), p(hidden_size), p(hidden_size)
        self.reset_parameters()

    def reset_parameters(self):
        std = 1.0 / math.sqrt(self.hidden_size)
        for w in self.parameters():
            w.data.uniform_(-std, std)

    def forward(self, x, h=None, c=None):
        if h is None or c is None:
            shape = list(x.shape[:-1]) + [self.hidden_size]
            h = x.new_zeros(shape) if h is None else h
            c = x.new_zeros(shape) if c is None else c
        f = sigmoid(torch.matmul(h, self.W_f.t()) + torch.matmul(x, self.U_f.t()) + self.b_f)
        i = sigmoid(torch.matmul(h, self.W_i.t()) + torch.matmul(x, self.U_i.t()) + self.b_i)
        o = sigmoid(torch.matmul(h, self.W_o.t()) + torch.matmul(x, self.U_o.t()) + self.b_o)
        g = torch.tanh(torch.matmul(h, self.W_c.t()) + torch.matmul(x, self.U_c.t()) + self.b_c)
        c_next = torch.addcmul(i * g, f, c)
        return o * torch.tanh(c_next), c_next''',
        "load_from_torch": '''def load_from_torch(cell, torch_cell):
    H = torch_cell.hidden_size
    names = {"i": 0, "f": 1, "c": 2, "o": 3}
    for g, k in names.items():
        getattr(cell, f"U_{g}").data.copy_(torch_cell.weight_ih.data[k * H:(k + 1) * H])
        getattr(cell, f"W_{g}").data.copy_(torch_cell.weight_hh.data[k * H:(k + 1) * H])
        getattr(cell, f"b_{g}").data.copy_(torch_cell.bias_ih.data[k * H:(k + 1) * H] + torch_cell.bias_hh.data[k * H:(k + 1) * H])
    return cell''',
    },
}
