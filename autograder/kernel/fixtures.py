"""Grader-made objects that tests hand to student code (or build student classes on), made in the kernel.

They hold no answers: the grader loads its own weights into them through the probe, and computes its
references from its own copies (it imports this module too, so both sides build the same thing).
"""

import torch
import torch.nn as nn


def subclass(base, name, attrs):
    """``class name(base)`` with class attributes ``attrs`` (a cell or a stack a test swaps in)."""
    return type(name, (base,), dict(attrs))


def generator(seed):
    g = torch.Generator()
    g.manual_seed(int(seed))
    return g


# notebook 2


def stack(base, cells, input_size, hidden_size):
    """An LSTM-shaped model holding ``cells`` in ``layers``, made without running ``base.__init__`` (``base``:
    the student's LSTM class, or None for nn.Module), so that a bug in the student's ``LSTM.__init__`` does not
    cost the ``load_lstm_from_torch`` points too."""
    base = nn.Module if base is None else base
    model = base.__new__(base)
    nn.Module.__init__(model)
    model.input_size, model.hidden_size, model.num_layers, model.batch_first = (
        input_size, hidden_size, len(cells), False)
    model.layers = nn.ModuleList(cells)
    return model


# notebook 3


class CoupledCell(nn.Module):
    """A correct coupled cell (i_t = 1 - f_t) with the contract's nine parameters: the ``CoupledLSTM`` tests build
    their stacks from it, so that a mistake in the student's cell costs points only once."""

    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        for gate in "foc":
            self.register_parameter(f"W_{gate}", nn.Parameter(torch.empty(hidden_size, hidden_size)))
            self.register_parameter(f"U_{gate}", nn.Parameter(torch.empty(hidden_size, input_size)))
            self.register_parameter(f"b_{gate}", nn.Parameter(torch.empty(hidden_size)))
        self.reset_parameters()

    def reset_parameters(self):
        k = 1 / self.hidden_size ** 0.5
        for p in self.parameters():
            nn.init.uniform_(p, -k, k)

    def forward(self, x, h=None, c=None):
        if h is None:
            h = x.new_zeros(*x.shape[:-1], self.hidden_size)
        if c is None:
            c = x.new_zeros(*x.shape[:-1], self.hidden_size)

        def pre(g):
            return x @ getattr(self, f"U_{g}").T + h @ getattr(self, f"W_{g}").T + getattr(self, f"b_{g}")

        f = torch.sigmoid(pre("f"))
        c_next = f * c + (1 - f) * torch.tanh(pre("c"))
        return torch.sigmoid(pre("o")) * torch.tanh(c_next), c_next


def coupled_cell_class():
    """The class itself (the tests put it in a stack's ``cell_class``)."""
    return CoupledCell


# notebook 4


def peephole_stand_in(peephole_cell, lstm_cell):
    """A subclass of the student's ``PeepholeLSTMCell`` for the stack tests (the stack exercise is only its
    ``cell_class``): the given ``LSTMCell.__init__`` plus (H, H) peepholes V_f, V_i, V_o, and a forward that is
    the peephole step on the cell's own parameters, which the grader then loads with its weights."""

    def __init__(self, input_size, hidden_size):
        lstm_cell.__init__(self, input_size, hidden_size)
        for gate in "fio":
            setattr(self, f"V_{gate}", nn.Parameter(torch.zeros(hidden_size, hidden_size)))

    def forward(self, x, h=None, c=None):
        h = x.new_zeros(*x.shape[:-1], self.hidden_size) if h is None else h
        c = x.new_zeros(*x.shape[:-1], self.hidden_size) if c is None else c

        def pre(g):
            return x @ getattr(self, f"U_{g}").T + h @ getattr(self, f"W_{g}").T + getattr(self, f"b_{g}")

        f, i, o = (torch.sigmoid(pre(g) + c @ getattr(self, f"V_{g}").T) for g in "fio")
        c_next = f * c + i * torch.tanh(pre("c"))
        return o * torch.tanh(c_next), c_next

    return type("PeepholeLSTMCell", (peephole_cell,), {"__init__": __init__, "forward": forward})


# notebook 5


class TinyRegressor(nn.Module):
    """The grader's own model for ``input_gradient_norms``: a tanh RNN written out, and a linear head on the
    last (or every) step."""

    def __init__(self, hidden=5, last_only=True):
        super().__init__()
        self.w_x = nn.Parameter(torch.randn(2, hidden, dtype=torch.float64) * 0.7)
        self.w_h = nn.Parameter(torch.randn(hidden, hidden, dtype=torch.float64) * 0.5)
        self.head = nn.Parameter(torch.randn(hidden, dtype=torch.float64))
        self.last_only = last_only

    def forward(self, x):
        h = x.new_zeros(x.shape[1], self.w_h.shape[0])
        total = 0
        for x_t in x.unbind(0):
            h = torch.tanh(x_t @ self.w_x + h @ self.w_h)
            total = total + h @ self.head
        return h @ self.head if self.last_only else total


# notebook 7


class TinyClassifier(nn.Module):
    """The grader's own sequence classifier for ``predict``: (T, B, I) -> logits (B, C) from the last step and
    the mean over time."""

    def __init__(self, input_size=3, num_classes=4):
        super().__init__()
        self.w_last = nn.Parameter(torch.randn(input_size, num_classes, dtype=torch.float64))
        self.w_mean = nn.Parameter(torch.randn(input_size, num_classes, dtype=torch.float64))

    def forward(self, x):
        return x[-1] @ self.w_last + x.mean(0) @ self.w_mean


class TinyCharModel(nn.Module):
    """The grader's own character model for ``train_tbptt`` and ``sample``: (T, B) indices and a state
    (h, c) of shape (1, B, H) each -> logits (T, B, V) and the new state. A tanh recurrence that reads both
    parts of the state, so that dropping or resetting either one changes the numbers."""

    def __init__(self, chars, hidden=5):
        super().__init__()
        self.chars = list(chars)
        vocab = len(self.chars)
        self.embed = nn.Parameter(torch.randn(vocab, hidden, dtype=torch.float64))
        self.w_h = nn.Parameter(torch.randn(hidden, hidden, dtype=torch.float64) * 0.5)
        self.w_c = nn.Parameter(torch.randn(hidden, hidden, dtype=torch.float64) * 0.5)
        self.out = nn.Parameter(torch.randn(hidden, vocab, dtype=torch.float64))
        self.bias = nn.Parameter(torch.randn(vocab, dtype=torch.float64) * 0.3)

    def forward(self, x, state=None):
        if state is None:
            h = self.embed.new_zeros(x.shape[1], self.w_h.shape[0])
            c = torch.zeros_like(h)
        else:
            h, c = state[0][0], state[1][0]
        outputs = []
        for x_t in x.unbind(0):
            h = torch.tanh(self.embed[x_t] + h @ self.w_h + c @ self.w_c)
            c = 0.7 * c + 0.3 * h
            outputs.append(h @ self.out + self.bias)
        return torch.stack(outputs), (h.unsqueeze(0), c.unsqueeze(0))


def sgd(model, lr):
    """Plain SGD on a model's parameters (the optimizer ``train_tbptt`` is handed)."""
    return torch.optim.SGD(model.parameters(), lr=lr)


MAKERS = {
    "nn.LSTMCell": nn.LSTMCell,
    "nn.LSTM": nn.LSTM,
    "nn.RNNCell": nn.RNNCell,
    "subclass": subclass,
    "generator": generator,
    "stack": stack,  # notebook 2
    "CoupledCell": coupled_cell_class,  # notebook 3
    "peephole_stand_in": peephole_stand_in,  # notebook 4
    "TinyRegressor": TinyRegressor,  # notebook 5
    "TinyClassifier": TinyClassifier,  # notebook 7
    "TinyCharModel": TinyCharModel,
    "sgd": sgd,
}
