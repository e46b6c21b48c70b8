"""Hidden tests for notebook 1: ``sigmoid``, ``LSTMCell`` and ``load_from_torch``.

Every test builds the student's objects itself, runs them on the grading device in float64 and
compares with ``torch.nn.LSTMCell`` (float64, CPU) carrying the same weights.
"""

import math

import torch

from . import _cell, oracles
from .diagnose import name_cell_bug
from .harness import GradingFailure, Remote, call, close, expect_close, expect_shape, fixture, hidden_test, student

# --------------------------------------------------------------------------- sigmoid


FORBID_SIGMOID = {"sigmoid": "sigmoid must be written from torch.exp; it may not call torch.sigmoid, "
                  "torch.special.expit, F.sigmoid or nn.Sigmoid."}


def _student_sigmoid(x, what="sigmoid(x)", backward=None):
    fn = student("sigmoid")
    return call(fn, x, what=what, forbid=FORBID_SIGMOID, backward=backward,
                backward_what="the backward pass of sigmoid")


@hidden_test
def sigmoid_values():
    """sigmoid matches the logistic function on moderate inputs, any shape, float32 and float64."""
    for dtype in (torch.float64, torch.float32):
        x = torch.cat([torch.linspace(-12, 12, 49, dtype=dtype), torch.randn(29, dtype=dtype) * 4])
        x = x.reshape(2, 3, 13)
        got = _student_sigmoid(x)
        expect_shape(got, x.shape, f"sigmoid(x) for x of shape {tuple(x.shape)}",
                     "sigmoid works elementwise: the output has the input's shape.")
        if got.dtype != dtype:
            raise GradingFailure(f"sigmoid(x) turned {dtype} into {got.dtype}: keep the input's dtype.",
                                 bug="sigmoid_dtype")
        tol = 1e-12 if dtype == torch.float64 else 1e-6
        expect_close(got, torch.sigmoid(x.double()), f"sigmoid(x) in {dtype}",
                     "σ(x) = 1 / (1 + exp(-x)).", atol=tol, rtol=tol)


@hidden_test
def sigmoid_stable():
    """sigmoid and its gradient stay finite and correct for |x| up to 1e4 in float32."""
    values = [-1e4, -1000.0, -100.0, -88.8, -50.0, -20.0, 0.0, 20.0, 50.0, 88.8, 100.0, 1000.0, 1e4]
    x = torch.tensor(values, dtype=torch.float32)
    got = _student_sigmoid(x, what="sigmoid(x) for large |x|")
    want = torch.sigmoid(x.double())
    if not isinstance(got, torch.Tensor):
        raise GradingFailure(f"sigmoid(x) should return a tensor, got {getattr(got, 'type_name', type(got).__name__)}.")
    bad = [v for v, g in zip(values, got.tolist(), strict=True) if not math.isfinite(g)]
    if bad:
        raise GradingFailure(
            f"sigmoid({bad[0]:g}) is {got[values.index(bad[0])].item()}: exp overflows in "
            "float32 for large |x|. Only ever compute exp of a non-positive number: for x < 0 use "
            "exp(x) / (1 + exp(x)).", bug="sigmoid_overflow")
    expect_close(got, want, "sigmoid(x) for large |x|", atol=1e-6, rtol=1e-5)
    _, (grad,) = _student_sigmoid(x.clone().requires_grad_(True), what="sigmoid(x) for large |x|",
                                  backward=[torch.ones(len(values), dtype=torch.float32)])
    if grad is None:
        raise GradingFailure("no gradient flows through sigmoid: is it computed through .detach() or .data?",
                             bug="sigmoid_no_gradient")
    g = grad
    if not bool(torch.isfinite(g).all()):
        worst = values[int(torch.nonzero(~torch.isfinite(g))[0])]
        raise GradingFailure(
            f"the gradient of sigmoid at x = {worst:g} is {g[values.index(worst)].item()}: the value is fine "
            "but autograd meets inf * 0 inside. Typical cause: 1 / (1 + exp(-x)) with exp(-x) = inf, or "
            "torch.where over two branches where the unused one overflows. Compute exp(-|x|) once and "
            "build both branches from it.", bug="sigmoid_gradient_nan")
    zero = values.index(0.0)
    if abs(g[zero].item() - 0.25) > 1e-6:
        raise GradingFailure(
            f"the gradient of sigmoid at x = 0 is {g[zero].item():.3g}, expected 0.25. If you used x.abs(): "
            "autograd gives |x| a slope of 0 at x = 0; torch.where(x >= 0, x, -x) has the right one.",
            bug="sigmoid_abs_slope")
    expect_close(grad, want * (1 - want), "the gradient of sigmoid", "dσ/dx = σ(x)(1 − σ(x)).",
                 atol=1e-6, rtol=1e-5)


# --------------------------------------------------------------------------- LSTMCell


def _make_cell(input_size, hidden_size):
    cls = student("LSTMCell")
    cell = call(cls, input_size, hidden_size, what=f"LSTMCell({input_size}, {hidden_size})")
    if not (isinstance(cell, Remote) and cell.is_module):
        raise GradingFailure("LSTMCell must subclass nn.Module (class LSTMCell(nn.Module)).", bug="not_a_module")
    return cell


def _call_with_good_sigmoid(cell, *args, what, **options):
    """The cell runs with a correct ``sigmoid`` in its module, so a sigmoid bug costs points only once."""
    return call(cell, *args, what=what, good_sigmoid=cell, **options)


def _wrong_shape(name, got, want):
    role = {"W": "h (hidden_size)", "U": "x (input_size)", "b": "nothing: it is a vector"}[name[0]]
    hint = " W_* multiplies h and U_* multiplies x — are they swapped or transposed?" if name[0] != "b" else ""
    return f"; {name[0]}_* multiplies {role}.{hint}"


class Cell(_cell.CellSpec):
    name = "LSTMCell"
    fill = 0.5
    make = staticmethod(_make_cell)
    shapes = staticmethod(_cell.course_shapes)
    name_bug = staticmethod(name_cell_bug)
    invoke = staticmethod(_call_with_good_sigmoid)
    wrong_shape = staticmethod(_wrong_shape)
    h_shape_hint = "h_next has the shape of h: (batch, hidden_size)."
    c_shape_hint = "c_next has the shape of c: (batch, hidden_size)."
    c_right = "matches PyTorch"
    differs_from = "PyTorch's"
    c_advice = "Check the forget gate, input gate and candidate, and c_t = f_t * c_{t-1} + i_t * c~_t."
    forward_first = ("the forward pass already differs from PyTorch's (see the forward test), so the gradients "
                     "do too: fix forward first.")

    @staticmethod
    def reference(params):
        return _cell.TorchReference(oracles.torch_cell_from(params), oracles.split_torch_grads)

    @staticmethod
    def missing(names, params):
        return (f"parameters {', '.join(names)} are missing. LSTMCell needs exactly these twelve: "
                + " ".join(oracles.CELL_PARAMS) + ".")

    @staticmethod
    def input_grad_hint(name):
        return ("The forward values match, so part of the computation is cut off from autograd: look for "
                ".detach(), .data or in-place updates.")


@hidden_test
def cell_parameters():
    """LSTMCell registers exactly the twelve parameters, with the right shapes, that move with .to()."""
    cell = _make_cell(5, 3)
    for attr, value in (("input_size", 5), ("hidden_size", 3)):
        got = cell.attr(attr)
        if type(got) is not int or got != value:
            raise GradingFailure(f"LSTMCell(5, 3).{attr} should be {value}, got {got!r}.", bug="size_attributes")
    params = _cell.checked_params(Cell, cell, 5, 3)
    extra = sorted(set(params) - set(oracles.CELL_PARAMS))
    if extra:
        raise GradingFailure(f"LSTMCell has parameters beyond the twelve of the contract: {', '.join(extra)}.")
    keys = set(cell.method("state_dict", what="LSTMCell.state_dict()") or ())
    if keys != set(oracles.CELL_PARAMS):
        raise GradingFailure(f"state_dict keys are {sorted(keys)}, expected the twelve parameter names.")
    _cell.expect_moves_with_double(cell)


def _init_failure(when, name, values, k):
    return _cell.spread_failure(
        when, name, values, k,
        nan="it still holds the uninitialised memory of torch.empty. Does __init__ call self.reset_parameters()?",
        too_wide="draw from U(-k, k), not ±1 or a normal distribution.",
        not_spread=" Does __init__ call reset_parameters()?" if when == "after __init__" else "",
    )


@hidden_test
def cell_init():
    """reset_parameters draws every parameter from U(-1/sqrt(H), 1/sqrt(H)) and __init__ calls it."""
    hidden = 256
    cell = _make_cell(64, hidden)
    _cell.checked_params(Cell, cell, 64, hidden)
    _cell.expect_uniform_init(cell, hidden, _init_failure)


@hidden_test
def cell_forward():
    """LSTMCell.forward matches torch.nn.LSTMCell on batches with random states, sizes 1 to 7."""
    _cell.forward_test(Cell)


@hidden_test
def cell_forward_forms():
    """LSTMCell.forward handles unbatched 1-D inputs and missing states (zeros like the input)."""
    _cell.forms_test(Cell)


@hidden_test
def cell_gradients():
    """Gradients of every parameter, of x, h and c match torch.nn.LSTMCell."""
    _cell.gradients_test(Cell)


# --------------------------------------------------------------------------- load_from_torch


@hidden_test
def load_from_torch_stripes():
    """load_from_torch copies an nn.LSTMCell's stripes i, f, g, o into the right parameters, in place."""
    load = student("load_from_torch")
    inp, hid = 5, 3
    cell = _make_cell(inp, hid)
    params = _cell.checked_params(Cell, cell, inp, hid)
    before = {n: p.ident for n, p in params.items()}
    theirs = fixture("nn.LSTMCell", inp, hid)
    weights = {name: torch.empty(p.value.shape).uniform_(-1, 1) for name, p in theirs.params().items()}
    theirs.load(weights)
    torch_cell = _Weights(weights)
    try:
        returned = call(load, cell, theirs, what="load_from_torch(cell, torch_cell)")
    except GradingFailure as failure:
        raise failure.reworded(f"{failure} Remember: U_* come from weight_ih (input), W_* from weight_hh "
                               "(hidden), in stripes i, f, g, o.") from None
    if returned != cell:
        raise GradingFailure("load_from_torch should return the cell it was given (return cell).",
                             bug="load_returns_other")
    after = cell.params()
    replaced = [n for n in oracles.CELL_PARAMS if n not in after or after[n].ident != before[n]]
    if replaced:
        raise GradingFailure(
            f"load_from_torch replaced {replaced[0]} with a new object: copy into the existing parameter "
            "in place (with torch.no_grad(): cell.W_f.copy_(...)), so optimizers holding it still work.",
            bug="load_new_parameters")
    order = dict(zip(oracles.TORCH_ORDER, range(4), strict=True))
    w_ih, w_hh = torch_cell.weight_ih.detach(), torch_cell.weight_hh.detach()
    bias = (torch_cell.bias_ih + torch_cell.bias_hh).detach()
    for gate in oracles.GATES:
        rows = slice(order[gate] * hid, (order[gate] + 1) * hid)
        for name, want in ((f"U_{gate}", w_ih[rows]), (f"W_{gate}", w_hh[rows]), (f"b_{gate}", bias[rows])):
            got = after[name].value
            if close(got, want, atol=1e-6, rtol=1e-6):
                continue
            source = {"U": "weight_ih", "W": "weight_hh", "b": "bias_ih + bias_hh"}[name[0]]
            found = [g for g in oracles.GATES if name[0] != "b" and close(got, (w_ih if name[0] == "U" else w_hh)
                     [order[g] * hid:(order[g] + 1) * hid], atol=1e-6, rtol=1e-6)]
            if name[0] == "b" and close(got, torch_cell.bias_ih.detach()[rows], atol=1e-6, rtol=1e-6):
                raise GradingFailure(f"{name} holds only bias_ih: PyTorch adds bias_ih and bias_hh, so sum them.",
                                     bug="load_bias_ih_only")
            if found:
                raise GradingFailure(
                    f"{name} holds the '{found[0]}' stripe of {source}: PyTorch stacks its rows as i, f, g, o, "
                    f"so gate {gate} is rows {rows.start}:{rows.stop}.", bug="load_gate_order")
            raise GradingFailure(f"{name} does not hold rows {rows.start}:{rows.stop} of {source}.")


class _Weights:
    """The grader's copy of the weights it loaded into the kernel's nn.LSTMCell, under the same names."""

    def __init__(self, weights):
        for name, value in weights.items():
            setattr(self, name, value)
