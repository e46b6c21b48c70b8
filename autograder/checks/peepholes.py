"""Hidden tests for notebook 4: ``PeepholeLSTMCell``, ``PeepholeLSTM`` and (bonus) ``DiagonalPeepholeLSTMCell``.

Every test builds the student's objects in the kernel, loads the grader's own random weights into them,
runs them on the grading device in float64 and compares with ``oracles.lstm_cell_step`` (the course
equations written out, float64, CPU, on the grader's copy of those weights) — and, with the peepholes at
zero, with ``torch.nn.LSTMCell`` carrying the same weights. When a cell differs, the usual peephole
mistakes are tried one by one (``suspects``) so that the message can name the one that fits.

The stack tests (``PeepholeLSTM``) run a subclass of the student's stack whose ``cell_class`` is a stand-in
for the student's ``PeepholeLSTMCell`` (``autograder.kernel.fixtures.peephole_stand_in``): the stack
exercise is ``cell_class``, and a bug in the cell already costs its points in the cell's own tests.
"""

import functools
import itertools

import torch

from . import _cell, oracles, suspects
from ._cell import F64
from .diagnose import name_cell_bug
from .harness import (
    GradingFailure,
    Remote,
    call,
    close,
    describe,
    expect_close,
    expect_shape,
    fixture,
    hidden_test,
    max_abs_diff,
    student,
)

MATRIX, DIAGONAL = "matrix", "diagonal"
CLASS_NAME = {MATRIX: "PeepholeLSTMCell", DIAGONAL: "DiagonalPeepholeLSTMCell"}
PEEPHOLES = {MATRIX: ("V_f", "V_i", "V_o"), DIAGONAL: ("v_f", "v_i", "v_o")}
GATE_WORD = {"f": "forget", "i": "input", "o": "output"}


def _peephole_shape(kind, hidden):
    return (hidden, hidden) if kind == MATRIX else (hidden,)


# --------------------------------------------------------------------------- building the student's cell


def _make_cell(kind, input_size, hidden_size):
    name = CLASS_NAME[kind]
    cls = student(name)
    try:
        cell = call(cls, input_size, hidden_size, what=f"{name}({input_size}, {hidden_size})")
    except GradingFailure as failure:
        if "before Module.__init__" in str(failure):
            raise failure.reworded(f"{failure} Call super().__init__(input_size, hidden_size) first, then "
                                   f"create {', '.join(PEEPHOLES[kind])}.", bug="super_init_after") from None
        raise
    if not (isinstance(cell, Remote) and cell.is_module):
        raise GradingFailure(f"{name} must be an nn.Module: class {name}(LSTMCell).")
    return cell


def _shapes(kind, input_size, hidden_size):
    """The twelve parameters of LSTMCell, then the three peepholes."""
    peepholes = {name: _peephole_shape(kind, hidden_size) for name in PEEPHOLES[kind]}
    return {**_cell.course_shapes(input_size, hidden_size), **peepholes}


def _missing(kind, missing, params):
    cls = CLASS_NAME[kind]
    peep = [n for n in missing if n in PEEPHOLES[kind]]
    if peep and len(peep) < len(missing):
        return (f"{cls} is missing {', '.join(missing)}: keep super().__init__(input_size, hidden_size) "
                "first, it creates the twelve parameters of the plain cell.")
    if peep:
        others = sorted(set(params) - set(oracles.CELL_PARAMS + PEEPHOLES[kind]))
        hint = f" (it has {', '.join(others)}: the names must be exactly {', '.join(peep)})" if others else ""
        shape = "(hidden_size, hidden_size)" if kind == MATRIX else "(hidden_size,)"
        return (f"{cls} has no parameter {', '.join(peep)}{hint}. Create them in __init__ as "
                f"nn.Parameter attributes of shape {shape}.")
    return f"{cls} is missing the parameters {', '.join(missing)}."


def _wrong_shape(kind, name, got, want):
    if name not in PEEPHOLES[kind]:
        return ". Leave the twelve parameters of the given LSTMCell as they are (super().__init__ creates them)."
    if kind == MATRIX:
        return ". Part 1's peepholes are full matrices on c_{t-1} (the vector form is the bonus)."
    return ". The original peepholes are diagonal: one weight per unit, applied elementwise (v * c)."


def _call_cell(kind, fn, *args, what, **options):
    """``call`` with a hint about the peephole shapes when the student's code hits a size mismatch."""
    try:
        return call(fn, *args, what=what, **options)
    except GradingFailure as failure:
        text = str(failure)
        if "size of tensor" in text or "cannot be multiplied" in text or "mat1 and mat2" in text:
            hint = (" In this cell the peepholes V_f, V_i, V_o are (hidden_size, hidden_size) matrices that "
                    "multiply c: c @ V_f.T, not c * V_f." if kind == MATRIX else
                    " In this cell the peepholes v_f, v_i, v_o are vectors of shape (hidden_size,) that multiply "
                    "c elementwise: v_f * c, not c @ v_f.")
            # the harness's own hint is about W and U, which the given LSTMCell already gets right
            raise failure.reworded(text.split(" Likely cause:")[0] + hint, bug=f"{kind}_peephole_shape") from None
        raise


def _shape_hint(kind, got_h, got_c, shape):
    hid = shape[-1]
    hint = "h_next and c_next have the shape of h and c: (batch, hidden_size), or (hidden_size,) unbatched."
    for value in (got_h, got_c):
        if isinstance(value, torch.Tensor) and tuple(value.shape[-2:]) == (hid, hid) and tuple(shape) != (hid, hid):
            return hint + (" A trailing (hidden_size, hidden_size) usually means a peephole multiplies elementwise "
                           "(c * V) where the matrix product c @ V.T is needed." if kind == MATRIX else
                           " A trailing (hidden_size, hidden_size) usually means a matrix product where v * c "
                           "(elementwise) is needed.")
    return hint


# --------------------------------------------------------------------------- naming the mistake


def _subset_sentence(kind, gates):
    absent = [g for g in "fio" if g not in gates]
    names = PEEPHOLES[kind]
    if not gates:
        return ("it matches a plain LSTM: none of the gates uses its peephole. Add "
                + ", ".join(f"{n} {'c_{t-1}' if kind == MATRIX else '* c'}" for n in names)
                + " inside the sigmoids of f, i and o.")
    words = " and ".join(f"the {GATE_WORD[g]} gate" for g in absent)
    if absent == ["o"]:
        if kind == MATRIX:
            return ("it matches a cell whose output gate has no peephole: in this exercise all three gates "
                    "peek, the output gate included — o_t = σ(W_o h + U_o x + b_o + V_o c_{t-1}).")
        return ("it matches a cell whose output gate has no peephole: o_t = σ(W_o h + U_o x + b_o + v_o * c_t), "
                "with the new cell state c_t.")
    term = {g: (f"V_{g} c_{{t-1}}" if kind == MATRIX else f"v_{g} * c_{{t-1}}" if g != "o" else "v_o * c_t")
            for g in "fio"}
    return (f"it matches a cell in which {words} {'has' if len(absent) == 1 else 'have'} no peephole: add "
            + " and ".join(term[g] for g in absent) + " inside the sigmoid.")


def _on_h_sentence(kind, gates):
    if len(gates) == 3:
        which = "the peepholes multiply"
    elif len(gates) == 1:
        which = f"the {GATE_WORD[gates]} gate's peephole multiplies"
    else:
        which = f"the {' and '.join(GATE_WORD[g] for g in gates)} gates' peepholes multiply"
    if kind == MATRIX:
        terms = ", ".join(f"V_{g} c_{{t-1}}" for g in gates)
        return (f"it matches a cell in which {which} h_{{t-1}} instead of the cell state: the peephole terms "
                f"are {terms} — `c @ V_{gates[0]}.T`, not `h @ V_{gates[0]}.T` (h already enters through "
                "preactivation).")
    terms = ", ".join(f"v_{g} * c_{{t-1}}" if g != "o" else "v_o * c_t" for g in gates)
    return f"it matches a cell in which {which} h instead of the cell state: the peephole terms are {terms}."


SUSPECTS = {
    MATRIX: {
        "V_not_transposed": "it matches `c @ V_f` (V not transposed): in row form V c_{t-1} is `c @ V.T`, "
        "exactly like `h @ W.T` in preactivation, so that V_f[j, k] carries unit k's cell into gate unit j.",
        "o_peeks_new_c": "the output gate peeks at the new cell state c_t. In this exercise all three gates "
        "peek at the previous state: o_t = σ(W_o h + U_o x + b_o + V_o c_{t-1}) (o_t looking at c_t is the "
        "original form, the bonus).",
        "peepholes_f_i_swapped": "it matches a cell whose forget gate uses V_i and input gate uses V_f: each gate has "
        "its own peephole matrix.",
        "ignore_c": "it matches a cell that ignores the given c (uses zeros): the peepholes and "
        "c_t = f_t * c_{t-1} + i_t * c~_t both need the c passed to forward.",
    },
    DIAGONAL: {
        "o_peeks_old_c": "the output gate peeks at the previous cell state c_{t-1}, as in Part 1. In the "
        "original form it looks at the new cell state: compute c_t first, then o_t = σ(W_o h + U_o x + b_o "
        "+ v_o * c_t).",
        "peepholes_f_i_swapped": "it matches a cell whose forget gate uses v_i and input gate uses v_f: each gate has "
        "its own peephole vector.",
        "ignore_c": "it matches a cell that ignores the given c (uses zeros): the peepholes and "
        "c_t = f_t * c_{t-1} + i_t * c~_t both need the c passed to forward.",
    },
}


def _suspects(kind):
    yield from SUSPECTS[kind].items()
    for size in (3, 2, 1):
        for gates in itertools.combinations("fio", size):
            yield ("on_h", "".join(gates)), _on_h_sentence(kind, "".join(gates))
    for size in (2, 1, 0):
        for gates in itertools.combinations("fio", size):
            yield ("peeking", "".join(gates)), _subset_sentence(kind, "".join(gates))


def name_peephole_bug(kind, params, x, h, c, got_h, got_c) -> tuple[str, str] | None:
    """(bug id, sentence) of the peephole mistake that explains the student's (h, c), or None if none fits."""
    return suspects.name_bug({"peephole": kind}, dict(_suspects(kind)), params, x, h, c, got_h, got_c)


class _Peephole(_cell.CellSpec):
    kind: str  # MATRIX or DIAGONAL
    fill = 0.8
    c_scale = 1.5
    h_too = " (h_next matches, oddly)"

    @classmethod
    def make(cls, input_size, hidden_size):
        return _make_cell(cls.kind, input_size, hidden_size)

    @classmethod
    def shapes(cls, input_size, hidden_size):
        return _shapes(cls.kind, input_size, hidden_size)

    @classmethod
    def reference(cls, params):
        return _cell.StepReference(functools.partial(oracles.lstm_cell_step, peephole=cls.kind), params)

    @classmethod
    def name_bug(cls, params, x, h, c, got_h, got_c):
        return name_peephole_bug(cls.kind, params, x, h, c, got_h, got_c)

    @classmethod
    def invoke(cls, cell, *args, what, **options):
        return _call_cell(cls.kind, cell, *args, what=what, **options)

    @classmethod
    def missing(cls, names, params):
        return _missing(cls.kind, names, params)

    @classmethod
    def wrong_shape(cls, name, got, want):
        return _wrong_shape(cls.kind, name, got, want)

    @classmethod
    def shape_hints(cls, got_h, got_c, shape):
        hint = _shape_hint(cls.kind, got_h, got_c, shape)
        return hint, hint

    @staticmethod
    def input_grad_hint(name):
        return ("The forward values match, so look for .detach(), .data or in-place updates"
                + (" (the peepholes read c too)." if name == "c" else "."))


class MatrixPeephole(_Peephole):
    kind = MATRIX
    name = "PeepholeLSTMCell"
    owner = "PeepholeLSTMCell."
    h_advice = "Check the output gate with its peephole V_o c_{t-1}, and h_t = o_t * tanh(c_t)."
    c_advice = ("Check the forget and input gates with their peepholes V_f c_{t-1} and V_i c_{t-1}, the candidate "
                "(no peephole) and c_t = f_t * c_{t-1} + i_t * c~_t.")
    forward_first = ("the forward pass of PeepholeLSTMCell already differs from the reference (see the forward "
                     "tests), so the gradients do too: fix forward first.")


class DiagonalPeephole(_Peephole):
    kind = DIAGONAL
    name = "DiagonalPeepholeLSTMCell"
    owner = "DiagonalPeepholeLSTMCell."
    h_advice = "Check the output gate with its peephole v_o * c_t, and h_t = o_t * tanh(c_t)."
    c_advice = ("Check the forget and input gates with their peepholes v_f * c_{t-1} and v_i * c_{t-1}, the "
                "candidate (no peephole) and c_t = f_t * c_{t-1} + i_t * c~_t.")
    forward_first = ("the forward pass of DiagonalPeepholeLSTMCell already differs from the reference (see the "
                     "forward tests), so the gradients do too: fix forward first.")


SPECS = {MATRIX: MatrixPeephole, DIAGONAL: DiagonalPeephole}


# --------------------------------------------------------------------------- shared test bodies


def _parameters_test(kind):
    cls_name = CLASS_NAME[kind]
    cls = student(cls_name)
    base = student("LSTMCell")
    if not (isinstance(cls, Remote) and cls.is_type and cls.issubclass(base)):
        raise GradingFailure(f"{cls_name} should subclass the given LSTMCell: class {cls_name}(LSTMCell).")
    spec = SPECS[kind]
    cell = spec.make(5, 3)
    for attr, value in (("input_size", 5), ("hidden_size", 3)):
        got = cell.attr(attr)
        if type(got) is not int or got != value:
            raise GradingFailure(f"{cls_name}(5, 3).{attr} should be {value}, got {got!r}.")
    params = _cell.checked_params(spec, cell, 5, 3)
    names = set(spec.names())
    extra = sorted(set(params) - names)
    if extra:
        raise GradingFailure(
            f"{cls_name} has parameters beyond the fifteen of the contract: {', '.join(extra)}. It needs the "
            f"twelve of LSTMCell plus {', '.join(PEEPHOLES[kind])}."
        )
    keys = set(cell.method("state_dict", what=f"{cls_name}.state_dict()") or ())
    if keys != names:
        raise GradingFailure(f"state_dict keys are {sorted(keys)}, expected the fifteen parameter names.")
    _cell.expect_moves_with_double(cell)


def _init_failure(kind, when, name, values, k):
    peeps = ", ".join(PEEPHOLES[kind])
    fresh_peephole = name in PEEPHOLES[kind] and when == "after __init__"
    return _cell.spread_failure(
        when, name, values, k,
        too_wide="every parameter is drawn from U(-k, k)."
        + (f" Call self.reset_parameters() after creating {peeps}." if fresh_peephole else ""),
        not_spread=(f" Initialise {peeps} like the other weights: create them, then call self.reset_parameters() "
                    "once more (zeros would make the cell start as a plain LSTM, but the contract asks for U(-k, k))."
                    if fresh_peephole else ""),
    )


def _init_test(kind):
    hidden, inp = 256, 64
    spec = SPECS[kind]
    cell = spec.make(inp, hidden)
    _cell.checked_params(spec, cell, inp, hidden)
    _cell.expect_uniform_init(cell, hidden, functools.partial(_init_failure, kind), f"{spec.name}.reset_parameters()")


def _forms_test(kind):
    spec = SPECS[kind]
    inp, hid = 5, 4
    cell = _cell.graded_cell(spec, inp, hid)
    x, h, c = _cell.random_case(1, inp, hid, batched=False, c_scale=spec.c_scale)
    _cell.expect_step(spec, cell, x, h, c, "unbatched: x of shape (input_size,), h and c of shape (hidden_size,)")
    hint = "With h and c missing, use zeros created like the input: x.new_zeros(*x.shape[:-1], hidden_size)."
    for xs in (torch.randn(3, inp, dtype=F64), torch.randn(inp, dtype=F64)):
        label = f"{spec.name}.forward(x) without h and c, x of shape {tuple(xs.shape)}"
        got_h, got_c, want_h, want_c = _cell.without_states(spec, cell, xs, hid, label)
        expect_shape(got_h, want_h.shape, f"h_next ({label})", hint)
        expect_close(got_h, want_h, f"h_next ({label})", hint)
        expect_close(got_c, want_c, f"c_next ({label})", hint)
        if got_h.dtype != F64 or got_c.dtype != F64:
            raise GradingFailure(f"for a float64 input {label} returns {got_h.dtype}: create default states like x.")


def _gradients_test(kind):
    _cell.gradients_test(SPECS[kind])
    _gradcheck(kind)


def _gradcheck(kind):
    """Autograd against finite differences on the student's cell, small sizes: what backward through the
    student's forward gives, along random directions of (x, h, c, parameters), against central differences
    of forward calls. Both are the student's own; the grader only chooses the points and loads the weights."""
    cls = CLASS_NAME[kind]
    batch, inp, hid = 2, 3, 2
    spec = SPECS[kind]
    cell = _cell.graded_cell(spec, inp, hid)
    names = spec.names()
    x, h, c = _cell.random_case(batch, inp, hid, c_scale=spec.c_scale)
    w_h, w_c = torch.randn(batch, hid, dtype=F64), torch.randn(batch, hid, dtype=F64)
    what = f"{cls}.forward"

    cell.method("zero_grad", set_to_none=True, what=f"{cls}.zero_grad()")
    _, grads = spec.invoke(cell, *(t.clone().requires_grad_(True) for t in (x, h, c)), what=what,
                           backward=[w_h, w_c], backward_what=f"backward through {cls}")
    params = cell.params()
    point = {**{name: cell.weights[name] for name in names}, "x": x, "h": h, "c": c}
    analytic = {**{name: params[name].grad for name in names}, **dict(zip("xhc", grads, strict=True))}

    def loss(at):
        cell.load({name: at[name] for name in names})
        got = spec.invoke(cell, at["x"], at["h"], at["c"], what=what)
        if not (isinstance(got, tuple) and len(got) == 2 and all(isinstance(t, torch.Tensor) for t in got)):
            raise GradingFailure(spec.forward_first)
        return ((got[0].double() * w_h).sum() + (got[1].double() * w_c).sum()).item()

    eps = 1e-6
    for _ in range(3):
        direction = {name: torch.randn_like(t) for name, t in point.items()}
        ahead = loss({name: t + eps * direction[name] for name, t in point.items()})
        behind = loss({name: t - eps * direction[name] for name, t in point.items()})
        numeric = (ahead - behind) / (2 * eps)
        along = sum((g.double() * direction[name]).sum().item() for name, g in analytic.items()
                    if isinstance(g, torch.Tensor) and g.shape == direction[name].shape)
        if not abs(numeric - along) <= 1e-6 + 1e-4 * abs(numeric):
            raise GradingFailure(
                f"torch.autograd.gradcheck fails on {cls}: the gradients autograd computes through your forward "
                "disagree with finite differences. Look for .data, .detach(), torch.no_grad() or in-place updates "
                "inside forward."
            )


# --------------------------------------------------------------------------- PeepholeLSTMCell


@hidden_test
def peephole_parameters():
    """PeepholeLSTMCell subclasses LSTMCell and registers the twelve parameters plus V_f, V_i, V_o (H, H)."""
    _parameters_test(MATRIX)


@hidden_test
def peephole_init():
    """Every parameter of PeepholeLSTMCell, V's included, starts in U(-1/sqrt(H), 1/sqrt(H)), also after reset."""
    _init_test(MATRIX)


@hidden_test
def peephole_zero_v():
    """With V_f = V_i = V_o = 0, PeepholeLSTMCell equals torch.nn.LSTMCell (random h and c, several sizes)."""
    spec = MatrixPeephole
    for batch, inp, hid in _cell.SIZES:
        cell = _cell.graded_cell(spec, inp, hid)
        zeros = {name: torch.zeros(hid, hid, dtype=F64) for name in PEEPHOLES[MATRIX]}
        cell.load(zeros)
        cell.weights.update(zeros)
        x, h, c = _cell.random_case(batch, inp, hid, c_scale=spec.c_scale)
        label = f"V = 0, batch={batch}, input_size={inp}, hidden_size={hid}, random h and c"
        base = {name: cell.weights[name] for name in oracles.CELL_PARAMS}
        want_h, want_c = oracles.torch_cell_from(base)(x, (h, c))
        got_h, got_c = _cell.run_cell(cell, x, h, c, what="PeepholeLSTMCell.forward", invoke=spec.invoke)
        hint = _shape_hint(MATRIX, got_h, got_c, tuple(want_h.shape))
        expect_shape(got_h, tuple(want_h.shape), f"h_next ({label})", hint)
        expect_shape(got_c, tuple(want_h.shape), f"c_next ({label})", hint)
        if close(got_h, want_h) and close(got_c, want_c):
            continue
        named = name_cell_bug(base, x, h, c, got_h, got_c)
        if named:
            bug, sentence = named
            raise GradingFailure(f"PeepholeLSTMCell.forward ({label}): {sentence}", bug=bug)
        raise GradingFailure(
            f"PeepholeLSTMCell.forward ({label}): with all peepholes at zero the cell should compute exactly "
            f"what the plain LSTMCell computes, but h_next differs by up to {max_abs_diff(got_h, want_h):.3g} "
            f"and c_next by up to {max_abs_diff(got_c, want_c):.3g}. Reuse self.preactivation(gate, x, h) for "
            "W h + U x + b, the candidate uses tanh, c_t = f_t * c_{t-1} + i_t * c~_t, h_t = o_t * tanh(c_t)."
        )


@hidden_test
def peephole_forward():
    """PeepholeLSTMCell.forward matches the peephole equations with random V's and states, sizes 1 to 7."""
    _cell.forward_test(MatrixPeephole)


@hidden_test
def peephole_forward_forms():
    """PeepholeLSTMCell.forward handles unbatched 1-D inputs and missing states (zeros like the input)."""
    _forms_test(MATRIX)


@hidden_test
def peephole_gradients():
    """Gradients of all fifteen parameters and of x, h, c match the reference; gradcheck passes."""
    _gradients_test(MATRIX)


# --------------------------------------------------------------------------- PeepholeLSTM


def _stack_classes():
    """The student's PeepholeLSTM and PeepholeLSTMCell, checked; and the PeepholeLSTM the tests build: a subclass
    of the student's whose cell_class is a stand-in for the student's cell (the kernel's ``peephole_stand_in``,
    the given LSTMCell's __init__ plus V_f, V_i, V_o, and the peephole step as forward)."""
    base = student("LSTM")
    cell = student("PeepholeLSTMCell")
    stack = student("PeepholeLSTM")
    if not (isinstance(stack, Remote) and stack.is_type and stack.issubclass(base)):
        raise GradingFailure("PeepholeLSTM should subclass the given LSTM: class PeepholeLSTM(LSTM).")
    chosen = stack.attr("cell_class")
    if not (isinstance(chosen, Remote) and chosen == cell):
        name = getattr(chosen, "__name__", repr(chosen))
        inherited = base.attr("cell_class") if isinstance(base, Remote) else None
        hint = " (inherited from LSTM)" if chosen == inherited else ""
        raise GradingFailure(
            f"PeepholeLSTM.cell_class is {name}{hint}: set the class attribute cell_class = PeepholeLSTMCell, "
            "and the given LSTM builds every layer from it."
        )
    stand_in = fixture("peephole_stand_in", cell, student("LSTMCell"))
    return fixture("subclass", stack, "PeepholeLSTM", {"cell_class": stand_in}), (stand_in, cell)


def _layers(stack):
    """``stack.layers``: a Remote, or what the kernel reported (plain data)."""
    return stack.attr("layers") if isinstance(stack, Remote) else None


@hidden_test
def peephole_lstm_structure():
    """PeepholeLSTM subclasses LSTM, its cell_class is PeepholeLSTMCell, and every layer is one, sized right."""
    stack_cls, cell_classes = _stack_classes()
    for num_layers in (2, 3):
        what = f"PeepholeLSTM(5, 4, num_layers={num_layers})"
        stack = call(stack_cls, 5, 4, num_layers=num_layers, what=what)
        layers = _layers(stack)
        is_list = isinstance(layers, Remote) and layers.is_module and layers.length is not None
        if not is_list or layers.length != num_layers:
            length = layers.length if isinstance(layers, Remote) else (
                len(layers) if isinstance(layers, (list, tuple, str, dict)) else None)
            raise GradingFailure(
                f"{what}.layers should be an nn.ModuleList of {num_layers} cells, got {describe(layers)}"
                + (f" of length {length}" if length is not None else "")
                + ". Keep the given LSTM.__init__: only cell_class changes."
            )
        for k in range(num_layers):
            layer = layers.item(k, what=f"{what}.layers[{k}]")
            kind = layer.type() if isinstance(layer, Remote) else None
            if kind not in cell_classes:
                raise GradingFailure(f"{what}.layers[{k}] is a {describe(layer)}, expected PeepholeLSTMCell.")
            want = (5 if k == 0 else 4, 4)
            got = (layer.attr("input_size"), layer.attr("hidden_size"))
            if got != want:
                raise GradingFailure(
                    f"{what}.layers[{k}] maps {got[0]} → {got[1]}, expected {want[0]} → {want[1]}: layer 0 "
                    "reads the input, the others the hidden state of the layer below."
                )


def _reference_stack(layer_params, x, h0, c0):
    """The stack written out: layer by layer, step by step, with the independent reference cell step."""
    hs, cs = list(h0.unbind(0)), list(c0.unbind(0))
    outputs = []
    for x_t in x.unbind(0):
        for k, params in enumerate(layer_params):
            hs[k], cs[k] = oracles.lstm_cell_step(params, x_t, hs[k], cs[k], peephole=MATRIX)
            x_t = hs[k]
        outputs.append(x_t)
    return torch.stack(outputs), (torch.stack(hs), torch.stack(cs))


def _graded_stack(stack_cls, *args, what, **kwargs):
    """The stack built in the kernel, in float64 on the device, holding the grader's weights; returns it and the
    grader's weights of each layer (float64, CPU)."""
    stack = call(stack_cls, *args, what=what, **kwargs)
    _cell.to_device(stack, f"{what}.to(device, torch.float64)")
    weights = _cell.fill_uniform(stack, MatrixPeephole.fill)
    layers = _layers(stack)
    count = layers.length if isinstance(layers, Remote) else None
    if count is None:
        raise GradingFailure(f"{what}.layers should be an nn.ModuleList of cells. Keep the given LSTM.__init__: "
                             "only cell_class changes.")
    layer_params = []
    for k in range(count):
        prefix = f"layers.{k}."
        params = {name: weights.get(prefix + name) for name in MatrixPeephole.names()}
        missing = [name for name, value in params.items() if value is None]
        if missing:
            raise GradingFailure(f"{what}.layers[{k}] has no parameter {missing[0]}. Keep the given "
                                 "LSTM.__init__: only cell_class changes.")
        layer_params.append(params)
    return stack, layer_params


def _expect_stack(stack, layer_params, x, h0, c0, label, batch_first=False):
    num_layers, hid = len(layer_params), layer_params[0]["W_f"].shape[0]
    xs = x.transpose(0, 1) if batch_first else x
    zeros = torch.zeros(num_layers, *xs.shape[1:-1], hid, dtype=F64)
    want_out, (want_h, want_c) = _reference_stack(
        layer_params, xs, zeros if h0 is None else h0, zeros if c0 is None else c0)
    if batch_first:
        want_out = want_out.transpose(0, 1)
    args = [x] + ([] if h0 is None else [h0, c0])
    out = call(stack, *args, what=f"PeepholeLSTM.forward ({label})")
    if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], tuple) and len(out[1]) == 2):
        raise GradingFailure(f"PeepholeLSTM.forward ({label}) should return (output, (h_n, c_n)).")
    got_out, (got_h, got_c) = out
    for got, want, name in ((got_out, want_out, "output"), (got_h, want_h, "h_n"), (got_c, want_c, "c_n")):
        expect_shape(got, want.shape, f"{name} ({label})")
        if close(got, want):
            continue
        layers = [k for k in range(num_layers) if not close(got[k], want[k])] if name != "output" else []
        where = f" (layer {layers[0]} first)" if layers else ""
        raise GradingFailure(
            f"PeepholeLSTM.forward ({label}): {name} differs from the reference stack by up to "
            f"{max_abs_diff(got, want):.3g}{where}. Every layer should be a PeepholeLSTMCell run by the given "
            "LSTM.forward: only cell_class changes."
        )


@hidden_test
def peephole_lstm_forward():
    """PeepholeLSTM matches a reference stack of peephole steps, with different random states per layer."""
    stack_cls, _ = _stack_classes()
    seq, batch, inp, hid = 5, 3, 3, 4
    stack, layer_params = _graded_stack(stack_cls, inp, hid, what=f"PeepholeLSTM({inp}, {hid})")
    x = torch.randn(seq, batch, inp, dtype=F64)
    h0, c0 = torch.randn(2, batch, hid, dtype=F64), torch.randn(2, batch, hid, dtype=F64) * 1.5
    _expect_stack(stack, layer_params, x, h0, c0,
                  f"2 layers, x of shape {tuple(x.shape)}, random h0 and c0 per layer")

    stack, layer_params = _graded_stack(stack_cls, inp, hid, num_layers=3,
                                        what=f"PeepholeLSTM({inp}, {hid}, num_layers=3)")
    _expect_stack(stack, layer_params, torch.randn(4, inp, dtype=F64), None, None,
                  "3 layers, unbatched x of shape (4, 3), no h0 and c0")

    stack, layer_params = _graded_stack(stack_cls, inp, hid, batch_first=True,
                                        what=f"PeepholeLSTM({inp}, {hid}, batch_first=True)")
    x = torch.randn(batch + 1, seq + 1, inp, dtype=F64)
    h0, c0 = torch.randn(2, batch + 1, hid, dtype=F64), torch.randn(2, batch + 1, hid, dtype=F64)
    _expect_stack(stack, layer_params, x, h0, c0, f"batch_first=True, x of shape {tuple(x.shape)}",
                  batch_first=True)


# --------------------------------------------------------------------------- bonus: DiagonalPeepholeLSTMCell


@hidden_test
def diagonal_bonus_parameters():
    """DiagonalPeepholeLSTMCell has the twelve parameters plus v_f, v_i, v_o (H,), all from U(-k, k)."""
    _parameters_test(DIAGONAL)
    _init_test(DIAGONAL)


@hidden_test
def diagonal_bonus_forward():
    """DiagonalPeepholeLSTMCell.forward matches the original peephole equations, every input form."""
    _cell.forward_test(DiagonalPeephole)
    _forms_test(DIAGONAL)


@hidden_test
def diagonal_bonus_gradients():
    """Gradients of DiagonalPeepholeLSTMCell's parameters and of x, h, c match the reference; gradcheck passes."""
    _gradients_test(DIAGONAL)
