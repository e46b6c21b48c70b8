"""What the student's code may not call while the grader runs it, and the one thing it is lent.

``no_ready_made()``: any of PyTorch's LSTM implementations raises ``ReadyMade``, however the student's code
got hold of it (the names are replaced, and a TorchFunctionMode sees the calls that go around them).
``forbidden("sigmoid")``: PyTorch's sigmoids raise ``Forbidden`` (notebook 1 has it written from exp), in
every spelling (``FORBIDDEN_NAMES``): the names are replaced, and a TorchDispatchMode sees the operator
however it was reached (``x.sigmoid_()``, ``torch.ops.aten.sigmoid``, ``torch._C._VariableFunctions.sigmoid``).
``good_sigmoid(cell)``: the cell's module-level ``sigmoid`` is torch's while it runs, so a bug in the
student's own sigmoid costs points only in the sigmoid tests.

This is defence in depth, never a verdict: student code runs in this process and can replace any of it
(``DisableTorchFunction`` switches the watch off; a submission can reach this module and swap its functions).
What is binding is the grader's scan of the submitted source (``autograder.checks.scan``), which withholds
the points of code that reaches for these things or around them.
"""

import contextlib

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode


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


# rule -> every name it forbids: functions, methods, in-place and aten spellings, modules (the grader's scan
# reads the same names in the submitted source)
FORBIDDEN_NAMES = {
    "sigmoid": frozenset({"sigmoid", "sigmoid_", "expit", "logsigmoid", "log_sigmoid", "log_sigmoid_forward",
                          "Sigmoid", "LogSigmoid"}),
}


def _forbidden_targets(rule) -> list:
    """(owner, attr) of each name of the rule where PyTorch defines it; a module class's ``forward``."""
    names = FORBIDDEN_NAMES[rule]
    owners = (torch, torch.special, F, torch.Tensor, torch._C._nn)
    found = [(owner, name) for owner in owners for name in sorted(names) if hasattr(owner, name)]
    modules = [getattr(nn, name) for name in sorted(names) if isinstance(getattr(nn, name, None), type)]
    return found + [(module, "forward") for module in modules]


FORBIDDEN = {rule: _forbidden_targets(rule) for rule in FORBIDDEN_NAMES}


class _Operators(TorchDispatchMode):
    """Below autograd: an operator of a rule raises ``Forbidden``, whatever name reached it."""

    def __init__(self, rules):
        super().__init__()
        self.rule_of = {name: rule for rule in rules for name in FORBIDDEN_NAMES[rule]}

    @classmethod
    def _should_skip_dynamo(cls):
        # PyTorch otherwise wraps __torch_dispatch__ in torch._dynamo.disable, whose first call imports
        # torch._dynamo (and sympy): a CPU second in every kernel that grades notebook 1. Nothing here compiles.
        return False

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        rule = self.rule_of.get(getattr(func, "__name__", "").split(".")[0])
        if rule is not None:
            raise Forbidden(rule)
        return func(*args, **(kwargs or {}))


@contextlib.contextmanager
def forbidden(rules):
    """Inside, what each rule forbids raises ``Forbidden(rule)``."""
    rules = list(rules)
    if not rules:
        yield
        return
    with replaced([(owner, attr, _forbid(rule)) for rule in rules for owner, attr in FORBIDDEN[rule]]), \
            _Operators(rules):
        yield


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
