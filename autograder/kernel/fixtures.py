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
