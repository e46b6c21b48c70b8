"""Hidden tests for notebook 6: ``FusedLSTMCell``, the graded rung of the speed ladder.

The student's cell keeps ``torch.nn.LSTMCell``'s four parameters (``weight_ih`` (4H, I), ``weight_hh``
(4H, H), ``bias_ih``, ``bias_hh``; rows i, f, g, o). Every test builds the student's cell itself, runs it on
the grading device in float64 and compares with a float64 ``torch.nn.LSTMCell`` carrying the same
weights. Nothing here measures time.
"""

import itertools
import math

import torch
import torch._dynamo  # noqa: F401  (see below)
import torch.nn as nn

from ..harness import GradingFailure, call, close, hidden_test, student
from . import _cell
from ._cell import F64

# Importing torch._dynamo rebinds torch.manual_seed (to a dynamo-disabled wrapper).
# The notebook calls torch.compile, which
# imports it lazily; the grading kernel's guard imports this module before it snapshots torch, so the
# rebinding happens before the snapshot and is not mistaken for the student's code changing torch.

PARAMS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
ORDER = "ifgo"  # PyTorch's stripes
GATE_NAMES = {"i": "input", "f": "forget", "g": "candidate", "o": "output"}


def _shapes(input_size, hidden_size):
    return {
        "weight_ih": (4 * hidden_size, input_size),
        "weight_hh": (4 * hidden_size, hidden_size),
        "bias_ih": (4 * hidden_size,),
        "bias_hh": (4 * hidden_size,),
    }


def _make_cell(input_size, hidden_size):
    cls = student("FusedLSTMCell")
    cell = call(cls, input_size, hidden_size, what=f"FusedLSTMCell({input_size}, {hidden_size})")
    if not isinstance(cell, nn.Module):
        raise GradingFailure("FusedLSTMCell must subclass nn.Module (class FusedLSTMCell(nn.Module)).")
    return cell


def _missing(names, _):
    return (f"parameters {', '.join(names)} are missing. FusedLSTMCell needs exactly torch.nn.LSTMCell's "
            "four: weight_ih, weight_hh, bias_ih, bias_hh.")


def _beyond(extra):
    if not extra:
        return ""
    return (f"FusedLSTMCell has parameters beyond torch.nn.LSTMCell's four: {', '.join(extra)}. "
            "Keep exactly weight_ih, weight_hh, bias_ih, bias_hh, so state_dicts load both ways.")


def _wrong_shape(name, got, want):
    hint = {
        "weight_ih": "four stacked (H, I) blocks: (4 * hidden_size, input_size).",
        "weight_hh": "four stacked (H, H) blocks: (4 * hidden_size, hidden_size).",
        "bias_ih": "one entry per row of weight_ih: (4 * hidden_size,).",
        "bias_hh": "one entry per row of weight_hh: (4 * hidden_size,).",
    }[name]
    transposed = " Transposed? PyTorch stores (out_features, in_features)." if got[::-1] == want else ""
    return f": {hint}{transposed}"


def _reference(input_size, hidden_size, spread=0.9):
    """A float64 nn.LSTMCell with random weights and two different biases (so dropping one shows)."""
    ref = nn.LSTMCell(input_size, hidden_size).to(F64)
    _cell.fill_uniform(ref, spread)
    return ref


def _torch_cell_from(params):
    """A float64 nn.LSTMCell holding these four parameters."""
    rows, input_size = params["weight_ih"].shape
    ref = nn.LSTMCell(input_size, rows // 4).to(F64)
    with torch.no_grad():
        for name in PARAMS:
            getattr(ref, name).copy_(params[name])
    return _cell.TorchReference(ref, lambda cell: {name: getattr(cell, name).grad for name in PARAMS})


# --------------------------------------------------------------------------- naming the bug


def _suspect_step(p, x, h, c, order=ORDER, bug=None):
    """nn.LSTMCell's step written out, with one usual mistake made on purpose."""
    b_ih = torch.zeros_like(p["bias_ih"]) if bug == "no_bias_ih" else p["bias_ih"]
    b_hh = torch.zeros_like(p["bias_hh"]) if bug == "no_bias_hh" else p["bias_hh"]
    hh = torch.zeros_like(h) if bug == "ignore_h" else h
    cc = torch.zeros_like(c) if bug == "ignore_c" else c
    gates = x @ p["weight_ih"].T + b_ih + hh @ p["weight_hh"].T + b_hh
    chunk = dict(zip(order, gates.chunk(4, dim=-1), strict=True))
    i, f, o = torch.sigmoid(chunk["i"]), torch.sigmoid(chunk["f"]), torch.sigmoid(chunk["o"])
    g = torch.sigmoid(chunk["g"]) if bug == "candidate_sigmoid" else torch.tanh(chunk["g"])
    c_next = f * cc + i * g
    h_next = o * c_next if bug == "no_tanh_on_c" else o * torch.tanh(c_next)
    return h_next, c_next


BUGS = {
    "no_bias_ih": "it matches torch.nn.LSTMCell without bias_ih: add both biases, bias_ih and bias_hh.",
    "no_bias_hh": "it matches torch.nn.LSTMCell without bias_hh: add both biases, bias_ih and bias_hh.",
    "ignore_h": "it matches an LSTM that ignores the given h: the gates need h @ weight_hh.T.",
    "ignore_c": "it matches an LSTM that ignores the given c: c_next = f * c + i * g uses the c you were given.",
    "candidate_sigmoid": "it matches an LSTM whose candidate g uses sigmoid: the third stripe g uses tanh.",
    "no_tanh_on_c": "h_next matches o * c_next: the equation is h_t = o_t * tanh(c_t).",
}


def _name_bug(p, x, h, c, got_h, got_c):
    """A sentence naming the mistake the student's output matches, or ''."""
    for order in itertools.permutations(ORDER):
        order = "".join(order)
        if order == ORDER:
            continue
        want_h, want_c = _suspect_step(p, x, h, c, order=order)
        if close(got_h, want_h) and close(got_c, want_c):
            read = ", ".join(f"{k} ({GATE_NAMES[k]})" for k in order)
            return (
                f"it matches an LSTM that reads the four row blocks as {read}. PyTorch's order is "
                "i, f, g, o: rows 0:H input gate, H:2H forget gate, 2H:3H candidate g, 3H:4H output gate."
            )
    for bug, message in BUGS.items():
        want_h, want_c = _suspect_step(p, x, h, c, bug=bug)
        if close(got_h, want_h) and close(got_c, want_c):
            return message
    return ""


class Fused(_cell.CellSpec):
    name = "FusedLSTMCell"
    make = staticmethod(_make_cell)
    shapes = staticmethod(_shapes)
    reference = staticmethod(_torch_cell_from)
    name_bug = staticmethod(_name_bug)
    fill = 0.9  # two different random biases, so dropping one shows
    plain_tensor = "wrap it in nn.Parameter so that state_dict(), .to() and the optimizer see it."
    missing = staticmethod(_missing)
    beyond = staticmethod(_beyond)
    wrong_shape = staticmethod(_wrong_shape)
    c_right = "matches torch.nn.LSTMCell"
    h_advice = "Check the output gate (rows 3H:4H) and h_t = o_t * tanh(c_t)."
    differs_from = "torch.nn.LSTMCell's"
    c_advice = ("Check gates = x @ weight_ih.T + bias_ih + h @ weight_hh.T + bias_hh, split into i, f, g, o, and "
                "c_t = f_t * c_{t-1} + i_t * g_t.")
    forward_first = ("the forward pass already differs from torch.nn.LSTMCell's (see the forward test), so the "
                     "gradients do too: fix forward first.")

    @staticmethod
    def invoke(cell, x, *states, what):
        try:
            return call(cell, x, *states, what=what)
        except GradingFailure as failure:
            if x.dim() == 1 and "out of range" in str(failure):
                raise GradingFailure(f"{failure} For one example the gates are 1-D: split them with "
                                     "gates.chunk(4, dim=-1).") from None
            raise


# --------------------------------------------------------------------------- the tests


@hidden_test
def fused_parameters():
    """FusedLSTMCell has exactly nn.LSTMCell's four parameters, and state_dicts load both ways."""
    inp, hid = 5, 3
    cell = _make_cell(inp, hid)
    for attr, value in (("input_size", inp), ("hidden_size", hid)):
        if getattr(cell, attr, None) != value:
            raise GradingFailure(
                f"FusedLSTMCell({inp}, {hid}).{attr} should be {value}, got {getattr(cell, attr, None)!r}."
            )
    params = _cell.checked_params(Fused, cell, inp, hid)
    keys = set(cell.state_dict())
    if keys != set(PARAMS):
        raise GradingFailure(
            f"state_dict keys are {sorted(keys)}, expected {sorted(PARAMS)}: register nothing else "
            "(use a plain attribute or register_buffer(..., persistent=False) for anything extra)."
        )
    # PyTorch's cell -> the student's cell, through nn.Module.load_state_dict (strict).
    ref = _reference(inp, hid).float()
    ids = {n: id(p) for n, p in params.items()}
    try:
        cell.load_state_dict(ref.state_dict())
    except Exception as err:
        raise GradingFailure(
            f"FusedLSTMCell.load_state_dict(torch.nn.LSTMCell(...).state_dict()) failed: {err}"
        ) from None
    after = dict(cell.named_parameters())
    for name in PARAMS:
        if id(after[name]) != ids[name]:
            raise GradingFailure(f"loading a state_dict replaced {name}: keep one nn.Parameter per weight.")
        if not close(after[name], getattr(ref, name), atol=0, rtol=0):
            raise GradingFailure(f"after load_state_dict, {name} does not hold torch.nn.LSTMCell's {name}.")
    # The student's cell -> PyTorch's cell.
    with torch.no_grad():
        for p in cell.parameters():
            p.uniform_(-1, 1)
    back = nn.LSTMCell(inp, hid)
    try:
        back.load_state_dict(cell.state_dict())
    except Exception as err:
        raise GradingFailure(f"torch.nn.LSTMCell.load_state_dict(your_cell.state_dict()) failed: {err}") from None
    for name in PARAMS:
        if not close(getattr(back, name), after[name], atol=0, rtol=0):
            raise GradingFailure(f"torch.nn.LSTMCell did not receive your {name} through state_dict().")
    _cell.expect_moves_with_double(cell)


def _init_failure(when, name, values, k):
    hi = values.abs().max().item()
    if hi <= k * (1 + 1e-6) and hi < 0.8 * k and abs(values.std().item() - hi / math.sqrt(3)) < 0.1 * hi:
        return (f"{when}, {name} looks uniform on (-{hi:.3g}, {hi:.3g}), but k = 1/sqrt(hidden_size) = "
                f"{k:.4g}: use the hidden size H itself, not 4 * H or the input size.")
    return _cell.spread_failure(
        when, name, values, k,
        too_wide="draw from U(-k, k) with k = 1/sqrt(hidden_size), not ±1 or a normal distribution.",
        not_spread=" Does __init__ initialise every parameter?" if when == "after __init__" else "",
    )


@hidden_test
def fused_init():
    """FusedLSTMCell starts from U(-1/sqrt(H), 1/sqrt(H)), like torch.nn.LSTMCell."""
    inp, hid = 64, 256
    cell = _make_cell(inp, hid)
    _cell.checked_params(Fused, cell, inp, hid)
    _cell.expect_uniform_init(cell, hid, _init_failure, reset_optional=True)


@hidden_test
def fused_forward():
    """FusedLSTMCell.forward matches torch.nn.LSTMCell on batches with random states, sizes 1 to 7."""
    _cell.forward_test(Fused)


@hidden_test
def fused_forward_forms():
    """FusedLSTMCell.forward handles unbatched 1-D inputs and missing states (zeros like the input)."""
    _cell.forms_test(Fused)


@hidden_test
def fused_gradients():
    """Gradients of all four parameters and of x, h and c match torch.nn.LSTMCell."""
    _cell.gradients_test(Fused)
