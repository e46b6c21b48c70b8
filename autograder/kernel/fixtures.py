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


MAKERS["stack"] = stack
