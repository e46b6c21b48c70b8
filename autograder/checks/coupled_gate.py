"""Hidden tests for notebook 3: ``CoupledLSTMCell`` and ``CoupledLSTM``.

The oracle is exact: since sigma(-a) = 1 - sigma(a), a ``torch.nn.LSTMCell`` (or ``torch.nn.LSTM``) whose
input-gate rows of ``weight_ih``, ``weight_hh`` and ``bias_ih`` are the *negated* forget-gate rows (and
whose ``bias_hh`` is zero) computes i_t = 1 - f_t, i.e. the coupled cell. The tests build it from the
grader's own weights (loaded into the student's module), in float64 on CPU, and run the student's module
on the grading device.

The ``CoupledLSTM`` tests build the stack from a subclass (made in the kernel) whose ``cell_class`` is a
correct coupled cell (after checking that ``cell_class`` names the student's), so a mistake in the cell
costs points only once.
"""

import math

import torch
import torch.nn as nn

from . import _cell, oracles, suspects
from ._cell import F64
from .harness import (
    GradingFailure,
    Remote,
    call,
    expect_close,
    expect_shape,
    fixture,
    hidden_test,
    student,
)
from .mistakes import sentences
from .mistakes.coupled_gate import MISTAKES

INPUT_GATE = ("W_i", "U_i", "b_i")
COUPLED_PARAMS = tuple(name for name in oracles.CELL_PARAMS if name not in INPUT_GATE)  # the nine


# --------------------------------------------------------------------------- the exact oracle


def tied_params(params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The nine coupled parameters plus an input gate tied to minus the forget gate.

    sigma(-a) = 1 - sigma(a), so W_i = -W_f, U_i = -U_f, b_i = -b_f makes i_t = 1 - f_t exactly.
    """
    tied = {name: params[name] for name in COUPLED_PARAMS}
    for kind in "WUb":
        tied[f"{kind}_i"] = -params[f"{kind}_f"]
    return tied


def torch_coupled_cell_from(params: dict[str, torch.Tensor]) -> nn.LSTMCell:
    """A float64 ``nn.LSTMCell`` that computes the coupled cell with these (nine) parameters."""
    return oracles.torch_cell_from(tied_params(params))


def torch_coupled_lstm_from(layers: list[dict[str, torch.Tensor]]) -> nn.LSTM:
    """A float64 ``nn.LSTM`` that computes the coupled stack, one parameter dict per layer."""
    return oracles.torch_lstm_from([tied_params(p) for p in layers])


def coupled_grads(ref: nn.LSTMCell) -> dict[str, torch.Tensor]:
    """Gradients of the nine parameters from a tied ``nn.LSTMCell``: the f rows minus the i rows."""
    grads = oracles.split_torch_grads(ref)
    out = {name: grads[name] for name in COUPLED_PARAMS}
    for kind in "WUb":
        out[f"{kind}_f"] = grads[f"{kind}_f"] - grads[f"{kind}_i"]
    return out


# --------------------------------------------------------------------------- naming the bug


SUSPECTS = sentences(MISTAKES)  # in the order they are tried


def name_bug(params, x, h, c, got_h, got_c) -> tuple[str, str] | None:
    """(bug id, sentence) of the mistake that explains the student's (h, c), or None if none fits."""
    return suspects.name_bug({"coupled": True}, SUSPECTS, params, x, h, c, got_h, got_c, h_only=("no_tanh_on_c",))


# --------------------------------------------------------------------------- CoupledLSTMCell


def _cell_class():
    cls = student("CoupledLSTMCell")
    base = student("LSTMCell")
    if not (isinstance(cls, Remote) and cls.is_type and cls.module_class):
        raise GradingFailure("CoupledLSTMCell should be a class: class CoupledLSTMCell(LSTMCell).")
    if not cls.issubclass(base):
        raise GradingFailure(
            "CoupledLSTMCell should subclass the given LSTMCell (class CoupledLSTMCell(LSTMCell)), so "
            "that it reuses its parameters, reset_parameters and preactivation."
        )
    return cls


def _make_cell(input_size, hidden_size):
    return call(_cell_class(), input_size, hidden_size, what=f"CoupledLSTMCell({input_size}, {hidden_size})")


def _asks_for_input_gate(message: str) -> bool:
    return any(f"'{name}'" in message for name in INPUT_GATE)


def _call_cell(cell, *args, what, **options):
    try:
        return call(cell, *args, what=what, **options)
    except GradingFailure as failure:
        if _asks_for_input_gate(str(failure)):
            raise failure.reworded(
                f"{failure} forward still asks for an input-gate parameter "
                "(e.g. preactivation(\"i\", x, h)): a coupled cell has none and computes i_t = 1 - f_t.",
                bug="asks_for_input_gate") from None
        raise


class Cell(_cell.CellSpec):
    name = "CoupledLSTMCell"
    no_states_hint = "With h and c missing, start from zeros created like the input: x.new_zeros(batch, hidden_size)."
    make = staticmethod(_make_cell)
    name_bug = staticmethod(name_bug)
    invoke = staticmethod(_call_cell)
    every_parameter = True  # an input gate left over is tolerated here, and the bug namer looks for its use
    plain_tensor = "keep it an nn.Parameter so that .parameters(), .to() and the optimizer see it."
    c_right = "is right"
    h_too = " (h_next is right)"
    c_advice = "Check f_t, the candidate c~_t and c_t = f_t * c_{t-1} + (1 - f_t) * c~_t."

    @staticmethod
    def wrong_dtype(got_h, got_c):
        if got_h.dtype != F64 or got_c.dtype != F64:
            return "for a float64 input the outputs are not float64: create default states like x."
        return ""

    @staticmethod
    def shapes(input_size, hidden_size):
        return _cell.course_shapes(input_size, hidden_size, COUPLED_PARAMS)

    @staticmethod
    def reference(params):
        return _cell.TorchReference(torch_coupled_cell_from(params), coupled_grads)

    @staticmethod
    def missing(names, params):
        return (f"parameters {', '.join(names)} are missing. A coupled cell keeps these nine: "
                + " ".join(COUPLED_PARAMS) + " (only the input gate's W_i, U_i, b_i go).")


@hidden_test
def coupled_cell_parameters():
    """CoupledLSTMCell registers exactly nine parameters (no W_i, U_i, b_i), initialised like LSTMCell's."""
    inp, hid = 5, 3
    cell = _make_cell(inp, hid)
    if not (isinstance(cell, Remote) and cell.is_module):
        raise GradingFailure("CoupledLSTMCell should be a class: class CoupledLSTMCell(LSTMCell).")
    for attr, value in (("input_size", inp), ("hidden_size", hid)):
        got = cell.attr(attr)
        if type(got) is not int or got != value:
            raise GradingFailure(
                f"CoupledLSTMCell({inp}, {hid}).{attr} should be {value}, got {got!r}: "
                "call super().__init__(input_size, hidden_size)."
            )
    names = set(cell.params())
    kept = [n for n in INPUT_GATE if n in names]
    if kept:
        raise GradingFailure(
            "a coupled cell has no input-gate parameters, but CoupledLSTMCell still registers "
            f"{', '.join(kept)}. Remove them after super().__init__() (del self.W_i, ...): the input gate "
            "is computed as 1 - f_t."
        )
    params = _cell.checked_params(Cell, cell, inp, hid)
    extra = sorted(set(params) - set(COUPLED_PARAMS))
    if extra:
        raise GradingFailure(
            f"CoupledLSTMCell has parameters beyond the nine of the contract: {', '.join(extra)}."
        )
    keys = set(cell.method("state_dict", what="CoupledLSTMCell.state_dict()") or ())
    if keys != set(COUPLED_PARAMS):
        raise GradingFailure(f"state_dict keys are {sorted(keys)}, expected the nine parameter names.")
    full = 4 * hid * (hid + inp + 1)
    count = sum(p.value.numel() for p in params.values())
    if count * 4 != full * 3:
        raise GradingFailure(f"CoupledLSTMCell({inp}, {hid}) has {count} weights, expected {full * 3 // 4} "
                             f"(three quarters of LSTMCell's {full}).")
    k = 1 / math.sqrt(hid)
    cell.load({name: torch.full(p.value.shape, 5.0) for name, p in params.items()})
    cell.method("reset_parameters", what="CoupledLSTMCell.reset_parameters()")
    for name, p in cell.params().items():
        hi = p.value.double().abs().max().item()
        if not math.isfinite(hi) or hi > k * (1 + 1e-6) or p.value.double().std().item() == 0:
            raise GradingFailure(
                f"after reset_parameters(), {name} is not drawn from U(-k, k) with k = 1/sqrt(hidden_size) = "
                f"{k:.4g} (max |value| {hi:.3g}). The inherited reset_parameters does this for the nine."
            )
    _cell.expect_moves_with_double(cell)


@hidden_test
def coupled_cell_forward():
    """CoupledLSTMCell.forward computes c_t = f_t c_{t-1} + (1 - f_t) c~_t on batches with random h and c."""
    _cell.forward_test(Cell)


@hidden_test
def coupled_cell_forms():
    """CoupledLSTMCell.forward handles unbatched 1-D inputs and missing states (zeros like the input)."""
    cell = _cell.forms_test(Cell)
    got_h, got_c, want_h, want_c = _cell.without_states(Cell, cell, torch.randn(5, dtype=F64), 4,
                                                  "CoupledLSTMCell.forward(x) for a 1-D x without h and c")
    hint = "For a 1-D x the default states are 1-D too: x.new_zeros(*x.shape[:-1], hidden_size)."
    expect_shape(got_h, want_h.shape, "h_next for a 1-D x with h and c missing", hint)
    expect_shape(got_c, want_c.shape, "c_next for a 1-D x with h and c missing", hint)
    expect_close(got_h, want_h, "h_next for a 1-D x with h and c missing", hint)
    expect_close(got_c, want_c, "c_next for a 1-D x with h and c missing", hint)


@hidden_test
def coupled_cell_gradients():
    """Gradients of all nine parameters and of x, h and c match the reference."""
    _cell.gradients_test(Cell)


# --------------------------------------------------------------------------- CoupledLSTM


def _lstm_class():
    cls = student("CoupledLSTM")
    base = student("LSTM")
    if not (isinstance(cls, Remote) and cls.is_type and cls.issubclass(base)):
        raise GradingFailure("CoupledLSTM should subclass the given LSTM: class CoupledLSTM(LSTM).")
    cell_cls = student("CoupledLSTMCell")
    got = cls.attr("cell_class")
    if got != cell_cls:
        name = getattr(got, "__name__", repr(got))
        hint = " (inherited from LSTM)" if not _defines(cls, "cell_class") else ""
        raise GradingFailure(
            f"CoupledLSTM.cell_class is {name}{hint}: set the class attribute cell_class = CoupledLSTMCell, "
            "so that the inherited __init__ builds its layers from coupled cells."
        )
    return cls


def _defines(cls, name) -> bool:
    """``name in cls.__dict__``: the class body itself sets it."""
    own = cls.attr("__dict__")
    return isinstance(own, Remote) and own.method("__contains__", name, what=f"{cls.__name__}.__dict__") is True


def _make_lstm(cls, inp, hid, num_layers, batch_first=False):
    """The stack built by the student's class with a correct coupled cell as its ``cell_class``; returns the
    model and its layers (checked)."""
    what = f"CoupledLSTM({inp}, {hid}, num_layers={num_layers}, batch_first={batch_first})"
    reference_cell = fixture("CoupledCell")
    built = fixture("subclass", cls, "CoupledLSTM", {"cell_class": reference_cell})
    model = call(built, inp, hid, num_layers=num_layers, batch_first=batch_first, what=what)
    layers = model.attr("layers") if isinstance(model, Remote) else None
    if not (isinstance(layers, Remote) and layers.is_module and layers.length == num_layers):
        raise GradingFailure(f"{what}.layers should be an nn.ModuleList of {num_layers} cells; "
                             "keep the inherited __init__ (set only cell_class).")
    coupled = (reference_cell, student("CoupledLSTMCell"))  # built from cell_class, or directly
    cells = []
    for k in range(num_layers):
        layer = layers.item(k, what=f"{what}.layers[{k}]")
        if not (isinstance(layer, Remote) and any(layer.isinstance(c) for c in coupled)):
            raise GradingFailure(
                f"{what}.layers[{k}] is a {_kind(layer)}, not a coupled cell: keep the inherited "
                "__init__, which builds every layer with self.cell_class."
            )
        want = inp if k == 0 else hid
        got = (layer.attr("input_size"), layer.attr("hidden_size"))
        if got != (want, hid):
            raise GradingFailure(
                f"{what}.layers[{k}] maps {got[0]} -> {got[1]}, expected {want} -> {hid}: layer 0 reads the "
                "input, every other layer the h of the layer below. The inherited __init__ does this."
            )
        cells.append(layer)
    return model, cells


def _kind(value) -> str:
    """The type name of a value of the kernel (``type(value).__name__``)."""
    return value.type_name if isinstance(value, Remote) else type(value).__name__


def _graded_lstm(cls, inp, hid, num_layers, batch_first=False):
    """``_make_lstm`` in float64 on the device, every layer holding the grader's weights (``model.weights``)."""
    model, cells = _make_lstm(cls, inp, hid, num_layers, batch_first)
    _cell.to_device(model, f"CoupledLSTM({inp}, {hid}, num_layers={num_layers}).to(device, torch.float64)")
    model.weights = [_cell.fill_uniform(layer, Cell.fill) for layer in cells]
    model.cells = cells
    return model


@hidden_test
def coupled_lstm_class():
    """CoupledLSTM subclasses LSTM with cell_class = CoupledLSTMCell: every layer is a coupled cell."""
    cls = _lstm_class()
    _make_lstm(cls, 5, 4, 3)
    try:
        model = call(cls, 5, 4, num_layers=2, what="CoupledLSTM(5, 4, num_layers=2)")
    except GradingFailure:
        return  # the student's cell cannot be built: its own tests say why
    cell_cls = student("CoupledLSTMCell")
    layers = model.attr("layers") if isinstance(model, Remote) else None
    count = (layers.length or 0) if isinstance(layers, Remote) else 0
    for k in range(count):
        layer = layers.item(k, what=f"CoupledLSTM(5, 4).layers[{k}]")
        if not (isinstance(layer, Remote) and layer.isinstance(cell_cls)):
            raise GradingFailure(
                f"CoupledLSTM(5, 4).layers[{k}] is a {_kind(layer)}, not a CoupledLSTMCell."
            )


def _expect_run(model, x, states, label, batch_first=False):
    ref = torch_coupled_lstm_from(model.weights)
    report = {}
    out = call(model, x, *states, what=f"CoupledLSTM.forward ({label})", report=report)
    if report["mutated"]:
        raise GradingFailure(f"CoupledLSTM.forward ({label}) changed the caller's tensors in place.")
    if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], tuple) and len(out[1]) == 2):
        raise GradingFailure(f"CoupledLSTM.forward ({label}) should return (output, (h_n, c_n)).")
    output, (h_n, c_n) = out
    ref_x = x.transpose(0, 1) if batch_first else x
    want_out, (want_h, want_c) = ref(ref_x, tuple(states)) if states else ref(ref_x)
    if batch_first:
        want_out = want_out.transpose(0, 1)
    expect_close(output, want_out, f"output ({label})", "Keep the inherited forward: set only cell_class.")
    expect_close(h_n, want_h, f"h_n ({label})")
    expect_close(c_n, want_c, f"c_n ({label})")
    return output, h_n, c_n, ref


@hidden_test
def coupled_lstm_forward():
    """CoupledLSTM.forward and its gradients match a tied torch.nn.LSTM: batched, batch_first, unbatched."""
    cls = _lstm_class()
    seq, batch, inp, hid, layers = 6, 3, 5, 4, 2
    model = _graded_lstm(cls, inp, hid, layers)
    x = torch.randn(seq, batch, inp, dtype=F64)
    h0, c0 = torch.randn(layers, batch, hid, dtype=F64), torch.randn(layers, batch, hid, dtype=F64)
    _expect_run(model, x, (h0, c0), "seq_len=6, batch=3, random h0 and c0 per layer")

    # Gradients through the stack, for every layer's parameters and the input.
    ref = torch_coupled_lstm_from(model.weights)
    xr = x.clone().requires_grad_(True)
    want_out, _ = ref(xr, (h0, c0))
    weight = torch.randn_like(want_out)
    (want_out * weight).sum().backward()
    _, grads = call(model, x.clone().requires_grad_(True), h0, c0, what="CoupledLSTM.forward",
                    backward=[weight, None, None], backward_what="backward through CoupledLSTM")
    expect_close(grads[0] if grads else None, xr.grad, "the gradient with respect to the input x")
    for k, layer in enumerate(model.cells):
        params = layer.params()
        grads = {kind: getattr(ref, f"{name}_l{k}").grad for kind, name in
                 (("U", "weight_ih"), ("W", "weight_hh"), ("b", "bias_ih"))}
        for kind, g in grads.items():
            i_rows, f_rows, _, _ = g.chunk(4)  # PyTorch's rows i, f, g, o; the i rows are tied to -f
            want = f_rows - i_rows
            got = params[f"{kind}_f"].grad if f"{kind}_f" in params else None
            if got is None:
                raise GradingFailure(f"layers[{k}].{kind}_f got no gradient through CoupledLSTM.")
            expect_close(got, want, f"the gradient of layers[{k}].{kind}_f")

    model3 = _graded_lstm(cls, inp, hid, 3, batch_first=True)
    _expect_run(model3, torch.randn(batch, seq - 1, inp, dtype=F64), (),
                "batch_first=True, three layers, no initial state", batch_first=True)
    xu = torch.randn(seq, inp, dtype=F64)
    hu, cu = torch.randn(layers, hid, dtype=F64), torch.randn(layers, hid, dtype=F64)
    _expect_run(model, xu, (hu, cu), "unbatched x of shape (seq_len, input_size)")
