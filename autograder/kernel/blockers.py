"""What the student's code may not call while the grader runs it, and the one thing it is lent.

``no_ready_made()``: any of PyTorch's LSTM implementations raises ``ReadyMade``, however the student's code
got hold of it (the names are replaced, and a TorchFunctionMode sees the calls that go around them).
``forbidden("sigmoid")``: the built-in sigmoids raise ``Forbidden`` (notebook 1 has it written from exp).
``good_sigmoid(cell)``: the cell's module-level ``sigmoid`` is torch's while it runs, so a bug in the
student's own sigmoid costs points only in the sigmoid tests.

This is defence in depth, not a verdict: a student who gets around it is still caught by the grader's
scan of the submitted source (``autograder.checks.scan``).
"""

import contextlib

import torch
import torch.nn as nn
import torch.nn.functional as F


class ReadyMade(Exception):
    """Student code called one of PyTorch's LSTMs."""


class Forbidden(Exception):
    """Student code called something a test forbids (``args[0]`` names the rule)."""


READY_MADE_OPS = frozenset({"lstm", "lstm_cell", "_thnn_fused_lstm_cell", "mkldnn_rnn_layer", "_cudnn_rnn",
                            "miopen_rnn", "quantized_lstm", "quantized_lstm_cell", "_lstm_mps"})


def _targets():
    targets = [(nn.LSTM, "forward"), (nn.LSTMCell, "forward"), (torch, "lstm"), (torch, "lstm_cell"),
               (torch._VF, "lstm"), (torch._VF, "lstm_cell")]
    return [(owner, attr) for owner, attr in targets if hasattr(owner, attr)]


class _Watch(torch.overrides.TorchFunctionMode):
    def __init__(self, used):
        super().__init__()
        self.used = used

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "").split(".")[0]
        if name in READY_MADE_OPS:
            self.used.append(f"torch's {name}")
            raise ReadyMade(f"torch's {name}")
        return func(*args, **(kwargs or {}))


@contextlib.contextmanager
def replaced(replacements):
    """``owner.attr = value`` for each triple while inside; an attribute only inherited is deleted after."""
    saved = [(owner, attr, getattr(owner, attr, None), not isinstance(owner, type) or attr in owner.__dict__)
             for owner, attr, _ in replacements]
    for owner, attr, value in replacements:
        setattr(owner, attr, value)
    try:
        yield
    finally:
        for owner, attr, value, own in reversed(saved):
            if own:
                setattr(owner, attr, value)
            else:
                delattr(owner, attr)


@contextlib.contextmanager
def no_ready_made():
    """Yields the list of ready-made LSTMs called inside (the first call also raises ``ReadyMade``)."""
    used = []

    def blocker(label):
        def blocked(*args, **kwargs):
            used.append(label)
            raise ReadyMade(label)

        return blocked

    targets = [(owner, attr, blocker(f"{getattr(owner, '__name__', type(owner).__name__)}.{attr}"))
               for owner, attr in _targets()]
    with replaced(targets), _Watch(used):
        yield used


def _forbid(rule):
    def forbidden(*args, **kwargs):
        raise Forbidden(rule)

    return forbidden


FORBIDDEN = {
    "sigmoid": [(torch, "sigmoid"), (torch.special, "expit"), (F, "sigmoid"), (torch.Tensor, "sigmoid"),
                (nn.Sigmoid, "forward")],
}


def forbidden(rules):
    return replaced([(owner, attr, _forbid(rule)) for rule in rules for owner, attr in FORBIDDEN[rule]])


class _Namespace:
    """A module's globals dict, seen as an object with attributes (for ``replaced``)."""

    def __init__(self, ns):
        self.__dict__["_ns"] = ns

    def __getattr__(self, name):
        return self._ns[name]

    def __setattr__(self, name, value):
        self._ns[name] = value


def good_sigmoid(cell):
    forward = getattr(type(cell), "forward", None)
    ns = getattr(forward, "__globals__", None)
    if isinstance(ns, dict) and "sigmoid" in ns:
        return replaced([(_Namespace(ns), "sigmoid", torch.sigmoid)])
    return contextlib.nullcontext()
