"""Notebook 1: realistic mistakes the hidden tests must catch, and correct answers in other styles."""

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
    bug("sigmoid_naive", "sigmoid", STABLE, "    return 1 / (1 + torch.exp(-x))",
        "the literal formula: exp(-x) overflows, gradient NaN", r"1 / \(1 \+ exp\(-x\)\)|overflow", "lstm_cell.sigmoid_gradient_nan"),
    bug("sigmoid_where_both_branches", "sigmoid", STABLE,
        "    return torch.where(x >= 0, 1 / (1 + torch.exp(-x)), torch.exp(x) / (1 + torch.exp(x)))",
        "torch.where over two overflowing branches", r"torch\.where", "lstm_cell.sigmoid_gradient_nan"),
    bug("sigmoid_abs_slope", "sigmoid", "torch.exp(-torch.where(x >= 0, x, -x))", "torch.exp(-x.abs())",
        "exp(-|x|) via abs(): gradient 0 at x = 0", r"abs\(\)", "lstm_cell.sigmoid_abs_slope"),
    bug("sigmoid_builtin", "sigmoid", STABLE, "    return torch.sigmoid(x)",
        "calls torch.sigmoid", r"torch\.sigmoid", "lstm_cell.forbidden_sigmoid"),
    bug("f_i_swapped", "lstm_cell", GATES,
        '        f = sigmoid(self.preactivation("i", x, h))\n        i = sigmoid(self.preactivation("f", x, h))\n',
        "forget and input gates swapped", r"forget and input gates swapped", "lstm_cell.f_i_swapped"),
    bug("input_gate_uses_W_f", "lstm_cell", '        i = sigmoid(self.preactivation("i", x, h))\n',
        "        i = sigmoid(h @ self.W_f.T + x @ self.U_i.T + self.b_i)\n",
        "input gate uses the forget gate's recurrent weight", r"W_f", "lstm_cell.input_gate_uses_W_f"),
    bug("W_U_swapped", "lstm_cell", "return h @ W.T + x @ U.T + b", "return h @ U.T + x @ W.T + b",
        "W and U swapped", r"W_\* .*multiplies h", "lstm_cell.cell_forward"),
    bug("W_not_transposed", "lstm_cell", "return h @ W.T + x @ U.T + b", "return h @ W + x @ U.T + b",
        "h @ W instead of h @ W.T", r"h @ W\b.*transpose|h @ W\.T", "lstm_cell.W_not_transposed"),
    bug("bias_dropped", "lstm_cell", "return h @ W.T + x @ U.T + b", "return h @ W.T + x @ U.T",
        "no bias in the gates", r"without biases", "lstm_cell.no_bias"),
    bug("no_tanh_on_c", "lstm_cell", "h_next = o * torch.tanh(c_next)", "h_next = o * c_next",
        "tanh missing on the cell state", r"tanh\(c_t\)", "lstm_cell.no_tanh_on_c"),
    bug("candidate_sigmoid", "lstm_cell", 'c_tilde = torch.tanh(self.preactivation("c", x, h))',
        'c_tilde = sigmoid(self.preactivation("c", x, h))', "sigmoid instead of tanh for the candidate",
        r"candidate .*tanh", "lstm_cell.candidate_sigmoid"),
    bug("tanh_sigmoid_swapped_on_h", "lstm_cell", "h_next = o * torch.tanh(c_next)",
        "h_next = o * sigmoid(c_next)", "sigmoid instead of tanh on the cell state", r"tanh\(c_t\)", "lstm_cell.sigmoid_on_c"),
    bug("plain_tensor_weights", "lstm_cell",
        'setattr(self, f"W_{gate}", nn.Parameter(torch.empty(hidden_size, hidden_size)))',
        'setattr(self, f"W_{gate}", torch.empty(hidden_size, hidden_size))',
        "W_* as plain tensors, not nn.Parameter", r"plain tensor", "lstm_cell.plain_tensor_parameter"),
    bug("default_state_hardcoded_dtype", "lstm_cell",
        "            h = x.new_zeros(*x.shape[:-1], self.hidden_size)\n",
        "            h = torch.zeros(*x.shape[:-1], self.hidden_size)\n",
        "default h created as float32 on the CPU", r"new_zeros|like the input", "lstm_cell.cell_forward_forms"),
    bug("given_h_ignored", "lstm_cell", "        if h is None:\n", "        if True:\n",
        "the h passed in is replaced by zeros", r"ignores the given h", "lstm_cell.ignore_h"),
    bug("given_c_ignored", "lstm_cell", "        if c is None:\n", "        if True:\n",
        "the c passed in is replaced by zeros", r"ignores the given c", "lstm_cell.ignore_c"),
    bug("detach_in_forward", "lstm_cell", "c_next = f * c + i * c_tilde", "c_next = f * c.detach() + i * c_tilde",
        ".detach() on the previous cell state", r"detach", "lstm_cell.no_gradient"),
    bug("in_place_update", "lstm_cell", "c_next = f * c + i * c_tilde", "c_next = c.mul_(f).add_(i * c_tilde)",
        "updates the caller's c in place", r"in place", "lstm_cell.in_place_update"),
    bug("init_plus_minus_one", "lstm_cell", "nn.init.uniform_(p, -k, k)", "nn.init.uniform_(p, -1, 1)",
        "U(-1, 1) instead of U(-1/sqrt(H), 1/sqrt(H))", r"not ±1", "lstm_cell.init_too_wide"),
    bug("reset_parameters_not_called", "lstm_cell", "        self.reset_parameters()\n", "",
        "__init__ never calls reset_parameters", r"reset_parameters", "lstm_cell.init_not_called"),
    bug("ready_made_lstm", "lstm_cell", GATE_BLOCK,
        "        w_ih = torch.cat([self.U_i, self.U_f, self.U_c, self.U_o])\n"
        "        w_hh = torch.cat([self.W_i, self.W_f, self.W_c, self.W_o])\n"
        "        b = torch.cat([self.b_i, self.b_f, self.b_c, self.b_o])\n"
        "        h_next, c_next = torch.lstm_cell(x, (h, c), w_ih, w_hh, b, torch.zeros_like(b))\n",
        "calls torch.lstm_cell inside", r"calls torch\.lstm_cell", "lstm_cell.ready_made_lstm"),
    bug("load_gate_order", "load_from_torch", 'enumerate("ifco")', 'enumerate("fioc")',
        "reads PyTorch's stripes in the order f, i, o, c", r"i, f, g, o", "lstm_cell.load_gate_order"),
    bug("load_bias_ih_only", "load_from_torch", "bias = torch_cell.bias_ih + torch_cell.bias_hh",
        "bias = torch_cell.bias_ih", "forgets bias_hh", r"sum them", "lstm_cell.load_bias_ih_only"),
    bug("load_new_parameters", "load_from_torch",
        'getattr(cell, f"U_{gate}").copy_(torch_cell.weight_ih[rows])',
        'setattr(cell, f"U_{gate}", nn.Parameter(torch_cell.weight_ih[rows].clone()))',
        "replaces the parameters instead of copying in place", r"in place", "lstm_cell.load_new_parameters"),
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
