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


MAKERS = {
    "nn.LSTMCell": nn.LSTMCell,
    "nn.LSTM": nn.LSTM,
    "nn.RNNCell": nn.RNNCell,
    "subclass": subclass,
    "generator": generator,
}


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


MAKERS["TinyRegressor"] = TinyRegressor
