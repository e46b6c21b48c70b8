"""Hidden tests for notebook 6: ``FusedLSTMCell``, the graded rung of the speed ladder.

The student's cell keeps ``torch.nn.LSTMCell``'s four parameters (``weight_ih`` (4H, I), ``weight_hh``
(4H, H), ``bias_ih``, ``bias_hh``; rows i, f, g, o). Every test builds the student's cell itself, runs it on
the grading device in float64 and compares with a float64 ``torch.nn.LSTMCell`` carrying the same
weights. Nothing here measures time.
"""

import itertools
import math

import torch
import torch.nn as nn

from . import _cell, suspects
from ._cell import F64
from .harness import GradingFailure, Remote, call, close, hidden_test, student
from .mistakes import sentences
from .mistakes.speed_ladder import MISTAKES

# The tests never compile anything (the notebook's own cells call torch.compile, or torch.jit.script while
# nbgrader grades): they run the student's cell as it is, eagerly, through the probe.

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
    if not (isinstance(cell, Remote) and cell.is_module):
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
    """A float64 nn.LSTMCell (on this side) with random weights and two different biases (so dropping one
    shows)."""
    ref = nn.LSTMCell(input_size, hidden_size).to(F64)
    with torch.no_grad():
        for p in ref.parameters():
            p.uniform_(-spread, spread)
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


BUGS = sentences(MISTAKES)


def _rows_sentence(order):
    read = ", ".join(f"{k} ({GATE_NAMES[k]})" for k in order)
    return (f"it matches an LSTM that reads the four row blocks as {read}. PyTorch's order is "
            "i, f, g, o: rows 0:H input gate, H:2H forget gate, 2H:3H candidate g, 3H:4H output gate.")


# every other order of the four row blocks first, then BUGS
SUSPECTS = {("rows", order): _rows_sentence(order) for order in map("".join, itertools.permutations(ORDER))
            if order != ORDER} | BUGS


def _name_bug(p, x, h, c, got_h, got_c):
    """(bug id, sentence) of the mistake the student's output matches, or None."""
    return suspects.name_bug({"fused": True}, SUSPECTS, p, x, h, c, got_h, got_c)


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
    def invoke(cell, x, *states, what, **options):
        try:
            return call(cell, x, *states, what=what, **options)
        except GradingFailure as failure:
            if x.dim() == 1 and "out of range" in str(failure):
                raise failure.reworded(f"{failure} For one example the gates are 1-D: split them with "
                                       "gates.chunk(4, dim=-1).", bug="unbatched_chunk_dim") from None
            raise


# --------------------------------------------------------------------------- the tests


@hidden_test
def fused_parameters():
    """FusedLSTMCell has exactly nn.LSTMCell's four parameters, and state_dicts load both ways."""
    inp, hid = 5, 3
    cell = _make_cell(inp, hid)
    for attr, value in (("input_size", inp), ("hidden_size", hid)):
        got = cell.attr(attr)
        if type(got) is not int or got != value:
            raise GradingFailure(
                f"FusedLSTMCell({inp}, {hid}).{attr} should be {value}, got {got!r}."
            )
    params = _cell.checked_params(Fused, cell, inp, hid)
    keys = set(_state_dict(cell))
    if keys != set(PARAMS):
        raise GradingFailure(
            f"state_dict keys are {sorted(keys)}, expected {sorted(PARAMS)}: register nothing else "
            "(use a plain attribute or register_buffer(..., persistent=False) for anything extra)."
        )
    # PyTorch's cell -> the student's cell, through nn.Module.load_state_dict (strict).
    ref = _reference(inp, hid).float()
    ids = {n: p.ident for n, p in params.items()}
    try:
        cell.method("load_state_dict", {name: getattr(ref, name).detach() for name in PARAMS},
                    what="FusedLSTMCell.load_state_dict")
    except GradingFailure as failure:
        if failure.raised is None:
            raise
        raise GradingFailure(
            "FusedLSTMCell.load_state_dict(torch.nn.LSTMCell(...).state_dict()) failed: "
            f"{failure.raised.get('message', '')}"
        ) from None
    after = cell.params()
    for name in PARAMS:
        if name not in after or after[name].ident != ids[name]:
            raise GradingFailure(f"loading a state_dict replaced {name}: keep one nn.Parameter per weight.")
        if not close(after[name].value, getattr(ref, name), atol=0, rtol=0):
            raise GradingFailure(f"after load_state_dict, {name} does not hold torch.nn.LSTMCell's {name}.")
    # The student's cell -> PyTorch's cell (here, with the values the grader put into the student's).
    mine = {name: torch.empty(after[name].value.shape).uniform_(-1, 1) for name in PARAMS}
    cell.load(mine)
    state = _state_dict(cell)
    back = nn.LSTMCell(inp, hid)
    try:
        back.load_state_dict(state)
    except Exception as err:
        raise GradingFailure(f"torch.nn.LSTMCell.load_state_dict(your_cell.state_dict()) failed: {err}") from None
    for name in PARAMS:
        if not close(getattr(back, name), mine[name], atol=0, rtol=0):
            raise GradingFailure(f"torch.nn.LSTMCell did not receive your {name} through state_dict().")
    _cell.expect_moves_with_double(cell)


def _state_dict(cell) -> dict:
    """The student's ``state_dict()``, as plain tensors on this side (anything else in it stays a handle)."""
    state = cell.method("state_dict", what="FusedLSTMCell.state_dict()")
    if not isinstance(state, dict):
        raise GradingFailure(f"FusedLSTMCell.state_dict() should return a dict, got {_cell_kind(state)}.")
    return state


def _cell_kind(value) -> str:
    return value.type_name if isinstance(value, Remote) else type(value).__name__


def _init_failure(when, name, values, k):
    hi = values.abs().max().item()
    if hi <= k * (1 + 1e-6) and hi < 0.8 * k and abs(values.std().item() - hi / math.sqrt(3)) < 0.1 * hi:
        return GradingFailure(f"{when}, {name} looks uniform on (-{hi:.3g}, {hi:.3g}), but k = 1/sqrt(hidden_size) "
                              f"= {k:.4g}: use the hidden size H itself, not 4 * H or the input size.",
                              bug="init_wrong_k")
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
